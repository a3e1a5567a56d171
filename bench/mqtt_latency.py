"""End-to-end latency and MQTT traffic of the engine service on a real Mosquitto broker.

    .venv/bin/python bench/mqtt_latency.py [--cameras 2] [--seconds 60] [--fps 5] [--clip NAME]

Starts Mosquitto on a free port and `python -m custom_components.safecam.engine serve` with N cameras,
each looping the same real clip (a file source is paced in real time, like a camera), with the add-on's
defaults (state re-published at least every 10 s, snapshot every 30 s, HA discovery on). A subscriber
records every message with its arrival time, over a measurement window that starts once every camera
has analysed frames.

- latency: for each state message, arrival at the subscriber minus `frame_ts` (when the analysed frame
  arrived in the worker; for a file, when it became due): decode-to-queue, inference, tracking, scene,
  the hop to the event loop, JSON, publish, broker, subscriber. Split into frame->publish (`ts` -
  `frame_ts`, in the engine) and publish->arrival (broker hop). Camera encoding and network before the
  engine are not included. Engine and subscriber share one clock (same host).
- traffic: messages and bytes (payload + topic) per topic kind in the window, divided by cameras and
  scaled linearly to one hour (x 3600 / window seconds). Connection-time messages (layout, discovery,
  availability) are sent once per (re)connect, not per hour, and are reported separately. Bytes include the
  signed frame's header and MAC lines (~150 bytes a message).
- signing cost (contract.py, this process, one core): per message, the engine's `Signer.sign` and the
  integration's check (MAC, order, JSON, validation), on the last state and snapshot of the run; median of
  repeated timings, microseconds.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
import timeit
from pathlib import Path
from typing import Any

from common import PEDESTRIANS, emit, table

from custom_components.safecam.contract import (
    ReplayGuard,
    Signed,
    Signer,
    jpeg_body,
    json_body,
    new_pairing_key,
    open_signed,
    valid_state,
)
from tests.servers.mosquitto import Broker, EngineProcess, Recorder, mosquitto_missing

# intel_one_by_one: an elevated indoor camera; people walk in one at a time, stand at the table, leave.
SCENES: dict[str, dict[str, Any]] = {
    "intel_one_by_one_person_first60s": {
        "zones": [{"name": "table", "kind": "danger", "polygon": [[0.35, 0.6], [0.75, 0.6], [0.75, 1.0], [0.35, 1.0]]}],
        "gates": [{"name": "entry", "line": [[0.25, 0.5], [0.25, 1.0]]}],
    },
    # tud_campus: people walk left/right along the bottom; busy (a new crowd every 2.8 s loop).
    "tud_campus": {
        "zones": [{"name": "walkway", "kind": "danger", "polygon": [[0.0, 0.6], [1.0, 0.6], [1.0, 1.0], [0.0, 1.0]]}],
        "gates": [{"name": "middle", "line": [[0.5, 0.5], [0.5, 1.0]]}],
    },
}
PER_CONNECTION = ("availability", "info", "config", "discovery")


def kind(topic: str) -> str:
    if topic.startswith("homeassistant/"):
        return "discovery"
    leaf = topic.rsplit("/", 1)[-1]
    return leaf if leaf in ("availability", "info", "config", "state", "event", "event_snapshot", "snapshot") else "other"


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def signing_cost(kind_: str, topic: str, body: bytes) -> dict[str, Any]:
    """Microseconds to sign one message, and to check it as the integration does (MAC, order, body)."""
    signer = Signer(new_pairing_key())
    frame = signer.sign(topic, body)
    read = (lambda m: valid_state(json_body(m))) if kind_ == "state" else jpeg_body

    def check() -> None:
        signed = open_signed(signer.key, topic, frame, max_body=len(body))
        ReplayGuard().check(signed)
        read(signed)

    def parse_only() -> None:  # what the integration did before messages were signed
        if kind_ == "state":
            valid_state(json_body(Signed(topic, 0, 0, 0.0, body)))

    def us(fn: Any) -> float:
        runs = timeit.repeat(fn, number=200, repeat=7)
        return round(statistics.median(runs) / 200 * 1e6, 1)

    return {
        "bench": "mqtt_latency", "metric": "signing_cost_us", "kind": kind_, "body_bytes": len(body),
        "sign": us(lambda: signer.sign(topic, body)), "check": us(check), "parse_and_validate_only": us(parse_only),
    }  # fmt: skip


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cameras", type=int, default=2)
    ap.add_argument("--seconds", type=float, default=60.0, help="measurement window")
    ap.add_argument("--fps", type=float, default=5.0)
    ap.add_argument("--clip", default="intel_one_by_one_person_first60s", choices=sorted(SCENES))
    args = ap.parse_args()
    if why := mosquitto_missing():
        print(f"error: {why}")
        return 1
    clip = PEDESTRIANS / f"{args.clip}.mp4"
    with tempfile.TemporaryDirectory(prefix="safecam-bench-mqtt-") as tmp:
        root = Path(tmp)
        broker = Broker(root / "broker")
        broker.start()
        rec = Recorder(broker, ("safecam/#", "homeassistant/#"))
        scene = SCENES[args.clip]
        cameras = [
            {"id": f"cam{i}", "name": f"Cam {i}", "url": str(clip), "fps": args.fps, "scene": scene} for i in range(args.cameras)
        ]
        config = {
            "engine_id": "bench",
            "mqtt": {"host": "127.0.0.1", "port": broker.port, "discovery_prefix": "homeassistant"},
            "cameras": cameras,
        }
        engine = EngineProcess(root / "engine", config)
        try:
            ready = rec.wait(
                lambda: all((s := rec.last(f"safecam/bench/{c['id']}/state")) and s["health"]["frames"] > 0 for c in cameras),
                180,
            )
            if not ready:
                print(f"error: the engine did not start; log:\n{engine.log()[-2000:]}")
                return 1
            t0 = time.time()
            time.sleep(args.seconds)
            t1 = time.time()
            load = os.getloadavg()
        finally:
            engine.stop()
            rec.close()
            broker.stop()

    window = [m for m in rec.messages if t0 <= m.received < t1]
    seconds = t1 - t0
    states = [m for m in window if kind(m.topic) == "state"]
    total, engine_part, broker_part = [], [], []
    for m in states:
        s = m.json()
        if s.get("frame_ts") is None:
            continue
        total.append((m.received - s["frame_ts"]) * 1000)
        engine_part.append((s["ts"] - s["frame_ts"]) * 1000)
        broker_part.append((m.received - s["ts"]) * 1000)
    frames_per_s = statistics.mean(s.json()["health"]["analysis_fps"] for s in states) if states else 0.0
    lat = {
        "bench": "mqtt_latency",
        "metric": "state_latency_ms",
        "clip": args.clip,
        "cameras": args.cameras,
        "fps": args.fps,
        "window_s": round(seconds, 1),
        "samples": len(total),
        "p50": round(pct(total, 0.5), 1),
        "p95": round(pct(total, 0.95), 1),
        "max": round(max(total), 1),
        "engine_p50": round(pct(engine_part, 0.5), 1),
        "engine_p95": round(pct(engine_part, 0.95), 1),
        "broker_p50": round(pct(broker_part, 0.5), 2),
        "broker_p95": round(pct(broker_part, 0.95), 2),
        "analysis_fps_mean": round(frames_per_s, 2),
        "loadavg_1m": round(load[0], 2),
    }
    emit(lat)
    rows = []
    per_hour = 3600.0 / seconds / args.cameras
    kinds = sorted({kind(m.topic) for m in window} | {"state", "event", "snapshot"})
    all_msgs = all_bytes = 0.0
    for k in kinds:
        msgs = [m for m in window if kind(m.topic) == k]
        n, size = len(msgs), sum(len(m.payload) + len(m.topic) for m in msgs)
        rec_out = {
            "bench": "mqtt_latency",
            "metric": "traffic_per_camera_hour",
            "kind": k,
            "messages": round(n * per_hour),
            "bytes": round(size * per_hour),
            "window_messages": n,
            "mean_payload_bytes": round(size / n) if n else 0,
        }
        if k not in PER_CONNECTION:
            all_msgs += n * per_hour
            all_bytes += size * per_hour
        emit(rec_out)
        rows.append(rec_out)
    emit({"bench": "mqtt_latency", "metric": "traffic_per_camera_hour", "kind": "total", "messages": round(all_msgs),
          "bytes": round(all_bytes), "messages_per_s": round(all_msgs / 3600, 2)})  # fmt: skip
    print()
    print(f"state latency, frame -> subscriber (ms), {args.cameras} cameras at {args.fps} fps on {args.clip}, {seconds:.0f} s:")
    table([lat], ["samples", "p50", "p95", "max", "engine_p50", "engine_p95", "broker_p50", "broker_p95", "loadavg_1m"])
    print()
    print("traffic per camera-hour (window scaled linearly; layout/discovery/availability are per connection, not per hour):")
    table(rows, ["kind", "window_messages", "messages", "mean_payload_bytes", "bytes"])
    print(f"total per camera-hour (excluding per-connection kinds): {all_msgs:.0f} messages, {all_bytes / 1e6:.2f} MB")
    last = {kind(m.topic): m for m in window}  # the last message of each kind
    costs = [signing_cost(k, last[k].topic, last[k].body) for k in ("state", "snapshot") if k in last]
    for cost in costs:
        emit(cost)
    print()
    print("signing cost per message (us, this process):")
    table(costs, ["kind", "body_bytes", "sign", "check", "parse_and_validate_only"])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
