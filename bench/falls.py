"""Falls and man-down on the shared clips, through the full pipeline (real detector, tracker, pose, analyzer).

- fall clips (../shared/data/falls, labels.csv): a `fall` event must come between fall_start_s and the clip
  end (the labelled interval runs to the end: the person stays down). Delay is reported against
  fall_start_s (when the fall begins) and fall_end_s (= clip end, so it is negative);
- ADL clips: no `fall` (and no `immobile`) at all;
- immobile check: the same clips with immobile_s = 2 s: after a fall the person stays down, so `immobile`
  must follow about 2 s after the fall; ADL clips must raise none (no immobile zones configured);
- pedestrian clips (../shared/data/pedestrians/*.mp4), default `falls: {}`: people walking or standing
  at a table must raise no `fall` / `immobile`; the cost of the analyzer per frame (pose included) is measured.

Frames are throttled to `--fps` (default: 10 and 5) of media time, as the worker does.
Run: .venv/bin/python bench/falls.py [--fps 10 5] [--only falls|pedestrians]
"""

from __future__ import annotations

import argparse
import csv
import statistics
import time
from pathlib import Path
from typing import Any

from common import PEDESTRIANS, SHARED, emit, table

from custom_components.safecam.engine.config import parse_scene
from custom_components.safecam.engine.detect import Detector
from custom_components.safecam.engine.pipeline import CameraPipeline, PipelineConfig
from custom_components.safecam.engine.scene.falls import FallsAnalyzer
from custom_components.safecam.engine.sources import open_source, throttle

FALLS = SHARED / "data" / "falls"


def run_clip(detector: Detector, path: Path, fps: float, falls: dict[str, Any]) -> dict[str, Any]:
    """Events, first person_down time and the analyzer's cost on one clip."""
    pipeline = CameraPipeline(detector, parse_scene({"falls": falls}), PipelineConfig(camera=path.stem))
    analyzer = next(a for a in pipeline.analyzers if isinstance(a, FallsAnalyzer))
    if analyzer.pose_error:
        raise SystemExit(f"pose model unavailable: {analyzer.pose_error}")
    costs: list[tuple[float, bool]] = []  # (ms, pose ran) per frame
    update = analyzer.update

    def timed(frame):  # the analyzer's whole cost per frame, pose included
        runs, start = analyzer.pose_runs, time.perf_counter()
        try:
            return update(frame)
        finally:
            costs.append(((time.perf_counter() - start) * 1000, analyzer.pose_runs > runs))

    analyzer.update = timed  # type: ignore[method-assign]
    events: list[Any] = []
    detect_ms: list[float] = []  # the detector on the same frames, under the same load: a yardstick for pose
    frames = 0
    first_down = None
    source = throttle(open_source(str(path)), fps)
    try:
        while (frame := source.read()) is not None:
            if not frames:  # the one-off OpenVINO compile of this frame size is not a per-frame cost
                analyzer.warm(frame.image.shape[1], frame.image.shape[0])
            result = pipeline.process(frame.image, frame.t, frame.index, render=False)
            frames += 1
            if result.detected:
                detect_ms.append(result.timings_ms["detect"])
            events += [e for e in result.events if e.event_type in ("fall", "immobile")]
            if first_down is None and result.analytics["falls"]["person_down"]:
                first_down = frame.t
    finally:
        source.close()
    return {
        "events": events,
        "frames": frames,
        "first_down": first_down,
        "pose_runs": analyzer.pose_runs,
        "pose_ms": analyzer.pose_ms,
        "falls_ms_per_frame": sum(ms for ms, _ in costs) / max(frames, 1),
        "detect_ms_median": statistics.median(detect_ms) if detect_ms else None,
        # A shared 2-vCPU box is noisy: the fastest and the median frame that ran pose, and the median one that did not.
        "pose_frame_ms_min": min((ms for ms, ran in costs if ran), default=None),
        "pose_frame_ms_median": statistics.median([ms for ms, ran in costs if ran]) if any(ran for _, ran in costs) else None,
        "other_frame_ms_median": statistics.median([ms for ms, ran in costs if not ran])
        if any(not ran for _, ran in costs)
        else None,
    }


def _r(x: float | None) -> float | None:
    return None if x is None else round(x, 2)


