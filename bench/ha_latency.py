"""Frame -> Home Assistant state change latency, embedded vs. remote (MQTT) mode, and MQTT traffic per camera-hour.

    .venv/bin/python bench/ha_latency.py [--seconds 40] [--fps 5] [--clip tud_campus]

Home Assistant is real HA core (2025.4, the test harness of pytest-homeassistant-custom-component: this file
runs itself under pytest for its `hass` fixture), with the safecam integration and, in MQTT mode, HA's own MQTT
integration connected to a real Mosquitto broker and a real `serve` engine process. Both modes analyse the same
clip (a file source is paced in real time, like a camera) with the same scene and frame rate, one after the
other (never at the same time: they would share the CPU).

- latency: for every analysed state that changes at least one of the camera's non-diagnostic entities, the
  time of the first `state_changed` event it causes in HA (time.time() in a bus listener; it runs synchronously
  when the entity writes its state) minus the state's `frame_ts` (when its frame arrived in the worker; a file:
  when the frame became due). Embedded: worker thread -> event loop -> entity. MQTT: worker -> engine event loop
  -> JSON -> broker -> HA's MQTT client -> remote runtime -> entity, split into frame->publish (the engine's `ts`
  minus `frame_ts`) and publish->HA. Engine, broker and HA share one host clock. States that change nothing in
  HA cause no state change and are not counted (in either mode).
- traffic: every message on `safecam/#` during the window (a separate recording subscriber), by topic kind,
  per camera and scaled to one hour; payload + topic bytes. The engine runs with the add-on's defaults (state
  re-published at least every 10 s, snapshot every 30 s, no HA discovery).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))

from common import PEDESTRIANS, REPO, emit, table
from mqtt_latency import SCENES, kind, pct

# At collection, before HA's loader imports the test harness's own `custom_components` package.
from custom_components.safecam.const import (
    CONF_ANONYMIZATION,
    CONF_CAMERA_ID,
    CONF_ENGINE_ID,
    CONF_FPS,
    CONF_SCENE,
    CONF_SOURCE_TYPE,
    CONF_TOPIC_PREFIX,
    DOMAIN,
    SOURCE_MQTT,
    SOURCE_URL,
)

ARGS_ENV = "SAFECAM_HA_LATENCY_ARGS"
RESULT_ENV = "SAFECAM_HA_LATENCY_OUT"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=40.0, help="measurement window per mode")
    ap.add_argument("--fps", type=int, default=5)
    ap.add_argument("--clip", default="tud_campus", choices=sorted(SCENES))
    args = ap.parse_args()
    import tempfile

    import pytest

    from tests.servers.mosquitto import mosquitto_missing

    if why := mosquitto_missing():
        print(f"error: {why}")
        return 1
    with tempfile.TemporaryDirectory(prefix="safecam-bench-ha-") as tmp:
        out = Path(tmp) / "results.json"
        os.environ[ARGS_ENV] = json.dumps(vars(args))
        os.environ[RESULT_ENV] = str(out)
        code = pytest.main([__file__, "-q", "-p", "no:cacheprovider", "-p", "no:sugar", f"--rootdir={REPO}", "-W", "ignore"])
        if code != 0 or not out.exists():
            print(f"error: the measurement run failed (pytest exit {code})")
            return 1
        results = json.loads(out.read_text())
    report(results, args)
    return 0


def report(results: dict[str, Any], args: argparse.Namespace) -> None:
    rows = []
    for mode in ("embedded", "mqtt"):
        r = results[mode]
        lat = r["latency_ms"]
        row = {
            "bench": "ha_latency",
            "metric": "frame_to_ha_state_ms",
            "mode": mode,
            "clip": args.clip,
            "fps": args.fps,
            "window_s": round(r["window_s"], 1),
            "samples": len(lat),
            "p50": round(pct(lat, 0.5), 1),
            "p95": round(pct(lat, 0.95), 1),
            "max": round(max(lat), 1),
            "analysis_fps_mean": round(r["analysis_fps"], 2),
            "loadavg_1m": round(r["loadavg_1m"], 2),
        }
        if mode == "mqtt":
            row |= {
                "engine_p50": round(pct(r["engine_ms"], 0.5), 1),
                "engine_p95": round(pct(r["engine_ms"], 0.95), 1),
                "publish_to_ha_p50": round(pct(r["to_ha_ms"], 0.5), 1),
                "publish_to_ha_p95": round(pct(r["to_ha_ms"], 0.95), 1),
            }
        emit(row)
        rows.append(row)
    traffic = results["mqtt"]["traffic"]
    window = results["mqtt"]["window_s"]
    per_hour = 3600.0 / window  # one camera
    trows = []
    total_msgs = total_bytes = 0.0
    for k, (n, size) in sorted(traffic.items()):
        t = {
            "bench": "ha_latency",
            "metric": "mqtt_per_camera_hour",
            "kind": k,
            "window_messages": n,
            "messages": round(n * per_hour),
            "bytes": round(size * per_hour),
        }
        total_msgs, total_bytes = total_msgs + n * per_hour, total_bytes + size * per_hour
        emit(t)
        trows.append(t)
    total = {"bench": "ha_latency", "metric": "mqtt_per_camera_hour", "kind": "total", "messages": round(total_msgs)}
    total["bytes"] = round(total_bytes)
    emit(total)
    print()
    print(f"frame -> HA state change (ms), one camera at {args.fps} fps on {args.clip}:")
    table(rows, ["mode", "samples", "p50", "p95", "max", "engine_p50", "publish_to_ha_p50", "publish_to_ha_p95", "loadavg_1m"])
    print()
    print(f"MQTT traffic per camera-hour (a {window:.0f} s window scaled linearly):")
    table([*trows, total], ["kind", "window_messages", "messages", "bytes"])


# ---- the measurement (runs under pytest, for Home Assistant's test harness) ------------------------


async def _measure(hass: Any, runtime: Any, entry_id: str, seconds: float) -> dict[str, Any]:
    """Latency samples of one camera for `seconds`, after it analysed a few frames."""
    from homeassistant.helpers import entity_registry as er

    loop = asyncio.get_running_loop()
    deadline = loop.time() + 120
    while runtime.state is None or runtime.state.frames < 10 or not runtime.available:
        if loop.time() > deadline:
            raise TimeoutError("the camera did not start analysing")
        await asyncio.sleep(0.2)
    watched = {
        e.entity_id
        for e in er.async_entries_for_config_entry(er.async_get(hass), entry_id)
        if e.entity_category is None and e.domain in ("sensor", "binary_sensor") and not e.disabled_by
    }
    changed: dict[int, tuple[float, float]] = {}  # state seq -> (HA state change time, frame_ts)

    def on_change(event: Any) -> None:
        new, state = event.data["new_state"], runtime.state
        if new is None or new.entity_id not in watched or state is None or state.frame_ts is None or state.seq in changed:
            return
        changed[state.seq] = (time.time(), state.frame_ts)

    fps: list[float] = []
    unsub = hass.bus.async_listen("state_changed", on_change)
    t0 = time.time()
    try:
        while time.time() - t0 < seconds:
            await asyncio.sleep(1)
            fps.append(runtime.state.analysis_fps)
    finally:
        unsub()
    latency = [(at - frame_ts) * 1000 for at, frame_ts in changed.values()]
    return {
        "latency_ms": latency,
        "changed": changed,
        "window_s": time.time() - t0,
        "analysis_fps": statistics.mean(fps),
        "t0": t0,
    }


async def test_ha_latency(hass: Any, enable_custom_integrations: None, socket_enabled: None, mock_hass_config: None) -> None:
    import tempfile

    from homeassistant.components import mqtt
    from homeassistant.config_entries import ConfigEntryState
    from pytest_homeassistant_custom_component.common import MockConfigEntry

    from custom_components.safecam.const import CONF_PAIRING_KEY
    from custom_components.safecam.contract import format_pairing_key, new_pairing_key
    from tests.servers.mosquitto import Broker, EngineProcess, Recorder

    args = json.loads(os.environ[ARGS_ENV])
    clip, scene, fps, seconds = PEDESTRIANS / f"{args['clip']}.mp4", SCENES[args["clip"]], args["fps"], args["seconds"]
    results: dict[str, Any] = {}

    # Embedded: the worker runs inside Home Assistant.
    options = {CONF_FPS: fps, CONF_ANONYMIZATION: "full_frame", CONF_SCENE: scene}
    entry = MockConfigEntry(domain=DOMAIN, title="Bench", data={CONF_SOURCE_TYPE: SOURCE_URL, "url": str(clip)}, options=options)
    entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    try:
        results["embedded"] = await _measure(hass, entry.runtime_data, entry.entry_id, seconds)
        results["embedded"]["loadavg_1m"] = os.getloadavg()[0]
    finally:
        assert await hass.config_entries.async_unload(entry.entry_id)
    await hass.config_entries.async_remove(entry.entry_id)

    # MQTT: the engine in its own process; HA's MQTT integration on a real broker.
    with tempfile.TemporaryDirectory(prefix="safecam-bench-ha-mqtt-") as tmp:
        root = Path(tmp)
        broker = Broker(root / "broker")
        broker.start()
        rec = Recorder(broker, ("safecam/#",))
        key = format_pairing_key(new_pairing_key())  # what the user types in the config flow
        config = {
            "engine_id": "bench",
            "pairing_key": key,
            "mqtt": {"host": "127.0.0.1", "port": broker.port},
            "cameras": [
                {"id": "bench", "name": "Bench", "url": str(clip), "fps": fps, "scene": scene, "anonymization": "full_frame"}
            ],
        }
        engine = EngineProcess(root / "engine", config)
        mqtt_entry = MockConfigEntry(
            domain=mqtt.DOMAIN,
            data={"broker": "127.0.0.1", "port": broker.port},
            options={"discovery": False, "birth_message": {}, "will_message": {}},
            version=1,
            minor_version=2,
        )
        remote = MockConfigEntry(
            domain=DOMAIN,
            title="Bench",
            unique_id="mqtt_bench_bench",
            data={
                CONF_SOURCE_TYPE: SOURCE_MQTT,
                CONF_ENGINE_ID: "bench",
                CONF_CAMERA_ID: "bench",
                CONF_TOPIC_PREFIX: "safecam",
                CONF_PAIRING_KEY: key,
            },  # fmt: skip
            options=options,  # what the config flow stores: the engine's layout
        )
        try:
            mqtt_entry.add_to_hass(hass)
            assert await hass.config_entries.async_setup(mqtt_entry.entry_id)
            remote.add_to_hass(hass)
            assert await hass.config_entries.async_setup(remote.entry_id)
            await hass.async_block_till_done()
            measured = await _measure(hass, remote.runtime_data, remote.entry_id, seconds)
            measured["loadavg_1m"] = os.getloadavg()[0]
            t0, t1 = measured["t0"], measured["t0"] + measured["window_s"]
            window = [m for m in rec.messages if t0 <= m.received < t1]
            traffic: dict[str, list[int]] = {}
            published: dict[int, float] = {}  # state seq -> the engine's publish time (ts)
            for m in window:
                entry_kind = traffic.setdefault(kind(m.topic), [0, 0])
                entry_kind[0] += 1
                entry_kind[1] += len(m.payload) + len(m.topic)
                if kind(m.topic) == "state":
                    published[m.json()["seq"]] = m.json()["ts"]
            engine_ms, to_ha_ms = [], []
            for seq, (at, frame_ts) in measured["changed"].items():
                if seq in published:  # the same state message, split at its publish time
                    engine_ms.append((published[seq] - frame_ts) * 1000)
                    to_ha_ms.append((at - published[seq]) * 1000)
            measured["to_ha_ms"] = to_ha_ms
            measured["traffic"] = traffic
            measured["engine_ms"] = engine_ms
            results["mqtt"] = measured
        finally:
            for e in (remote, mqtt_entry):
                if e.state is ConfigEntryState.LOADED:
                    await hass.config_entries.async_unload(e.entry_id)
            await hass.async_block_till_done()
            engine.stop()
            rec.close()
            broker.stop()
    for r in results.values():
        del r["changed"]
    Path(os.environ[RESULT_ENV]).write_text(json.dumps(results))


if __name__ == "__main__":
    raise SystemExit(main())
