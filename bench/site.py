"""Site device cost per update, on real data: what Home Assistant spends fusing cameras and drawing the site.

TUD-Stadtmitte's ground-truth people (about 6 per frame, 179 frames) seen by two overlapping virtual cameras, as
in tests/engine/test_site.py: "left" sees x 0-60 % of the street, "right" x 40-100 %, each box cut at its
camera's edge (kept when half of it shows). Each camera's floor points (metres) come through the street's floor
homography (fitted to the ground truth's world coordinates), as the engine's FloorAnalyzer reports them.

Timed, per camera report, as site_entry.py runs it: the gate flows, the camera's floor points, the fused people
and the site heatmap (`update`); and the two pictures it draws (the floor plan at most once a second, the site
heatmap at most once a minute). `--root` times another checkout's site module (e.g. one before site fusion
left numpy/OpenCV: `git archive <commit> custom_components | tar -x -C /tmp/before`).

    python bench/site.py [--root /tmp/before] [--repeat 5]
"""

from __future__ import annotations

import argparse
import hashlib
import importlib
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from common import PEDESTRIANS, REPO  # (sets up sys.path and the shared data)

SPANS = {"left": (0.0, 0.6), "right": (0.4, 1.0)}
W, H = 640, 480


def _site_module(root: Path) -> Any:
    """The site fusion module of a checkout: site_fusion.py (pure Python + Pillow) or the older engine/site.py."""
    sys.path.insert(0, str(root))
    for name in [m for m in sys.modules if m == "custom_components" or m.startswith("custom_components.")]:
        del sys.modules[name]
    pure = (root / "custom_components/safecam/site_fusion.py").is_file()
    return importlib.import_module("custom_components.safecam." + ("site_fusion" if pure else "engine.site")), pure


def _reports() -> list[tuple[float, str, list[list[float]]]]:
    """(t, camera, floor points in metres) for every camera's frame, in time order."""
    rows = np.loadtxt(PEDESTRIANS / "tud_stadtmitte.gt.txt", delimiter=",", ndmin=2)
    feet = np.stack([(rows[:, 2] + rows[:, 4] / 2) / W, (rows[:, 3] + rows[:, 5]) / H], axis=1)
    hom, _ = cv2.findHomography(feet, rows[:, 7:9], 0)
    out = []
    for frame in np.unique(rows[:, 0]).astype(int):
        boxes = rows[rows[:, 0] == frame]
        x0, x1, bottom = boxes[:, 2], boxes[:, 2] + boxes[:, 4], (boxes[:, 3] + boxes[:, 5]) / H
        for cam, (a, b) in SPANS.items():
            left, right = np.clip(x0, a * W, b * W), np.clip(x1, a * W, b * W)
            keep = right - left >= 0.5 * (x1 - x0)
            pts = np.stack([(left + right)[keep] / 2 / W, bottom[keep]], axis=1)
            floor = cv2.perspectiveTransform(pts[None].astype(np.float64), hom)[0] if len(pts) else np.zeros((0, 2))
            out.append((frame / 25.0, cam, [[round(float(x), 2), round(float(y), 2)] for x, y in floor]))
    return out


def run(root: Path, repeat: int) -> dict[str, Any]:
    site, pure = _site_module(root)
    reports = _reports()
    plan = site.FloorPlan(20.0, 14.0)
    update_ms, plan_ms, heat_ms, on_map = [], [], [], []
    fused = hashlib.sha256()  # what the site shows after each report: the same for any implementation
    for rep in range(repeat):
        flows = site.GateFlowOccupancy([site.SiteGate("left", "west", "in")], SPANS, 30.0)
        fusion, heatmap = site.SiteFusion(radius_m=1.0), site.SiteHeatmap(plan)
        for t, cam, floor in reports:
            start = time.perf_counter()
            flows.update(t, cam, {"west": {"in": 0, "out": 0}}, len(floor))
            fusion.update_floor(cam, t, floor if pure else np.asarray(floor, np.float64).reshape(-1, 2))
            people = [p for p in fusion.people(t) if plan.contains(p.x, p.y)]
            heatmap.add(t, people)
            update_ms.append((time.perf_counter() - start) * 1000)
            on_map.append(len(people))
            if rep == 0:
                fused.update(repr([(round(p.x, 6), round(p.y, 6), p.cameras) for p in people]).encode())
        for _ in range(8):  # the pictures of the clip's last moment, as the entities fetch them
            people = fusion.people(reports[-1][0])
            start = time.perf_counter()
            plan_png = site.render_floor_plan(plan, people)
            plan_ms.append((time.perf_counter() - start) * 1000)
            start = time.perf_counter()
            heat_png = site.render_site_heatmap(plan, heatmap.grid("hour"))
            heat_ms.append((time.perf_counter() - start) * 1000)
    return {
        "module": site.__name__,
        "root": str(root),
        "reports": len(reports),
        "people_on_map_mean": round(statistics.fmean(on_map), 2),
        "fused_digest": fused.hexdigest()[:16],
        "heatmap_total": int(np.asarray(heatmap.grid("hour")).sum()),
        "update_ms": {"median": round(statistics.median(update_ms), 3), "p95": round(np.percentile(update_ms, 95), 3)},
        "floor_plan_png_ms": {"median": round(statistics.median(plan_ms), 2), "bytes": len(plan_png)},
        "site_heatmap_png_ms": {"median": round(statistics.median(heat_ms), 2), "bytes": len(heat_png)},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", type=Path, default=REPO, help="the checkout whose site module is timed")
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    print(json.dumps(run(args.root.resolve(), args.repeat), indent=2))


if __name__ == "__main__":
    main()
