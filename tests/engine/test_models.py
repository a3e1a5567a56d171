"""Model catalog, resolution, download and session factory, on the real files in ../shared."""

from __future__ import annotations

import functools
import hashlib
import os
import shutil
import threading
from http.server import HTTPServer, SimpleHTTPRequestHandler
from pathlib import Path

import numpy as np
import pytest

from custom_components.safecam.engine import models
from custom_components.safecam.engine.models import (
    ModelCorruptError,
    ModelMissingError,
    ModelProviderError,
    create_session,
    fetch_model,
    load_catalog,
    resolve_model,
)
from tests.conftest import MODELS as SHARED_MODELS
from tests.conftest import expected_auto_provider

REPO = Path(__file__).resolve().parents[2]
needs_shared = pytest.mark.skipif(not SHARED_MODELS.is_dir(), reason="../shared/models not beside the repo")
YOLOX_SIZE = 3660092


@pytest.fixture(autouse=True)
def _isolated_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Empty cache, no mirror, loopback not proxied: the user's own setup must not leak in."""
    cache = tmp_path / "cache"
    monkeypatch.setenv("SAFECAM_CACHE_DIR", str(cache))
    monkeypatch.delenv("SAFECAM_MODEL_MIRROR", raising=False)
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    return cache


@pytest.fixture
def http_dir(tmp_path: Path, socket_enabled: None):
    """A real local HTTP server over a tmp folder; yields (folder, base URL)."""
    root = tmp_path / "served"
    root.mkdir()

    class Quiet(SimpleHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

    # Single-threaded server: no handler threads outlive the test (HA plugin checks).
    server = HTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(root)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield root, f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def _copy(name: str, folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    dest = folder / f"{name}.onnx"
    shutil.copyfile(SHARED_MODELS / dest.name, dest)
    return dest


# --- catalog ---------------------------------------------------------------------------


def test_catalog_lists_every_model_with_full_spec() -> None:
    cat = load_catalog()
    for name in (
        "yolox_nano",
        "movenet_singlepose_lightning",
        "movenet_singlepose_thunder",
        "movenet_multipose_lightning",
        "face_yunet_n_dynamic",
        "face_yunet_2023mar",
        "face_centerface_dynamic",
        "face_ultraface_rfb320",
        "coco_80_labels",
    ):
        spec = cat[name]
        assert len(spec.sha256) == 64 and spec.size_bytes > 0 and spec.license
        # Either a direct download, or a documented way to obtain the file.
        assert spec.url or (spec.how_to_obtain and spec.upstream), name
        if spec.file.endswith(".onnx"):
            assert spec.input is not None and spec.input.name and spec.input.shape
    assert cat["yolox_nano"].default and cat["yolox_nano"].task == "detector"
    assert cat["yolox_nano"].input.shape == (1, 3, 416, 416)
    assert cat["yolox_nano"].input.color == "BGR"


@needs_shared
@pytest.mark.parametrize("name", sorted(load_catalog()))
def test_catalog_hash_and_size_match_real_file(name: str) -> None:
    spec = load_catalog()[name]
    # Our own trained models are committed under models/; pretrained ones come from ../shared.
    path = models.BUNDLED_DIR / spec.bundled if spec.bundled else SHARED_MODELS / spec.file
    data = path.read_bytes()
    assert len(data) == spec.size_bytes
    assert hashlib.sha256(data).hexdigest() == spec.sha256


def test_repo_catalog_symlink_points_at_package_copy() -> None:
    link = REPO / "models" / "catalog.json"
    assert link.is_symlink() and not os.readlink(link).startswith("/")
    assert link.resolve() == models.CATALOG_PATH.resolve()


# --- resolution ------------------------------------------------------------------------


@needs_shared
def test_resolve_via_mirror_folder_and_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SAFECAM_MODEL_MIRROR", str(SHARED_MODELS))
    assert resolve_model("yolox_nano", download=False) == SHARED_MODELS / "yolox_nano.onnx"
    # model_dir comes before the mirror.
    mine = _copy("yolox_nano", tmp_path / "mine")
    assert resolve_model("yolox_nano", tmp_path / "mine", download=False) == mine


def test_missing_model_names_model_and_folders(tmp_path: Path) -> None:
    with pytest.raises(ModelMissingError) as err:
        resolve_model("yolox_nano", tmp_path / "empty", download=False)
    msg = str(err.value)
    assert "yolox_nano" in msg and "SAFECAM_MODEL_MIRROR" in msg
    assert str(tmp_path / "empty") in msg and load_catalog()["yolox_nano"].sha256 in msg


def test_missing_model_without_url_says_how_to_obtain(tmp_path: Path) -> None:
    with pytest.raises(ModelMissingError, match="tf2onnx"):
        resolve_model("movenet_singlepose_lightning", tmp_path)  # download=True, no url


def test_unknown_name_is_reported() -> None:
    with pytest.raises(ModelMissingError, match="not in the safecam catalog"):
        resolve_model("yolov99")


def test_garbage_copy_is_corrupt_and_named(tmp_path: Path) -> None:
    (tmp_path / "yolox_nano.onnx").write_bytes(b"not a model")
    with pytest.raises(ModelCorruptError) as err:
        resolve_model("yolox_nano", tmp_path, download=False)
    assert str(tmp_path / "yolox_nano.onnx") in str(err.value)
    assert "size 11 bytes" in str(err.value)


@needs_shared
def test_truncated_copy_is_corrupt(tmp_path: Path) -> None:
    data = (SHARED_MODELS / "yolox_nano.onnx").read_bytes()
    (tmp_path / "yolox_nano.onnx").write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelCorruptError, match="expected 3660092"):
        resolve_model("yolox_nano", tmp_path, download=False)


@needs_shared
def test_replaced_file_is_hashed_again(tmp_path: Path) -> None:
    path = _copy("yolox_nano", tmp_path)
    assert resolve_model("yolox_nano", tmp_path, download=False) == path
    # Same size, one byte flipped, new mtime: the cached "verified" must not be reused.
    data = bytearray(path.read_bytes())
    data[1000] ^= 0xFF
    path.write_bytes(bytes(data))
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))
    with pytest.raises(ModelCorruptError, match="sha256"):
        resolve_model("yolox_nano", tmp_path, download=False)


