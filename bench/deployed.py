"""The deployed shape under load: N cameras on the engine as its own process, a real Mosquitto and a real Home
Assistant over MQTT, beside the in-process figures of bench/speed.py from the same run.

    .venv-min/bin/python bench/deployed.py [--cameras 1,4,8,12,16] [--seconds 60] [--warmup 15] [--fps 5]

Run it with .venv-min (Python 3.13, onnxruntime-openvino): the in-process part then runs on the OpenVINO EP,
as the engine wheel does on Python 3.13 x86-64, so the two columns compare the same inference.

What runs, for each N of the ladder (one after the other; never two measurements at once):
- the engine: `safecam-engine serve --config FILE` from the wheel (`.venv-engine`, built by scripts/setup.sh), with
  N cameras (cam0..), each looping the clip of bench/speed.py's
  cameras figure (tud_stadtmitte) as a file source paced in real time at --fps, no scene (as speed.py's pipelines),
  provider auto, the add-on's defaults otherwise (state re-published every 10 s, snapshot every 30 s);
- Mosquitto (tests/servers/mosquitto.py) and a current Home Assistant (`.venv-hass/bin/hass`, 2026.11, started and
  onboarded by scripts/ha/run_ha.py's helpers), its MQTT integration set up through its config flow, every camera
  added through the safecam config flow ("An engine" -> camera -> pairing key) as a user does. Home Assistant
  keeps running across the ladder; the engine is restarted with N cameras for each step.
- after every camera's people sensor shows a number in Home Assistant, --warmup seconds, then a --seconds window.

Figures (one row per N):
- fps per camera: analysed frames over frame time, from the engine's state messages in the window (health.frames
  between the first and last state of a camera, over their frame_ts): min and mean over the cameras. "sustains"
  means every camera's rate is at least 97 % of --fps and no camera had to lower its effective rate.
- CPU: process CPU time (utime + stime from /proc) of the engine, hass and mosquitto over the window, in % of one
  core (this machine: 2 cores = 200 %); `others`: the rest of the machine (other users; not this script, whose
  MQTT recorder and websocket client are `bench_cpu_pct`) over the same window.
- cores at target: the engine's CPU scaled by target / achieved rate, plus hass and mosquitto: what N cameras at
  --fps would take (where the rate fell short, a lower bound: contention raises the cost per frame).
- frame -> HA state latency: for each change of a camera's people sensor in Home Assistant, `time_fired` of its
  `state_changed` event (Home Assistant's clock when the new state was written to its state machine: what every
  automation, the recorder and the frontend see from then on) minus `frame_ts` of the state message that caused it
  (the engine's clock when the analysed frame arrived in its camera worker; a file: when the frame became due, so a
  late analysis counts). Both are time.time() of processes on one host (one CLOCK_REALTIME: comparable without any
  offset; across hosts they would need NTP and the offset added to the error). The causing message: the state
  messages of the camera in publish order (this engine boot), reduced to the changes of `people`; each change
  Home Assistant shows is matched, in order, to the next such change with the same value published (`ts`) no later
  than it was shown. Split into engine (ts - frame_ts: analysis, publish) and MQTT + HA (time_fired - ts: broker,
  HA's MQTT client, signature check, entity write). `unmatched` counts HA changes with no such message (should be 0).
  Home Assistant sends the events to this script over its websocket API (as to a browser); their delivery is not
  part of the figure.
- in-process: speed.py's `cameras_sustained` for the same N (N pipelines in N threads of this process, gate on,
  nobody watching, decoding as fast as analysis takes frames: the rate it reaches is its capacity, so >= fps means
  it keeps up), run right after the deployed window; and the CPU time per analysed frame of both shapes
  (engine process vs this process), which load from other processes distorts far less than rates.
- --profile N: after N's measured window, a window of its own (30 s) where py-spy samples the engine's Python
  frames (top functions by share of busy samples) and /proc gives its CPU by kind of thread.

The cameras' file sources start together, so their frame grids are in phase: every 1/fps s all N frames arrive at
once, the worst case for latency (real cameras' phases are spread). Timings are only comparable within one run:
the in-process columns and the CPU ratio are from the same run as the deployed ones.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import shutil
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from common import PEDESTRIANS, REPO, emit, table

from tests.servers.mosquitto import Broker, EngineProcess, Recorder, mosquitto_missing
from tests.servers.processes import load_run_ha

ENGINE_ID = "bench"
CLIP = PEDESTRIANS / "tud_stadtmitte.mp4"  # bench/speed.py's cameras figure
PYENV_313 = "3.13.0"  # pyenv's Python with uv (scripts/setup.sh), which runs py-spy for --profile
SUSTAINED = 0.97  # a camera keeps up when it analyses at least this share of the configured rate
INPROCESS_VIDEO_S = 7.0  # bench/speed.py's cameras figure: 7 s of the clip per pipeline


run_ha = load_run_ha()


# ---- the engine from the wheel ----------------------------------------------------------------------


def _uv() -> list[str]:
    """uv as scripts/setup.sh finds it: on PATH, else the module in pyenv's 3.13.0."""
    if shutil.which("uv"):
        with contextlib.suppress(OSError, subprocess.CalledProcessError):  # a pyenv shim may answer for another version
            subprocess.run(["uv", "--version"], check=True, capture_output=True)
            return ["uv"]
    return [str(_py313()), "-m", "uv"]


