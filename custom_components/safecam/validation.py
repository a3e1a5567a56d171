"""The schema library Home Assistant itself validates with, as `vol`.

Current Home Assistant (2026.x) builds its validators (config_validation) and types its flow, service and
websocket schemas with probatio, voluptuous's API-compatible successor; older releases (the declared minimum,
2025.4.4) use voluptuous. Building ours with the same library keeps them one kind with HA's.
"""

try:
    import probatio as vol
except ImportError:  # Home Assistant before probatio
    import voluptuous as vol  # type: ignore[no-redef]

__all__ = ["vol"]
