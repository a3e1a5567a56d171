#!/usr/bin/python3
"""A looping RTSP "camera" for the demo: serves an mp4 clip forever at its own frame rate.

    /usr/bin/python3 scripts/ha/rtsp_loop.py <clip.mp4> <port> [fps]

Serves rtsp://127.0.0.1:<port>/demo (shared: every client sees the same live picture).
Run it with Debian's /usr/bin/python3: `gi` (GStreamer) is not importable from the venv.

How it loops: the clip's H.264 is first extracted once to an Annex-B file in a temp dir (qtdemux
cannot loop), which multifilesrc replays endlessly; it is decoded and re-encoded (openh264, one
keyframe per second, so clients open in ~3 s; the demo clip itself has a keyframe every 25 s) with
fresh timestamps from the fixed frame rate (pass the clip's own: run_ha.py does), so the stream
stays real time across the loop boundary. Passthrough of the looped bytes is not possible: multifilesrc
restamps each pass as one frame and the stream runs too fast.

Prints one "ready <url>" line on stdout once listening, then serves until SIGTERM/SIGINT.
"""

import os
import shutil
import signal
import sys
import tempfile

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtspServer  # noqa: E402

MOUNT = "/demo"


def extract_annexb(clip: str, out_path: str) -> None:
    """mp4 -> raw H.264 byte stream (no re-encoding); blocks until done."""
    pipeline = Gst.parse_launch(
        f'filesrc location="{clip}" ! qtdemux ! h264parse ! video/x-h264,stream-format=byte-stream,alignment=au '
        f'! filesink location="{out_path}"'
    )
    pipeline.set_state(Gst.State.PLAYING)
    msg = pipeline.get_bus().timed_pop_filtered(60 * Gst.SECOND, Gst.MessageType.EOS | Gst.MessageType.ERROR)
    pipeline.set_state(Gst.State.NULL)
    if msg is None or msg.type == Gst.MessageType.ERROR:
        detail = msg.parse_error()[0].message if msg is not None else "timeout"
        sys.exit(f"cannot read H.264 from {clip} (an H.264 mp4 is needed; else use run_ha.py --source file): {detail}")
    if os.path.getsize(out_path) == 0:
        sys.exit(f"no H.264 video in {clip}")


def main() -> None:
    if len(sys.argv) not in (3, 4):
        sys.exit("usage: rtsp_loop.py <clip.mp4> <port> [fps]")
    clip, port = os.path.abspath(sys.argv[1]), sys.argv[2]
    fps = int(sys.argv[3]) if len(sys.argv) == 4 else 10
    Gst.init(None)

    workdir = tempfile.mkdtemp(prefix="safecam-rtsp-")
    try:
        annexb = os.path.join(workdir, "clip.h264")
        extract_annexb(clip, annexb)

        server = GstRtspServer.RTSPServer()
        server.set_address("127.0.0.1")
        server.set_service(port)
        factory = GstRtspServer.RTSPMediaFactory()
        factory.set_launch(
            f'( multifilesrc location="{annexb}" loop=true caps="video/x-h264,stream-format=byte-stream" '
            f"! h264parse ! openh264dec ! videoconvert ! video/x-raw,framerate={fps}/1 "
            f"! openh264enc gop-size={fps} bitrate=2000000 ! h264parse config-interval=-1 ! rtph264pay name=pay0 pt=96 )"
        )
        factory.set_shared(True)
        server.get_mount_points().add_factory(MOUNT, factory)
        if server.attach(None) == 0:
            sys.exit(f"cannot listen on 127.0.0.1:{port}")

        loop = GLib.MainLoop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            GLib.unix_signal_add(GLib.PRIORITY_DEFAULT, sig, loop.quit)
        print(f"ready rtsp://127.0.0.1:{port}{MOUNT}", flush=True)
        loop.run()
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