def _py313() -> Path:
    with contextlib.suppress(OSError, subprocess.CalledProcessError):
        prefix = subprocess.run(["pyenv", "prefix", PYENV_313], check=True, capture_output=True, text=True).stdout.strip()
        return Path(prefix) / "bin" / "python3"
    return Path.home() / ".pyenv" / "versions" / PYENV_313 / "bin" / "python3"


def engine_command() -> tuple[list[str], str]:
    """The installed engine's command and where it comes from: `.venv-engine`, the wheel of this checkout on its lock
    (scripts/setup.sh builds and refreshes it, as the demo and the tests use it)."""
    installed = REPO / ".venv-engine" / "bin" / "safecam-engine"
    if not os.access(installed, os.X_OK):
        raise SystemExit(f"error: {installed} is missing: run scripts/setup.sh")
    return [str(installed)], ".venv-engine"


def engine_provider(command: list[str]) -> str:
    """The ONNX Runtime provider `provider: auto` picks in the engine's own venv."""
    python = Path(command[0]).with_name("python")
    code = "from safecam.engine.models import resolved_provider; print(resolved_provider('auto'))"
    return subprocess.run([str(python), "-c", code], check=True, capture_output=True, text=True).stdout.strip()


# ---- where the engine's time goes: py-spy (PyPI) on the engine process during a window ---------------------


PY_SPY = "py-spy==0.4.3"
PROFILE_S = 30.0  # the profiled window (after the measured one)
FRAME = re.compile(r"^(.*) \((?:[^()]*/)?([^/():]+)(?::\d+)?\)$")  # "fn (/path/file.py:12)" -> "fn (file.py)"


def start_profile(pid: int, seconds: float, out: Path) -> subprocess.Popen[bytes]:
    """py-spy sampling the Python frames of every thread of `pid` that is not idle (waiting on I/O, a lock, a sleep:
    a thread inside onnxruntime or OpenCV counts at its Python call), raw collapsed stacks; nonblocking: the engine
    is never paused (py-spy cannot take native frames then)."""
    argv = [*_uv(), "tool", "run", "--from", PY_SPY, "py-spy", "record", "--pid", str(pid), "--duration", str(round(seconds))]
    argv += ["--rate", "50", "--nonblocking", "--format", "raw", "--output", str(out)]
    return subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def thread_names(pid: int) -> dict[int, str]:
    """Native thread id -> Python thread name, from one `py-spy dump` (pauses the engine once, for milliseconds)."""
    argv = [*_uv(), "tool", "run", "--from", PY_SPY, "py-spy", "dump", "--pid", str(pid)]
    out = subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False).stdout
    return {int(m[1]): m[2] for m in re.finditer(r'^Thread (\d+) \([^)]*\): "([^"]*)"', out, re.M)}


def thread_cpu(pid: int) -> dict[int, float]:
    """CPU seconds of every thread of `pid` (native id -> utime + stime)."""
    out = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(OSError):
            fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
            out[int(task.name)] = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return out


