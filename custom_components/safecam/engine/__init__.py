"""safecam engine: camera stream -> tracked people, zones, gates, anonymized frames.

Imports and runs without Home Assistant (design invariant 5).
"""
