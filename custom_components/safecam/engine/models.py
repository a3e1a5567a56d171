"""Model catalog, resolve/download/verify (sha256) and the onnxruntime session factory.

No Home Assistant imports (design invariant 5); onnxruntime is imported lazily so that
the catalog and resolution work (and are testable) without loading it.

Resolution order for a catalog name (first verified copy wins):
  a. ``model_dir`` argument
  b. ``$SAFECAM_MODEL_MIRROR`` when it is a folder
  c. the user cache: ``$SAFECAM_CACHE_DIR`` or ``$XDG_CACHE_HOME/safecam/models`` or
     ``~/.cache/safecam/models``
  c2. the repository's own models/ folder, for models we train and commit (catalog ``bundled``:
     a path relative to ``<repo>/models``; absent when only custom_components/ is installed)
  d. download into the cache, from ``$SAFECAM_MODEL_MIRROR/<file>`` when the mirror is an
     http(s) URL (it then *replaces* the upstream URL: sites set it to stay off the
     internet), else from the catalog ``url``.

A copy with the wrong size or sha256 is skipped with a warning if a later location has a
good one, and reported as ``ModelCorruptError`` (naming every bad path) if none does: a
user's broken file must surface, but must not block a good copy that is also present.
"""

from __future__ import annotations

import argparse
import hashlib
import http.client
import json
import logging
import os
import sys
import tempfile
import urllib.request
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Callable

    import onnxruntime

_LOGGER = logging.getLogger(__name__)

CATALOG_PATH = Path(__file__).with_name("model_catalog.json")
# The models we train and ship: safecam/models inside the engine's wheel (pyproject.toml force-includes them), else
# <repo>/models in a checkout (engine -> safecam -> custom_components -> repo).
_HERE = Path(__file__).resolve()
BUNDLED_DIR = next((d for d in (_HERE.parents[1] / "models",) if d.is_dir()), _HERE.parents[3] / "models")
MIRROR_ENV = "SAFECAM_MODEL_MIRROR"
CACHE_ENV = "SAFECAM_CACHE_DIR"
PROVIDERS = {"openvino": "OpenVINOExecutionProvider", "cpu": "CPUExecutionProvider"}
PERFORMANCE_HINTS = ("LATENCY", "THROUGHPUT", "CUMULATIVE_THROUGHPUT")
_CHUNK = 1 << 20
# No catalog model comes near this; a bigger file at a model path is not loaded (onnxruntime would map
# all of it) nor hashed. Size is checked before any byte is read, so a sparse multi-GB file costs nothing.
MAX_MODEL_BYTES = 512 * 1024 * 1024
_FETCH_CMD = f"python -m {__package__}.models fetch"  # the import name: safecam.engine from the wheel


class ModelError(Exception):
    """A model cannot be used; the message names it and says what to do."""


class ModelMissingError(ModelError):
    """No copy found anywhere and none could be downloaded."""


class ModelCorruptError(ModelError):
    """Wrong size or sha256, or onnxruntime cannot load the file."""


class ModelMismatchError(ModelCorruptError):
    """A valid ONNX file, but not a model for this task (e.g. a face detector given as the person detector)."""


class ModelProviderError(ModelError):
    """The requested execution provider is unavailable or is not the one running."""


@dataclass(frozen=True, slots=True)
class InputSpec:
    name: str
    shape: tuple[int | str, ...]  # str = dynamic axis
    dtype: str
    layout: str
    color: str
    normalization: str
    note: str | None = None


@dataclass(frozen=True, slots=True)
class ModelSpec:
    name: str
    file: str
    task: str
    default: bool
    url: str | None
    upstream: str
    how_to_obtain: str | None
    sha256: str
    size_bytes: int
    license: str
    input: InputSpec | None
    output: str
    source: str
    bundled: str | None = None  # path under BUNDLED_DIR when the repository ships the file

    def describe(self) -> str:
        return f"{self.file} (sha256 {self.sha256}, {self.size_bytes} bytes)"


@cache
def _catalog() -> tuple[ModelSpec, ...]:
    raw = json.loads(CATALOG_PATH.read_text(encoding="utf-8"))
    specs = []
    for m in raw["models"]:
        inp = m.get("input")
        specs.append(ModelSpec(**{**m, "input": InputSpec(**{**inp, "shape": tuple(inp["shape"])}) if inp else None}))
    return tuple(specs)