def threads_by_kind(
    before: dict[int, float], after: dict[int, float], names: dict[int, str], wall: float, process_pct: float
) -> list[dict]:
    """CPU over the window (% of one core) by kind of thread: Python thread names with camera ids folded
    ("safecam-cam#"), "native" for threads without Python frames (e.g. the inference runtime's own pool), and
    what threads that ended in the window used (the process's CPU minus its live threads': mostly decode threads, as
    a file source starts a new one each time it loops the clip)."""
    kinds: dict[str, list[float]] = {}
    for tid, cpu in after.items():
        name = re.sub(r"\d+", "#", re.sub(r"^(safecam-decode)-.*", r"\1-<source>", names.get(tid, "native (no Python frames)")))
        kinds.setdefault(name, []).append((cpu - before.get(tid, 0.0)) / wall * 100)
    rows = [{"threads": k, "count": len(v), "cpu_pct": round(sum(v), 1)} for k, v in kinds.items()]
    ended = process_pct - sum(sum(v) for v in kinds.values())
    rows.append({"threads": "(ended in the window)", "count": "", "cpu_pct": round(ended, 1)})
    return sorted(rows, key=lambda r: -r["cpu_pct"])


def engine_profile(pid: int, seconds: float, raw: Path) -> dict[str, Any]:
    """py-spy's top functions and the CPU by kind of thread, over `seconds` of the running engine."""
    names = thread_names(pid)
    cpu0, before, t0 = cpu_seconds(pid), thread_cpu(pid), time.monotonic()
    spy = start_profile(pid, seconds, raw)
    _, err = spy.communicate(timeout=seconds + 120)
    cpu1, after, wall = cpu_seconds(pid), thread_cpu(pid), time.monotonic() - t0
    names |= thread_names(pid)  # threads started meanwhile (a file source's decode thread, once per loop of the clip)
    if spy.returncode != 0 or not raw.is_file():
        print(f"warning: py-spy failed: {err.decode(errors='replace')[-500:]}", flush=True)
        return {}
    return {
        "engine_profile": profile_top(raw),
        "engine_threads": threads_by_kind(before, after, names, wall, (cpu1 - cpu0) / wall * 100),
    }


