"""safecam engine: camera stream -> tracked people, zones, gates, anonymized frames.

Imports and runs without Home Assistant (design invariant 5).
"""

__version__ = "0.2.0"  # the engine, its Python package and the add-on (addon/config.yaml) share it
