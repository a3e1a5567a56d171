"""What loading safecam costs Home Assistant at start: import time (ms) and which modules, per stage.

Each run is a fresh interpreter that first imports what Home Assistant itself has loaded by then (its core and the
components safecam depends on or has platforms of: http, websocket_api, frontend, panel_custom, mqtt, diagnostics,
binary_sensor, camera, event, image, sensor), then imports safecam the way Home Assistant does:

  package      custom_components.safecam (HA imports it to read the integration)
  config_flow  .config_flow (HA preloads every config flow at start)
  setup        .services, .panel (async_setup: actions, the zone editor)
  remote       .entry_setup, .remote, the five platforms, .diagnostics (a camera of a safecam engine)

Per stage: the median wall time over --runs runs (perf_counter), the modules it added (safecam's and others'),
and whether any heavy module (numpy, cv2, onnxruntime, openvino, PIL) came with it. Then one `-X importtime` run:
safecam's modules by self time, and the slowest other modules imported on safecam's behalf.

Run: .venv/bin/python bench/ha_import.py [--runs 7]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

from common import emit, table

REPO = Path(__file__).resolve().parents[1]
HEAVY = ("numpy", "cv2", "onnxruntime", "openvino", "PIL")
PLATFORMS = ("binary_sensor", "camera", "event", "image", "sensor")
HA_LOADED = (
    "homeassistant.core",
    "homeassistant.config_entries",
    "homeassistant.helpers.config_validation",
    "homeassistant.helpers.entity_platform",
    *(
        f"homeassistant.components.{c}"
        for c in ("http", "websocket_api", "frontend", "panel_custom", "mqtt", "diagnostics", *PLATFORMS)
    ),
)
P = "custom_components.safecam"
STAGES = {
    "package": (P,),
    "config_flow": (f"{P}.config_flow",),
    "setup": (f"{P}.services", f"{P}.panel"),
    "remote": (
        f"{P}.entry_setup",
        f"{P}.remote",
        *(f"{P}.{p}" for p in (*PLATFORMS, "diagnostics")),
    ),
}

CHILD = r"""
import json, os, sys, time
for name in {ha!r}:
    __import__(name)
os.write(2, b"SAFECAM_STARTS\n")  # unbuffered: in order with -X importtime's own lines
out = {{}}
for stage, names in {stages!r}.items():
    before = set(sys.modules)
    t0 = time.perf_counter()
    for name in names:
        __import__(name)  # (the C import path: -X importtime sees it; importlib.import_module would not)
    ms = (time.perf_counter() - t0) * 1000
    added = sorted(set(sys.modules) - before)
    out[stage] = {{"ms": ms, "added": added}}
print(json.dumps(out))
"""


def _child(importtime: bool = False) -> subprocess.CompletedProcess[str]:
    code = CHILD.format(ha=HA_LOADED, stages=STAGES)
    flags = ["-X", "importtime"] if importtime else []
    return subprocess.run([sys.executable, *flags, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)


def _importtime(stderr: str) -> list[tuple[str, int]]:
    """(module, self us) of every import after Home Assistant's own (the child marks where safecam's begin)."""
    rows = []
    for line in stderr.partition("SAFECAM_STARTS\n")[2].splitlines():
        if line.startswith("import time:") and "self [us]" not in line:
            self_us, _cumulative_us, name = (part.strip() for part in line.removeprefix("import time:").split("|"))
            rows.append((name, int(self_us)))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    runs = [json.loads(_child().stdout) for _ in range(args.runs)]
    rows = []
    for stage in STAGES:
        added = runs[0][stage]["added"]
        ours = [m for m in added if m.startswith(P)]
        heavy = sorted({m.partition(".")[0] for m in added if m.partition(".")[0] in HEAVY})
        row = {
            "stage": stage,
            "median_ms": round(statistics.median(r[stage]["ms"] for r in runs), 1),
            "min_ms": round(min(r[stage]["ms"] for r in runs), 1),
            "safecam_modules": len(ours),
            "other_modules": len(added) - len(ours),
            "heavy": ",".join(heavy) or "-",
        }
        emit({"bench": "ha_import", **row, "modules": added})
        rows.append(row)
    total = {
        "stage": "total",
        "median_ms": round(statistics.median(sum(r[s]["ms"] for s in STAGES) for r in runs), 1),
        "min_ms": round(min(sum(r[s]["ms"] for s in STAGES) for r in runs), 1),
    }
    emit({"bench": "ha_import", **total})
    rows.append(total)
    table(rows, ["stage", "median_ms", "min_ms", "safecam_modules", "other_modules", "heavy"])

    timed = _importtime(_child(importtime=True).stderr)
    print("\n-X importtime, after Home Assistant's own imports: safecam's modules by self time (us)")
    ours = sorted(((n, s) for n, s in timed if n.startswith(P)), key=lambda r: -r[1])
    for name, self_us in ours:
        print(f"  {self_us:>7}  {name}")
    others = sorted(((n, s) for n, s in timed if not n.startswith(P)), key=lambda r: -r[1])[:10]
    print("slowest other modules imported on safecam's behalf (self us)")
    for name, self_us in others:
        print(f"  {self_us:>7}  {name}")
    emit({"bench": "ha_import_importtime", "safecam": dict(ours), "others": dict(others)})


if __name__ == "__main__":
    main()
