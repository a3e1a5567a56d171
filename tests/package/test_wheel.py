"""The engine as users install it from PyPI: the wheel built from this checkout, in a fresh venv, serving a camera.

The wheel (`safecam-engine`, pyproject.toml) is built with uv from the checkout and installed into a new venv of
pyenv's Python 3.13.0 (the add-on's Python), its dependencies pinned by requirements/lock-engine.txt (compiled from the
wheel's own dependencies). Everything the venv runs starts in a temp folder with no PYTHONPATH, so nothing of the
repository is importable there: only the wheel. Then `safecam-engine serve --config FILE` analyses the RTSP demo
camera (tests/servers/rtsp_server.py, the real clip) and publishes to a real Mosquitto; the test takes its state
messages off the broker and opens them with the contract Home Assistant uses (custom_components/safecam/contract.py,
the checkout's, not the wheel's copy) and the pairing key the engine made.

Also here, without building anything: the engine's modules import nothing of the integration (an AST scan), which is
what keeps the wheel (engine + contract only) importable.
"""

from __future__ import annotations

import ast
import email.parser
import os
import shutil
import subprocess
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import DATA, MODELS, REPO
from tests.servers.mosquitto import Broker, Recorder, mosquitto_missing
from tests.servers.processes import free_port, gstreamer_missing, start_rtsp_server, stop_process

pytestmark = pytest.mark.usefixtures("socket_enabled")  # (a broker, the RTSP camera, free ports)

ENGINE = REPO / "custom_components" / "safecam" / "engine"
CONTRACT = "custom_components.safecam.contract"
LOCK = REPO / "requirements" / "lock-engine.txt"
CLIP = DATA / "pedestrians" / "intel_one_by_one_person_first60s.mp4"  # the demo's clip: people walk in one by one
ENGINE_ID, CAMERA_ID = "wheel", "demo"
# The clip shows at most a handful of visitors at once (they come to a standing table one by one).
MAX_PLAUSIBLE_PEOPLE = 6


# ---- no engine module imports the integration (no build needed) --------------------------------


def _module_name(path: Path) -> str:
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path, text: str | None = None) -> list[tuple[int, str]]:
    """(line, absolute module name) of every import in the file (or in `text` as if it were that file), lazy ones
    inside functions included."""
    tree = ast.parse(path.read_text(encoding="utf-8") if text is None else text, str(path))
    package = _module_name(path) if path.name == "__init__.py" else _module_name(path).rpartition(".")[0]
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level == 0:
                found.append((node.lineno, node.module or ""))
                continue
            base = package.split(".")
            if node.level > 1:
                base = base[: -(node.level - 1)]
            target = ".".join([*base, node.module] if node.module else base)
            # `from . import x` may import a module x: name it, so `from .. import const` is caught too.
            names = [f"{target}.{a.name}" for a in node.names] if node.module is None else [target]
            found += [(node.lineno, name) for name in names]
    return found


def test_engine_modules_import_nothing_of_the_integration():
    """Only the engine itself and `..contract` may be imported from custom_components: the wheel holds just these
    (as `safecam.engine` and `safecam.contract`), so anything else breaks `pip install safecam-engine` silently."""
    files = sorted(ENGINE.rglob("*.py"))
    assert len(files) > 20, files
    engine_pkg = _module_name(ENGINE / "__init__.py")
    bad: list[str] = []
    relative_seen = 0
    for path in files:
        for line, name in _imports(path):
            inside = name == engine_pkg or name.startswith(engine_pkg + ".")
            relative_seen += inside
            if name.startswith(("custom_components", "homeassistant")) and not inside and name != CONTRACT:
                bad.append(f"{path.relative_to(REPO)}:{line}: imports {name}")
    assert relative_seen > 50, "the scan found no engine-internal imports: it resolves nothing"
    assert not bad, "engine modules import the integration (not in the wheel):\n" + "\n".join(bad)


def test_the_import_scan_catches_an_integration_import():
    """The scan resolves relative imports: `from ... import coordinator` and `from ...const import X` in engine/scene
    name the integration's modules, `from ...contract import X` names the contract."""
    sample = ENGINE / "scene" / "probe.py"  # never written: the text is parsed as if it lived there
    text = "from ...const import DOMAIN\nfrom ... import coordinator\nfrom ...contract import Topics\nimport homeassistant\n"
    assert [n for _, n in _imports(sample, text)] == [
        "custom_components.safecam.const",
        "custom_components.safecam.coordinator",
        CONTRACT,
        "homeassistant",
    ]


