"""Gate counting accuracy against crossings derived from the MOT ground truth, beside supervision's LineZone.

No line-crossing ground truth exists, so it is derived (DATA.md). Declared lines, the same for every
clip and chosen before looking at any result: a full-height vertical gate every tenth of the width,
x = 0.1 ... 0.9 ("x10" ... "x90"). People in both TUD clips walk left and right, so vertical lines are
where they cross; "in" is right to left (s goes from < 0 to > 0 with s(q) = (p2 - p1) x (q - p1),
p1 = (x, 0), p2 = (x, 1), x right, y down).

Truth: each ground-truth identity's bottom-centre path (every annotated frame, 25 fps) under the
crossing rule of the issue, written here independently of the engine's GateCounter: a side counts
only when the point is more than MARGIN (normalized) from the line, and a change of side counts when
the path from the last clearly-sided point to the new one passes through the gate segment. A crossing
needs a clearly-sided point before it on the same identity's path: nobody is counted for where they
were first annotated (on a clip's first frame, or when they walk into view), but a crossing between
their first two annotated frames counts (it was observable: they were seen on the first side).

Counted: the full pipeline as deployed (motion gate, YOLOX-nano, tracker, GateCounter) on the video,
at the clip's 25 fps and at 5 fps (every 5th frame, Home Assistant's default analysis rate).

Reference: the very same per-frame tracks fed to supervision's `LineZone` (pinned version below): the
pipeline's counted people (ids and boxes), plus, for tracks confirmed later, their detected boxes
while they were still tentative (our gates count crossings made while a track is being confirmed, so
LineZone gets those observations too); with its default trigger (all four box corners must change
side) and with the bottom-centre anchor our gates use. supervision runs in a
benchmark-only venv that this script creates under run/ (never a product dependency).

Run: .venv/bin/python bench/counting.py [--fps 25 5] [--no-supervision]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
MARGIN = 0.01  # the "clearly on one side" distance of the crossing rule (normalized)
GATES = {f"x{round(x * 100)}": ((x, 0.0), (x, 1.0)) for x in (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)}
SUPERVISION = "supervision==0.31.2"
BENCH_VENV = REPO / "run" / "bench-venv"
SV_VARIANTS = ("sv_corners", "sv_bottom")  # LineZone defaults; LineZone with the bottom-centre anchor


# ---- ground truth ---------------------------------------------------------------------------


def _crosses_segment(q0: np.ndarray, q1: np.ndarray, a: np.ndarray, b: np.ndarray) -> bool:
    """Does the segment q0 -> q1 meet the segment a -> b? (parametric form, touching included)"""
    r, s = q1 - q0, b - a
    denom = r[0] * s[1] - r[1] * s[0]
    if abs(denom) < 1e-12:
        return False  # parallel: never a crossing between two clearly-sided points
    w = a - q0
    t = (w[0] * s[1] - w[1] * s[0]) / denom
    u = (w[0] * r[1] - w[1] * r[0]) / denom
    return 0.0 <= t <= 1.0 and 0.0 <= u <= 1.0


def path_crossings(path: list[np.ndarray], a: tuple[float, float], b: tuple[float, float]) -> list[str]:
    """'in'/'out' for each crossing of gate a -> b along one identity's path (normalized points)."""
    p1, p2 = np.asarray(a), np.asarray(b)
    d = p2 - p1
    length = float(np.hypot(d[0], d[1]))
    out: list[str] = []
    last: tuple[int, np.ndarray] | None = None
    for q in path:
        dist = (d[0] * (q[1] - p1[1]) - d[1] * (q[0] - p1[0])) / length
        if abs(dist) <= MARGIN:
            continue
        side = 1 if dist > 0 else -1
        if last is not None and last[0] != side and _crosses_segment(last[1], q, p1, p2):
            out.append("in" if side > 0 else "out")
        last = (side, q)
    return out


def ground_truth_counts(clip: str, width: int, height: int) -> dict[str, dict[str, int]]:
    from common import load_mot_gt

    gt = load_mot_gt(clip)
    paths: dict[int, list[np.ndarray]] = {}
    for f in sorted(gt):
        ids, boxes, _flags = gt[f]
        for tid, box in zip(ids, boxes, strict=True):
            paths.setdefault(int(tid), []).append(np.array([(box[0] + box[2]) / 2 / width, box[3] / height]))
    counts = {name: {"in": 0, "out": 0} for name in GATES}
    for path in paths.values():
        for name, (a, b) in GATES.items():
            for direction in path_crossings(path, a, b):
                counts[name][direction] += 1
    return counts