def load_catalog() -> dict[str, ModelSpec]:
    """All catalog entries by name (a fresh dict; the specs are immutable)."""
    return {s.name: s for s in _catalog()}


def get_spec(name: str) -> ModelSpec:
    specs = load_catalog()
    if name not in specs:
        raise ModelMissingError(
            f"model '{name}' is not in the safecam catalog ({CATALOG_PATH}); known models: {', '.join(sorted(specs))}"
        )
    return specs[name]


def user_cache_dir() -> Path:
    """The per-user download cache (not created here)."""
    if env := os.environ.get(CACHE_ENV):
        return Path(env).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base).expanduser() / "safecam" / "models"


def _mirror() -> tuple[Path | None, str | None]:
    """($SAFECAM_MODEL_MIRROR as folder, as base URL); at most one is set."""
    value = os.environ.get(MIRROR_ENV, "").strip()
    if not value:
        return None, None
    if value.startswith(("http://", "https://")):
        return None, value.rstrip("/") + "/"
    return Path(value).expanduser(), None


def search_dirs(model_dir: str | Path | None = None) -> list[Path]:
    """Folders looked in, in order, without duplicates."""
    dirs = [Path(model_dir).expanduser()] if model_dir else []
    if (folder := _mirror()[0]) is not None:
        dirs.append(folder)
    dirs.append(user_cache_dir())
    unique: dict[Path, Path] = {}
    for d in dirs:
        unique.setdefault(d.resolve(), d)
    return list(unique.values())


# (path, size, mtime_ns) -> None if verified, else why not. Hashing a 25 MB file costs
# ~50 ms; every camera worker resolves its models, so repeated resolves must be cheap.
# Keyed on mtime so a replaced file is hashed again. Plain dict: a race only re-hashes.
_verified: dict[tuple[str, int, int], str | None] = {}


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(_CHUNK):  # in chunks: memory stays at one chunk whatever the file
            h.update(chunk)
    return h.hexdigest()


def _identify(spec: ModelSpec, path: Path, size: int, digest: str | None) -> str:
    """' : it is <other catalog model> (<task>), not a <task> model' when the file is another catalog model."""
    for other in _catalog():
        if other.name == spec.name or other.size_bytes != size:
            continue
        if (digest or _sha256(path)) == other.sha256:
            return f"; it is the catalog model '{other.name}' ({other.task}), not a {spec.task} model like '{spec.name}'"
    return ""


def _verify(spec: ModelSpec, path: Path) -> str | None:
    """None if path holds exactly the catalog bytes, else the reason it does not."""
    st = path.stat()
    key = (str(path.resolve()), st.st_size, st.st_mtime_ns)
    if key in _verified:
        return _verified[key]
    reason = None
    if st.st_size != spec.size_bytes:
        # Size first: a truncated, partial or huge file is caught without reading it.
        what = "far larger than any model" if st.st_size > MAX_MODEL_BYTES else f"expected {spec.size_bytes}"
        reason = f"size {st.st_size} bytes, {what}" + _identify(spec, path, st.st_size, None)
    else:
        digest = _sha256(path)
        if digest != spec.sha256:
            reason = f"sha256 {digest}, expected {spec.sha256}" + _identify(spec, path, st.st_size, digest)
    _verified[key] = reason
    return reason


