"""Constants of the safecam Home Assistant integration (the HA glue; the engine has its own)."""

from __future__ import annotations

from typing import Final

DOMAIN: Final = "safecam"
PANEL_TITLE: Final = "Safecam zones"  # the zone editor's sidebar entry (panel.py); the scene form points to it

# Config entry data (the source) ------------------------------------------------------------
CONF_SOURCE_TYPE: Final = "source_type"
SOURCE_URL: Final = "url"  # a stream URL (rtsp/http(s)) or a local video file (path or file://)
SOURCE_ENTITY: Final = "entity"  # an existing HA camera entity, read through its stream source
CONF_ENTITY_REGISTRY_ID: Final = "entity_registry_id"
SOURCE_MQTT: Final = "mqtt"  # a camera of a remote engine (`serve`, the add-on), reached through HA's MQTT integration
CONF_ENGINE_ID: Final = "engine_id"
CONF_CAMERA_ID: Final = "camera_id"
CONF_TOPIC_PREFIX: Final = "topic_prefix"
CONF_ENGINE_BOOT: Final = "engine_boot"  # the newest run of the engine seen: an earlier run's message is a replay
CONF_PAIRING_KEY: Final = "pairing_key"  # the engine's key (contract.py): every message both ways is signed with it
DEFAULT_TOPIC_PREFIX: Final = "safecam"

# Site entries: a site device fusing several cameras (site_entry.py, site_fusion.py) ----------
CONF_ENTRY_KIND: Final = "entry_kind"  # absent: a camera entry
ENTRY_KIND_SITE: Final = "site"
CONF_SITE_CAMERAS: Final = "site_cameras"  # camera entry ids of the site; empty: every safecam camera
CONF_SITE_GATES: Final = "site_gates"  # perimeter gates, "<camera entry id>/<gate>/<in|out>": the direction entering
CONF_EMPTY_RESET_S: Final = "empty_reset_s"
CONF_FUSION_RADIUS_M: Final = "fusion_radius_m"
CONF_PLAN_IMAGE: Final = "plan_image"  # optional floor plan picture, a path under <config>/www
CONF_PLAN_WIDTH_M: Final = "plan_width_m"  # the mapped floor: x 0..width (right), y 0..depth (down), metres
CONF_PLAN_DEPTH_M: Final = "plan_depth_m"
DEFAULT_PLAN_WIDTH_M: Final = 20.0
DEFAULT_PLAN_DEPTH_M: Final = 10.0


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
CONF_CAPABILITIES: Final = "capabilities"  # remote cameras: the engine's announced contract.Capabilities, as a dict

# Engine ------------------------------------------------------------------------------------
MODEL_NAME: Final = "yolox_nano"  # the default person detector of the engine's catalog
PROBE_TIMEOUT_S: Final = 10


# Safety analytics (engine analyzers "falls", "safety", "ppe"; CameraState.analytics[name]) -----
CONGESTION_LEVELS: Final = ("low", "medium", "high")
METRIC_RULES_STATES: Final = ("enabled", "disabled")  # metre-based rules need a ground-plane calibration

# Repairs -------------------------------------------------------------------------------------
STREAM_UNREACHABLE_AFTER_S: Final = 5 * 60
CONF_UNREACHABLE_AFTER: Final = "unreachable_after_min"  # option: minutes without video before the repair (0: at once)
DEFAULT_UNREACHABLE_AFTER_MIN: Final = STREAM_UNREACHABLE_AFTER_S // 60
MAX_UNREACHABLE_AFTER_MIN: Final = 24 * 60
BEHIND_FACTOR: Final = 0.5  # analysis fps below this fraction of the configured fps ...
BEHIND_AFTER_S: Final = 2 * 60  # ... for this long raises the "engine falling behind" repair
HEALTH_CHECK_INTERVAL_S: Final = 30
