"""Pictures the Home Assistant side makes itself, with Pillow (a Home Assistant core dependency), never OpenCV.

An obscured placeholder (nothing of the camera: no anonymized frame yet, engine away) and a JPEG re-encoded as PNG
(the heatmap picture of a camera whose heat grid is not here). Blocking: call from the executor. Pillow is imported
on first use, so loading the integration loads none of it.
"""

from __future__ import annotations

import io

PLACEHOLDER_SIZE = (640, 360)
_BACKGROUND = (32, 32, 32)
_TEXT = (200, 200, 200)


def placeholder_jpeg(text: str) -> bytes:
    """A dark frame with a short message; it shows nothing of any camera."""
    from PIL import Image, ImageDraw

    image = Image.new("RGB", PLACEHOLDER_SIZE, _BACKGROUND)
    ImageDraw.Draw(image).text((12, PLACEHOLDER_SIZE[1] // 2), text, fill=_TEXT)
    out = io.BytesIO()
    image.save(out, format="JPEG", quality=80)
    return out.getvalue()


def png_of(jpeg: bytes) -> bytes:
    """The same picture as PNG."""
    from PIL import Image

    with Image.open(io.BytesIO(jpeg)) as image:
        out = io.BytesIO()
        image.convert("RGB").save(out, format="PNG")
    return out.getvalue()
