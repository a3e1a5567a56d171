"""Scene configuration (zones, gates): parsing and strict validation.

Shared by the CLI (`--config FILE.yaml`), the HA options flow and the add-on, so every front end
rejects the same mistakes with the same one-line message.
"""

from __future__ import annotations

import importlib
import importlib.util
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .geometry import GeometryError, validate_line, validate_polygon

ZONE_KINDS = ("danger", "restricted", "area", "equipment")
# Optional sections, each parsed and validated by the module that owns the capability:
# key -> "module:function" (relative to this package), called as fn(data, zones) -> parsed object,
# raising ConfigError. Imported lazily so a camera without the section never imports its module.
SECTION_PARSERS: dict[str, str] = {
    "privacy": ".anonymize:parse_privacy",
    "calibration": ".calibration:parse_calibration",
    "safety": ".scene.safety:parse_safety",
    "falls": ".scene.falls:parse_falls",
    "occupancy": ".scene.occupancy:parse_occupancy",
    "ppe": ".scene.ppe_rules:parse_ppe",
}
_TOP_KEYS = {"zones", "gates"}
_ZONE_KEYS = {"name", "polygon", "kind"}
_GATE_KEYS = {"name", "line"}


class ConfigError(ValueError):
    """Invalid configuration; str(err) is a one-line explanation naming the problem."""


@dataclass(frozen=True, slots=True)
class ZoneConfig:
    name: str
    polygon: tuple[tuple[float, float], ...]
    kind: str = "area"


@dataclass(frozen=True, slots=True)
class GateConfig:
    name: str
    line: tuple[tuple[float, float], tuple[float, float]]


@dataclass(frozen=True, slots=True)
class SceneConfig:
    zones: tuple[ZoneConfig, ...] = field(default_factory=tuple)
    gates: tuple[GateConfig, ...] = field(default_factory=tuple)
    sections: dict[str, Any] = field(default_factory=dict)  # parsed optional sections (SECTION_PARSERS)
    raw_sections: dict[str, Any] = field(default_factory=dict)  # as written, for as_dict()

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "zones": [{"name": z.name, "polygon": [list(p) for p in z.polygon], "kind": z.kind} for z in self.zones],
            "gates": [{"name": g.name, "line": [list(p) for p in g.line]} for g in self.gates],
        }
        out.update(self.raw_sections)
        return out

    def section(self, key: str) -> Any:
        """The parsed section, or None when the config has none."""
        return self.sections.get(key)


def _section_parser(key: str) -> Callable[[object, tuple[ZoneConfig, ...]], Any]:
    module, func = SECTION_PARSERS[key].split(":")
    # By its absolute name: once imported it is found in sys.modules (Home Assistant's event loop guard takes
    # an import of a module already loaded as non-blocking, and it imports the parsers in its import executor).
    name = importlib.util.resolve_name(module, __package__)
    parser: Callable[[object, tuple[ZoneConfig, ...]], Any] = getattr(importlib.import_module(name), func)
    return parser


def import_section_parsers(data: object) -> None:
    """Import the parser modules of the sections `data` has. Blocking (they import numpy): Home Assistant runs it
    in its import executor before `parse_scene`, which then finds them loaded."""
    if isinstance(data, dict):
        for key in SECTION_PARSERS:
            if data.get(key) is not None:
                _section_parser(key)


def _name(item: dict[str, Any], what: str, seen: set[str]) -> str:
    name = item.get("name")
    if not isinstance(name, str) or not name.strip():
        raise ConfigError(f"{what}: 'name' must be a non-empty string")
    name = name.strip()
    if not name.isprintable():
        raise ConfigError(f"{what}: name {_shown(name)} must be one line of printable characters")
    if name in seen:
        raise ConfigError(f"{what}: duplicate name '{name}' (zone and gate names must be unique)")
    seen.add(name)
    return name


def _shown(value: object) -> str:
    """A user-supplied value quoted on one line (errors must stay one line)."""
    return repr(value) if not isinstance(value, str) or not value.isprintable() else f"'{value}'"


