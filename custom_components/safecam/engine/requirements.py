"""What the engine needs installed beyond Home Assistant: the one list, used where the integration installs it on demand.

The integration's manifest requires none of it (HA OS and the official container are musl, where these publish no
wheels; onnxruntime-openvino has no Python 3.14 wheel). Analysing inside Home Assistant is the user's explicit choice,
and only then does HA's requirements mechanism install this list (inprocess.py). requirements/base.in
(Python 3.14: onnxruntime), requirements/min.in (Python 3.13 on x86-64: onnxruntime-openvino) and
addon/requirements.txt pin the same versions for the development venvs and the add-on image.
"""

from __future__ import annotations

from typing import Final

ENGINE_REQUIREMENTS: Final = (
    # The OpenVINO EP build on x86-64 where it has wheels (glibc, Python < 3.14); plain onnxruntime (CPU EP) elsewhere.
    "onnxruntime-openvino==1.24.1; platform_machine == 'x86_64' and python_version < '3.14'",
    "onnxruntime==1.32.0; platform_machine != 'x86_64' or python_version >= '3.14'",
    "opencv-python-headless==5.0.0.93",
)
# What the engine as a service needs on top (the MQTT client and the config file reader); Home Assistant brings its own
# PyYAML and the in-process engine talks to no broker. The Python package's dependencies are both lists
# (pyproject.toml reads them through scripts/hatch_requirements.py): one owner for every version.
SERVICE_REQUIREMENTS: Final = (
    "aiomqtt>=2.5.1,<3",
    "pyyaml>=6.0.2,<7",
)
# The ONNX Runtime builds: both provide the module `onnxruntime` (never install one over the other).
ONNX_RUNTIMES: Final = ("onnxruntime", "onnxruntime-openvino")
# What those requirements provide, imported to tell whether the engine can run in this interpreter.
ENGINE_MODULES: Final = ("cv2", "onnxruntime")