def profile_top(raw: Path, top: int = 15) -> list[dict[str, Any]]:
    """Functions by share of the engine's busy samples: self (the innermost frame) and inclusive (on the stack)."""
    own: dict[str, int] = {}
    inclusive: dict[str, int] = {}
    total = 0
    for line in raw.read_text(errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        frames = [FRAME.sub(r"\1 (\2)", f) for f in stack.split(";")]
        total += int(count)
        own[frames[-1]] = own.get(frames[-1], 0) + int(count)
        for f in set(frames):
            inclusive[f] = inclusive.get(f, 0) + int(count)
    ranked = sorted(own, key=lambda f: -own[f])[:top]
    return [
        {"function": f, "self_pct": round(own[f] * 100 / total, 1), "inclusive_pct": round(inclusive.get(f, 0) * 100 / total, 1)}
        for f in ranked
    ]


# ---- Home Assistant: the cameras through the config flow, and its state changes over the websocket ------------


def add_camera(inst: Any, name: str, pairing_key: str) -> str:
    """What a user clicks: Add integration -> safecam -> "An engine" -> the camera (-> the engine's key). Entry id."""
    base = "/api/config/config_entries/flow"
    flow = run_ha._flow_step(inst, base, {"handler": "safecam", "show_advanced_options": False}, "menu")
    form = run_ha._flow_step(inst, f"{base}/{flow['flow_id']}", {"next_step_id": "remote"}, "form")
    options = form["data_schema"][0]["selector"]["select"]["options"]
    choice = next((o["value"] for o in options if o["label"].startswith(f"{name} (")), None)
    if choice is None:
        raise run_ha.SetupError(f"the flow does not offer {name!r}: {options}")
    done = inst.api("POST", f"{base}/{flow['flow_id']}", json={"camera_id": choice}, timeout=90)
    if done.get("type") == "form":  # the first camera of the engine: its pairing key
        done = run_ha._flow_step(inst, f"{base}/{flow['flow_id']}", {"pairing_key": pairing_key}, "create_entry")
    if done.get("type") != "create_entry":
        raise run_ha.SetupError(f"adding {name!r}: {json.dumps(done)[:600]}")
    return str(done["result"]["entry_id"])


def people_entities(inst: Any, names: list[str], timeout_s: float = 120) -> dict[str, str]:
    """camera name -> its people sensor, once every one shows a number (the engine's states arrive)."""
    deadline = time.monotonic() + timeout_s
    found: dict[str, str] = {}
    while time.monotonic() < deadline:
        ids = set(json.loads(inst.template("{{ integration_entities('safecam') | list | to_json }}")))
        by_name = {s["attributes"].get("friendly_name"): s for s in inst.api("GET", "/api/states") if s["entity_id"] in ids}
        found = {n: by_name[f"{n} People"]["entity_id"] for n in names if f"{n} People" in by_name}
        if len(found) == len(names) and all(by_name[f"{n} People"]["state"].isdigit() for n in names):
            return found
        time.sleep(1)
    raise run_ha.SetupError(f"people sensors not ready after {timeout_s:.0f} s: {sorted(found)} of {len(names)}")


@dataclass(frozen=True, slots=True)
class Change:
    fired: float  # time_fired, Unix seconds (Home Assistant's clock)
    entity_id: str
    new: str


class StateChanges:
    """Every `state_changed` event of Home Assistant's sensors, from its websocket API (in a thread of its own)."""

    def __init__(self, inst: Any) -> None:
        self.changes: list[Change] = []
        self._inst = inst
        self._ready = threading.Event()
        self._stop: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._main, name="ha-events", daemon=True)
        self._thread.start()
        if not self._ready.wait(30):
            raise run_ha.SetupError(f"no event subscription on Home Assistant's websocket: {self.error}")

    def _main(self) -> None:
        self._loop = asyncio.new_event_loop()
        try:
            self._loop.run_until_complete(self._run())
        except Exception as err:  # noqa: BLE001  (reported by the caller: no subscription)
            self.error = err
        finally:
            self._loop.close()

    async def _run(self) -> None:
        import aiohttp

        self._stop = asyncio.Event()
        url = self._inst.url.replace("http", "ws", 1) + "/api/websocket"
        async with aiohttp.ClientSession() as session, session.ws_connect(url, max_msg_size=0) as ws:
            await ws.receive_json()
            await ws.send_json({"type": "auth", "access_token": self._inst.tokens["access_token"]})
            if (await ws.receive_json()).get("type") != "auth_ok":
                raise run_ha.SetupError("websocket auth failed")
            await ws.send_json({"id": 1, "type": "subscribe_events", "event_type": "state_changed"})
            if not (await ws.receive_json()).get("success"):
                raise run_ha.SetupError("subscribe_events failed")
            self._ready.set()
            stop = asyncio.ensure_future(self._stop.wait())
            while True:
                receive = asyncio.ensure_future(ws.receive())
                await asyncio.wait({receive, stop}, return_when=asyncio.FIRST_COMPLETED)
                if stop.done():
                    receive.cancel()
                    return
                msg = receive.result()
                if msg.type != aiohttp.WSMsgType.TEXT:
                    raise run_ha.SetupError(f"websocket closed: {msg.type}")
                event = json.loads(msg.data).get("event") or {}
                data = event.get("data") or {}
                new = data.get("new_state")
                if new is not None and data.get("entity_id", "").startswith("sensor."):
                    fired = datetime.fromisoformat(event["time_fired"]).timestamp()
                    self.changes.append(Change(fired, data["entity_id"], str(new["state"])))

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def close(self) -> None:
        if self._loop is not None and self._stop is not None and self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(10)


# ---- measurement --------------------------------------------------------------------------------------


