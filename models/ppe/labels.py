"""Ground truth for PPE: which helmet / vest label belongs to which labelled person.

The dataset (Roboflow-100 construction-safety, YOLO format) labels people and PPE items as
separate boxes: 0 helmet, 1 no-helmet, 2 no-vest, 3 person, 4 vest. A person's helmet state comes
from a helmet / no-helmet box whose centre lies in the upper part of the person box, the vest state
from a vest / no-vest box centred on the torso. Each item box goes to at most one person (the one
whose expected head / torso point is nearest), each person keeps at most one box per item (the
nearest). A person with no such box is unlabelled for that item (None).

Used by the training data prep (models/ppe/prepare.py), the benchmark (bench/ppe.py) and the tests,
so all three agree on what "labelled" means.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

HELMET, NO_HELMET, NO_VEST, PERSON, VEST = 0, 1, 2, 3, 4
CLASSES = ("helmet", "no-helmet", "no-vest", "person", "vest")


@dataclass(frozen=True, slots=True)
class _Region:
    """Where an item's centre may lie, as fractions of the person box (x from its left, y from its
    top), and the height it is expected at (for picking the nearest person)."""

    x: tuple[float, float]
    y: tuple[float, float]
    at: float


_HEAD = _Region(x=(-0.1, 1.1), y=(-0.15, 0.4), at=0.1)
_TORSO = _Region(x=(0.0, 1.0), y=(0.15, 0.9), at=0.45)


@dataclass(frozen=True, slots=True)
class LabelledPerson:
    box: tuple[float, float, float, float]  # normalized x1, y1, x2, y2
    helmet: bool | None
    vest: bool | None


def read_yolo(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """(classes (N,), normalized xyxy boxes (N, 4)) of one YOLO label file."""
    rows = [line.split() for line in Path(path).read_text(encoding="utf-8").splitlines() if line.strip()]
    if not rows:
        return np.zeros(0, np.int64), np.zeros((0, 4), np.float64)
    arr = np.asarray(rows, np.float64)
    cls, (cx, cy, w, h) = arr[:, 0].astype(np.int64), arr[:, 1:5].T
    return cls, np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], axis=1)


def _assign(persons: np.ndarray, items: np.ndarray, region: _Region) -> dict[int, int]:
    """person index -> item index, nearest first, each used once."""
    if not len(persons) or not len(items):
        return {}
    pw = persons[:, 2] - persons[:, 0]
    ph = persons[:, 3] - persons[:, 1]
    icx = (items[:, 0] + items[:, 2]) / 2
    icy = (items[:, 1] + items[:, 3]) / 2
    rx = (icx[None, :] - persons[:, 0:1]) / pw[:, None]  # (P, I) item centre relative to each person
    ry = (icy[None, :] - persons[:, 1:2]) / ph[:, None]
    (x0, x1), (y0, y1), at = region.x, region.y, region.at
    ok = (rx >= x0) & (rx <= x1) & (ry >= y0) & (ry <= y1)
    cost = np.where(ok, np.abs(rx - 0.5) + np.abs(ry - at), np.inf)
    pairs: dict[int, int] = {}
    used: set[int] = set()
    for flat in np.argsort(cost, axis=None):
        p, i = np.unravel_index(flat, cost.shape)
        if not np.isfinite(cost[p, i]):
            break
        if int(p) in pairs or int(i) in used:
            continue
        pairs[int(p)] = int(i)
        used.add(int(i))
    return pairs


def associate(classes: np.ndarray, boxes: np.ndarray) -> list[LabelledPerson]:
    """Every person box of one image with its helmet and vest state (None = unlabelled)."""
    persons = boxes[classes == PERSON]
    states: dict[str, list[bool | None]] = {}
    for item, (pos, neg), region in (("helmet", (HELMET, NO_HELMET), _HEAD), ("vest", (VEST, NO_VEST), _TORSO)):
        mask = (classes == pos) | (classes == neg)
        item_cls, item_boxes = classes[mask], boxes[mask]
        pairs = _assign(persons, item_boxes, region)
        states[item] = [bool(item_cls[pairs[p]] == pos) if p in pairs else None for p in range(len(persons))]
    return [
        LabelledPerson((float(b[0]), float(b[1]), float(b[2]), float(b[3])), states["helmet"][k], states["vest"][k])
        for k, b in enumerate(persons)
    ]


def load_split(root: str | Path) -> list[tuple[Path, list[LabelledPerson]]]:
    """(image path, labelled persons) for every image of a split folder with images/ and labels/."""
    root = Path(root)
    out = []
    for image in sorted((root / "images").glob("*.jpg")):
        cls, boxes = read_yolo(root / "labels" / f"{image.stem}.txt")
        out.append((image, associate(cls, boxes)))
    return out
