"""Scene configuration (zones, gates): parsing and strict validation.

Shared by the CLI (`--config FILE.yaml`), the HA options flow and the add-on, so every front end
rejects the same mistakes with the same one-line message.
"""

from __future__ import annotations

import functools
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
# What one scene may hold (issue 19: a 30,001-zone YAML blocked Home Assistant for 38 s, a 10,000-zone scene made
# 20,006 entities, a 1 MB zone name reached the recorder). Every front end (HA's form and zone editor, the engine's
# set_scene command, the CLI) parses through here, so the caps hold everywhere.
MAX_SCENE_TEXT = 256 * 1024  # characters of scene YAML/JSON
MAX_DEPTH = 16  # nesting of mappings and lists (a zone's point is at depth 5, in an engine's config file 8)
MAX_NODES = 100_000  # values in all (64-point polygons of every zone and gate fit many times over)
MAX_ZONES = 100
MAX_GATES = 100
MAX_NAME_LENGTH = 100  # characters of a zone, gate, camera or site name
MAX_TEXT = 256  # characters of any other text or key in a scene (every value an error message may echo is short)
SHOWN_MAX = 80  # characters of a user's value quoted in an error or a log line
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


def check_name(value: object, what: str) -> str:
    """A name a user typed (zone, gate, camera, site), stripped: one line of printable characters (no control or
    bidi characters, no newline), at most MAX_NAME_LENGTH long. ConfigError else."""
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(f"{what}: 'name' must be a non-empty string")
    name = value.strip()
    if not all(_name_char(c) for c in name):
        raise ConfigError(f"{what}: name {shown(name)} must be one line of printable characters")
    if len(name) > MAX_NAME_LENGTH:
        raise ConfigError(f"{what}: name {shown(name)} is longer than {MAX_NAME_LENGTH} characters")
    return name


# Format characters a name needs: the zero-width (non-)joiner of Persian, Indic scripts and emoji sequences.
_JOINERS = frozenset("\u200c\u200d")


def _name_char(c: str) -> bool:
    """Printable, or a joiner; never a control, line/paragraph separator or other format character (the bidi
    overrides and isolates, U+202A-U+202E and U+2066-U+2069, are format characters)."""
    return c.isprintable() or c in _JOINERS


def _name(item: dict[str, Any], what: str, seen: set[str]) -> str:
    name = check_name(item.get("name"), what)
    if name in seen:
        raise ConfigError(f"{what}: duplicate name {shown(name)} (zone and gate names must be unique)")
    seen.add(name)
    return name


def shown(value: object, limit: int = SHOWN_MAX) -> str:
    """A user-supplied value quoted on one bounded line, for errors and log lines (which must stay one line and short)."""
    text = f"'{value}'" if isinstance(value, str) and value.isprintable() else _bounded_repr(value, limit)
    return text if len(text) <= limit else f"{text[:limit]}... ({len(value) if isinstance(value, str) else len(text)} characters)"


def _bounded_repr(value: object, limit: int) -> str:
    # A str is cut before repr (a megabyte name is not copied whole); other values are small once parsing checked them.
    return repr(value[: limit + 1]) if isinstance(value, str) else repr(value)


def _check_size(data: object) -> None:
    """ConfigError when the scene nests deeper than MAX_DEPTH, holds more than MAX_NODES values or a text (value or key)
    longer than MAX_TEXT. Walked without recursion: a deep structure must not raise RecursionError here."""
    stack: list[tuple[object, int]] = [(data, 1)]
    nodes = 0
    while stack:
        value, depth = stack.pop()
        nodes += 1
        if nodes > MAX_NODES:
            raise ConfigError(f"config: more than {MAX_NODES} values in all")
        if isinstance(value, str) and len(value) > MAX_TEXT:
            raise ConfigError(f"config: the text {shown(value)} is longer than {MAX_TEXT} characters")
        if isinstance(value, dict | list | tuple):
            if depth >= MAX_DEPTH:
                raise ConfigError(f"config: nested deeper than {MAX_DEPTH} levels")
            children = [*value.keys(), *value.values()] if isinstance(value, dict) else value
            stack.extend((child, depth + 1) for child in children)


def reject_unknown_keys(keys: object, allowed: set[str] | tuple[str, ...], what: str) -> None:
    """One-line ConfigError listing the keys of a mapping that are not allowed (any key type)."""
    plain = [k if isinstance(k, str) and k.isprintable() else repr(k) for k in keys] if isinstance(keys, dict) else []
    extra = sorted(k for k in plain if k not in allowed)
    if extra:
        listed = sorted(allowed) if isinstance(allowed, set) else allowed  # a tuple keeps its documented order
        named = ", ".join(k if len(k) <= SHOWN_MAX else shown(k) for k in extra[:5]) + (", ..." if len(extra) > 5 else "")
        raise ConfigError(f"{what}: unknown key(s) {named} (allowed: {', '.join(listed)})")


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
    for key, most in (("zones", MAX_ZONES), ("gates", MAX_GATES)):
        if key in data and data[key] is not None and not isinstance(data[key], list):
            raise ConfigError(f"config: '{key}' must be a list")
        if len(data.get(key) or ()) > most:
            raise ConfigError(f"config: {len(data[key])} {key}, at most {most} are allowed")
    _check_size(data)
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
            raise ConfigError(f"{what}: kind {shown(kind)} is not one of {', '.join(ZONE_KINDS)}")
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
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as err:
        raise ConfigError(f"config: cannot read {path}: {err.strerror}") from None
    return safe_yaml(text, f"{path} is not valid YAML")


def safe_yaml(text: str, invalid: str = "not valid YAML or JSON") -> object:
    """YAML text -> data, at most MAX_DEPTH levels deep (checked while composing: a deep text raises a one-line
    ConfigError, not RecursionError). `invalid` says what is wrong when it does not parse."""
    import yaml  # type: ignore[import-untyped]

    loader = None
    try:
        loader = _capped_loader()(text)  # its reader already refuses non-printable characters (yaml.ReaderError)
        return loader.get_single_data()
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"config: {invalid}{where}") from None
    except ConfigError:
        raise  # too deep
    except ValueError:  # a value YAML cannot construct, e.g. the date 2024-02-30
        raise ConfigError(f"config: {invalid}") from None
    finally:
        if loader is not None:
            loader.dispose()


@functools.cache
def _capped_loader() -> type:
    import yaml

    class CappedLoader(yaml.SafeLoader):
        depth = 0

        def compose_node(self, parent: object, index: object) -> object:
            self.depth += 1
            try:
                if self.depth > MAX_DEPTH:
                    raise ConfigError(f"config: nested deeper than {MAX_DEPTH} levels")
                return super().compose_node(parent, index)
            finally:
                self.depth -= 1

    return CappedLoader


def parse_scene_text(text: str, *, sections: bool = True) -> SceneConfig:
    """Scene YAML (or JSON, a subset of YAML) as typed in a form -> SceneConfig; ConfigError (one line) if invalid or
    too large. Blocking for a large text: Home Assistant calls it in an executor."""
    if len(text) > MAX_SCENE_TEXT:
        raise ConfigError(f"config: {len(text)} characters, at most {MAX_SCENE_TEXT} are allowed")
    return parse_scene(safe_yaml(text) if text.strip() else None, sections=sections)


def load_scene(path: str | Path) -> SceneConfig:
    return parse_scene(load_yaml(path))
