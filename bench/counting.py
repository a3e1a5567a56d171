"""Gate counting against counts derived from the MOT ground truth.

No line-crossing ground truth exists, so it is derived (DATA.md): for declared vertical gates, each
ground-truth identity's bottom-centre path is checked for crossings, with code independent of the
engine's GateCounter (sign change of s(q) = (p2-p1) x (q-p1) between consecutive annotated
positions, with the path segment intersecting the gate). The engine's counts come from the full
pipeline (detector, tracker, gates) as deployed.

Run: .venv/bin/python bench/counting.py
"""

from __future__ import annotations

import itertools

import numpy as np
from common import MOT_CLIPS, PEDESTRIANS, emit, load_mot_gt, read_frames, table

from custom_components.safecam.engine.config import parse_scene
from custom_components.safecam.engine.detect import Detector
from custom_components.safecam.engine.pipeline import CameraPipeline

# Vertical gates across the walkways, top to bottom: "in" = walking right to left.
GATES = {f"x{int(x * 100)}": ((x, 0.0), (x, 1.0)) for x in (0.3, 0.5, 0.7)}


def _side(q: np.ndarray, p1: np.ndarray, p2: np.ndarray) -> float:
    d = p2 - p1
    return float(d[0] * (q[1] - p1[1]) - d[1] * (q[0] - p1[0]))


def ground_truth_counts(clip: str, width: int, height: int) -> dict[str, dict[str, int]]:
    gt = load_mot_gt(clip)
    paths: dict[int, list[np.ndarray]] = {}
    for f in sorted(gt):
        ids, boxes, _flags = gt[f]
        for tid, b in zip(ids, boxes, strict=True):
            paths.setdefault(int(tid), []).append(np.array([(b[0] + b[2]) / 2 / width, b[3] / height]))
    counts = {name: {"in": 0, "out": 0} for name in GATES}
    for path in paths.values():
        for name, (a, b) in GATES.items():
            p1, p2 = np.array(a), np.array(b)
            sides = [(_side(q, p1, p2), q) for q in path]
            sides = [(s, q) for s, q in sides if s != 0]
            for (s0, q0), (s1, q1) in itertools.pairwise(sides):
                if (s0 < 0) != (s1 < 0):
                    # path segment crosses the infinite line; check it is within the gate's extent
                    t = s0 / (s0 - s1)
                    y = q0[1] + t * (q1[1] - q0[1])
                    if min(a[1], b[1]) <= y <= max(a[1], b[1]):
                        counts[name]["in" if s1 > 0 else "out"] += 1
    return counts


def engine_counts(clip: str, fps: float = 25.0) -> tuple[dict[str, dict[str, int]], int, int]:
    frames = read_frames(PEDESTRIANS / f"{clip}.mp4")
    scene = parse_scene({"gates": [{"name": n, "line": [list(a), list(b)]} for n, (a, b) in GATES.items()]})
    pipeline = CameraPipeline(Detector.from_catalog(), scene)
    res = None
    for i, frame in enumerate(frames):
        res = pipeline.process(frame, i / fps, i, render=False)
    assert res is not None
    h, w = frames[0].shape[:2]
    return res.gates, w, h


def main() -> None:
    rows = []
    for clip in MOT_CLIPS:
        counted, w, h = engine_counts(clip)
        truth = ground_truth_counts(clip, w, h)
        for gate in GATES:
            for direction in ("in", "out"):
                row = {
                    "bench": "gate_counts",
                    "clip": clip,
                    "gate": gate,
                    "direction": direction,
                    "truth": truth[gate][direction],
                    "counted": counted[gate][direction],
                    "error": counted[gate][direction] - truth[gate][direction],
                }
                emit(row)
                rows.append(row)
    total_truth = sum(r["truth"] for r in rows)
    total_abs = sum(abs(r["error"]) for r in rows)
    emit(
        {
            "bench": "gate_counts_total",
            "truth": total_truth,
            "abs_error": total_abs,
            "relative_abs_error": round(total_abs / max(total_truth, 1), 3),
        }
    )
    print()
    table(rows, ["clip", "gate", "direction", "truth", "counted", "error"])
    print(f"\nall gates: {total_truth} true crossings, total absolute error {total_abs}")


if __name__ == "__main__":
    main()
