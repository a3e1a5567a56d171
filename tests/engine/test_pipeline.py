"""The threaded paths (decode-ahead preparation, render thread) give exactly what the plain
single-thread pipeline gives."""

from __future__ import annotations

import numpy as np

from custom_components.safecam.engine.pipeline import CameraPipeline
from custom_components.safecam.engine.render import AsyncRenderer, OnDemandRenderer
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


# ---- on-demand rendering: the picture is produced only when asked for, and is the anonymizer's ----


def _jpeg(image: np.ndarray) -> bytes:
    import cv2

    ok, buf = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 80])
    assert ok
    return buf.tobytes()


def test_on_demand_renders_only_when_asked_and_gives_the_anonymized_newest_frame(detector, shared_data):
    clip = str(shared_data / "pedestrians" / "tud_campus.mp4")
    reference = CameraPipeline(detector)
    lazy = CameraPipeline(detector)
    renderer = OnDemandRenderer(lazy)
    asked = 0
    for frame in open_source(clip):
        if frame.index >= 30:
            break
        expected = reference.process(frame.image, frame.t, frame.index)
        res = lazy.process(frame.image, frame.t, frame.index, render=False)
        assert res.frame_record() == expected.frame_record()  # analysis does not depend on rendering
        renderer.submit(frame.image, res)
        if frame.index % 10 == 9:  # a viewer asks now and then; twice, as two viewers would
            got = renderer.jpeg()
            assert got == _jpeg(expected.anonymized)  # the anonymizer's picture of the newest frame
            assert got != _jpeg(frame.image)
            assert renderer.jpeg() is got  # rendered once, whoever asks
            asked += 1
    assert renderer.rendered == asked == 3  # nothing rendered for the 27 frames nobody asked for
    renderer.close()


def test_on_demand_fails_closed_and_never_serves_what_it_cannot_render(shared_data, monkeypatch, caplog):
    from custom_components.safecam.engine.anonymize import Anonymizer
    from custom_components.safecam.engine.detect import Detector
    from custom_components.safecam.engine.models import create_session, resolve_model

    frame = next(iter(open_source(str(shared_data / "pedestrians" / "tud_stadtmitte.mp4"))))
    # A real but wrong model (a face detector) as the person detector: inference errors out.
    broken = CameraPipeline(Detector(create_session(resolve_model("face_yunet_n_dynamic"))))
    res = broken.process(frame.image, 0.0, 0, render=False)
    assert not res.analysed
    now = [100.0]
    renderer = OnDemandRenderer(broken, clock=lambda: now[0])
    assert renderer.jpeg() is None  # nothing submitted yet
    renderer.submit(frame.image, res)
    assert renderer.jpeg() == _jpeg(broken.anonymizer.obscure_all(frame.image))  # fully obscured
    now[0] += 6.0
    assert renderer.jpeg(max_age_s=5.0) is None  # stale: no picture rather than an old one

    # A render that raises gives no picture (the caller's placeholder), not an exception or the frame.
    renderer.submit(frame.image, res)

    def boom(*_args, **_kwargs):
        raise RuntimeError("simulated render failure")

    monkeypatch.setattr(Anonymizer, "obscure_all", boom)
    assert renderer.jpeg() is None
    assert renderer.jpeg() is None  # not retried for the same frame: one log line, not one per request
    assert [r.getMessage() for r in caplog.records].count("rendering failed") == 1
    # Closed before anyone asked: the raw frame is dropped, so there is nothing to render.
    monkeypatch.undo()
    renderer.submit(frame.image, res)
    renderer.close()
    assert renderer.jpeg() is None


def test_on_demand_serves_an_event_snapshot_without_rendering_again(detector, shared_data):
    frame = next(iter(open_source(str(shared_data / "pedestrians" / "tud_stadtmitte.mp4"))))
    pipeline = CameraPipeline(detector)
    res = pipeline.process(frame.image, 0.0, 0)
    snapshot = _jpeg(res.anonymized)
    renderer = OnDemandRenderer(pipeline)
    renderer.submit(frame.image, res, jpeg=snapshot)
    assert renderer.jpeg() is snapshot
    assert renderer.rendered == 0
