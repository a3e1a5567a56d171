#!/usr/bin/python3
"""GStreamer RTSP test server (run with Debian's /usr/bin/python3: `gi` is not importable from the venv).

    /usr/bin/python3 tests/servers/rtsp_server.py <file.mp4> <port> [auth_port]

Mounts on rtsp://127.0.0.1:<port>:
  /file  the mp4's H.264 without re-encoding, not shared: every client starts at frame 0, the stream ends at EOF
  /live  endless 640x480 15 fps test pattern (openh264enc, gop-size=15 so clients open in ~3 s), shared
  /tcp   as /file, but RTP over the RTSP TCP connection only (clients asking for UDP get 461 and retry
         over TCP), so all of the video goes through a TCP proxy (tests/servers/throttle_proxy.py)
With auth_port, a second server on rtsp://127.0.0.1:<auth_port>/live needs basic auth user:secret
(a separate server because gst-rtsp-server's auth is per server, and anonymous access never challenges).

Prints one "ready" line on stdout once listening, then serves until SIGTERM/SIGINT.
"""

import signal
import sys

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
gi.require_version("GstRtsp", "1.0")
from gi.repository import GLib, Gst, GstRtsp, GstRtspServer  # noqa: E402

USER, PASSWORD = "user", "secret"

FILE = "( filesrc location={path} ! qtdemux ! h264parse config-interval=-1 ! rtph264pay name=pay0 pt=96 )"
LIVE = (
    "( videotestsrc is-live=true pattern=ball ! video/x-raw,width=640,height=480,framerate=15/1 ! videoconvert ! "
    "openh264enc gop-size=15 ! h264parse config-interval=-1 ! rtph264pay name=pay0 pt=96 )"
)


def _factory(launch: str, shared: bool) -> GstRtspServer.RTSPMediaFactory:
    factory = GstRtspServer.RTSPMediaFactory()
    factory.set_launch(launch)
    factory.set_shared(shared)
    return factory


def _server(port: str) -> GstRtspServer.RTSPServer:
    server = GstRtspServer.RTSPServer()
    server.set_address("127.0.0.1")
    server.set_service(port)
    return server


def _attach(server: GstRtspServer.RTSPServer, port: str) -> None:
    if server.attach(None) == 0:
        sys.exit(f"cannot listen on 127.0.0.1:{port}")


def main() -> None:
    if len(sys.argv) not in (3, 4):
        sys.exit("usage: rtsp_server.py <file.mp4> <port> [auth_port]")
    path, port = sys.argv[1], sys.argv[2]
    Gst.init(None)

    server = _server(port)
    mounts = server.get_mount_points()
    mounts.add_factory("/file", _factory(FILE.format(path=path), shared=False))
    mounts.add_factory("/live", _factory(LIVE, shared=True))
    tcp = _factory(FILE.format(path=path), shared=False)
    tcp.set_protocols(GstRtsp.RTSPLowerTrans.TCP)
    mounts.add_factory("/tcp", tcp)
    _attach(server, port)

    if len(sys.argv) == 4:
        auth_port = sys.argv[3]
        secure = _server(auth_port)
        # No default token: every client is challenged (401) and only user:secret gets the "user" role.
        auth = GstRtspServer.RTSPAuth()
        token = GstRtspServer.RTSPToken()
        token.set_string("media.factory.role", "user")
        auth.add_basic(GstRtspServer.RTSPAuth.make_basic(USER, PASSWORD), token)
        secure.set_auth(auth)
        live = _factory(LIVE, shared=True)
        perms = GstRtspServer.RTSPPermissions()
        perms.add_role_from_structure(
            Gst.Structure.from_string("user, media.factory.access=(boolean)true, media.factory.construct=(boolean)true")[0]
        )
        live.set_permissions(perms)
        secure.get_mount_points().add_factory("/live", live)
        _attach(secure, auth_port)

    loop = GLib.MainLoop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        GLib.unix_signal_add(GLib.PRIORITY_DEFAULT, sig, loop.quit)
    print(f"ready rtsp://127.0.0.1:{port}/file /live", flush=True)
    loop.run()


if __name__ == "__main__":
    main()
