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