# ---- the engine -----------------------------------------------------------------------------

Frames = list[list[tuple[int, list[float]]]]  # per analysed frame: (track id, pixel box)


def engine_counts(clip: str, step: int, clip_fps: float = 25.0) -> tuple[dict[str, dict[str, int]], Frames, int, int]:
    """Gate totals of the full pipeline on every `step`-th frame, and the tracks it counted per frame."""
    from common import PEDESTRIANS, read_frames

    from custom_components.safecam.engine.config import parse_scene
    from custom_components.safecam.engine.detect import Detector
    from custom_components.safecam.engine.pipeline import CameraPipeline

    frames = read_frames(PEDESTRIANS / f"{clip}.mp4")
    scene = parse_scene({"gates": [{"name": n, "line": [list(a), list(b)]} for n, (a, b) in GATES.items()]})
    pipeline = CameraPipeline(Detector.from_catalog(), scene)
    tracks: Frames = []
    tentative: list[list[tuple[int, list[float]]]] = []
    res = None
    for i in range(0, len(frames), step):
        res = pipeline.process(frames[i], i / clip_fps, i, render=False)
        tracks.append([(tr.track_id, [float(v) for v in tr.box]) for tr in res.tracks])
        seen = [tr for tr in pipeline.tracker.tracks(include_tentative=True) if not tr.confirmed and tr.lost_frames == 0]
        tentative.append([(tr.track_id, [float(v) for v in tr.box]) for tr in seen])
    assert res is not None
    confirmed = {tid for frame in tracks for tid, _ in frame}
    tracks = [now + [(tid, box) for tid, box in early if tid in confirmed] for now, early in zip(tracks, tentative, strict=True)]
    h, w = frames[0].shape[:2]
    return {g: {"in": c["in"], "out": c["out"]} for g, c in res.gates.items()}, tracks, w, h


# ---- supervision (runs in the bench venv) ---------------------------------------------------


def ensure_bench_venv() -> Path | None:
    """run/bench-venv with supervision, created with uv (or venv + pip); None when that fails."""
    python = BENCH_VENV / "bin" / "python"
    check = [str(python), "-c", f"import supervision; assert supervision.__version__ == '{SUPERVISION.split('==')[1]}'"]
    if python.exists() and subprocess.run(check, capture_output=True, check=False).returncode == 0:
        return python
    try:
        try:
            subprocess.run([sys.executable, "-m", "uv", "venv", "-q", str(BENCH_VENV), "--python", sys.executable], check=True)
            subprocess.run([sys.executable, "-m", "uv", "pip", "install", "-q", "--python", str(python), SUPERVISION], check=True)
        except (subprocess.CalledProcessError, FileNotFoundError):
            subprocess.run([sys.executable, "-m", "venv", "--clear", str(BENCH_VENV)], check=True)
            subprocess.run([str(python), "-m", "pip", "install", "-q", SUPERVISION], check=True)
    except (subprocess.CalledProcessError, FileNotFoundError) as err:
        print(f"supervision venv not available ({err}); skipping LineZone", file=sys.stderr)
        return None
    return python