def reject_unknown_keys(keys: object, allowed: set[str] | tuple[str, ...], what: str) -> None:
    """One-line ConfigError listing the keys of a mapping that are not allowed (any key type)."""
    plain = [k if isinstance(k, str) and k.isprintable() else repr(k) for k in keys] if isinstance(keys, dict) else []
    extra = sorted(k for k in plain if k not in allowed)
    if extra:
        shown = sorted(allowed) if isinstance(allowed, set) else allowed  # a tuple keeps its documented order
        raise ConfigError(f"{what}: unknown key(s) {', '.join(extra)} (allowed: {', '.join(shown)})")


def parse_scene(data: object, *, sections: bool = True) -> SceneConfig:
    """Validate a {'zones': [...], 'gates': [...]} mapping; raise ConfigError on the first problem.

    Zones and gates are checked in pure Python. sections=False (Home Assistant for a remote engine's camera): the
    optional sections are kept as written, unparsed (`section()` gives None), for the engine that runs them to
    validate; parsing one imports its analyzer module (numpy), which a thin integration does not load.
    """
    if data is None:
        return SceneConfig()
    if not isinstance(data, dict):
        raise ConfigError("config: expected a mapping with 'zones' and/or 'gates'")
    reject_unknown_keys(data, _TOP_KEYS | set(SECTION_PARSERS), "config")
    for key in ("zones", "gates"):
        if key in data and data[key] is not None and not isinstance(data[key], list):
            raise ConfigError(f"config: '{key}' must be a list")
    seen: set[str] = set()
    zones: list[ZoneConfig] = []
    for i, item in enumerate(data.get("zones") or []):
        what = f"zones[{i}]"
        if not isinstance(item, dict):
            raise ConfigError(f"{what}: expected a mapping with name, polygon, kind")
        reject_unknown_keys(item, _ZONE_KEYS, what)
        name = _name(item, what, seen)
        what = f"zone '{name}'"
        kind = item.get("kind", "area")
        if kind not in ZONE_KINDS:
            raise ConfigError(f"{what}: kind {_shown(kind)} is not one of {', '.join(ZONE_KINDS)}")
        try:
            pts = validate_polygon(item.get("polygon"), f"{what} polygon")
        except GeometryError as err:
            raise ConfigError(str(err)) from None
        zones.append(ZoneConfig(name, tuple((float(x), float(y)) for x, y in pts), kind))
    gates: list[GateConfig] = []
    for i, item in enumerate(data.get("gates") or []):
        what = f"gates[{i}]"
        if not isinstance(item, dict):
            raise ConfigError(f"{what}: expected a mapping with name, line")
        reject_unknown_keys(item, _GATE_KEYS, what)
        name = _name(item, what, seen)
        try:
            pts = validate_line(item.get("line"), f"gate '{name}' line")
        except GeometryError as err:
            raise ConfigError(str(err)) from None
        gates.append(GateConfig(name, ((float(pts[0][0]), float(pts[0][1])), (float(pts[1][0]), float(pts[1][1])))))
    parsed: dict[str, Any] = {}
    raw_sections: dict[str, Any] = {}
    for key in SECTION_PARSERS:
        if data.get(key) is not None:
            raw_sections[key] = data[key]
            if not sections:
                continue
            parsed[key] = _section_parser(key)(data[key], tuple(zones))
            # A section that names gates checks them here (parsers see only the zones).
            getattr(parsed[key], "check_gates", lambda _gates: None)(tuple(gates))
    return SceneConfig(tuple(zones), tuple(gates), parsed, raw_sections)


def load_yaml(path: str | Path) -> object:
    """A YAML file's content; unreadable or invalid files raise a one-line ConfigError."""
    import yaml  # type: ignore[import-untyped]

    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as err:
        raise ConfigError(f"config: cannot read {path}: {err.strerror}") from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"config: {path} is not valid YAML{where}") from None


def load_scene(path: str | Path) -> SceneConfig:
    return parse_scene(load_yaml(path))
