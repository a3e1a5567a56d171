"""Ground-plane calibration: hand-computed homographies, the real TUD-Stadtmitte floor, validation."""

from __future__ import annotations

import numpy as np
import pytest

from custom_components.safecam.engine.calibration import Calibration, parse_calibration, polygon_distance
from custom_components.safecam.engine.config import ConfigError, parse_scene

# A symmetric trapezoid in the image that is a 4 m x 3 m rectangle on the floor (camera looking down
# the floor's Y axis). Its sides, extended, meet at (0.5, 0.1): the horizon is the line y = 0.1.
TRAPEZOID = [[0.3, 0.5], [0.7, 0.5], [0.9, 0.9], [0.1, 0.9]]


def _trapezoid() -> Calibration:
    return parse_calibration({"image": TRAPEZOID, "rectangle_m": [4, 3]}, ())


def test_parallelogram_maps_affinely_to_its_rectangle():
    # Image parallelogram leaning 0.25 in x per unit of y, 0.4 x 0.4 of the frame, is 8 m x 4 m:
    # X = 20 (x - 0.2 - 0.25 (y - 0.4)), Y = 10 (y - 0.4).
    cal = parse_calibration({"image": [[0.2, 0.4], [0.6, 0.4], [0.7, 0.8], [0.3, 0.8]], "rectangle_m": [8, 4]}, ())
    got = cal.to_floor(np.array([[0.45, 0.6], [0.5, 0.5], [0.3, 0.8]]))
    np.testing.assert_allclose(got, [[4.0, 2.0], [5.5, 1.0], [0.0, 4.0]], atol=1e-9)
    assert cal.distance_m((0.45, 0.6), (0.5, 0.5)) == pytest.approx(np.hypot(1.5, 1.0))


def test_perspective_trapezoid_against_hand_computed_points():
    cal = _trapezoid()
    # Corners, the rectangle's centre (where the image diagonals cross: (0.5, 0.5 + 0.4 / 3)), the
    # edge midpoints on the symmetry axis, and a point on the left side (floor X = 0).
    pts = np.array([[0.3, 0.5], [0.9, 0.9], [0.5, 0.5 + 0.4 / 3], [0.5, 0.5], [0.5, 0.9], [0.2, 0.7]])
    got = cal.to_floor(pts)
    np.testing.assert_allclose(got[:5], [[0, 0], [4, 3], [2, 1.5], [2, 0], [2, 3]], atol=1e-9)
    assert got[5, 0] == pytest.approx(0.0, abs=1e-9)
    # Depth along the axis is projective with its pole at the horizon: Y = 6 (y - 0.5) / (y - 0.1).
    for y in (0.55, 0.7, 0.8, 1.0):
        assert cal.to_floor(np.array([[0.5, y]]))[0, 1] == pytest.approx(6 * (y - 0.5) / (y - 0.1))
    np.testing.assert_allclose(cal.to_image(np.array([[2.0, 1.5]])), [[0.5, 0.5 + 0.4 / 3]], atol=1e-9)


def test_points_at_or_beyond_the_horizon_have_no_floor_position():
    got = _trapezoid().to_floor(np.array([[0.5, 0.1], [0.5, 0.05], [0.2, 0.0], [0.5, 0.3]]))
    assert np.isnan(got[:3]).all()
    assert np.isfinite(got[3]).all()  # 0.3 is below the horizon: 6 * -0.2 / 0.2 = 6 m behind the far edge
    assert got[3, 1] == pytest.approx(-6.0)


def test_zone_areas_in_square_metres_and_clipping_at_the_horizon():
    cal = _trapezoid()
    assert cal.floor_polygon(TRAPEZOID).area_m2 == pytest.approx(12.0)
    whole = cal.floor_polygon([[0, 0], [1, 0], [1, 1], [0, 1]])
    assert whole is not None and whole.clipped and whole.area_m2 is None  # reaches past the horizon
    # Clipped or not, its near edge is the frame's bottom row: y = 1 is 6 * 0.5 / 0.9 m deep.
    assert whole.points[:, 1].max() == pytest.approx(6 * 0.5 / 0.9)
    assert cal.floor_polygon([[0.2, 0.0], [0.8, 0.0], [0.5, 0.05]]) is None  # all of it above the horizon


def test_polygon_distance():
    square = np.array([[0.0, 0.0], [2.0, 0.0], [2.0, 2.0], [0.0, 2.0]])
    got = polygon_distance(np.array([[3.0, 1.0], [4.0, 5.0], [1.0, 1.0], [-0.5, 1.9], [np.nan, 1.0]]), square)
    np.testing.assert_allclose(got[:4], [1.0, np.hypot(2, 3), 0.0, 0.5])
    assert np.isnan(got[4])