def bench_falls(detector: Detector, fps: float) -> list[dict[str, Any]]:
    rows = []
    with (FALLS / "labels.csv").open(newline="") as f:
        labels = list(csv.DictReader(f))
    for lab in labels:
        path = FALLS / lab["file"]
        is_fall = lab["label"] == "fall"
        start = float(lab["fall_start_s"]) if is_fall else None
        end = float(lab["fall_end_s"]) if is_fall else None
        # Default thresholds; immobile_s = 2 s so that "stays down" fits in these 4-12 s clips.
        run = run_clip(detector, path, fps, {"immobile_s": 2})
        falls = [e.t for e in run["events"] if e.event_type == "fall"]
        immobile = [e.t for e in run["events"] if e.event_type == "immobile"]
        if is_fall:
            assert start is not None and end is not None
            hit = [t for t in falls if t >= start]
            ok = bool(hit) and len(falls) == len(hit) == 1
            first = hit[0] if hit else None
            imm_ok = bool(immobile) and first is not None and immobile[0] > first
        else:
            first = falls[0] if falls else None
            ok = not falls
            imm_ok = not immobile
        row = {
            "fps": fps,
            "clip": path.stem,
            "label": lab["label"],
            "fall_start_s": start,
            "fall_end_s": end,
            "fall_events": len(falls),
            "first_fall_t": _r(first),
            "delay_from_start_s": _r(first - start) if first is not None and start is not None else None,
            "delay_from_end_s": _r(first - end) if first is not None and end is not None else None,
            "immobile_t": _r(immobile[0]) if immobile else None,
            "ok": ok,
            "immobile_ok": imm_ok,
            "frames": run["frames"],
            "pose_frames": run["pose_runs"],
            "falls_ms_per_frame": round(run["falls_ms_per_frame"], 1),
        }
        emit({"type": "fall_clip", **row})
        rows.append(row)
    falls_rows = [r for r in rows if r["label"] == "fall"]
    adl_rows = [r for r in rows if r["label"] == "adl"]
    delays = [r["delay_from_start_s"] for r in falls_rows if r["delay_from_start_s"] is not None]
    end_delays = [r["delay_from_end_s"] for r in falls_rows if r["delay_from_end_s"] is not None]
    summary = {
        "type": "falls_summary",
        "fps": fps,
        "recall": round(sum(r["delay_from_start_s"] is not None for r in falls_rows) / len(falls_rows), 3),
        "falls_detected": sum(r["delay_from_start_s"] is not None for r in falls_rows),
        "fall_clips": len(falls_rows),
        "adl_false_alarms": sum(r["fall_events"] for r in adl_rows),
        "adl_immobile": sum(r["immobile_t"] is not None for r in adl_rows),
        "mean_delay_from_start_s": round(statistics.mean(delays), 2) if delays else None,
        "max_delay_from_start_s": round(max(delays), 2) if delays else None,
        "mean_delay_from_end_s": round(statistics.mean(end_delays), 2) if end_delays else None,
        "immobile_after_fall": sum(r["immobile_ok"] for r in falls_rows),
    }
    emit(summary)
    return rows


def bench_pedestrians(detector: Detector, fps: float) -> list[dict[str, Any]]:
    rows = []
    for path in sorted(PEDESTRIANS.glob("*.mp4")):
        run = run_clip(detector, path, fps, {})  # what `falls: {}` gives a site: defaults
        row = {
            "fps": fps,
            "clip": path.stem,
            "frames": run["frames"],
            "fall_events": sum(e.event_type == "fall" for e in run["events"]),
            "immobile_events": sum(e.event_type == "immobile" for e in run["events"]),
            "person_down_t": _r(run["first_down"]),
            "pose_frames": run["pose_runs"],
            "pose_ms_per_run": round(run["pose_ms"] / run["pose_runs"], 1) if run["pose_runs"] else None,
            "pose_frame_ms_min": _r(run["pose_frame_ms_min"]),
            "pose_frame_ms_median": _r(run["pose_frame_ms_median"]),
            "other_frame_ms_median": _r(run["other_frame_ms_median"]),
            "falls_ms_per_frame": round(run["falls_ms_per_frame"], 1),
            "detect_ms_median": _r(run["detect_ms_median"]),
        }
        emit({"type": "pedestrian_clip", **row})
        rows.append(row)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--fps", type=float, nargs="+", default=[10.0, 5.0])
    parser.add_argument("--only", choices=("falls", "pedestrians"), help="run one part (default: both)")
    args = parser.parse_args()
    detector = Detector.from_catalog(provider="auto")
    clip_rows: list[dict[str, Any]] = []
    ped_rows: list[dict[str, Any]] = []
    for fps in args.fps:
        if args.only != "pedestrians":
            clip_rows += bench_falls(detector, fps)
        if args.only != "falls":
            ped_rows += bench_pedestrians(detector, fps)
    if clip_rows:
        print()
        table(
            clip_rows,
            ["fps", "clip", "label", "fall_events", "first_fall_t", "delay_from_start_s", "delay_from_end_s", "immobile_t",
             "ok", "immobile_ok", "pose_frames", "frames", "falls_ms_per_frame"],
        )  # fmt: skip
    if ped_rows:
        print()
        table(
            ped_rows,
            ["fps", "clip", "frames", "fall_events", "immobile_events", "person_down_t", "pose_frames", "pose_frame_ms_min",
             "pose_frame_ms_median", "other_frame_ms_median", "falls_ms_per_frame", "detect_ms_median"],
        )  # fmt: skip


if __name__ == "__main__":
    main()
