"""Guard: every requirement of the integration's manifest installs from a wheel wherever Home Assistant runs.

Home Assistant installs a custom integration's requirements itself, from wheels only on HA OS, Supervised and the
official container (Alpine: musllinux) and on Core (glibc: manylinux), for its own Python (3.14 since 2026.3). A
requirement without such a wheel (onnxruntime-openvino has no cp314 one; onnxruntime, openvino and OpenCV no musl
ones) keeps the integration from loading at all. Each requirement's markers are evaluated for the target platform,
not for the machine running the test. Needs PyPI.
"""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from packaging.requirements import Requirement

MANIFEST = Path(__file__).resolve().parents[1] / "custom_components" / "safecam" / "manifest.json"
PYTHON = "3.14"  # Home Assistant 2026.3 and later
PYTHON_FULL = "3.14.2"  # the oldest patch release current Home Assistant accepts


@dataclass(frozen=True)
class Target:
    name: str
    machine: str  # platform_machine as Python reports it there
    platforms: tuple[str, ...]  # wheel platform tags that install there (pip takes them as given: list the older ones)

    @property
    def environment(self) -> dict[str, str]:
        """The PEP 508 marker environment of Home Assistant's Python on this target."""
        return {
            "implementation_name": "cpython",
            "implementation_version": PYTHON_FULL,
            "os_name": "posix",
            "platform_machine": self.machine,
            "platform_python_implementation": "CPython",
            "platform_release": "",
            "platform_system": "Linux",
            "platform_version": "",
            "python_full_version": PYTHON_FULL,
            "python_version": PYTHON,
            "sys_platform": "linux",
        }


def _musl(arch: str) -> tuple[str, ...]:
    return (f"musllinux_1_2_{arch}", f"musllinux_1_1_{arch}")


def _glibc(arch: str) -> tuple[str, ...]:
    """glibc 2.28 and older (Debian 10+, Ubuntu 20.04+, Raspberry Pi OS): manylinux_2_28 down to manylinux2014."""
    return (*(f"manylinux_2_{minor}_{arch}" for minor in range(28, 16, -1)), f"manylinux2014_{arch}")


TARGETS = (
    Target("musllinux_1_2_x86_64", "x86_64", _musl("x86_64")),  # HA OS / Container on Intel and AMD
    Target("musllinux_1_2_aarch64", "aarch64", _musl("aarch64")),  # HA OS on Raspberry Pi, Green, Yellow
    Target("manylinux_x86_64", "x86_64", _glibc("x86_64")),  # Core in a venv
    Target("manylinux_aarch64", "aarch64", _glibc("aarch64")),
)


def applies(requirement: str, target: Target) -> bool:
    """Whether the requirement's markers select it on the target (not on the machine running this)."""
    marker = Requirement(requirement).marker
    return marker is None or marker.evaluate(target.environment)


def wheel_refusal(requirement: str, target: Target, dest: Path) -> str | None:
    """None when pip finds a wheel of the requirement for the target's cp314 (it lands in dest), else pip's reason."""
    req = Requirement(requirement)
    req.marker = None  # evaluated for the target by applies(); pip would evaluate it for this machine
    cmd = [sys.executable, "-m", "pip", "download", "--disable-pip-version-check", "--no-input", "--quiet"]
    cmd += ["--only-binary=:all:", "--no-deps", "--python-version", PYTHON, "--implementation", "cp", "--abi", "cp314"]
    for platform in target.platforms:
        cmd += ["--platform", platform]
    result = subprocess.run([*cmd, "--dest", str(dest), str(req)], capture_output=True, text=True, timeout=300, check=False)
    if result.returncode == 0 and any(dest.glob("*.whl")):
        return None
    return (result.stderr.strip().splitlines() or [f"pip exited with {result.returncode}"])[-1]


def _manifest_requirements() -> list[str]:
    return list(json.loads(MANIFEST.read_text())["requirements"])


@pytest.mark.parametrize("target", TARGETS, ids=lambda t: t.name)
def test_every_manifest_requirement_has_a_wheel(target: Target, tmp_path: Path) -> None:
    requirements = _manifest_requirements()
    for requirement in requirements:
        Requirement(requirement)  # a malformed one fails here, as it would in Home Assistant
    refused = {}
    for i, requirement in enumerate(r for r in requirements if applies(r, target)):
        if (why := wheel_refusal(requirement, target, tmp_path / str(i))) is not None:
            refused[requirement] = why
    assert refused == {}, f"no cp314 wheel on {target.name}"


# --- the guard itself can fail ---------------------------------------------------------------


def test_markers_are_evaluated_for_the_target_not_this_machine() -> None:
    x86, arm = TARGETS[0], TARGETS[1]  # whatever this machine is, one of them answers unlike it
    assert applies("onnxruntime==1.24.1; platform_machine != 'x86_64'", arm)
    assert not applies("onnxruntime==1.24.1; platform_machine != 'x86_64'", x86)
    assert applies("onnxruntime-openvino==1.24.1; platform_machine == 'x86_64'", x86)
    assert not applies("onnxruntime-openvino==1.24.1; platform_machine == 'x86_64'", arm)
    assert all(applies("numpy; python_version >= '3.14'", t) for t in TARGETS)
    assert not any(applies("numpy; python_version < '3.14'", t) for t in TARGETS)
    assert not any(applies("pywin32; sys_platform == 'win32'", t) for t in TARGETS)


@pytest.mark.parametrize(
    ("requirement", "target"),
    [
        ("onnxruntime-openvino==1.24.1", TARGETS[2]),  # wheels for cp311-cp313 only
        ("onnxruntime==1.24.1", TARGETS[0]),  # no musllinux wheels (and no sdist)
        ("opencv-python-headless==5.0.0.93", TARGETS[1]),  # no musllinux wheels
    ],
    ids=["openvino-cp314", "onnxruntime-musl", "opencv-musl"],
)
def test_a_requirement_without_a_wheel_is_refused(requirement: str, target: Target, tmp_path: Path) -> None:
    why = wheel_refusal(requirement, target, tmp_path)
    assert why is not None and "No matching distribution" in why, why
    assert not any(tmp_path.glob("*"))


@pytest.mark.parametrize("target", TARGETS, ids=lambda t: t.name)
def test_a_requirement_with_wheels_everywhere_is_accepted(target: Target, tmp_path: Path) -> None:
    assert wheel_refusal("numpy==2.3.2", target, tmp_path) is None
    (wheel,) = tmp_path.glob("*.whl")
    assert "cp314-cp314" in wheel.name and target.machine in wheel.name
    assert ("musllinux" in wheel.name) == target.name.startswith("musllinux")