def cpu_seconds(pid: int) -> float:
    """utime + stime of one process (all its threads), seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_mb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) // 1024
    return 0


def machine_busy_seconds() -> float:
    """CPU seconds all cores spent busy (not idle, not iowait) since boot."""
    values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    return (sum(values) - values[3] - values[4]) / os.sysconf("SC_CLK_TCK")


def pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


@dataclass
class Latency:
    total_ms: list[float] = field(default_factory=list)
    engine_ms: list[float] = field(default_factory=list)
    to_ha_ms: list[float] = field(default_factory=list)
    unmatched: int = 0
    skipped: int = 0  # people changes published but never shown by Home Assistant (should be 0)


def match_latency(states: list[dict[str, Any]], changes: list[Change], t0: float, t1: float, into: Latency) -> None:
    """One camera: its state messages (this boot, any order) and its people sensor's changes in Home Assistant."""
    transitions, last = [], None
    for s in sorted(states, key=lambda s: s["seq"]):
        if s["people"] != last and s.get("frame_ts") is not None:
            transitions.append(s)
        last = s["people"]
    j = 0
    for change in sorted(changes, key=lambda c: c.fired):
        if not change.new.isdigit():
            continue  # unavailable / unknown: the engine's start or stop
        k = next(
            (
                k
                for k in range(j, len(transitions))
                if transitions[k]["people"] == int(change.new) and transitions[k]["ts"] <= change.fired
            ),
            None,
        )
        if k is None:
            into.unmatched += t0 <= change.fired < t1
            continue
        if t0 <= change.fired < t1:
            into.skipped += k - j
            s = transitions[k]
            into.total_ms.append((change.fired - s["frame_ts"]) * 1000)
            into.engine_ms.append((s["ts"] - s["frame_ts"]) * 1000)
            into.to_ha_ms.append((change.fired - s["ts"]) * 1000)
        j = k + 1


def camera_rate(states: list[dict[str, Any]], t0: float, t1: float) -> tuple[float, float] | None:
    """Analysed frames per second of frame time in the window, and the lowest effective rate the engine ran at."""
    inside = sorted((s for s in states if s.get("frame_ts") is not None and t0 <= s["frame_ts"] < t1), key=lambda s: s["seq"])
    if len(inside) < 2 or inside[-1]["frame_ts"] <= inside[0]["frame_ts"]:
        return None
    first, last = inside[0], inside[-1]
    rate = (last["health"]["frames"] - first["health"]["frames"]) / (last["frame_ts"] - first["frame_ts"])
    return rate, min(s["health"]["effective_fps"] for s in inside)


def engine_config(n: int, fps: float, port: int, pairing_key: str) -> dict[str, Any]:
    return {
        "engine_id": ENGINE_ID,
        "pairing_key": pairing_key,
        "mqtt": {"host": "127.0.0.1", "port": port},
        "cameras": [{"id": f"cam{i}", "name": f"Cam {i}", "url": str(CLIP), "fps": fps} for i in range(n)],
    }


