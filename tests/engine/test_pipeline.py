"""The threaded paths (decode-ahead preparation, render thread) give exactly what the plain
single-thread pipeline gives."""

from __future__ import annotations

import numpy as np

from custom_components.safecam.engine.pipeline import CameraPipeline
from custom_components.safecam.engine.render import AsyncRenderer
from custom_components.safecam.engine.sources import BackgroundReader, open_source


def test_prepared_and_rendered_in_threads_equals_inline(detector, shared_data):
    clip = str(shared_data / "pedestrians" / "tud_campus.mp4")
    inline = CameraPipeline(detector)
    expected = []
    for frame in open_source(clip):
        res = inline.process(frame.image, frame.t, frame.index)
        expected.append((res.frame_record(), res.anonymized))

    threaded = CameraPipeline(detector)
    rendered: list[np.ndarray] = []
    renderer = AsyncRenderer(threaded, lambda image, _res: rendered.append(image))
    reader = BackgroundReader(open_source(clip), prepare=threaded.prepare)
    records = []
    for frame in reader:
        assert frame.prepared is not None
        res = threaded.process(frame.image, frame.t, frame.index, render=False, prepared=frame.prepared)
        records.append(res.frame_record())
        renderer.submit(frame.image, res)
    reader.close()
    renderer.close()

    assert records == [r for r, _ in expected]
    assert len(rendered) == len(expected)
    assert all(np.array_equal(a, b) for a, (_, b) in zip(rendered, expected, strict=True))
