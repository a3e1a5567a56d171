"""issue 19, rows 2 and 3: what a huge scene does to Home Assistant's event loop and memory.

    .venv/bin/python bench/hardening.py [--rows 2 3] [--limit-s 600]

Home Assistant is real HA core (the test harness of pytest-homeassistant-custom-component: this file runs itself
under pytest for its `hass` fixture, one fresh process per row so the memory figures do not mix). One in-process
camera on a closed local port (set up, its entities made; nothing to analyse, so only the scene's cost shows), then:

- row 2: the options flow's scene step gets a 2 MB YAML of 30,001 zones (the issue's case);
- row 3: the zone editor's websocket command `safecam/scene/set` gets 10,000 zones.

Measured from the moment the input is sent until HA is idle again (`async_block_till_done`), or `--limit-s`:
- loop_block_max_s: the longest the event loop did not run a 5 ms ticker (the time nothing else in HA could run);
- api_max_s: the slowest of GET /api/ requests sent every 0.25 s meanwhile (what a browser waited); the client
  shares HA's event loop, so a block that starts between two requests delays the next one unseen: a lower bound;
- rss_before_mb / rss_after_mb: the process's resident memory (VmRSS) before the input and once HA is idle;
- accepted, entities: whether the scene was stored, and the camera's entities after.
Run it on the code before and after the fix (e.g. from `git archive` of the older commit) to compare. Measured
2026-12-08 on the shared 2-core machine (issue 19's closing figures):
  before (f202f20): row 2: accepted, loop blocked 12.3 s, RSS 309 -> 649 MB; row 3: accepted, loop blocked 36.1 s,
                    RSS 289 -> 441 MB, 10,000 entities
  after:            row 2: refused (one-line error), loop blocked 0.004 s, RSS 310 -> 310 MB; row 3: refused, loop
                    blocked 0.03 s, RSS 289 -> 301 MB (the 1 MB websocket message), 11 entities (unchanged)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
sys.path.insert(0, str(BENCH))

from common import emit, table

# At collection, before HA's loader imports the test harness's own `custom_components` package.
from custom_components.safecam.const import CONF_ANONYMIZATION, CONF_FPS, CONF_SCENE, CONF_SOURCE_TYPE, DOMAIN, SOURCE_URL

ROW_ENV = "SAFECAM_HARDENING_ROW"
LIMIT_ENV = "SAFECAM_HARDENING_LIMIT_S"
RESULT_ENV = "SAFECAM_HARDENING_OUT"
ZONES = {"2": 30_001, "3": 10_000}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", nargs="+", default=["2", "3"], choices=sorted(ZONES))
    ap.add_argument("--limit-s", type=float, default=600.0, help="stop waiting for HA to be idle after this long")
    args = ap.parse_args()
    rows = []
    for row in args.rows:
        out = Path(f"/tmp/safecam-bench-hardening-{os.getpid()}-{row}.json")
        env = dict(os.environ, **{ROW_ENV: row, LIMIT_ENV: str(args.limit_s), RESULT_ENV: str(out)})
        cmd = [sys.executable, "-m", "pytest", __file__, "-q", "-p", "no:cacheprovider", f"--rootdir={REPO}", "-W", "ignore"]
        code = subprocess.run(cmd, cwd=REPO, env=env, check=False).returncode
        if code != 0 or not out.exists():
            print(f"error: row {row}: the measurement run failed (pytest exit {code})")
            return 1
        result = json.loads(out.read_text())
        out.unlink()
        record = {"bench": "hardening", "row": row, "zones": ZONES[row], **result}
        emit(record)
        rows.append(record)
    print()
    columns = ["row", "zones", "input", "accepted", "entities", "loop_block_max_s", "api_max_s", "elapsed_s"]
    table(rows, [*columns, "rss_before_mb", "rss_after_mb"])
    return 0


# ---- the measurement (runs under pytest, for Home Assistant's test harness) ------------------------


def _rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return round(int(line.split()[1]) / 1024, 1)
    return float("nan")


def _zones(n: int) -> list[dict[str, Any]]:
    return [
        {"name": f"z{i}", "kind": "area", "polygon": [[0.1, 0.1], [0.2 + (i % 50) / 100, 0.1], [0.2, 0.2 + (i % 40) / 100]]}
        for i in range(n)
    ]


async def test_hardening(
    hass: Any, hass_client: Any, hass_ws_client: Any, enable_custom_integrations: None, socket_enabled: None
) -> None:
    import gc
    import socket

    from homeassistant.helpers import entity_registry as er
    from pytest_homeassistant_custom_component.common import MockConfigEntry

    row, limit = os.environ[ROW_ENV], float(os.environ[LIMIT_ENV])
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nothing listens: the camera is set up, nothing is analysed
    scene = {"zones": [{"name": "door", "kind": "area", "polygon": [[0, 0], [1, 0], [1, 1]]}]}
    options = {CONF_FPS: 1, CONF_ANONYMIZATION: "full_frame", CONF_SCENE: scene}
    entry = MockConfigEntry(
        domain=DOMAIN, title="Bench", data={CONF_SOURCE_TYPE: SOURCE_URL, "url": f"rtsp://127.0.0.1:{port}/x"}
    )
    entry.add_to_hass(hass)
    hass.config_entries.async_update_entry(entry, options=options)
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    client = await hass_client()
    ws = await hass_ws_client(hass)
    zones = _zones(ZONES[row])
    if row == "2":
        text = "zones:\n" + "".join(f"  - {{name: {z['name']}, kind: area, polygon: {z['polygon']}}}\n" for z in zones)
        flow = await hass.config_entries.options.async_init(entry.entry_id)
        flow = await hass.config_entries.options.async_configure(flow["flow_id"], {"next_step_id": "scene"})
    gc.collect()
    await asyncio.sleep(1)
    rss_before = _rss_mb()

    loop = asyncio.get_running_loop()
    block_max = api_max = 0.0
    stop = asyncio.Event()

    async def ticker() -> None:
        nonlocal block_max
        last = loop.time()
        while not stop.is_set():
            await asyncio.sleep(0.005)
            now = loop.time()
            block_max = max(block_max, now - last - 0.005)
            last = now

    async def api() -> None:
        nonlocal api_max
        while not stop.is_set():
            t0 = time.monotonic()
            resp = await client.get("/api/")
            await resp.read()
            api_max = max(api_max, time.monotonic() - t0)
            await asyncio.sleep(0.25)

    async def send() -> tuple[str, bool]:
        if row == "2":
            result = await hass.config_entries.options.async_configure(flow["flow_id"], {CONF_SCENE: text})
            return f"options flow, {len(text) / 1e6:.1f} MB YAML", result["type"] == "create_entry"
        await ws.send_json_auto_id({"type": "safecam/scene/set", "entry_id": entry.entry_id, "zones": zones, "gates": []})
        msg = await ws.receive_json()
        return "websocket safecam/scene/set", bool(msg["success"])

    tasks = [asyncio.create_task(ticker()), asyncio.create_task(api())]
    t0 = time.monotonic()
    finished = True
    try:
        async with asyncio.timeout(limit):
            described, accepted = await send()
            await hass.async_block_till_done()
    except TimeoutError:
        finished, described, accepted = False, "(did not finish)", False
    elapsed = time.monotonic() - t0
    stop.set()
    await asyncio.gather(*tasks)
    gc.collect()
    result = {
        "input": described,
        "accepted": accepted,
        "finished": finished,
        "entities": len(er.async_entries_for_config_entry(er.async_get(hass), entry.entry_id)),
        "stored_zones": len((entry.options.get(CONF_SCENE) or {}).get("zones") or []),
        "loop_block_max_s": round(block_max, 3),
        "api_max_s": round(api_max, 3),
        "elapsed_s": round(elapsed, 1),
        "rss_before_mb": rss_before,
        "rss_after_mb": _rss_mb(),
    }
    Path(os.environ[RESULT_ENV]).write_text(json.dumps(result))
    await hass.config_entries.async_unload(entry.entry_id)
    await hass.async_block_till_done()


if __name__ == "__main__":
    raise SystemExit(main())