def deployed_step(
    n: int,
    args: argparse.Namespace,
    inst: Any,
    broker: Broker,
    command: list[str],
    key: str,
    work: Path,
    entries: dict[str, str],
    changes: StateChanges,
) -> dict[str, Any]:
    """Start the engine with n cameras, add the cameras Home Assistant lacks, measure one window, stop the engine."""
    rec = Recorder(broker, (f"safecam/{ENGINE_ID}/+/state",))
    engine = EngineProcess(work / f"engine-{n}", engine_config(n, args.fps, broker.port, key), command=command)
    started = time.time()
    try:
        names = [f"Cam {i}" for i in range(n)]
        ids = [f"cam{i}" for i in range(n)]

        def fresh(cam: str) -> list[dict[str, Any]]:
            return [s for m in rec.on(f"safecam/{ENGINE_ID}/{cam}/state") if (s := m.json()).get("ts", 0) >= started]

        if not rec.wait(lambda: all(any(s["health"]["frames"] > 0 for s in fresh(c)) for c in ids), 300):
            raise run_ha.SetupError(f"the engine did not analyse every camera in 300 s; log:\n{engine.log()[-2000:]}")
        boots = {s["boot"] for c in ids for s in fresh(c)}
        analysing = time.time() - started
        for name in names:
            if name not in entries:
                entries[name] = add_camera(inst, name, key)
        sensors = people_entities(inst, names)
        shown_after = time.time() - started
        print(f"{n} camera(s): analysing after {analysing:.0f} s, all in Home Assistant after {shown_after:.0f} s", flush=True)
        time.sleep(args.warmup)
        # this script: its MQTT recorder and websocket client (what it adds to the machine's load, kept out of `others`)
        pids = {"engine": engine.proc.pid, "hass": inst.hass.pid, "mosquitto": broker.proc.pid, "bench": os.getpid()}
        cpu0, busy0, t0 = {k: cpu_seconds(p) for k, p in pids.items()}, machine_busy_seconds(), time.time()
        time.sleep(args.seconds)
        cpu1, busy1, t1 = {k: cpu_seconds(p) for k, p in pids.items()}, machine_busy_seconds(), time.time()
        rss = {k: rss_mb(p) for k, p in pids.items()}
        time.sleep(2)  # the last states of the window reach Home Assistant
        profile = {}
        if n in args.profile:  # in a window of its own after the measured one: py-spy's sampling takes CPU too
            profile = engine_profile(engine.proc.pid, min(args.seconds, PROFILE_S), work / f"profile-{n}.txt")
    finally:
        engine.stop()
        rec.close()
    if engine.proc.returncode not in (0, None):
        print(f"warning: the engine exited with {engine.proc.returncode}", flush=True)
    wall = t1 - t0
    cpu = {k: (cpu1[k] - cpu0[k]) / wall * 100 for k in pids}
    others = (busy1 - busy0) / wall * 100 - sum(cpu.values())
    lat, rates, lowest = Latency(), [], []
    for cam, name in zip(ids, names, strict=True):
        states = [s for s in fresh(cam) if s["boot"] in boots]
        shown = [c for c in changes.changes if c.entity_id == sensors[name] and c.fired >= started]
        match_latency(states, shown, t0, t1, lat)
        if (got := camera_rate(states, t0, t1)) is not None:
            rates.append(got[0])
            lowest.append(got[1])
    frames = sum(rates) * wall
    sustains = len(rates) == n and min(rates) >= SUSTAINED * args.fps and min(lowest) >= args.fps - 1e-6
    return {
        "cameras": n,
        "provider": args.provider,
        "window_s": round(wall, 1),
        "fps_min": round(min(rates), 2) if rates else None,
        "fps_mean": round(sum(rates) / len(rates), 2) if rates else None,
        "sustains_5fps": sustains,
        "engine_cpu_pct": round(cpu["engine"], 1),
        "hass_cpu_pct": round(cpu["hass"], 1),
        "mosquitto_cpu_pct": round(cpu["mosquitto"], 1),
        "bench_cpu_pct": round(cpu["bench"], 1),
        "others_cpu_pct": round(others, 1),
        "engine_cpu_ms_per_frame": round(cpu["engine"] / 100 * wall * 1000 / frames, 1) if frames else None,
        # What the deployed processes would take with every camera at the target rate (the engine's CPU scaled by
        # target / achieved rate): a lower bound where the rate fell short, as contention raises the cost per frame.
        "cores_at_target": round((cpu["engine"] * n * args.fps / sum(rates) + cpu["hass"] + cpu["mosquitto"]) / 100, 2)
        if rates
        else None,
        "samples": len(lat.total_ms),
        "p50_ms": _r(pct(lat.total_ms, 0.5)),
        "p95_ms": _r(pct(lat.total_ms, 0.95)),
        "max_ms": _r(max(lat.total_ms, default=None)),
        "engine_p95_ms": _r(pct(lat.engine_ms, 0.95)),
        "mqtt_ha_p95_ms": _r(pct(lat.to_ha_ms, 0.95)),
        "unmatched": lat.unmatched,
        "skipped": lat.skipped,
        "engine_rss_mb": rss["engine"],
        "hass_rss_mb": rss["hass"],
        "loadavg_1m": round(os.getloadavg()[0], 2),
        **profile,
    }


def _r(value: float | None) -> float | None:
    return None if value is None else round(value, 1)


