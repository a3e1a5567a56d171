"""A meta-path finder that refuses the heavy modules a thin integration must not load.

cv2, onnxruntime and openvino are refused to anyone (Home Assistant never imports them); numpy is refused to the
integration's own modules (Home Assistant core imports numpy itself, e.g. its stream component). A refusal is
recorded with the importing module and raised as ImportError, so the caller fails loudly, and `REFUSED` lists them.
Installed first thing in a fresh interpreter (tests/thin/test_thin_start.py runs it as a subprocess).
"""

from __future__ import annotations

import sys
from importlib.abc import MetaPathFinder
from typing import Any

ANYONE = frozenset({"cv2", "onnxruntime", "openvino"})
OURS_ONLY = frozenset({"numpy"})
OURS = "custom_components.safecam"
REFUSED: list[tuple[str, str]] = []  # (module, importer)


def _importer() -> str:
    """The module whose code runs the import statement (the first frame outside the import machinery)."""
    frame = sys._getframe(2)
    while frame is not None and (frame.f_code.co_filename.startswith("<frozen") or "importlib" in frame.f_code.co_filename):
        frame = frame.f_back  # type: ignore[assignment]
    return str(frame.f_globals.get("__name__", "?")) if frame is not None else "?"


class HeavyBlocker(MetaPathFinder):
    def find_spec(self, fullname: str, path: Any = None, target: Any = None) -> None:
        top = fullname.partition(".")[0]
        if top in ANYONE or top in OURS_ONLY:
            importer = _importer()
            if top in ANYONE or importer == OURS or importer.startswith(OURS + "."):
                REFUSED.append((fullname, importer))
                raise ImportError(f"thin integration: {importer} imports {fullname}")
        return None


def install() -> None:
    sys.meta_path.insert(0, HeavyBlocker())


install()  # loaded as a pytest plugin (`-p tests.thin.heavy_blocker`): before conftest files and test modules