def _download(
    spec: ModelSpec,
    url: str,
    dest_dir: Path,
    progress: Callable[[int, int], None] | None,
) -> Path:
    """Stream url into dest_dir/<file>; the name appears only after the hash matched."""
    dest_dir.mkdir(parents=True, exist_ok=True)
    # Temp file in the same folder so the final os.replace is an atomic rename.
    fd, tmp_name = tempfile.mkstemp(prefix=f".{spec.file}.", suffix=".part", dir=dest_dir)
    tmp = Path(tmp_name)
    try:
        h, done = hashlib.sha256(), 0
        req = urllib.request.Request(url, headers={"User-Agent": "safecam-model-fetch"})
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(req, timeout=60) as resp:
            while chunk := resp.read(_CHUNK):
                done += len(chunk)
                if done > spec.size_bytes:
                    # Do not let a wrong URL fill the disk.
                    raise ModelCorruptError(
                        f"{spec.name}: {url} sends more than the expected "
                        f"{spec.size_bytes} bytes; nothing was saved. Check {MIRROR_ENV} "
                        f"or the catalog URL, or place {spec.describe()} in {dest_dir}"
                    )
                h.update(chunk)
                out.write(chunk)
                if progress:
                    progress(done, spec.size_bytes)
            out.flush()
            os.fsync(out.fileno())
        if done != spec.size_bytes or h.hexdigest() != spec.sha256:
            raise ModelCorruptError(
                f"{spec.name}: download from {url} gave {done} bytes with sha256 "
                f"{h.hexdigest()}, expected {spec.describe()}; nothing was saved. Check "
                f"{MIRROR_ENV} or the catalog URL, or place the right file in {dest_dir}"
            )
        target = dest_dir / spec.file
        tmp.chmod(0o644)  # mkstemp makes 0600; a fetched mirror folder must be readable by others
        os.replace(tmp, target)
        # Seed the verification cache: we just hashed exactly these bytes.
        st = target.stat()
        _verified[(str(target.resolve()), st.st_size, st.st_mtime_ns)] = None
        return target
    finally:
        tmp.unlink(missing_ok=True)


def _download_url(spec: ModelSpec) -> str | None:
    base = _mirror()[1]
    return base + spec.file if base else spec.url


def _missing_message(spec: ModelSpec, dirs: list[Path], extra: str = "") -> str:
    how = f" How to obtain it: {spec.how_to_obtain}" if spec.how_to_obtain else ""
    return (
        f"model '{spec.name}' not found: no {spec.describe()} in "
        f"{', '.join(map(str, dirs))}.{extra} Set {MIRROR_ENV} to a folder or URL that "
        f"holds it, place it in one of those folders, or run `{_FETCH_CMD} {spec.name}`."
        f"{how}"
    )


def resolve_model(
    name: str,
    model_dir: str | Path | None = None,
    *,
    download: bool = True,
    progress: Callable[[int, int], None] | None = None,
) -> Path:
    """Path to a verified copy of catalog model `name` (see the module doc for the order)."""
    spec = get_spec(name)
    dirs = search_dirs(model_dir)
    bad: list[str] = []
    paths = [d / spec.file for d in dirs] + ([BUNDLED_DIR / spec.bundled] if spec.bundled else [])
    for path in paths:
        if not path.is_file():
            continue
        if (reason := _verify(spec, path)) is None:
            for b in bad:
                _LOGGER.warning("%s: ignoring corrupt copy %s; using %s", name, b, path)
            return path
        bad.append(f"{path} ({reason})")
    url = _download_url(spec) if download else None
    failure = ""
    if url:
        try:
            path = _download(spec, url, user_cache_dir(), progress)
            for b in bad:
                _LOGGER.warning("%s: ignoring corrupt copy %s; downloaded %s", name, b, path)
            return path
        except ModelCorruptError as err:
            bad.append(str(err))
        except (OSError, http.client.HTTPException) as err:  # network, HTTP status, disk
            failure = f" Download from {url} failed: {err}."
    if bad:
        raise ModelCorruptError(
            f"model '{name}': no good copy of {spec.describe()}; corrupt: "
            f"{'; '.join(bad)}.{failure} Replace or delete the bad file(s), set "
            f"{MIRROR_ENV}, or run `{_FETCH_CMD} {name}`."
        )
    raise ModelMissingError(_missing_message(spec, dirs, failure))


def fetch_model(
    name: str,
    dest_dir: str | Path | None = None,
    *,
    progress: Callable[[int, int], None] | None = None,
) -> Path:
    """Make sure dest_dir (default: the cache) holds a verified copy; return its path.

    Copies from a verified local copy (model_dir/mirror/cache) when there is one, else
    downloads. `fetch --all --dir X` thus builds a folder usable as SAFECAM_MODEL_MIRROR.
    """
    spec = get_spec(name)
    dest = Path(dest_dir).expanduser() if dest_dir else user_cache_dir()
    target = dest / spec.file
    if target.is_file() and _verify(spec, target) is None:
        return target
    try:
        src = resolve_model(name, download=False)
        url: str | None = src.resolve().as_uri()  # same streaming verify, via file://
    except ModelError:
        url = _download_url(spec)
    if url is None:
        raise ModelMissingError(_missing_message(spec, search_dirs()))
    try:
        return _download(spec, url, dest, progress)
    except (OSError, http.client.HTTPException) as err:
        raise ModelMissingError(_missing_message(spec, search_dirs(), f" Download from {url} failed: {err}.")) from err


