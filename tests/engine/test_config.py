"""Scene configuration: every malformed input is refused with a one-line message naming the problem."""

from __future__ import annotations

import pytest

from custom_components.safecam.engine.config import ConfigError, load_scene, parse_scene

SQUARE = [[0.1, 0.1], [0.5, 0.1], [0.5, 0.5], [0.1, 0.5]]


def test_valid_config_parses():
    scene = parse_scene(
        {
            "zones": [{"name": "pit", "polygon": SQUARE, "kind": "danger"}],
            "gates": [{"name": "door", "line": [[0.5, 0], [0.5, 1]]}],
        }
    )
    assert scene.zones[0].kind == "danger"
    assert scene.gates[0].line == ((0.5, 0.0), (0.5, 1.0))
    assert parse_scene(scene.as_dict()) == scene


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"zone": []}, "unknown key(s) zone"),
        ({"zones": [{"name": "a", "polygon": SQUARE, "colour": 1}]}, "unknown key(s) colour"),
        ({"zones": [{"polygon": SQUARE}]}, "'name' must be a non-empty string"),
        ({"zones": [{"name": "a", "polygon": [[0.1, 0.1], [0.2, 0.2]]}]}, "at least 3 points"),
        ({"zones": [{"name": "a", "polygon": [[0.1, 0.1], [0.5, 0.5], [0.5, 0.1], [0.1, 0.5]]}]}, "self-intersecting"),
        ({"zones": [{"name": "a", "polygon": [[0.1, 0.1], [0.2, 0.2], [0.3, 0.3]]}]}, "degenerate"),
        ({"zones": [{"name": "a", "polygon": [[0.1, 0.1], [1.5, 0.1], [0.5, 0.5]]}]}, "outside 0..1"),
        ({"zones": [{"name": "a", "polygon": [[0.1, 0.1], ["x", 0.1], [0.5, 0.5]]}]}, "point 2 is not [x, y] numbers"),
        ({"zones": [{"name": "a", "polygon": SQUARE, "kind": "lava"}]}, "kind 'lava' is not one of"),
        ({"zones": [{"name": "a", "polygon": [[0.1 + 0.001 * i, 0.1 + (i % 2) * 0.3] for i in range(65)]}]}, "at most 64"),
        ({"zones": [{"name": "a", "polygon": SQUARE}, {"name": "a", "polygon": SQUARE}]}, "duplicate name 'a'"),
        ({"zones": [{"name": "a", "polygon": SQUARE}], "gates": [{"name": "a", "line": [[0, 0], [1, 1]]}]}, "duplicate name 'a'"),
        ({"gates": [{"name": "g", "line": [[0.5, 0.5], [0.5, 0.5]]}]}, "too short"),
        ({"gates": [{"name": "g", "line": [[0.1, 0.1], [0.2, 0.2], [0.3, 0.3]]}]}, "exactly 2 points"),
        ({"zones": "pit"}, "'zones' must be a list"),
        ([1, 2], "expected a mapping"),
    ],
)
def test_malformed_config_is_refused(data, message):
    with pytest.raises(ConfigError) as err:
        parse_scene(data)
    assert message in str(err.value)
    assert "\n" not in str(err.value)


def test_yaml_errors_name_the_line(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("zones:\n  - name: a\n    polygon: [[0.1, 0.1]\n")
    with pytest.raises(ConfigError, match="not valid YAML at line"):
        load_scene(bad)
    with pytest.raises(ConfigError, match="cannot read"):
        load_scene(tmp_path / "missing.yaml")