def test_real_floor_of_tud_stadtmitte(shared_data):
    """MOT15 annotates TUD-Stadtmitte with world floor coordinates (metres): four of its feet
    positions calibrate the camera, and all 1156 others must land where the annotation puts them."""
    rows = np.loadtxt(shared_data / "pedestrians" / "tud_stadtmitte.gt.txt", delimiter=",")
    feet = np.stack([(rows[:, 2] + rows[:, 4] / 2) / 640, (rows[:, 3] + rows[:, 5]) / 480], axis=1)
    world = rows[:, 7:9]
    # (frame, id) of four boxes near the corners of where people walk, in order around them.
    chosen = [int(np.flatnonzero((rows[:, 0] == f) & (rows[:, 1] == i))[0]) for f, i in ((9, 3), (6, 8), (31, 5), (21, 1))]
    cal = Calibration.from_points(feet[chosen], world[chosen])
    err = np.linalg.norm(cal.to_floor(feet) - world, axis=1)
    assert np.median(err) < 0.15  # metres; a least-squares fit over all points does 0.06
    assert np.percentile(err, 90) < 0.3


@pytest.mark.parametrize(
    ("section", "needle"),
    [
        ({"image": TRAPEZOID}, "exactly one of 'floor'"),
        ({"image": TRAPEZOID, "rectangle_m": [4, 3], "floor": [[0, 0]] * 4}, "exactly one of 'floor'"),
        ({"rectangle_m": [4, 3]}, "'image' (4 [x, y] points"),
        ({"image": TRAPEZOID[:3], "rectangle_m": [4, 3]}, "exactly 4 [x, y] points"),
        ({"image": [[0.3, 0.5], [1.2, 0.5], [0.9, 0.9], [0.1, 0.9]], "rectangle_m": [4, 3]}, "outside 0..1"),
        ({"image": [[0.1, 0.5], [0.5, 0.5], [0.9, 0.5], [0.5, 0.9]], "rectangle_m": [4, 3]}, "points 1, 2 and 3 are (nearly)"),
        ({"image": [[0.3, 0.5], [0.9, 0.9], [0.7, 0.5], [0.1, 0.9]], "rectangle_m": [4, 3]}, "self-intersecting"),
        ({"image": [[0.3, 0.3], [0.7, 0.3], [0.4, 0.4], [0.3, 0.7]], "rectangle_m": [4, 3]}, "convex quadrilateral"),
        ({"image": [[0.5, 0.5], [0.55, 0.5], [0.55, 0.55], [0.5, 0.55]], "rectangle_m": [4, 3]}, "spread them over"),
        ({"image": TRAPEZOID, "rectangle_m": [400, 300]}, "centimetres entered?"),
        ({"image": TRAPEZOID, "rectangle_m": [0.1, 3]}, "side 1-2 is 0.1 m"),
        ({"image": TRAPEZOID, "rectangle_m": [4, -3]}, "must be positive"),
        ({"image": TRAPEZOID, "rectangle_m": "4x3"}, "expected [width, depth]"),
        ({"image": TRAPEZOID, "floor": [[0, 0], [4, 0], [0, 3], [4, 3]]}, "floor: the 4 points must go around a convex"),
        ({"image": TRAPEZOID, "floor": [[0, 0], [2, 0], [4, 0], [2, 3]]}, "floor: points 1, 2 and 3 are (nearly) on one line"),
        ({"image": TRAPEZOID, "floor": [[0, 0], [4, 0], ["4", 3], [0, 3]]}, "floor: point 3 is not [x, y] numbers"),
        ({"image": TRAPEZOID, "rectangle_m": [4, 3], "units": "m"}, "unknown key(s) units"),
        ([1, 2], "expected a mapping"),
    ],
)
def test_bad_calibrations_are_rejected_with_one_line(section, needle):
    with pytest.raises(ConfigError) as err:
        parse_scene({"calibration": section})
    assert needle in str(err.value)
    assert "\n" not in str(err.value)


def test_calibration_is_a_scene_section():
    scene = parse_scene({"calibration": {"image": TRAPEZOID, "rectangle_m": [4, 3]}})
    cal = scene.section("calibration")
    assert isinstance(cal, Calibration)
    assert scene.as_dict()["calibration"] == {"image": TRAPEZOID, "rectangle_m": [4, 3]}


def test_scenes_with_a_calibration_compare_by_their_points() -> None:
    # The HA options listener compares old and new scenes; an ndarray field made == raise.
    image = [[0.1, 0.9], [0.9, 0.9], [0.7, 0.4], [0.3, 0.4]]
    same = Calibration.from_points(image, [[0, 0], [4, 0], [4, 8], [0, 8]])
    again = Calibration.from_points(image, [[0, 0], [4, 0], [4, 8], [0, 8]])
    other = Calibration.from_points(image, [[0, 0], [5, 0], [5, 8], [0, 8]])
    assert same == again
    assert same != other
    assert hash(same) == hash(again)
