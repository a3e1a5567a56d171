"""Constants of the safecam Home Assistant integration (the HA glue; the engine has its own)."""

from __future__ import annotations

from typing import Final

DOMAIN: Final = "safecam"

# Config entry data (the source) ------------------------------------------------------------
CONF_SOURCE_TYPE: Final = "source_type"
SOURCE_URL: Final = "url"  # a stream URL (rtsp/http(s)) or a local video file (path or file://)
SOURCE_ENTITY: Final = "entity"  # an existing HA camera entity, read through its stream source
CONF_ENTITY_REGISTRY_ID: Final = "entity_registry_id"

# Config entry options (analysis settings and the scene) ------------------------------------
CONF_FPS: Final = "fps"
DEFAULT_FPS: Final = 5
MIN_FPS: Final = 1
MAX_FPS: Final = 15
CONF_ANONYMIZATION: Final = "anonymization"
ANONYMIZATION_BODY: Final = "body"
ANONYMIZATION_FULL_FRAME: Final = "full_frame"
ANONYMIZATION_HEAD: Final = "head"
ANONYMIZATION_MODES: Final = (ANONYMIZATION_BODY, ANONYMIZATION_FULL_FRAME, ANONYMIZATION_HEAD)
DEFAULT_ANONYMIZATION: Final = ANONYMIZATION_FULL_FRAME  # bench/privacy_audit.py: the only mode under 0.5 % face leakage
CONF_SCENE: Final = "scene"  # {"zones": [...], "gates": [...]} as engine.config.SceneConfig.as_dict()

# Engine ------------------------------------------------------------------------------------
MODEL_NAME: Final = "yolox_nano"  # the default person detector of the engine's catalog
PROBE_TIMEOUT_S: Final = 10

# Safety events the event entity fires. Later issues add fall, ppe_violation, approach,
# immobile, distancing, congestion, ... (DESIGN.md section 4) as the engine learns them.

# Safety analytics (engine analyzers "falls", "safety", "ppe"; CameraState.analytics[name]) -----
SAFETY_ZONE_KINDS: Final = ("danger", "equipment")  # a zone of these kinds builds the safety analyzer
CONGESTION_LEVELS: Final = ("low", "medium", "high")
METRIC_RULES_STATES: Final = ("enabled", "disabled")  # metre-based rules need a ground-plane calibration

# Repairs -------------------------------------------------------------------------------------
STREAM_UNREACHABLE_AFTER_S: Final = 5 * 60
BEHIND_FACTOR: Final = 0.5  # analysis fps below this fraction of the configured fps ...
BEHIND_AFTER_S: Final = 2 * 60  # ... for this long raises the "engine falling behind" repair
HEALTH_CHECK_INTERVAL_S: Final = 30
