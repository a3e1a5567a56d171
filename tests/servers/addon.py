"""addon/run.sh outside the image: the environment that makes it run as the image would."""

from __future__ import annotations

import os
from pathlib import Path

from .processes import free_port

REPO = Path(__file__).resolve().parents[2]
ENGINE_VENV = REPO / ".venv-engine" / "bin"  # the engine's wheel and nothing else, as the image's venv


def run_sh_env(data: Path, **extra: str) -> dict[str, str]:
    """run.sh's environment: the wheel's python3 and safecam-engine first on PATH, /data = `data`, a free HTTP port
    (not the add-on's 8099: other runs may hold it on this host), the shared models as the mirror."""
    assert (ENGINE_VENV / "safecam-engine").exists(), f"{ENGINE_VENV}/safecam-engine missing: run scripts/setup.sh"
    return {
        **os.environ,
        "PATH": f"{ENGINE_VENV}:{os.environ['PATH']}",
        "SAFECAM_HOME": str(REPO),
        "SAFECAM_DATA": str(data),
        "SAFECAM_HTTP_PORT": str(free_port()),
        "SAFECAM_MODEL_MIRROR": os.environ.get("SAFECAM_MODEL_MIRROR", str(REPO.parent / "shared" / "models")),
        **extra,
    }