def _is_load_error(err: Exception) -> bool:
    # onnxruntime raises InvalidProtobuf for garbage/truncated files and a generic Fail
    # with "Load model from ... failed" for empty ones; anything else is the EP's doing.
    return type(err).__name__ in {"InvalidProtobuf", "InvalidGraph", "NoSuchFile"} or ("Load model from" in str(err))


def resolved_provider(provider: str) -> str:
    """ "auto" as create_session resolves it: "openvino" where this onnxruntime build has it (x86-64), else "cpu"."""
    if provider != "auto":
        return provider
    import onnxruntime as ort

    return "openvino" if PROVIDERS["openvino"] in ort.get_available_providers() else "cpu"


def create_session(
    path: str | Path,
    *,
    provider: str = "auto",
    num_threads: int | None = None,
    cache_dir: str | Path | None = None,
    performance_hint: str | None = None,
    device: str = "CPU",
    expect: str | None = None,
) -> onnxruntime.InferenceSession:
    """An InferenceSession on exactly the requested provider.

    provider: "auto" (default, as pose and PPE: openvino where this onnxruntime build has it, i.e.
    onnxruntime-openvino on x86-64 glibc, Intel boxes gain most; else cpu, e.g. aarch64 or Python 3.14),
    "openvino" (exactly that, refused where missing), or "cpu". OpenVINO options:
    device ("CPU", "GPU", ...), num_threads -> num_of_threads, cache_dir (compiled-blob
    cache, cuts start-up), performance_hint (LATENCY/THROUGHPUT/CUMULATIVE_THROUGHPUT;
    onnxruntime-openvino 1.24 has no direct option, it goes through load_config).
    expect: the catalog model the file must fit (input and output shapes); by default the catalog model
    whose file name it has. A file that does not fit raises ModelMismatchError before it is used.
    """
    import onnxruntime as ort

    path = Path(path)
    label = f"model {path.name}"
    if not path.is_file():
        raise ModelMissingError(f"{label}: {path} does not exist; resolve it with resolve_model()")
    if (size := path.stat().st_size) > MAX_MODEL_BYTES:
        raise ModelCorruptError(
            f"{label}: {path} is {size} bytes, far larger than any safecam model (at most {MAX_MODEL_BYTES}); "
            f"not loaded. Replace it with the catalog file (`{_FETCH_CMD}`)."
        )
    by_name: dict[str, ModelSpec] = {s.file: s for s in _catalog()}
    spec = get_spec(expect) if expect else by_name.get(path.name)
    available = ort.get_available_providers()
    provider = resolved_provider(provider)
    if provider not in PROVIDERS:
        raise ValueError(f"provider must be 'openvino', 'cpu' or 'auto', not {provider!r}")
    ep = PROVIDERS[provider]
    if ep not in available:
        raise ModelProviderError(
            f"{label}: onnxruntime {ort.__version__} has no {ep} (available: "
            f"{', '.join(available)}). Install onnxruntime-openvino (x86-64 glibc only) "
            "instead of onnxruntime, or use provider 'cpu' or 'auto'."
        )
    so = ort.SessionOptions()
    so.log_severity_level = 3  # ORT warns per unused initializer; would flood HA's log
    options: dict[str, str] = {}
    if provider == "openvino":
        options["device_type"] = device
        if num_threads:
            options["num_of_threads"] = str(num_threads)
        if cache_dir:
            Path(cache_dir).mkdir(parents=True, exist_ok=True)
            options["cache_dir"] = str(cache_dir)
        if performance_hint:
            hint = performance_hint.upper()
            if hint not in PERFORMANCE_HINTS:
                raise ValueError(f"performance_hint must be one of {PERFORMANCE_HINTS}")
            options["load_config"] = json.dumps({device: {"PERFORMANCE_HINT": hint}})
    elif num_threads:
        so.intra_op_num_threads = num_threads
    try:
        # enable_fallback=0: ORT's Python layer would otherwise retry on the CPU EP and
        # print instead of raising, hiding the real reason.
        session = ort.InferenceSession(str(path), so, providers=[ep], provider_options=[options], enable_fallback=0)
    except Exception as err:
        if _is_load_error(err):
            raise ModelCorruptError(
                f"{label}: onnxruntime cannot load {path}: {err}. Delete it and run "
                f"`{_FETCH_CMD}` for it, or replace it with the catalog file."
            ) from err
        raise ModelProviderError(
            f"{label}: creating a {ep} session with {options} failed: {err}. Check the "
            "provider options, or use provider 'cpu'."
        ) from err
    # The OV EP factory logs bad options/devices and silently leaves only the CPU EP.
    if (running := session.get_providers()[0]) != ep:
        raise ModelProviderError(
            f"{label}: asked for {ep} with {options} but {running} is running (see the "
            "onnxruntime log for why: unknown device or option). Fix the options, or "
            "use provider 'cpu'."
        )
    if spec is not None:
        _check_fits(session, spec, path)
    return session