@needs_shared
def test_corrupt_copy_does_not_hide_good_later_copy(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    (tmp_path / "yolox_nano.onnx").write_bytes(b"x" * YOLOX_SIZE)
    monkeypatch.setenv("SAFECAM_MODEL_MIRROR", str(SHARED_MODELS))
    assert resolve_model("yolox_nano", tmp_path, download=False).parent == SHARED_MODELS
    assert "corrupt copy" in caplog.text and str(tmp_path) in caplog.text


# --- download --------------------------------------------------------------------------


@needs_shared
def test_download_from_mirror_url_verifies_into_cache(
    http_dir: tuple[Path, str], monkeypatch: pytest.MonkeyPatch, _isolated_env: Path
) -> None:
    root, url = http_dir
    _copy("yolox_nano", root)
    monkeypatch.setenv("SAFECAM_MODEL_MIRROR", url)
    seen: list[tuple[int, int]] = []
    path = resolve_model("yolox_nano", progress=lambda d, t: seen.append((d, t)))
    assert path == _isolated_env / "yolox_nano.onnx"
    assert hashlib.sha256(path.read_bytes()).hexdigest() == load_catalog()["yolox_nano"].sha256
    assert seen[-1] == (YOLOX_SIZE, YOLOX_SIZE)
    assert [p.name for p in _isolated_env.iterdir()] == ["yolox_nano.onnx"]
    # Now served from the cache without the server.
    monkeypatch.delenv("SAFECAM_MODEL_MIRROR")
    assert resolve_model("yolox_nano", download=False) == path


@pytest.mark.parametrize("size", [YOLOX_SIZE, 1000, YOLOX_SIZE + 5])
def test_download_wrong_bytes_leaves_nothing(
    size: int, http_dir: tuple[Path, str], monkeypatch: pytest.MonkeyPatch, _isolated_env: Path
) -> None:
    root, url = http_dir
    (root / "yolox_nano.onnx").write_bytes(b"\0" * size)
    monkeypatch.setenv("SAFECAM_MODEL_MIRROR", url)
    with pytest.raises(ModelCorruptError, match="nothing was saved"):
        resolve_model("yolox_nano")
    assert list(_isolated_env.iterdir()) == []


def test_download_404_is_missing(http_dir: tuple[Path, str], monkeypatch: pytest.MonkeyPatch, _isolated_env: Path) -> None:
    monkeypatch.setenv("SAFECAM_MODEL_MIRROR", http_dir[1])
    with pytest.raises(ModelMissingError, match="404"):
        resolve_model("yolox_nano")
    assert list(_isolated_env.iterdir()) == []


@needs_shared
def test_fetch_into_dir_builds_a_mirror(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SAFECAM_MODEL_MIRROR", str(SHARED_MODELS))
    out = tmp_path / "offline"
    assert models.main(["fetch", "yolox_nano", "coco_80_labels", "--dir", str(out)]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["coco_80_labels.txt", "yolox_nano.onnx"]
    monkeypatch.setenv("SAFECAM_MODEL_MIRROR", str(out))
    assert resolve_model("yolox_nano", download=False) == out / "yolox_nano.onnx"
    assert fetch_model("yolox_nano", out) == out / "yolox_nano.onnx"


# --- sessions --------------------------------------------------------------------------


@needs_shared
@pytest.mark.openvino
def test_openvino_session_runs_yolox(tmp_path: Path) -> None:
    sess = create_session(
        SHARED_MODELS / "yolox_nano.onnx",
        num_threads=1,
        cache_dir=tmp_path / "ov",
        performance_hint="latency",
    )
    assert sess.get_providers()[0] == "OpenVINOExecutionProvider"
    out = sess.run(None, {"images": np.zeros((1, 3, 416, 416), np.float32)})
    assert out[0].shape == (1, 3549, 85)


@needs_shared
def test_cpu_and_auto_sessions() -> None:
    path = SHARED_MODELS / "yolox_nano.onnx"
    assert create_session(path, provider="cpu").get_providers() == ["CPUExecutionProvider"]
    assert create_session(path, provider="auto").get_providers()[0] == expected_auto_provider()
    assert create_session(path).get_providers()[0] == expected_auto_provider()  # "auto" is the default


@needs_shared
@pytest.mark.openvino
def test_openvino_silent_cpu_fallback_is_refused() -> None:
    # An unknown OV device makes ORT keep only the CPU EP without raising.
    with pytest.raises(ModelProviderError, match="CPUExecutionProvider is running"):
        create_session(SHARED_MODELS / "yolox_nano.onnx", device="NO_SUCH_DEVICE")


@pytest.mark.parametrize("provider", ["auto", "cpu"])
def test_garbage_file_session_is_corrupt(tmp_path: Path, provider: str) -> None:
    bad = tmp_path / "yolox_nano.onnx"
    bad.write_bytes(os.urandom(5000))
    with pytest.raises(ModelCorruptError, match=r"yolox_nano\.onnx"):
        create_session(bad, provider=provider)


# --- the wrong model, a huge file (issue #11) -------------------------------------------------------


@needs_shared
def test_face_model_given_as_the_person_detector_is_named(tmp_path: Path) -> None:
    """A real face detector saved under the person detector's file name: the error says what it is."""
    shutil.copyfile(SHARED_MODELS / "face_yunet_2023mar.onnx", tmp_path / "yolox_nano.onnx")
    with pytest.raises(ModelCorruptError) as err:
        resolve_model("yolox_nano", tmp_path, download=False)
    message = str(err.value)
    assert "it is the catalog model 'face_yunet_2023mar' (face_audit), not a detector model like 'yolox_nano'" in message
    assert "fetch yolox_nano" in message  # and what to do


@needs_shared
@pytest.mark.parametrize("wrong", ["face_yunet_2023mar", "face_yunet_n_dynamic", "movenet_singlepose_lightning"])
def test_model_with_the_wrong_shapes_is_refused_before_use(wrong: str) -> None:
    """Loaded as the person detector, a model with another input or output shape fails at once, naming both."""
    with pytest.raises(models.ModelMismatchError) as err:
        create_session(SHARED_MODELS / f"{wrong}.onnx", provider="cpu", expect="yolox_nano")
    message = str(err.value)
    assert f"{wrong}.onnx" in message and "'yolox_nano' has input [1, 3, 416, 416]" in message
    assert "fetch yolox_nano" in message


@needs_shared
@pytest.mark.parametrize("name", ["yolox_nano", "face_yunet_2023mar", "movenet_multipose_lightning", "face_centerface_dynamic"])
def test_catalog_models_fit_their_own_specs(name: str) -> None:
    """The shape check accepts every real catalog file for its own entry (fixed and dynamic axes)."""
    assert create_session(SHARED_MODELS / f"{name}.onnx", provider="cpu") is not None  # checked by file name
    assert create_session(SHARED_MODELS / f"{name}.onnx", provider="cpu", expect=name) is not None


def test_huge_sparse_file_at_the_model_path_is_refused_without_reading_it(tmp_path: Path) -> None:
    """A 4 GiB (sparse) file named like the model: refused from its size alone; neither hashed nor loaded."""
    import resource
    import tracemalloc

    huge = tmp_path / "yolox_nano.onnx"
    with huge.open("wb") as fh:
        fh.truncate(4 * 2**30)
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    tracemalloc.start()
    try:
        with pytest.raises(ModelCorruptError) as err:
            resolve_model("yolox_nano", tmp_path, download=False)
        with pytest.raises(ModelCorruptError) as load_err:
            create_session(huge, provider="cpu")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert f"size {4 * 2**30} bytes, far larger than any model" in str(err.value)
    assert "not loaded" in str(load_err.value) and "yolox_nano.onnx" in str(load_err.value)
    assert peak < 16 * 2**20  # Python allocations: no chunk of the file was read
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss_before < 256 * 1024  # KiB: nothing mapped either


@needs_shared
def test_worker_with_a_bad_model_reports_it_and_keeps_retrying(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, socket_enabled: None
) -> None:
    """The worker's detector factory fails on a wrong model file: the state says "model" with the
    message, the worker retries with backoff (no crash, no stuck thread) and stops at once."""
    import time

    from custom_components.safecam.engine.detect import Detector
    from custom_components.safecam.engine.worker import CameraState, CameraWorker
    from tests.servers.processes import free_port

    # The download the resolver then tries fails as offline (refused), also where the internet is reachable.
    monkeypatch.setenv("SAFECAM_MODEL_MIRROR", f"http://127.0.0.1:{free_port()}/")
    shutil.copyfile(SHARED_MODELS / "face_yunet_2023mar.onnx", tmp_path / "yolox_nano.onnx")
    states: list[CameraState] = []
    clip = SHARED_MODELS.parent / "data" / "pedestrians" / "tud_campus.mp4"
    worker = CameraWorker(
        "bad-model",
        str(clip),
        lambda: Detector.from_catalog(model_dir=tmp_path, provider="cpu"),
        on_state=lambda s, _e: states.append(s),
        restart_backoff_max_s=0.5,
    )
    worker.start()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and sum(s.error_reason == "model" for s in states) < 2:
        time.sleep(0.05)
    worker.stop(timeout=5)
    failures = [s for s in states if s.error_reason == "model"]
    assert len(failures) >= 2  # retried
    assert "face_yunet_2023mar" in (failures[-1].error or "") and "yolox_nano" in (failures[-1].error or "")
    assert not any(t.name == "safecam-bad-model" and t.is_alive() for t in threading.enumerate())
    assert states[-1].running is False and states[-1].frames == 0
