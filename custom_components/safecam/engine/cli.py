"""Command line: `run` a source through the pipeline, `anonymize` an image or video.

    python -m custom_components.safecam.engine run SOURCE [--config FILE.yaml] [--fps N]
        [--out-jsonl FILE] [--out-video FILE]
    python -m custom_components.safecam.engine anonymize INPUT OUTPUT
    python -m custom_components.safecam.engine serve --config FILE.yaml      (engine/serve.py)
    python -m custom_components.safecam.engine announce --config FILE.yaml   (the add-on: engine/supervisor.py)

Exit codes: 0 ok, 1 source or model problem, 2 bad arguments or configuration.
Every message is one line and never contains stream credentials.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import Counter
from pathlib import Path
from typing import IO, Any

import cv2
import numpy as np

from .anonymize import DEFAULT_MODE, MODES, AnonymizerConfig
from .config import ConfigError, SceneConfig, load_scene
from .detect import Detector, DetectorConfig
from .models import ModelError
from .motion import MotionConfig
from .pipeline import STAGES, CameraPipeline, FrameResult, PipelineConfig
from .render import AsyncRenderer
from .sources import BackgroundReader, SourceError, open_source, redact_url, throttle

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp"}


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="safecam-engine", description="safecam engine")
    sub = p.add_subparsers(dest="command", required=True)

    def common(sp: argparse.ArgumentParser) -> None:
        sp.add_argument("--model-dir", help="folder with the model files (else $SAFECAM_MODEL_MIRROR, the cache, or download)")
        sp.add_argument("--provider", default="auto", choices=["openvino", "cpu", "auto"], help="onnxruntime execution provider")
        sp.add_argument(
            "--tiles", type=int, default=0, choices=[0, 2], help="extra tiles for small people (0 = whole frame only)"
        )
        sp.add_argument("--mode", default=DEFAULT_MODE, choices=MODES, help=f"anonymization mode (default {DEFAULT_MODE})")

    run = sub.add_parser("run", help="analyse a video file, RTSP or HTTP stream; print JSON lines")
    run.add_argument("source", help="video file, rtsp://, http(s):// MJPEG or snapshot URL")
    run.add_argument("--config", help="YAML with zones and gates (normalized coordinates)")
    run.add_argument("--fps", type=float, default=None, help="analyse at most N frames per second of the source")
    run.add_argument("--out-jsonl", help="write JSON lines here instead of stdout")
    run.add_argument("--out-video", help="write the anonymized video here (mp4)")
    run.add_argument("--camera", default="camera", help="camera name used in events")
    run.add_argument("--max-frames", type=int, default=None, help="stop after N analysed frames (live streams)")
    common(run)

    serve = sub.add_parser("serve", help="run the cameras of a config file as a service publishing over MQTT (add-on mode)")
    serve.add_argument("--config", required=True, help="YAML: engine_id, mqtt, http, cameras (see engine/serve.py)")

    announce = sub.add_parser(
        "announce", help="add-on: tell Home Assistant about this engine and its pairing key through the Supervisor"
    )
    announce.add_argument("--config", required=True, help="the config file `serve` runs (see engine/supervisor.py)")

    anon = sub.add_parser("anonymize", help="anonymize an image or a video (the same anonymizer as every other output)")
    anon.add_argument("input")
    anon.add_argument("output")
    common(anon)

    ppe = sub.add_parser("ppe", help="hard hat and vest per detected person in still images; one JSON line per image")
    ppe.add_argument("images", nargs="+", metavar="IMAGE")
    ppe.add_argument("--model-dir", help="folder with the model files (else $SAFECAM_MODEL_MIRROR, the cache, or download)")
    ppe.add_argument("--provider", default="auto", choices=["openvino", "cpu", "auto"], help="onnxruntime execution provider")
    return p


def _detector(args: argparse.Namespace) -> Detector:
    return Detector.from_catalog(model_dir=args.model_dir, provider=args.provider, config=DetectorConfig(tiles=args.tiles))


class _VideoOut:
    """mp4 writer opened lazily at the first anonymized frame (size known only then)."""

    def __init__(self, path: str, fps: float) -> None:
        self.path, self.fps = path, fps
        self.writer: cv2.VideoWriter | None = None

    def write(self, image: np.ndarray) -> None:
        if self.writer is None:
            h, w = image.shape[:2]
            # OpenCV wheels cannot encode H.264; MPEG-4 part 2 plays everywhere.
            self.writer = cv2.VideoWriter(self.path, cv2.VideoWriter.fourcc(*"mp4v"), self.fps, (w, h))
            if not self.writer.isOpened():
                raise OSError(f"cannot write video {self.path}")
        self.writer.write(image)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.release()


def run(args: argparse.Namespace, out: IO[str]) -> int:
    scene = load_scene(args.config) if args.config else SceneConfig()
    if args.fps is not None and args.fps <= 0:
        raise ConfigError("--fps must be positive")
    source = open_source(args.source)
    config = PipelineConfig(camera=args.camera, anonymizer=AnonymizerConfig(mode=args.mode))
    pipeline = CameraPipeline(_detector(args), scene, config)
    # Decode (and prepare) ahead in a thread: that work overlaps inference.
    frames = BackgroundReader(throttle(source, args.fps) if args.fps else source, prepare=pipeline.prepare)
    video_fps = args.fps or source.fps or 10.0
    video = _VideoOut(args.out_video, video_fps) if args.out_video else None
    renderer = AsyncRenderer(pipeline, lambda image, _result: video.write(image)) if video is not None else None
    stage_ms: dict[str, float] = dict.fromkeys(("decode", *STAGES), 0.0)
    events: Counter[str] = Counter()
    analysed = detected = 0
    started = time.perf_counter()
    last: FrameResult | None = None
    try:
        while args.max_frames is None or analysed < args.max_frames:
            tick = time.perf_counter()
            frame = frames.read()
            if frame is None:
                break
            stage_ms["decode"] += (time.perf_counter() - tick) * 1000
            last = pipeline.process(frame.image, frame.t, frame.index, render=False, prepared=frame.prepared)
            analysed += 1
            detected += last.detected
            for k, v in last.timings_ms.items():
                stage_ms[k] += v
            out.write(json.dumps(last.frame_record()) + "\n")
            for ev in last.events:
                events[ev.event_type] += 1
                out.write(json.dumps(ev.as_dict()) + "\n")
            if renderer is not None:
                renderer.submit(frame.image, last)  # anonymized and written in the render thread
    finally:
        frames.close()
        if renderer is not None:
            renderer.close()
        if video is not None:
            video.close()
    elapsed = time.perf_counter() - started
    summary: dict[str, Any] = {
        "type": "summary",
        "frames": analysed,
        "detected_frames": detected,
        "duration_s": round(last.t, 3) if last else 0.0,
        "wall_s": round(elapsed, 3),
        "mean_fps": round(analysed / elapsed, 2) if elapsed > 0 else 0.0,
        "stage_ms_mean": {k: round(v / max(analysed, 1), 2) for k, v in stage_ms.items()},
        "gates": pipeline.gates.snapshot(),
        # Zone occupancy and dwell at the end (the `occupancy:` section), as in the last frame line.
        **({"occupancy": last.analytics["occupancy"]} if last is not None and "occupancy" in last.analytics else {}),
        "events": dict(events),
        "dropped_frames": getattr(frames, "dropped", 0),
    }
    out.write(json.dumps(summary) + "\n")
    return 0


def anonymize(args: argparse.Namespace) -> int:
    """Same anonymizer as every other output; motion gate off so every frame is detected."""
    config = PipelineConfig(motion=MotionConfig(enabled=False), anonymizer=AnonymizerConfig(mode=args.mode))
    pipeline = CameraPipeline(_detector(args), config=config)
    if Path(args.input).suffix.lower() in IMAGE_SUFFIXES:
        image = cv2.imread(args.input, cv2.IMREAD_COLOR)
        if image is None:
            raise SourceError("not_video", f"cannot read image {args.input}")
        result = pipeline.process(image, 0.0, 0)
        if result.anonymized is None or not cv2.imwrite(args.output, result.anonymized):
            raise OSError(f"cannot write {args.output}")
        return 0
    source = BackgroundReader(open_source(args.input), prepare=pipeline.prepare)
    video = _VideoOut(args.output, source.fps or 10.0)
    try:
        while (frame := source.read()) is not None:
            result = pipeline.process(frame.image, frame.t, frame.index, prepared=frame.prepared)
            assert result.anonymized is not None
            video.write(result.anonymized)
    finally:
        source.close()
        video.close()
    return 0


def ppe_images(args: argparse.Namespace, out: IO[str]) -> int:
    """`ppe IMAGE...`: {"image", "persons": [{"box" (normalized), "helmet", "vest", "score"}]} per image."""
    from .ppe import PPEClassifier, detect_ppe

    detector = Detector.from_catalog("yolox_nano", model_dir=args.model_dir, provider=args.provider)
    classifier = PPEClassifier.from_catalog(model_dir=args.model_dir, provider=args.provider)
    for path in args.images:
        image = cv2.imread(path, cv2.IMREAD_COLOR)
        if image is None:
            raise OSError(f"cannot read image {path}")
        out.write(json.dumps({"image": path, "persons": detect_ppe(image, detector, classifier)}) + "\n")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.command == "serve":
            from .serve import main as serve_main  # imports aiomqtt only for the service

            return serve_main(args.config)
        if args.command == "announce":
            from .supervisor import main as announce_main

            return announce_main(args.config)
        if args.command == "run":
            if args.out_jsonl:
                with open(args.out_jsonl, "w", encoding="utf-8") as fh:
                    return run(args, fh)
            return run(args, sys.stdout)
        if args.command == "ppe":
            return ppe_images(args, sys.stdout)
        return anonymize(args)
    except ConfigError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except (SourceError, ModelError, OSError) as err:
        print(f"error: {redact_url(str(err))}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