def _dims(text: str) -> tuple[int, ...] | None:
    """The first all-integer "[a,b,c]" of a catalog output description, e.g. yolox's "[1,3549,85]"."""
    for part in text.split("[")[1:]:
        inner = part.split("]", 1)[0]
        try:
            return tuple(int(x) for x in inner.split(","))
        except ValueError:
            continue
    return None


def _fits(actual: list[int | str | None], expected: tuple[int | str, ...]) -> bool:
    """Same rank, and every dimension fixed on both sides is equal (a dynamic one fits anything)."""
    return len(actual) == len(expected) and all(
        not isinstance(a, int) or not isinstance(e, int) or a == e for a, e in zip(actual, expected, strict=True)
    )


def _check_fits(session: onnxruntime.InferenceSession, spec: ModelSpec, path: Path) -> None:
    """Raise ModelMismatchError when the loaded graph is not shaped like catalog model `spec`."""
    got_in = list(session.get_inputs()[0].shape)
    got_out = list(session.get_outputs()[0].shape)
    want_out = _dims(spec.output)
    bad_in = spec.input is not None and not _fits(got_in, spec.input.shape)
    bad_out = want_out is not None and not _fits(got_out, want_out)
    if bad_in or bad_out:
        want_in = list(spec.input.shape) if spec.input is not None else "?"
        raise ModelMismatchError(
            f"model file {path} is not a {spec.task} model like '{spec.name}': its input is {got_in} and its first output "
            f"{got_out}, '{spec.name}' has input {want_in} and output {list(want_out) if want_out else spec.output}. "
            f"Use the catalog file {spec.describe()} (`{_FETCH_CMD} {spec.name}`)."
        )


# --- CLI -------------------------------------------------------------------------------


def _progress_bar(name: str) -> Callable[[int, int], None]:
    def show(done: int, total: int) -> None:
        frac = done / total if total else 1.0
        bar = "#" * int(frac * 30)
        sys.stderr.write(f"\r{name:<30} [{bar:<30}] {frac:6.1%} {done / 1e6:7.1f}/{total / 1e6:.1f} MB")
        if done >= total:
            sys.stderr.write("\n")
        sys.stderr.flush()

    return show


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m custom_components.safecam.engine.models",
        description="List and fetch the models in the safecam catalog.",
    )
    sub = parser.add_subparsers(dest="cmd", required=True)
    sub.add_parser("list", help="catalog entries and where each resolves now")
    fetch = sub.add_parser("fetch", help="download/copy and verify models")
    fetch.add_argument("names", nargs="*", metavar="NAME")
    fetch.add_argument("--all", action="store_true", help="every catalog model")
    fetch.add_argument("--dir", help=f"destination folder (default: {user_cache_dir()})")
    args = parser.parse_args(argv)
    specs = load_catalog()

    if args.cmd == "list":
        for spec in specs.values():
            try:
                where = str(resolve_model(spec.name, download=False))
            except ModelError as err:
                where = type(err).__name__.removeprefix("Model").removesuffix("Error").lower()
            flag = "*" if spec.default else " "
            print(f"{flag} {spec.name:<30} {spec.task:<11} {spec.size_bytes / 1e6:6.2f} MB  {spec.license:<11.11}  {where}")
        return 0

    names = list(specs) if args.all else args.names
    if not names:
        parser.error("name one or more models, or pass --all")
    failed = 0
    for name in names:
        try:
            path = fetch_model(name, args.dir, progress=_progress_bar(name))
            print(f"ok  {name}: {path}")
        except ModelError as err:
            failed += 1
            print(f"\nERR {name}: {err}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
