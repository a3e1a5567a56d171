"""Soak benchmark: a CameraWorker loops a clip for N minutes; RSS is sampled and its slope reported.

    .venv/bin/python bench/soak.py --minutes 30 [--clip pedestrians/tud_campus.mp4] [--fps 5] [--every 5]

The worker runs exactly as in Home Assistant (real detector, anonymizer, JPEG encoding, the clip
paced in real time and looped). RSS (from /proc/self/statm) is sampled every `--every` seconds; the
slope is a least-squares fit over the samples after the first `--warmup` seconds (model load and
allocator warm-up are not a leak). Flat means |slope| below `--flat-mb-per-h`.
Prints one JSON line per sample and a summary line, then a short table.
"""

from __future__ import annotations

import argparse
import os
import threading
import time

import numpy as np
from common import PEDESTRIANS, emit, table

from custom_components.safecam.engine.config import parse_scene
from custom_components.safecam.engine.detect import Detector
from custom_components.safecam.engine.types import SafetyEvent
from custom_components.safecam.engine.worker import CameraState, CameraWorker

SCENE = {
    "zones": [{"name": "walkway", "kind": "danger", "polygon": [[0.0, 0.6], [1.0, 0.6], [1.0, 1.0], [0.0, 1.0]]}],
    "gates": [{"name": "middle", "line": [[0.5, 0.5], [0.5, 1.0]]}],
}


def rss_mb() -> float:
    with open("/proc/self/statm") as fh:
        pages = int(fh.read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=30.0)
    parser.add_argument("--clip", default="pedestrians/tud_campus.mp4", help="relative to ../shared/data")
    parser.add_argument("--fps", type=float, default=5.0)
    parser.add_argument("--every", type=float, default=5.0, help="seconds between RSS samples")
    parser.add_argument("--warmup", type=float, default=30.0, help="seconds left out of the slope fit")
    parser.add_argument("--flat-mb-per-h", type=float, default=10.0)
    parser.add_argument("--window", type=float, default=5.0, help="minutes averaged for the first/last RSS figures")
    args = parser.parse_args()

    last: dict[str, CameraState] = {}
    events = [0]
    lock = threading.Lock()

    def on_state(state: CameraState, evs: list[SafetyEvent]) -> None:
        with lock:
            last["state"] = state
            events[0] += len(evs)

    clip = PEDESTRIANS.parent / args.clip
    worker = CameraWorker("soak", str(clip), Detector.from_catalog, scene=parse_scene(SCENE), fps=args.fps, on_state=on_state)
    start = time.monotonic()
    samples: list[tuple[float, float]] = []
    worker.start()
    try:
        while (elapsed := time.monotonic() - start) < args.minutes * 60:
            with lock:
                state = last.get("state")
            rss = rss_mb()
            samples.append((elapsed, rss))
            emit(
                {
                    "type": "sample",
                    "t_s": round(elapsed, 1),
                    "rss_mb": round(rss, 1),
                    "frames": state.frames if state else 0,
                    "threads": threading.active_count(),
                }
            )
            time.sleep(args.every)
    finally:
        worker.stop()
    with lock:
        state = last.get("state")
    fit = [(t, m) for t, m in samples if t >= args.warmup]
    slope_h = float(np.polyfit([t for t, _ in fit], [m for _, m in fit], 1)[0]) * 3600 if len(fit) >= 3 else float("nan")
    # Mean RSS over the first and last `--window` minutes after warm-up: a drift check robust to one noisy sample.
    win = args.window * 60
    first = [m for t, m in fit if t < args.warmup + win]
    last_w = [m for t, m in fit if t >= samples[-1][0] - win] if samples else []
    summary = {
        "type": "summary",
        "minutes": round((time.monotonic() - start) / 60, 2),
        "samples": len(samples),
        "fit_samples": len(fit),
        "rss_start_mb": round(fit[0][1], 1) if fit else None,
        "rss_end_mb": round(samples[-1][1], 1) if samples else None,
        "rss_max_mb": round(max(m for _, m in samples), 1) if samples else None,
        "rss_first_window_mb": round(float(np.mean(first)), 1) if first else None,
        "rss_last_window_mb": round(float(np.mean(last_w)), 1) if last_w else None,
        "slope_mb_per_h": round(slope_h, 2),
        "flat": bool(abs(slope_h) < args.flat_mb_per_h),
        "frames": state.frames if state else 0,
        "analysis_fps": state.analysis_fps if state else 0.0,
        "events": events[0],
        "gates": state.gates if state else {},
    }
    emit(summary)
    print()
    columns = ["minutes", "frames", "analysis_fps", "rss_first_window_mb", "rss_last_window_mb", "rss_max_mb", "slope_mb_per_h"]
    table([summary], [*columns, "flat"])


if __name__ == "__main__":
    main()