def inprocess_step(n: int, fps: float) -> dict[str, Any]:
    """bench/speed.py's cameras figure for n cameras, and this process's CPU time per analysed frame."""
    from speed import cameras_sustained

    from custom_components.safecam.engine.detect import CAMERA_INFERENCE_THREADS, Detector
    from custom_components.safecam.engine.models import create_session, resolve_model

    path = resolve_model("yolox_nano")
    # Made before the clock starts: the engine's sessions are made before its window too.
    detectors = [Detector(create_session(path, provider="openvino", num_threads=CAMERA_INFERENCE_THREADS)) for _ in range(n)]
    c0 = time.process_time()
    rate = cameras_sustained(
        detectors.pop,
        str(CLIP),
        n,
        INPROCESS_VIDEO_S,
        fps,
    )
    frames = n * int(INPROCESS_VIDEO_S * fps)
    return {
        "inprocess_fps_each": round(rate, 2),
        "inprocess_sustains_5fps": rate >= fps,
        "inprocess_cpu_ms_per_frame": round((time.process_time() - c0) * 1000 / frames, 1),
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cameras", default="1,4,8,12,16", help="the ladder: camera counts, comma-separated")
    ap.add_argument("--seconds", type=float, default=60.0, help="measurement window per step")
    ap.add_argument("--warmup", type=float, default=15.0, help="seconds after Home Assistant shows every camera")
    ap.add_argument("--fps", type=float, default=5.0)
    ap.add_argument("--no-inprocess", action="store_true", help="skip the in-process figures")
    ap.add_argument("--profile", default="", help="camera counts (e.g. 16) whose measured window is followed by one of py-spy")
    args = ap.parse_args()
    ladder = [int(n) for n in args.cameras.split(",")]
    args.profile = {int(n) for n in args.profile.split(",") if n}
    import onnxruntime

    if not args.no_inprocess and "OpenVINOExecutionProvider" not in onnxruntime.get_available_providers():
        print("error: the in-process figures need the OpenVINO EP (as the engine wheel on Python 3.13): run with .venv-min")
        return 1
    if why := mosquitto_missing():
        print(f"error: {why}")
        return 1
    if not os.access(run_ha.HASS, os.X_OK):
        print(f"error: {run_ha.HASS} not found: scripts/setup.sh builds .venv-hass")
        return 1
    command, origin = engine_command()
    args.provider = engine_provider(command)
    print(f"engine: {origin}, provider {args.provider}", flush=True)
    from custom_components.safecam.contract import format_pairing_key, new_pairing_key

    key = format_pairing_key(new_pairing_key())
    rows: list[dict[str, Any]] = []
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="safecam-bench-deployed-") as tmp:
        work = Path(tmp)
        broker = Broker(work / "mosquitto")
        broker.start()
        inst = run_ha.HaInstance(config_dir=work / "ha", port=run_ha.free_port(), engine_mode="service")
        inst.broker = broker
        changes = None
        try:
            run_ha.prepare_config(inst.config_dir, inst.port)
            t = time.monotonic()
            run_ha.start_hass(inst, timeout_s=300)
            run_ha.onboard_or_login(inst, timeout_s=120)
            run_ha.confirm_http_config(inst)
            run_ha.ensure_mqtt(inst)
            run_ha.remove_failed_onboarding_entries(inst)
            ha_version = inst.api("GET", "/api/config")["version"]
            print(f"Home Assistant {ha_version} up and onboarded in {time.monotonic() - t:.0f} s", flush=True)
            changes = StateChanges(inst)
            entries: dict[str, str] = {}
            for n in ladder:
                t = time.monotonic()
                row = deployed_step(n, args, inst, broker, command, key, work, entries, changes)
                if changes.error is not None or not changes.alive:
                    raise run_ha.SetupError(f"Home Assistant's event stream ended during the step: {changes.error}")
                if not args.no_inprocess:
                    row |= inprocess_step(n, args.fps)
                row["step_s"] = round(time.monotonic() - t)
                emit({"bench": "deployed", **row})
                rows.append(row)
        except run_ha.SetupError as err:
            log = inst.config_dir / "home-assistant.log"
            tail = log.read_text(errors="replace")[-3000:] if log.is_file() else ""
            print(f"error: {err}\n{tail}")
            return 1
        finally:
            if changes is not None:
                changes.close()
            run_ha.stop(inst)  # hass, then the broker (inst.broker)
    print()
    print(
        f"deployed shape: engine ({origin.split(' in ')[0]}, {args.provider}) + Mosquitto + Home Assistant {ha_version}"
        f" over MQTT; {CLIP.name} at {args.fps:g} fps per camera, {args.seconds:g} s windows; {os.cpu_count()} cores"
    )
    columns = ["cameras", "fps_min", "fps_mean", "sustains_5fps", "engine_cpu_pct", "hass_cpu_pct", "mosquitto_cpu_pct"]
    columns += ["others_cpu_pct", "cores_at_target", "samples", "p50_ms", "p95_ms", "engine_p95_ms", "mqtt_ha_p95_ms"]
    columns += ["unmatched"]
    table(rows, columns)
    if not args.no_inprocess:
        print("\nbeside the in-process figures (bench/speed.py's cameras, same run):")
        for r in rows:
            r["cpu_ratio"] = (
                round(r["engine_cpu_ms_per_frame"] / r["inprocess_cpu_ms_per_frame"], 2) if r["engine_cpu_ms_per_frame"] else None
            )
        table(rows, ["cameras", "fps_min", "inprocess_fps_each", "inprocess_sustains_5fps", "engine_cpu_ms_per_frame",
                     "inprocess_cpu_ms_per_frame", "cpu_ratio"])  # fmt: skip
    for r in rows:
        if r.get("engine_profile"):
            seconds = min(args.seconds, PROFILE_S)
            print(f"\nwhere the engine's busy time goes, {r['cameras']} cameras (py-spy, {seconds:g} s, % of busy samples):")
            table(r["engine_profile"], ["function", "self_pct", "inclusive_pct"])
        if r.get("engine_threads"):
            print(f"\nthe engine's CPU by thread, {r['cameras']} cameras (% of one core over the window):")
            table(r["engine_threads"], ["threads", "count", "cpu_pct"])
    deployed_max = max((r["cameras"] for r in rows if r["sustains_5fps"]), default=0)
    summary = f"most cameras sustained at {args.fps:g} fps: deployed {deployed_max}"
    if not args.no_inprocess:
        inprocess_max = max((r["cameras"] for r in rows if r["inprocess_sustains_5fps"]), default=0)
        summary += f", in-process {inprocess_max} (of the ladder {','.join(str(n) for n in ladder)})"
    print()
    print(markdown(rows, args))
    print(f"\n{summary}")
    print(
        "CPU in % of one core over the window (others: the rest of the machine); cores at 5 fps: engine + HA + broker"
        " with the engine's CPU scaled to every camera at the target rate (a lower bound where it fell short); frame→HA:"
        " time_fired of the people"
        " sensor's state_changed minus the state's frame_ts (one host clock); in-process: speed.py's cameras figure"
        " (unpaced, so its capacity), same run."
    )
    print(f"\ntotal {time.monotonic() - started:.0f} s")
    return 0


