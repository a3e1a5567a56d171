"""Motion gate on real frames: skips a still scene, runs on movement, forces periodic detection."""

from __future__ import annotations

import numpy as np

from custom_components.safecam.engine.motion import MotionConfig, MotionGate
from custom_components.safecam.engine.pipeline import CameraPipeline

from .mot import frames


def test_still_scene_is_skipped_but_detection_is_forced_periodically(shared_data):
    frame = frames(shared_data / "pedestrians" / "tud_stadtmitte.mp4", 1)[0]
    rng = np.random.default_rng(0)
    gate = MotionGate(MotionConfig(force_every_s=2.0))
    decisions = []
    for k in range(50):  # 10 s at 5 fps of the same frame with sensor noise
        noisy = np.clip(frame.astype(int) + rng.integers(-4, 5, frame.shape), 0, 255).astype(np.uint8)
        decisions.append(gate.decide(gate.measure(noisy), k * 0.2))
    assert decisions[0]
    assert 4 <= sum(decisions) <= 7  # one forced detection every 2 s


def test_walking_people_always_trigger(shared_data):
    gate = MotionGate()
    clip = frames(shared_data / "pedestrians" / "tud_stadtmitte.mp4", 50)
    assert all(gate.decide(gate.measure(f), i / 5) for i, f in enumerate(clip[::5]))


def test_standing_person_stays_counted_while_the_gate_skips(detector, shared_data):
    """A frozen scene: the detector runs rarely, yet the people stay tracked and counted."""
    frame = frames(shared_data / "pedestrians" / "tud_stadtmitte.mp4", 1)[0]
    pipeline = CameraPipeline(detector)
    counts, detected = [], 0
    for k in range(60):  # 12 s at 5 fps
        res = pipeline.process(frame, k * 0.2, k, render=False)
        counts.append(res.people)
        detected += res.detected
    assert detected <= 12
    assert min(counts[5:]) >= 4
    assert len({tuple(t.track_id for t in pipeline.tracker.tracks())}) == 1
