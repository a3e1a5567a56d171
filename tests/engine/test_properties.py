"""Property-based tests (hypothesis) for geometry validation and scene config parsing.

Whatever a user types into the options flow, a YAML file or an MQTT command, parsing either
returns a usable config or raises ConfigError/GeometryError with a one-line message; it never
crashes with anything else. Valid configs survive as_dict() -> parse_scene() unchanged.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from custom_components.safecam.engine.config import ZONE_KINDS, ConfigError, parse_scene
from custom_components.safecam.engine.geometry import (
    MAX_POLYGON_POINTS,
    GeometryError,
    points_in_polygon,
    polygon_area,
    side_of_line,
    validate_line,
    validate_polygon,
)

SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

unit = st.floats(min_value=0.0, max_value=1.0, allow_nan=False)
anything_number = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True), st.integers(min_value=-(10**6), max_value=10**6), st.booleans()
)
point = st.one_of(
    st.tuples(unit, unit).map(list),
    st.lists(anything_number, max_size=3),
    st.text(max_size=5),
    st.none(),
    st.dictionaries(st.text(max_size=2), anything_number, max_size=2),
)
# Text without control characters: text with a newline is covered by the known-bug test below.
text = st.text(st.characters(blacklist_categories=("Cc", "Cs")), max_size=8)
garbage = st.recursive(
    st.one_of(st.none(), st.booleans(), anything_number, text),
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(text, inner, max_size=4)),
    max_leaves=20,
)


def _one_line(err: Exception) -> None:
    text = str(err)
    assert text and "\n" not in text


@SETTINGS
@given(st.one_of(st.lists(point, max_size=MAX_POLYGON_POINTS + 3), garbage))
def test_polygon_validation_never_raises_anything_else(value: object) -> None:
    try:
        pts = np.asarray(validate_polygon(value, "zone"))  # (validation is pure Python: a list of pairs)
    except GeometryError as err:
        _one_line(err)
        return
    # Accepted: 3..64 points inside the frame, a real area, usable by the point-in-polygon test.
    assert 3 <= len(pts) <= MAX_POLYGON_POINTS
    assert np.all((pts >= 0) & (pts <= 1))
    assert polygon_area(pts) > 0
    assert points_in_polygon(np.array([[0.5, 0.5]]), pts).shape == (1,)


@SETTINGS
@given(st.one_of(st.lists(point, max_size=4), garbage))
def test_line_validation_never_raises_anything_else(value: object) -> None:
    try:
        pts = np.asarray(validate_line(value, "gate"))
    except GeometryError as err:
        _one_line(err)
        return
    assert pts.shape == (2, 2) and float(np.hypot(*(pts[1] - pts[0]))) > 0
    s = side_of_line(np.array([[0.0, 0.0], [1.0, 1.0]]), pts[0], pts[1])
    assert np.all(np.isfinite(s))


@SETTINGS
@given(st.integers(min_value=3, max_value=MAX_POLYGON_POINTS), st.floats(0.05, 0.45), st.floats(0, 2 * math.pi))
def test_convex_polygons_are_accepted_and_contain_their_centre(n: int, radius: float, phase: float) -> None:
    angles = phase + np.arange(n) * 2 * math.pi / n
    poly = [[0.5 + radius * math.cos(a), 0.5 + radius * math.sin(a)] for a in angles]
    pts = validate_polygon(poly)
    assert points_in_polygon(np.array([[0.5, 0.5]]), pts)[0]
    # The same polygon traced through itself (a bow tie) is refused as self-intersecting.
    if n >= 4:
        bow = [poly[0], poly[2], poly[1], poly[3]]
        try:
            validate_polygon(bow)
        except GeometryError as err:
            assert "cross" in str(err) or "degenerate" in str(err)
        else:
            raise AssertionError(f"bow tie {bow} accepted")


@SETTINGS
@given(garbage)
def test_parse_scene_on_garbage_raises_only_config_error(data: object) -> None:
    try:
        parse_scene(data)
    except ConfigError as err:
        _one_line(err)


name = st.text(st.characters(blacklist_categories=("Cc", "Cs")), min_size=1, max_size=12)
zone_dict = st.fixed_dictionaries(
    {"name": name, "polygon": st.lists(point, max_size=6)},
    optional={"kind": st.one_of(st.sampled_from(ZONE_KINDS), name)},
)
gate_dict = st.fixed_dictionaries({"name": name, "line": st.lists(point, max_size=3)})


@SETTINGS
@given(st.fixed_dictionaries({}, optional={"zones": st.lists(zone_dict, max_size=3), "gates": st.lists(gate_dict, max_size=3)}))
def test_near_valid_scenes_parse_or_raise_config_error_and_round_trip(data: dict[str, object]) -> None:
    try:
        scene = parse_scene(data)
    except ConfigError as err:
        _one_line(err)
        return
    again = parse_scene(scene.as_dict())
    assert again == scene
    assert again.as_dict() == scene.as_dict()
    names = [z.name for z in scene.zones] + [g.name for g in scene.gates]
    assert len(names) == len(set(names)) and all(n == n.strip() and n for n in names)


# Found by the properties above; each used to escape as something other than a one-line ConfigError.
@pytest.mark.parametrize(
    "data",
    [
        pytest.param({1: 2, "a": 3}, id="non-string key: sorted() TypeError in _unknown"),
        pytest.param({"zones": [{"name": "a", "polygon": [[0, 0], [1, 0], [1, 1]], 2: 3, "x": 1}]}, id="mixed zone keys"),
        pytest.param({"zones": [{"name": "a", "polygon": [[10**400, 0], [1, 0], [1, 1]]}]}, id="huge int: OverflowError"),
        pytest.param({"gates": [{"name": "a\nb", "line": [[0, 0]]}]}, id="newline in a name: two-line message"),
        pytest.param({"\n": None}, id="newline in an unknown key: two-line message"),
        pytest.param({"zones": [{"name": "a", "polygon": [], "kind": "\n"}]}, id="newline in a kind: two-line message"),
    ],
)
def test_known_config_bugs(data: object) -> None:
    with pytest.raises(ConfigError) as info:
        parse_scene(data)
    _one_line(info.value)
