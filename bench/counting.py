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
at every analysis rate a site owner can get from a 25 fps camera down to the default: every 1st to 5th
frame (25, 12.5, 8.33, 6.25 and 5 fps; 5 fps is Home Assistant's default analysis rate).

Reference: the very same per-frame tracks fed to supervision's `LineZone` (pinned version below): the
pipeline's counted people (ids and boxes), plus, for tracks confirmed later, their detected boxes
while they were still tentative (our gates count crossings made while a track is being confirmed, so
LineZone gets those observations too); with its default trigger (all four box corners must change
side) and with the bottom-centre anchor our gates use. supervision runs in a
benchmark-only venv that this script creates under run/ (never a product dependency).

Hand-off (engine/scene/gates.py): a crossing split across a lost track and a new one counts once; its
parameters can be varied here (--gates-param handoff_s=1.0, handoff_radius=0.35,0.5, handoff_height_ratio=2,
handoff_s=0 turns it off) to show the counts do not hinge on them. --diagnose prints, per line and
direction where ours is off, each true crossing (ground-truth identity, frames) and each counted one
(track, frame, the identity its box overlaps, whether it was a hand-off), and for every missed or extra
crossing the tracks on that identity around it with their births and ends; and every hand-off counted.

Run: .venv/bin/python bench/counting.py [--fps 25 12.5 8.33 6.25 5] [--no-supervision] [--diagnose] [--gates-param K=V ...]
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


class Trace:
    """What the diagnostics look at: per analysed frame every track the tracker holds, and the counted crossings."""

    def __init__(self) -> None:
        self.frames: list[int] = []  # video frame index of each analysed frame
        self.tracks: list[list[tuple[int, list[float], bool, int]]] = []  # (id, box, confirmed, lost frames)
        self.crossings: list[tuple[int, str, int, str]] = []  # (frame, gate, track, direction)


def engine_counts(
    clip: str, step: int, clip_fps: float = 25.0, gate_params: dict[str, Any] | None = None, trace: Trace | None = None
) -> tuple[dict[str, dict[str, int]], Frames, int, int]:
    """Gate totals of the full pipeline on every `step`-th frame, and the tracks it counted per frame."""
    from common import PEDESTRIANS, read_frames

    from custom_components.safecam.engine.config import parse_scene
    from custom_components.safecam.engine.detect import Detector
    from custom_components.safecam.engine.pipeline import CameraPipeline
    from custom_components.safecam.engine.scene.gates import GateCounter

    frames = read_frames(PEDESTRIANS / f"{clip}.mp4")
    scene = parse_scene({"gates": [{"name": n, "line": [list(a), list(b)]} for n, (a, b) in GATES.items()]})
    pipeline = CameraPipeline(Detector.from_catalog(), scene)
    if gate_params:
        pipeline.gates = GateCounter(scene.gates, **gate_params)
    tracks: Frames = []
    tentative: list[list[tuple[int, list[float]]]] = []
    res = None
    for i in range(0, len(frames), step):
        res = pipeline.process(frames[i], i / clip_fps, i, render=False)
        if trace is not None:
            trace.frames.append(i)
            every = pipeline.tracker.tracks(include_tentative=True)
            trace.tracks.append([(tr.track_id, [float(v) for v in tr.box], tr.confirmed, tr.lost_frames) for tr in every])
            for e in res.events:
                if e.event_type == "gate_crossing" and e.track_id is not None:
                    trace.crossings.append((i, e.details["gate"], e.track_id, e.details["direction"]))
        tracks.append([(tr.track_id, [float(v) for v in tr.box]) for tr in res.tracks])
        seen = [tr for tr in pipeline.tracker.tracks(include_tentative=True) if not tr.confirmed and tr.lost_frames == 0]
        tentative.append([(tr.track_id, [float(v) for v in tr.box]) for tr in seen])
    assert res is not None
    confirmed = {tid for frame in tracks for tid, _ in frame}
    tracks = [now + [(tid, box) for tid, box in early if tid in confirmed] for now, early in zip(tracks, tentative, strict=True)]
    h, w = frames[0].shape[:2]
    return {g: {"in": c["in"], "out": c["out"]} for g, c in res.gates.items()}, tracks, w, h


# ---- diagnostics ----------------------------------------------------------------------------


def _iou(a: list[float] | np.ndarray, b: list[float] | np.ndarray) -> float:
    iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = iw * ih
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def true_crossings(clip: str, width: int, height: int) -> list[tuple[str, str, int, int]]:
    """Every true crossing as (gate, direction, identity, frame), by the very rule of ground_truth_counts: the frame
    is where a growing prefix of the identity's path gains a crossing."""
    from common import load_mot_gt

    gt = load_mot_gt(clip)
    paths: dict[int, list[tuple[int, np.ndarray]]] = {}
    for f in sorted(gt):
        ids, boxes, _flags = gt[f]
        for tid, box in zip(ids, boxes, strict=True):
            paths.setdefault(int(tid), []).append((f, np.array([(box[0] + box[2]) / 2 / width, box[3] / height])))
    out: list[tuple[str, str, int, int]] = []
    for gid, path in paths.items():
        points = [q for _, q in path]
        for name, (a, b) in GATES.items():
            before: list[str] = []
            for k in range(len(points)):
                now = path_crossings(points[: k + 1], a, b)
                if len(now) > len(before):
                    out.append((name, now[-1], gid, path[k][0]))
                before = now
    return sorted(out, key=lambda c: (c[0], c[1], c[3]))


def diagnose(clip: str, fps: float, trace: Trace, width: int, height: int) -> None:
    """Per line and direction where ours differs from the truth: true and counted crossings, matched (same
    identity first, then nearest in time: at most 1 s apart, 4 s for a hand-off, which counts only once the
    lost track has ended), and for what is left over the tracks on that identity around it."""
    from common import load_mot_gt

    gt = load_mot_gt(clip)
    window = 25  # frames (1 s) either side
    truth = true_crossings(clip, width, height)

    def gt_box(gid: int, f: int) -> np.ndarray | None:
        ids, boxes, _ = gt.get(f, (np.zeros(0, int), np.zeros((0, 4)), None))
        hit = np.nonzero(ids == gid)[0]
        return boxes[hit[0]] if len(hit) else None

    def identity(tid: int, f: int) -> tuple[int | None, str]:
        """The ground-truth identity the track's box overlaps most at the analysed frame nearest f (seen, else predicted)."""
        k = min(range(len(trace.frames)), key=lambda j: abs(trace.frames[j] - f))
        box = next((b for t, b, _, _ in trace.tracks[k] if t == tid), None)
        ids, boxes, _ = gt.get(trace.frames[k], (np.zeros(0, int), np.zeros((0, 4)), None))
        if box is None or not len(ids):
            return None, "?"
        overlaps = [_iou(box, g) for g in boxes]
        j = int(np.argmax(overlaps))
        return (int(ids[j]), f"gt{int(ids[j])}@{overlaps[j]:.2f}") if overlaps[j] > 0 else (None, "none")

    def departed(tid: int, f: int, gate: str, direction: str) -> bool:
        """Was the track ever clearly on the side it left from, before f? (No: the crossing was a hand-off.)"""
        (x, _), _ = GATES[gate]
        for fr, frame_tracks in zip(trace.frames, trace.tracks, strict=True):
            if fr >= f:
                break
            for t, box, _, lost in frame_tracks:
                if t == tid and lost == 0:
                    d = x - (box[0] + box[2]) / 2 / width  # s(q) / |p2 - p1| for p1 = (x, 0), p2 = (x, 1)
                    if (d < -MARGIN and direction == "in") or (d > MARGIN and direction == "out"):
                        return True
        return False

    def tracks_on(gid: int, f: int) -> str:
        """Tracks whose box overlaps the identity (IoU >= 0.3) within the window, with their first and last frames."""
        seen: dict[int, list[int]] = {}
        for fr, frame_tracks in zip(trace.frames, trace.tracks, strict=True):
            g = gt_box(gid, fr)
            if g is None or abs(fr - f) > window:
                continue
            for t, box, _, lost in frame_tracks:
                if lost == 0 and _iou(box, g) >= 0.3:
                    seen.setdefault(t, []).append(fr)
        spans = []
        for t, frs in sorted(seen.items()):
            life = [fr for fr, ft in zip(trace.frames, trace.tracks, strict=True) if any(x[0] == t and x[3] == 0 for x in ft)]
            spans.append(f"track {t} on it f{frs[0]}-f{frs[-1]} (seen f{life[0]}-f{life[-1]})")
        return "; ".join(spans) or "no track on it"

    handoffs = [c for c in trace.crossings if not departed(c[2], c[0], c[1], c[3])]
    for f, gate, tid, direction in handoffs:
        print(f"  {clip} {fps} fps hand-off: {gate} {direction} f{f} track {tid} ({identity(tid, f)[1]})")
    for gate in GATES:
        for direction in ("in", "out"):
            true = [c for c in truth if c[0] == gate and c[1] == direction]
            ours = [c for c in trace.crossings if c[1] == gate and c[3] == direction]
            if len(true) == len(ours):
                continue
            print(f"  {clip} {fps} fps {gate} {direction}: truth {len(true)}, ours {len(ours)}")
            who = [identity(o[2], o[0]) for o in ours]
            late = [0 if departed(o[2], o[0], gate, direction) else 3 * window for o in ours]  # hand-offs count late
            # Same identity first, then nearest in time.
            pairs = sorted((who[j][0] != t[2], abs(t[3] - o[0]), i, j) for i, t in enumerate(true) for j, o in enumerate(ours))
            used_t: set[int] = set()
            used_o: set[int] = set()
            for _, gap, i, j in pairs:
                if gap <= window + late[j] and i not in used_t and j not in used_o:
                    used_t.add(i)
                    used_o.add(j)
            for i, (_, _, gid, f) in enumerate(true):
                state = "counted" if i in used_t else "MISSED: " + tracks_on(gid, f)
                print(f"    true gt{gid} f{f}: {state}")
            for j, (f, _, tid, _) in enumerate(ours):
                kind = "" if departed(tid, f, gate, direction) else " (hand-off)"
                state = "" if j in used_o else "  EXTRA"
                print(f"    ours track {tid} f{f} ({who[j][1]}){kind}{state}")


# ---- supervision (runs in the bench venv) ---------------------------------------------------


def _rate(step: int) -> float | int:
    """The analysis rate of every step-th frame of a 25 fps clip: 25, 12.5, 8.33, 6.25, 5."""
    fps = round(25 / step, 2)
    return int(fps) if fps == int(fps) else fps


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
    parser.add_argument(
        "--fps",
        type=float,
        nargs="+",
        default=[25, 12.5, 8.33, 6.25, 5],
        help="analysis rates: every 25/fps-th frame, rounded (default: every 1st to 5th frame)",
    )
    parser.add_argument("--no-supervision", action="store_true")
    parser.add_argument("--diagnose", action="store_true", help="per-crossing diagnostics where ours is off, and every hand-off")
    parser.add_argument("--gates-param", action="append", default=[], metavar="K=V", help="a GateCounter parameter for ours")
    parser.add_argument("--linezone-worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.linezone_worker:
        linezone_worker(args.linezone_worker)
        return

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from common import MOT_CLIPS, emit, table

    gate_params: dict[str, Any] = {}
    for item in args.gates_param:
        key, value = item.split("=", 1)
        numbers = tuple(float(v) for v in value.split(","))
        gate_params[key] = numbers if len(numbers) > 1 else numbers[0]
    if gate_params:
        emit({"bench": "gate_counts_params", **gate_params})
    python = None if args.no_supervision else ensure_bench_venv()
    methods = ("ours", *SV_VARIANTS) if python else ("ours",)
    per_rate: list[dict[str, Any]] = []
    for rate in args.fps:
        step = max(1, round(25 / rate))
        fps = _rate(step)
        rows: list[dict[str, Any]] = []
        diagnostics: list[tuple[str, Trace, int, int]] = []
        for clip in MOT_CLIPS:
            trace = Trace() if args.diagnose else None
            ours, frames, w, h = engine_counts(clip, step, gate_params=gate_params, trace=trace)
            if trace is not None:
                diagnostics.append((clip, trace, w, h))
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
        per_rate.append(summary)
        print(f"\n{fps} fps (rows with no true and no counted crossing left out)")
        shown = [r for r in rows if any(r[k] for k in ("truth", *methods))]
        table(shown, ["clip", "gate", "direction", "truth", *methods])
        line = ", ".join(f"{m} {summary[f'{m}_abs_error']} ({100 * summary[f'{m}_relative']:.1f} %)" for m in methods)
        print(f"{fps} fps, all lines: {total_truth} true crossings; total absolute error: {line}")
        for clip, trace, w, h in diagnostics:
            diagnose(clip, fps, trace, w, h)
    print("\nper analysis rate, all lines")
    errors = [{m: f"{r[f'{m}_abs_error']} ({100 * r[f'{m}_relative']:.1f} %)" for m in methods} for r in per_rate]
    table(
        [{"fps": r["fps"], "truth": r["truth"], **e} for r, e in zip(per_rate, errors, strict=True)], ["fps", "truth", *methods]
    )


if __name__ == "__main__":
    main()
