"""The engine's requirements (engine/requirements.py, installed on demand for in-process analysis): one list, the
lock's versions, exactly one ONNX Runtime build on every target, and none of it in the integration's manifest."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from packaging.requirements import Requirement

from custom_components.safecam.engine.requirements import ENGINE_REQUIREMENTS

REPO = Path(__file__).resolve().parents[2]
TARGETS = [(machine, python) for machine in ("x86_64", "aarch64") for python in ("3.13", "3.14")]


def _pins(path: str) -> dict[str, str]:
    pins = {}
    for line in (REPO / path).read_text().splitlines():
        if "==" in line and not line.lstrip().startswith("#"):
            req = Requirement(line.split("#")[0].strip().rstrip("\\").strip())
            pins[req.name.lower()] = str(req.specifier).removeprefix("==")
    return pins


def test_the_manifest_requires_nothing() -> None:
    manifest = json.loads((REPO / "custom_components/safecam/manifest.json").read_text())
    assert manifest["requirements"] == []


def test_engine_requirements_are_the_lock_files_versions() -> None:
    # Each ONNX Runtime build is locked where it is used: onnxruntime in the Python 3.14 lock, onnxruntime-openvino in
    # the Python 3.13 (minimum HA, add-on) lock; OpenCV in both.
    pins = _pins("requirements/lock-min.txt") | _pins("requirements/lock.txt")
    for line in ENGINE_REQUIREMENTS:
        req = Requirement(line)
        assert str(req.specifier) == f"=={pins[req.name.lower()]}", line


@pytest.mark.parametrize(("machine", "python"), TARGETS)
def test_exactly_one_onnx_runtime_per_target(machine: str, python: str) -> None:
    env = {"platform_machine": machine, "python_version": python, "sys_platform": "linux"}
    names = [r.name for line in ENGINE_REQUIREMENTS if (r := Requirement(line)).marker is None or r.marker.evaluate(env)]
    runtimes = [n for n in names if n.startswith("onnxruntime")]
    # onnxruntime-openvino has wheels only for x86-64 below Python 3.14; plain onnxruntime (CPU EP) elsewhere.
    assert runtimes == (["onnxruntime-openvino"] if (machine, python) == ("x86_64", "3.13") else ["onnxruntime"])
    assert "opencv-python-headless" in names
