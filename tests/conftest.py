"""Shared test setup: the real models and data in ../shared (never copied into the repo)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("SAFECAM_SHARED", REPO.parent / "shared"))
MODELS = SHARED / "models"
DATA = SHARED / "data"

# Tests resolve models through the documented mirror option, like CI and real users with a mirror.
os.environ.setdefault("SAFECAM_MODEL_MIRROR", str(MODELS))

HA_TESTS = REPO / "tests" / "ha"
OPENVINO_EP, CPU_EP = "OpenVINOExecutionProvider", "CPUExecutionProvider"


def installed_providers() -> list[str]:
    import onnxruntime as ort

    return ort.get_available_providers()


def expected_auto_provider() -> str:
    """What provider "auto" must run on here: OpenVINO where this onnxruntime build has it, else the CPU EP."""
    return OPENVINO_EP if OPENVINO_EP in installed_providers() else CPU_EP


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """tests/ha are marked `ha`. Tests marked `openvino` need onnxruntime-openvino (no cp314 wheel): skipped where it
    is missing; scripts/test.sh runs both kinds in .venv-min too (the minimum HA, with OpenVINO)."""
    for item in items:
        if HA_TESTS in item.path.parents:
            item.add_marker(pytest.mark.ha)
    if any(item.get_closest_marker("openvino") for item in items) and OPENVINO_EP not in installed_providers():
        skip = pytest.mark.skip(reason="onnxruntime without the OpenVINO EP (runs in .venv-min)")
        for item in items:
            if item.get_closest_marker("openvino"):
                item.add_marker(skip)


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not DATA.is_dir():
        pytest.fail(f"shared test data not found at {DATA} (clone the repo with ../shared beside it)")
    return DATA


@pytest.fixture(scope="session")
def detector():
    from custom_components.safecam.engine.detect import Detector

    return Detector.from_catalog()


@pytest.fixture(scope="session")
def face_auditor():
    from custom_components.safecam.engine.audit import FaceAuditor

    return FaceAuditor.from_catalog()