def linezone_worker(job_path: str) -> None:
    """In the bench venv: replay the tracks through LineZone; print {variant: {gate: {in, out}}} as JSON."""
    import warnings

    warnings.filterwarnings("ignore")  # supervision warns that opencv-python is absent (it needs no drawing here)
    import supervision as sv

    job = json.loads(Path(job_path).read_text(encoding="utf-8"))
    w, h = job["width"], job["height"]
    anchors = {"sv_corners": None, "sv_bottom": [sv.Position.BOTTOM_CENTER]}

    def zone(a: list[float], b: list[float], variant: str) -> sv.LineZone:
        start, end = sv.Point(a[0] * w, a[1] * h), sv.Point(b[0] * w, b[1] * h)
        chosen = anchors[variant]
        return sv.LineZone(start, end) if chosen is None else sv.LineZone(start, end, triggering_anchors=chosen)

    # LineZone calls a right-to-left walk over a top-to-bottom line "out"; ours calls it "in".
    probe = zone([0.5, 0.0], [0.5, 1.0], "sv_bottom")
    for x in (0.7, 0.3):
        box = np.array([[x * w - 10, 0.3 * h, x * w + 10, 0.6 * h]])
        probe.trigger(sv.Detections(xyxy=box, tracker_id=np.array([1])))
    assert (probe.in_count, probe.out_count) == (0, 1), "supervision changed its direction convention"

    out: dict[str, dict[str, dict[str, int]]] = {}
    for variant in SV_VARIANTS:
        zones = {name: zone(a, b, variant) for name, (a, b) in job["gates"].items()}
        for frame in job["frames"]:
            if frame:
                boxes = np.array([b for _, b in frame], np.float64)
                boxes[:, [0, 2]] = np.clip(boxes[:, [0, 2]], 0, w - 1)  # as the engine clips positions to the frame
                boxes[:, [1, 3]] = np.clip(boxes[:, [1, 3]], 0, h - 1)
                dets = sv.Detections(xyxy=boxes, tracker_id=np.array([i for i, _ in frame]))
            else:
                dets = sv.Detections.empty()
                dets.tracker_id = np.zeros(0, int)
            for z in zones.values():
                z.trigger(dets)
        out[variant] = {name: {"in": z.out_count, "out": z.in_count} for name, z in zones.items()}
    print(json.dumps(out))


def supervision_counts(python: Path, frames: Frames, width: int, height: int, tag: str) -> dict[str, dict[str, dict[str, int]]]:
    job = REPO / "run" / "counting" / f"tracks_{tag}.json"
    job.parent.mkdir(parents=True, exist_ok=True)
    gates = {n: [list(a), list(b)] for n, (a, b) in GATES.items()}
    job.write_text(json.dumps({"width": width, "height": height, "gates": gates, "frames": frames}), encoding="utf-8")
    proc = subprocess.run([str(python), __file__, "--linezone-worker", str(job)], capture_output=True, text=True, check=True)
    result: dict[str, dict[str, dict[str, int]]] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


# ---- report ---------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--fps", type=int, nargs="+", default=[25, 5], help="analysis rates (divisors of 25)")
    parser.add_argument("--no-supervision", action="store_true")
    parser.add_argument("--linezone-worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.linezone_worker:
        linezone_worker(args.linezone_worker)
        return

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from common import MOT_CLIPS, emit, table

    python = None if args.no_supervision else ensure_bench_venv()
    methods = ("ours", *SV_VARIANTS) if python else ("ours",)
    for fps in args.fps:
        step = 25 // fps
        rows: list[dict[str, Any]] = []
        for clip in MOT_CLIPS:
            ours, frames, w, h = engine_counts(clip, step)
            truth = ground_truth_counts(clip, w, h)
            counted = {"ours": ours, **(supervision_counts(python, frames, w, h, f"{clip}_{fps}") if python else {})}
            for gate in GATES:
                for direction in ("in", "out"):
                    row: dict[str, Any] = {
                        "bench": "gate_counts",
                        "fps": fps,
                        "clip": clip,
                        "gate": gate,
                        "direction": direction,
                        "truth": truth[gate][direction],
                    }
                    row.update({m: counted[m][gate][direction] for m in methods})
                    emit(row)
                    rows.append(row)
        total_truth = sum(r["truth"] for r in rows)
        summary: dict[str, Any] = {"bench": "gate_counts_total", "fps": fps, "truth": total_truth}
        for m in methods:
            abs_err = sum(abs(r[m] - r["truth"]) for r in rows)
            summary[f"{m}_abs_error"] = abs_err
            summary[f"{m}_relative"] = round(abs_err / max(total_truth, 1), 3)
        emit(summary)
        print(f"\n{fps} fps (rows with no true and no counted crossing left out)")
        shown = [r for r in rows if any(r[k] for k in ("truth", *methods))]
        table(shown, ["clip", "gate", "direction", "truth", *methods])
        line = ", ".join(f"{m} {summary[f'{m}_abs_error']} ({100 * summary[f'{m}_relative']:.1f} %)" for m in methods)
        print(f"{fps} fps, all lines: {total_truth} true crossings; total absolute error: {line}")


if __name__ == "__main__":
    main()