def markdown(rows: list[dict[str, Any]], args: argparse.Namespace) -> str:
    fps = f"{args.fps:g} fps"
    head = f"| cameras | fps/camera min (mean) | ≥ {fps} | engine CPU | HA CPU | broker CPU | others | cores at {fps}"
    head += " | frame→HA p50 / p95 ms (n) |"
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    if not args.no_inprocess:
        lines[0] += " in-process fps/camera | CPU ms/frame engine / in-process |"
        lines[1] += "---|---|"
    for r in rows:
        line = (
            f"| {r['cameras']} | {r['fps_min']} ({r['fps_mean']}) | {'yes' if r['sustains_5fps'] else 'no'} |"
            f" {r['engine_cpu_pct']} % | {r['hass_cpu_pct']} % | {r['mosquitto_cpu_pct']} % | {r['others_cpu_pct']} % |"
            f" {r['cores_at_target']} |"
            f" {r['p50_ms']} / {r['p95_ms']} ({r['samples']}) |"
        )
        if not args.no_inprocess:
            ok = "" if r["inprocess_sustains_5fps"] else " (no)"
            line += f" {r['inprocess_fps_each']}{ok} | {r['engine_cpu_ms_per_frame']} / {r['inprocess_cpu_ms_per_frame']} |"
        lines.append(line)
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
