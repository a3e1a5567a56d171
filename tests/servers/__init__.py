"""Real servers for tests: a GStreamer RTSP server run as a subprocess, and process helpers."""