# ---- the wheel in a fresh venv ------------------------------------------------------------------


def _python313() -> Path:
    """pyenv's Python 3.13.0 (what scripts/setup.sh requires), the add-on image's Python minor."""
    pyenv = shutil.which("pyenv")
    if pyenv is None:
        pytest.skip("pyenv not found (scripts/setup.sh requires pyenv's Python 3.13.0)")
    prefix = subprocess.run([pyenv, "prefix", "3.13.0"], capture_output=True, text=True, check=False).stdout.strip()
    python = Path(prefix) / "bin" / "python3"
    if not prefix or not os.access(python, os.X_OK):
        pytest.skip("pyenv's Python 3.13.0 not installed")
    return python


def _clean_env(**extra: str) -> dict[str, str]:
    """The environment of a user's shell: no PYTHONPATH, no venv of ours active."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME", "PYTHONSTARTUP")}
    return env | extra


@dataclass
class WheelVenv:
    wheel: Path
    venv: Path
    cwd: Path  # an empty folder: every command of the venv runs here

    @property
    def python(self) -> Path:
        return self.venv / "bin" / "python"

    @property
    def cli(self) -> Path:
        return self.venv / "bin" / "safecam-engine"

    def run(self, *args: str, timeout: float = 120, **env: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*args], cwd=self.cwd, env=_clean_env(**env), capture_output=True, text=True, timeout=timeout, check=False
        )


@pytest.fixture(scope="module")
def wheel_venv(tmp_path_factory: pytest.TempPathFactory) -> WheelVenv:
    python = _python313()
    root = tmp_path_factory.mktemp("wheel")
    uv = [str(python), "-m", "uv"]
    if subprocess.run([*uv, "--version"], capture_output=True, check=False).returncode != 0:
        pytest.skip("uv is not installed in pyenv's Python 3.13.0 (scripts/setup.sh installs it)")
    t0 = time.monotonic()
    build = subprocess.run([*uv, "build", "--wheel", "-o", str(root / "dist"), str(REPO)], capture_output=True, text=True)
    assert build.returncode == 0, build.stderr[-3000:]
    [wheel] = (root / "dist").glob("safecam_engine-*.whl")
    t_build = time.monotonic() - t0
    venv = root / "venv"
    subprocess.run([*uv, "venv", "-q", "-p", str(python), str(venv)], check=True, cwd=root)
    install = subprocess.run(
        [*uv, "pip", "install", "-q", "-p", str(venv / "bin" / "python"), "-c", str(LOCK), str(wheel)],
        capture_output=True,
        text=True,
        cwd=root,
    )
    assert install.returncode == 0, install.stderr[-3000:]
    print(f"wheel built in {t_build:.1f} s, fresh venv installed in {time.monotonic() - t0 - t_build:.1f} s")
    cwd = root / "cwd"
    cwd.mkdir()
    return WheelVenv(wheel, venv, cwd)


def test_the_wheel_holds_the_engine_and_the_contract_only(wheel_venv: WheelVenv):
    with zipfile.ZipFile(wheel_venv.wheel) as whl:
        names = whl.namelist()
        [metadata] = [n for n in names if n.endswith(".dist-info/METADATA")]
        meta = email.parser.Parser().parsestr(whl.read(metadata).decode())
        [entry_points] = [n for n in names if n.endswith(".dist-info/entry_points.txt")]
        scripts = whl.read(entry_points).decode()
    ours = {"safecam/contract.py", "safecam/models/ppe/ppe_helmet_vest.onnx", "safecam/models/ppe/MODEL_CARD.md"}
    outside = [n for n in names if not n.startswith(("safecam/engine/", "safecam_engine-")) and n not in ours]
    assert not outside, f"the wheel holds files outside the engine, the contract and our model: {outside}"
    assert ours <= set(names)
    assert "safecam/__init__.py" not in names  # a namespace package: the integration's __init__ (HA) stays out
    assert {"safecam/engine/model_catalog.json", "safecam/engine/serve.py", "safecam/engine/scene/safety.py"} <= set(names)
    assert not [n for n in names if "__pycache__" in n or n.endswith(".pyc")]
    assert "safecam-engine = safecam.engine.cli:main" in scripts
    # Version and dependencies are the engine's own (one owner each).
    from custom_components.safecam.engine import __version__
    from custom_components.safecam.engine.requirements import ENGINE_REQUIREMENTS, SERVICE_REQUIREMENTS

    assert meta["Name"] == "safecam-engine" and meta["Version"] == __version__
    from packaging.requirements import Requirement

    def normal(reqs: Any) -> list[str]:
        return sorted(str(Requirement(r)) for r in reqs)

    assert normal(meta.get_all("Requires-Dist")) == normal((*ENGINE_REQUIREMENTS, *SERVICE_REQUIREMENTS))
    assert "The three ways to run the engine" in (meta.get_payload() or "")  # docs/engine.md is the readme


def test_the_lock_pins_what_the_wheel_requires(wheel_venv: WheelVenv):
    """requirements/lock-engine.txt (.venv-engine, and this test's venv) satisfies the wheel's dependencies here."""
    from packaging.requirements import Requirement

    pins = {}
    for line in LOCK.read_text().splitlines():
        if line and not line.startswith((" ", "#")):
            name, _, version = line.partition("==")
            pins[name.strip().lower()] = version.split(";")[0].strip()
    with zipfile.ZipFile(wheel_venv.wheel) as whl:
        [metadata] = [n for n in whl.namelist() if n.endswith(".dist-info/METADATA")]
        requires = email.parser.Parser().parsestr(whl.read(metadata).decode()).get_all("Requires-Dist") or []
    env = {"platform_machine": "x86_64", "python_version": "3.13", "python_full_version": "3.13.0", "sys_platform": "linux"}
    for text in requires:
        req = Requirement(text)
        if req.marker is not None and not req.marker.evaluate(env):
            continue
        assert req.name.lower() in pins, f"{req.name} is not in {LOCK.name}: recompile it (command in its header)"
        assert req.specifier.contains(pins[req.name.lower()]), f"{LOCK.name} pins {req.name}=={pins[req.name.lower()]}, not {req}"


def test_only_the_wheel_is_importable_in_the_fresh_venv(wheel_venv: WheelVenv):
    probe = (
        "import importlib.util, json, onnxruntime, safecam.engine, safecam.contract\n"
        "print(json.dumps({'engine': safecam.engine.__file__, 'contract': safecam.contract.__file__,\n"
        "  'integration': importlib.util.find_spec('custom_components') is not None,\n"
        "  'providers': onnxruntime.get_available_providers()}))\n"
    )
    out = wheel_venv.run(str(wheel_venv.python), "-c", probe)
    assert out.returncode == 0, out.stderr[-2000:]
    import json

    found = json.loads(out.stdout)
    site = wheel_venv.venv / "lib"
    assert Path(found["engine"]).is_relative_to(site) and Path(found["contract"]).is_relative_to(site), found
    assert not found["integration"], "custom_components is importable in the wheel's venv: the test would prove nothing"
    if os.uname().machine == "x86_64":  # the platform marker picks the OpenVINO build on x86-64, Python 3.13
        assert "OpenVINOExecutionProvider" in found["providers"], found["providers"]


def test_the_wheel_finds_its_models_through_the_catalog(wheel_venv: WheelVenv, tmp_path: Path):
    """model_catalog.json is package data: `models list` from the wheel names the catalog's models and finds them in
    the mirror; with neither a mirror file nor a reachable download a missing model is one clear line naming what to do."""
    listed = wheel_venv.run(str(wheel_venv.python), "-m", "safecam.engine.models", "list", SAFECAM_MODEL_MIRROR=str(MODELS))
    assert listed.returncode == 0, listed.stderr[-2000:]
    assert "yolox_nano" in listed.stdout and str(MODELS) in listed.stdout, listed.stdout
    dead = f"http://127.0.0.1:{free_port()}/"  # a mirror URL nothing answers: the download fails at once
    fetch = wheel_venv.run(
        str(wheel_venv.python),
        "-m",
        "safecam.engine.models",
        "fetch",
        "yolox_nano",
        SAFECAM_MODEL_MIRROR=dead,
        SAFECAM_CACHE_DIR=str(tmp_path / "cache"),
    )
    assert fetch.returncode == 1 and "Traceback" not in fetch.stderr, fetch.stderr[-2000:]
    # What to do, in the wheel's own import name (custom_components is not installed here).
    assert "run `python -m safecam.engine.models fetch yolox_nano`" in fetch.stderr, fetch.stderr[-2000:]
    # Our own PPE model ships inside the wheel: found with no mirror and no download, checked against the catalog.
    ppe = wheel_venv.run(
        str(wheel_venv.python),
        "-c",
        "from safecam.engine.models import resolve_model; print(resolve_model('ppe_helmet_vest', download=False))",
        SAFECAM_MODEL_MIRROR=dead,
        SAFECAM_CACHE_DIR=str(tmp_path / "cache"),
    )
    assert ppe.returncode == 0, ppe.stderr[-2000:]
    assert Path(ppe.stdout.strip()).is_relative_to(wheel_venv.venv / "lib"), ppe.stdout


def test_the_console_script_explains_itself_and_refuses_a_bad_config(wheel_venv: WheelVenv, tmp_path: Path):
    helped = wheel_venv.run(str(wheel_venv.cli), "--help")
    assert helped.returncode == 0 and helped.stdout.startswith("usage: safecam-engine"), helped
    assert all(cmd in helped.stdout for cmd in ("run", "serve", "anonymize", "ppe"))
    serve_help = wheel_venv.run(str(wheel_venv.cli), "serve", "--help")
    assert serve_help.returncode == 0 and "--config" in serve_help.stdout
    no_config = wheel_venv.run(str(wheel_venv.cli), "serve")
    assert no_config.returncode == 2 and "--config" in no_config.stderr
    cases = {
        "missing file": (tmp_path / "nowhere.yaml", "nowhere.yaml"),
        "unknown key": (tmp_path / "typo.yaml", "camras"),
        "no cameras": (tmp_path / "empty.yaml", "cameras"),
    }
    (tmp_path / "typo.yaml").write_text("engine_id: x\nmqtt: {host: 127.0.0.1}\ncamras: []\n")
    (tmp_path / "empty.yaml").write_text("engine_id: x\nmqtt: {host: 127.0.0.1}\ncameras: []\n")
    for what, (path, named) in cases.items():
        out = wheel_venv.run(str(wheel_venv.cli), "serve", "--config", str(path))
        lines = out.stderr.strip().splitlines()
        assert out.returncode == 2, (what, out.returncode, out.stderr[-2000:])
        assert len(lines) == 1 and lines[0].startswith("error: ") and named in lines[0], (what, out.stderr)


def test_the_wheel_serves_the_demo_camera_over_mqtt(wheel_venv: WheelVenv, tmp_path: Path):
    """`safecam-engine serve --config FILE` from the fresh venv: signed camera states that the contract opens with the
    engine's pairing key, valid, with the counts of the clip's visitors; its picture on the broker is anonymized."""
    import cv2
    import numpy as np

    from custom_components.safecam.contract import (
        MAX_JPEG_BYTES,
        Topics,
        jpeg_body,
        json_body,
        open_signed,
        parse_pairing_key,
        valid_info,
        valid_state,
    )
    from tests.e2e.conftest import RAW_DIFF_MIN, min_diff_to_raw_frames

    if why := mosquitto_missing() or gstreamer_missing():
        pytest.skip(why)
    if not CLIP.is_file():
        pytest.fail(f"demo clip not found: {CLIP} (clone the repo with ../shared beside it)")
    broker = Broker(tmp_path / "broker")
    rtsp_port = free_port()
    rtsp = start_rtsp_server(CLIP, rtsp_port)
    broker.start()
    topics = Topics("safecam", ENGINE_ID)
    recorder = Recorder(broker, ("safecam/#",))
    state_file = tmp_path / "engine" / "state.json"
    config: dict[str, Any] = {
        "engine_id": ENGINE_ID,
        "mqtt": {"host": "127.0.0.1", "port": broker.port},
        "cameras": [{"id": CAMERA_ID, "name": "Demo", "url": f"rtsp://127.0.0.1:{rtsp_port}/file", "fps": 5}],
        "state_file": str(state_file),
        "state_interval_s": 1,
        "snapshot_interval_s": 1,
    }
    config_path = tmp_path / "engine.yaml"
    config_path.write_text(yaml.safe_dump(config))
    log_path = tmp_path / "engine.log"
    with log_path.open("wb") as log:
        engine = subprocess.Popen(
            [str(wheel_venv.cli), "serve", "--config", str(config_path)],
            cwd=wheel_venv.cwd,
            env=_clean_env(SAFECAM_MODEL_MIRROR=str(MODELS), SAFECAM_CACHE_DIR=str(tmp_path / "cache")),
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        state_topic = topics.state(CAMERA_ID)

        def someone_counted() -> bool:
            return any(m.json().get("people", 0) >= 1 for m in recorder.on(state_topic))

        assert recorder.wait(someone_counted, 120), f"no state counting anyone; engine log:\n{log_path.read_text()[-3000:]}"
        snapshot_topic = topics.snapshot(CAMERA_ID)
        assert recorder.wait(lambda: recorder.on(snapshot_topic), 30), "no anonymized snapshot on the broker"
        assert engine.poll() is None, log_path.read_text()[-3000:]
        key = parse_pairing_key((state_file.parent / "pairing_key").read_text())
        states = [valid_state(json_body(open_signed(key, state_topic, m.payload))) for m in recorder.on(state_topic)]
        info = valid_info(json_body(open_signed(key, topics.info, recorder.on(topics.info)[-1].payload)))
        snapshot = jpeg_body(open_signed(key, snapshot_topic, recorder.on(snapshot_topic)[-1].payload, max_body=MAX_JPEG_BYTES))
    finally:
        engine.terminate()
        code = engine.wait(30)
        recorder.close()
        broker.stop()
        stop_process(rtsp)
    from custom_components.safecam.engine import __version__

    assert code == 0, f"the engine did not stop cleanly on SIGTERM ({code}):\n{log_path.read_text()[-3000:]}"
    assert info["engine_id"] == ENGINE_ID and info["cameras"] == [CAMERA_ID] and info["version"] == __version__
    people = [s["people"] for s in states]
    assert all(0 <= p <= MAX_PLAUSIBLE_PEOPLE for p in people), people
    assert max(people) >= 1 and states[-1]["connected"] and states[-1]["health"]["frames"] > 0, states[-1]
    picture = cv2.imdecode(np.frombuffer(snapshot, np.uint8), cv2.IMREAD_COLOR)
    diff, frame = min_diff_to_raw_frames(picture, CLIP)
    assert diff > RAW_DIFF_MIN, f"the snapshot on the broker is (nearly) raw frame {frame} of the clip: diff {diff:.2f}"
    print(f"{len(states)} signed states, people {people}; snapshot's mean abs diff to the nearest raw frame {diff:.2f}")
    assert "Traceback" not in log_path.read_text()


# ---- the deploy files name what a release publishes ---------------------------------------------


def test_deploy_files_run_what_the_release_publishes():
    """deploy/compose.yaml pulls the image addon/config.yaml names, at the engine's version, with /data mounted on the
    host's network; the systemd unit runs the wheel's console script with `serve --config`; docs/engine.md shows both."""
    import tomllib

    from custom_components.safecam.engine import __version__

    addon = yaml.safe_load((REPO / "addon" / "config.yaml").read_text())
    compose = yaml.safe_load((REPO / "deploy" / "compose.yaml").read_text())
    [engine] = compose["services"].values()
    published = f"{addon['image'].replace('{arch}', 'amd64')}:{__version__}"
    assert engine["image"] == "${SAFECAM_IMAGE:-" + published + "}", engine["image"]
    assert engine["network_mode"] == "host" and engine["volumes"] == ["./safecam-data:/data"]
    docs = (REPO / "docs" / "engine.md").read_text()
    assert published in docs and "deploy/compose.yaml" in docs and "deploy/safecam-engine.service" in docs

    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    [script] = project["scripts"]
    unit = (REPO / "deploy" / "safecam-engine.service").read_text()
    [exec_start] = [line for line in unit.splitlines() if line.startswith("ExecStart=")]
    assert exec_start.startswith(f"ExecStart=/opt/safecam-engine/bin/{script} serve --config ${{CREDENTIALS_DIRECTORY}}/")
    assert f"/opt/safecam-engine/bin/pip install {project['name']}\n" in docs
    if analyze := shutil.which("systemd-analyze"):
        out = subprocess.run([analyze, "verify", str(REPO / "deploy" / "safecam-engine.service")], capture_output=True, text=True)
        # Only the console script is missing on a machine where the package is not installed at /opt.
        problems = [line for line in out.stderr.splitlines() if line.strip() and "/opt/safecam-engine/bin" not in line]
        assert not problems, out.stderr
