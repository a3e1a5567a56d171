"""Real MoveNet (single-pose on a crop, multi-pose on the frame) on real frames, against what the frames show."""

from __future__ import annotations

import numpy as np
import pytest

from custom_components.safecam.engine.pose import (
    ANKLES,
    HEAD,
    HIPS,
    KEYPOINTS,
    KNEES,
    SHOULDERS,
    MultiPoseEstimator,
    SinglePoseEstimator,
)
from tests.conftest import expected_auto_provider

from .mot import frames, load_gt


@pytest.fixture(scope="module")
def single():
    return SinglePoseEstimator.from_catalog()


@pytest.fixture(scope="module")
def multi():
    return MultiPoseEstimator.from_catalog()


@pytest.fixture(scope="module")
def walker(shared_data):
    """TUD-Stadtmitte frame 0 and the ground-truth box of its tallest person (id 4: seen from behind, full body)."""
    gt = load_gt(shared_data / "pedestrians" / "tud_stadtmitte.gt.txt")
    ids, boxes, _ = gt[0]
    box = boxes[list(ids).index(4)]
    return frames(shared_data / "pedestrians" / "tud_stadtmitte.mp4", 1)[0], tuple(float(v) for v in box)


def _y(pose, parts):
    centre = pose.centre_of(parts)
    assert centre is not None, f"none of {[KEYPOINTS[i] for i in parts]} visible"
    return centre[1]


def test_keypoint_names_match_the_model_card(shared_data):
    names = (shared_data.parent / "models" / "movenet_keypoints_17.txt").read_text().split()
    assert tuple(names) == KEYPOINTS


def test_singlepose_on_a_standing_person_orders_the_body_from_head_to_feet(single, walker):
    image, box = walker
    x1, y1, x2, y2 = box
    h = y2 - y1
    pose = single(image, box)
    assert pose.visible().sum() >= 12
    # Head, shoulders, hips, knees, ankles: top to bottom, where a standing body has them.
    ys = [_y(pose, part) for part in (HEAD, SHOULDERS, HIPS, KNEES, ANKLES)]
    assert ys == sorted(ys)
    assert _y(pose, HEAD) < y1 + 0.2 * h
    assert y1 + 0.35 * h < _y(pose, HIPS) < y1 + 0.65 * h
    assert _y(pose, ANKLES) > y1 + 0.8 * h
    kp = pose.keypoints[pose.visible()]
    assert (kp[:, 0] > x1 - 0.1 * h).all() and (kp[:, 0] < x2 + 0.1 * h).all()


def test_multipose_finds_the_same_person_as_singlepose(single, multi, walker):
    image, box = walker
    h = box[3] - box[1]
    one = single(image, box)
    # The multipose instance whose box overlaps the ground-truth box most is that person.
    poses = multi(image)
    assert len(poses) >= 3  # the frame shows several people walking
    cx = (box[0] + box[2]) / 2
    same = min(poses, key=lambda p: abs((p.box[0] + p.box[2]) / 2 - cx))
    both = one.visible() & same.visible()
    assert both.sum() >= 10
    # Same keypoints, in frame pixels, from both models: within a tenth of the body height.
    gap = np.linalg.norm(one.keypoints[both, :2] - same.keypoints[both, :2], axis=1)
    assert np.median(gap) < 0.1 * h


def test_multipose_sees_a_person_lying_on_the_floor(multi, shared_data):
    """Last frame of GMDCSA24 subject 1 fall 15: the person lies on their side along the floor, lower left
    (by eye: x about 20-330, y about 400-470 of 640x480) - the pose the detector hardly sees."""
    last = frames(shared_data / "falls" / "gmdcsa24_s1_fall_15.mp4")[-1]
    poses = multi(last)
    lying = [p for p in poses if 20 <= (p.box[0] + p.box[2]) / 2 <= 330 and 380 <= (p.box[1] + p.box[3]) / 2 <= 480]
    assert lying, [p.box for p in poses]
    pose = lying[0]
    kp = pose.keypoints[pose.visible()]
    assert len(kp) >= 8
    width, height = np.ptp(kp[:, 0]), np.ptp(kp[:, 1])
    assert width > 2 * height  # along the floor, not upright


def test_multipose_input_is_one_fixed_shape_per_frame_size(multi):
    assert multi.input_shape(640, 480) == (320, 256)
    assert multi.input_shape(1280, 720) == (320, 192)
    assert multi.input_shape(480, 640) == (256, 320)


def test_pose_runs_on_openvino_where_available(multi):
    assert multi.session.get_providers()[0] == expected_auto_provider()


def test_singlepose_crop_past_the_frame_edge_is_padded_not_shifted(single, walker):
    """The person 10 px from the left edge: the square crop reaches past the edge (black padding), and the
    keypoints still land where they are in the frame."""
    image, box = walker
    x1, y1, x2, y2 = box
    offset = int(x1) - 10
    cut = np.ascontiguousarray(image[:, offset:])
    full, part = single(image, box), single(cut, (x1 - offset, y1, x2 - offset, y2))
    both = full.visible() & part.visible()
    assert both.sum() >= 10
    moved = part.keypoints[both, :2] + [offset, 0]
    assert np.median(np.linalg.norm(moved - full.keypoints[both, :2], axis=1)) < 0.05 * (y2 - y1)
