"""Train the PPE person classifier (hard hat, hi-vis vest), export ONNX, evaluate: one GPU run.

    python3 models/ppe/train.py --data run/ppe_data/ppe_crops.npz --out OUT_DIR [--config models/ppe/config.json]

Input: the compact crop set from models/ppe/prepare.py (shared/data/ppe_train persons; the dev split
is in the same file, marked split=1, and is only evaluated, never trained on).

Model: a small plain CNN on the whole person crop (engine.ppe.crop_person, the same function the engine
uses), two 3-way heads: helmet and vest, each {not worn, worn, not visible}. "Not visible" is taught
with synthetic cuts (head or torso cut out of the box); unlabelled persons are ignored by the loss
(in this dataset they are mostly missing annotations, not invisible items). No pretrained weights:
the GPU machine has no internet and no permissively licensed backbone was available.

Steps: every candidate in config.json is trained on the train images minus a holdout (every
holdout_every-th image); the holdout picks the candidate and the decision thresholds; the winner is
retrained on all train images and exported (ONNX, softmax probabilities, thresholds in the metadata).
All candidates and the final model are also scored on the dev split (for the model card).
"""

from __future__ import annotations

import argparse
import json
import math
import multiprocessing as mp
import platform
import sys
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from custom_components.safecam.engine.ppe import crop_person  # noqa: E402

ITEMS = ("helmet", "vest")
NO, YES, HIDDEN = 0, 1, 2
IGNORE = -1

_IMAGES: list[np.ndarray] = []  # decoded context crops; filled before the pool forks
_DATA: dict[str, np.ndarray] = {}


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


# --- data -----------------------------------------------------------------------------------


def _box(idx: int, rng: np.random.Generator, aug: dict[str, float] | None) -> np.ndarray:
    det = _DATA["det"][idx]
    use_det = not np.isnan(det[0]) and (aug is None or rng.random() < aug["det_box_p"])
    return (det if use_det else _DATA["gt"][idx]).astype(np.float64)


def _sample(
    idx: int, rng: np.random.Generator, size: tuple[int, int], aug: dict[str, float] | None
) -> tuple[np.ndarray, int, int]:
    """One (crop, helmet label, vest label); aug None = the plain evaluation crop (detector box if any)."""
    img = _IMAGES[idx]
    helmet, vest = int(_DATA["helmet"][idx]), int(_DATA["vest"][idx])
    x1, y1, x2, y2 = _box(idx, rng, aug)
    if aug is not None:
        w, h = x2 - x1, y2 - y1
        cx = (x1 + x2) / 2 + rng.normal(0, aug["shift"]) * w
        cy = (y1 + y2) / 2 + rng.normal(0, aug["shift"]) * h
        s, a = math.exp(rng.normal(0, aug["scale"])), math.exp(rng.normal(0, aug["aspect"]))
        w, h = w * s * a, h * s / a
        x1, y1, x2, y2 = cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2
        if rng.random() < aug["head_cut_p"]:  # head out of the box: helmet not visible
            cut = rng.uniform(0.3, 0.6)
            y1 += cut * h
            helmet = HIDDEN
            vest = HIDDEN if cut > 0.45 else vest
        elif rng.random() < aug["torso_cut_p"]:  # only the head: vest not visible
            y2 = y1 + rng.uniform(0.12, 0.25) * h
            vest = HIDDEN
    crop = crop_person(img, (x1, y1, x2, y2), (size[1], size[0]))
    if aug is not None and rng.random() < aug["small_p"]:  # a far-away person: few pixels, upscaled
        f = rng.uniform(0.2, 0.7)
        small = cv2.resize(crop, (max(6, round(size[1] * f)), max(12, round(size[0] * f))), interpolation=cv2.INTER_AREA)
        crop = cv2.resize(small, (size[1], size[0]), interpolation=cv2.INTER_LINEAR)
    return crop, helmet, vest


def _batch_job(args: tuple[np.ndarray, int, tuple[int, int], dict[str, float] | None]) -> tuple[np.ndarray, np.ndarray]:
    idxs, seed, size, aug = args
    rng = np.random.default_rng(seed)
    out = [_sample(int(i), rng, size, aug) for i in idxs]
    return np.stack([o[0] for o in out]), np.array([[o[1], o[2]] for o in out], np.int64)


def make_crops(
    pool: Any, idxs: np.ndarray, seed: int, size: tuple[int, int], aug: dict[str, float] | None
) -> tuple[np.ndarray, np.ndarray]:
    chunks = [c for c in np.array_split(idxs, max(1, len(idxs) // 128)) if len(c)]
    parts = pool.map(_batch_job, [(c, seed * 100003 + k, size, aug) for k, c in enumerate(chunks)])
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])


# --- model ----------------------------------------------------------------------------------


def _conv(ci: int, co: int, k: int = 3, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(ci, co, k, stride, k // 2, bias=False), nn.BatchNorm2d(co), nn.ReLU(inplace=True))


class PPENet(nn.Module):
    """BGR 0-255 NCHW crops -> 6 logits: helmet (no, yes, hidden), vest (no, yes, hidden)."""

    def __init__(self, input_hw: tuple[int, int], widths: list[int]) -> None:
        super().__init__()
        c1, c2, c3, c4 = widths
        self.features = nn.Sequential(
            _conv(3, c1, stride=2),
            _conv(c1, c2, stride=2),
            _conv(c2, c2),
            _conv(c2, c3, stride=2),
            _conv(c3, c3),
            _conv(c3, c4, stride=2),
            _conv(c4, c4),
            _conv(c4, 32, k=1),
        )
        # Flatten, not global pooling: where a colour sits (head band, torso band) is the signal.
        cells = (input_hw[0] // 16) * (input_hw[1] // 16)
        self.head = nn.Sequential(
            nn.Flatten(), nn.Dropout(0.3), nn.Linear(32 * cells, 128), nn.ReLU(inplace=True), nn.Dropout(0.2), nn.Linear(128, 6)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features((x - 127.5) / 64.0))


class Exported(nn.Module):
    """What ships: softmax per item, [N, 6] = helmet (no, yes, hidden), vest (no, yes, hidden)."""

    def __init__(self, net: PPENet) -> None:
        super().__init__()
        self.net = net

    def forward(self, crops: torch.Tensor) -> torch.Tensor:
        z = self.net(crops)
        return torch.cat([F.softmax(z[:, :3], dim=1), F.softmax(z[:, 3:], dim=1)], dim=1)


def _gpu_augment(x: torch.Tensor, aug: dict[str, float], gen: torch.Generator) -> torch.Tensor:
    n = x.shape[0]
    dev = x.device

    def u(spread: float) -> torch.Tensor:
        return 1 + (torch.rand(n, 1, 1, 1, device=dev, generator=gen) * 2 - 1) * spread

    flip = torch.rand(n, device=dev, generator=gen) < aug["flip_p"]
    x = torch.where(flip[:, None, None, None], x.flip(3), x)
    x = x * u(aug["brightness"])
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    x = (x - mean) * u(aug["contrast"]) + mean
    gray = x.mean(dim=1, keepdim=True)
    x = (x - gray) * u(aug["saturation"]) + gray
    return x.clamp(0, 255)


def train_model(
    pool: Any, cfg: dict[str, Any], cand: dict[str, Any], train_idx: np.ndarray, device: torch.device, epochs: int, tag: str
) -> PPENet:
    size = (cand["input"][0], cand["input"][1])
    cfg = {**cfg, **cand.get("overrides", {})}  # a candidate may train differently (e.g. more no-helmet weight)
    torch.manual_seed(cfg["seed"])
    net = PPENet(size, cand["widths"]).to(device).to(memory_format=torch.channels_last)
    # Oversample the rare "no helmet" persons (86 of 2359 in train).
    no_helmet = train_idx[_DATA["helmet"][train_idx] == NO]
    base = np.concatenate([train_idx, *([no_helmet] * (cfg["oversample_no_helmet"] - 1))])
    steps_per_epoch = math.ceil(len(base) / cfg["batch"])
    opt = torch.optim.AdamW(net.parameters(), lr=cfg["lr"], weight_decay=cfg["weight_decay"])
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg["lr"], total_steps=epochs * steps_per_epoch, pct_start=0.15)
    weights = {k: torch.tensor(cfg["class_weight"][k], dtype=torch.float32, device=device) for k in ITEMS}
    gen = torch.Generator(device=device)
    gen.manual_seed(cfg["seed"])
    rng = np.random.default_rng(cfg["seed"])
    started = time.perf_counter()
    for epoch in range(epochs):
        order = rng.permutation(base)
        crops, labels = make_crops(pool, order, cfg["seed"] * 7919 + epoch, size, cfg["aug"])
        x_all = torch.from_numpy(crops).to(device).permute(0, 3, 1, 2).float()
        y_all = torch.from_numpy(labels).to(device)
        net.train()
        total = 0.0
        for s in range(steps_per_epoch):
            x = x_all[s * cfg["batch"] : (s + 1) * cfg["batch"]].contiguous(memory_format=torch.channels_last)
            y = y_all[s * cfg["batch"] : (s + 1) * cfg["batch"]]
            if len(x) < 2:
                continue
            x = _gpu_augment(x, cfg["aug"], gen)
            z = net(x)
            loss = torch.stack(
                [
                    F.cross_entropy(
                        z[:, 3 * i : 3 * i + 3],
                        y[:, i],
                        weight=weights[k],
                        ignore_index=IGNORE,
                        label_smoothing=cfg["label_smoothing"],
                    )
                    for i, k in enumerate(ITEMS)
                ]
            ).sum()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            total += float(loss.detach())
        if epoch % 25 == 0 or epoch == epochs - 1:
            log(f"{tag} epoch {epoch + 1}/{epochs} loss {total / steps_per_epoch:.4f} ({time.perf_counter() - started:.0f} s)")
    return net.eval()


@torch.no_grad()
def predict(
    pool: Any, net: nn.Module, idxs: np.ndarray, size: tuple[int, int], device: torch.device
) -> tuple[np.ndarray, np.ndarray]:
    """(probs [N, 6], labels [N, 2]) on the plain evaluation crops."""
    crops, labels = make_crops(pool, idxs, 0, size, None)
    x = torch.from_numpy(crops).to(device).permute(0, 3, 1, 2).float().contiguous(memory_format=torch.channels_last)
    probs = Exported(net)(x) if isinstance(net, PPENet) else net(x)
    return probs.cpu().numpy(), labels


# --- decisions and metrics --------------------------------------------------------------------


def decide(probs: np.ndarray, thresholds: dict[str, float]) -> np.ndarray:
    """[N, 2] states: 0 not worn, 1 worn, -1 unknown (hidden is the most likely class)."""
    out = np.empty((len(probs), 2), np.int64)
    for i, k in enumerate(ITEMS):
        p = probs[:, 3 * i : 3 * i + 3]
        p_no = p[:, NO] / np.maximum(p[:, NO] + p[:, YES], 1e-9)
        out[:, i] = np.where(p.argmax(1) == HIDDEN, -1, np.where(p_no >= thresholds[k], NO, YES))
    return out


def metrics(pred: np.ndarray, labels: np.ndarray, missed: np.ndarray | None = None) -> dict[str, float]:
    """Per item accuracy over labelled persons (unknown counts as wrong) and violation P/R over both items.

    missed: persons the detector did not find (their labelled items count as wrong / missed).
    """
    missed = np.zeros(len(labels), bool) if missed is None else missed
    out: dict[str, float] = {}
    tp = fp = fn = 0
    for i, k in enumerate(ITEMS):
        lab = labels[:, i]
        m = (lab == NO) | (lab == YES)
        ok = (pred[:, i] == lab) & ~missed
        out[f"{k}_accuracy"] = round(float(ok[m].mean()), 4) if m.any() else float("nan")
        out[f"{k}_unknown"] = round(float(((pred[:, i] == -1) & ~missed)[m].mean()), 4) if m.any() else float("nan")
        says_no = (pred[:, i] == NO) & ~missed
        item_tp = int((says_no & (lab == NO)).sum())
        item_fp = int((says_no & (lab == YES)).sum())
        item_fn = int((~says_no & (lab == NO)).sum())
        out[f"{k}_violation_precision"] = round(item_tp / max(item_tp + item_fp, 1), 4)
        out[f"{k}_violation_recall"] = round(item_tp / max(item_tp + item_fn, 1), 4)
        out[f"{k}_violation_f1"] = round(2 * item_tp / max(2 * item_tp + item_fp + item_fn, 1), 4)
        tp, fp, fn = tp + item_tp, fp + item_fp, fn + item_fn
    out["violation_precision"] = round(tp / max(tp + fp, 1), 4)
    out["violation_recall"] = round(tp / max(tp + fn, 1), 4)
    out["violation_f1"] = round(2 * tp / max(2 * tp + fp + fn, 1), 4)
    out["violations_labelled"] = tp + fn
    return out


def pick_thresholds(probs: np.ndarray, labels: np.ndarray, grid: list[float]) -> dict[str, float]:
    """Per item, the threshold on p(no | no or yes) with the best accuracy + violation F1 on the holdout."""
    best: dict[str, float] = {}
    lo, hi, step = grid
    candidates = np.round(np.arange(lo, hi + 1e-9, step), 3)
    for i, k in enumerate(ITEMS):
        scores = []
        for t in candidates:
            th = dict.fromkeys(ITEMS, 0.5) | {k: float(t)}
            pred = decide(probs, th)
            lab = labels[:, i]
            m = (lab == NO) | (lab == YES)
            acc = float((pred[m, i] == lab[m]).mean())
            tp = int(((pred[:, i] == NO) & (lab == NO)).sum())
            fp = int(((pred[:, i] == NO) & (lab == YES)).sum())
            fn = int(((pred[:, i] != NO) & (lab == NO)).sum())
            scores.append(acc + 2 * tp / max(2 * tp + fp + fn, 1))
        # Ties: the threshold nearest 0.5 (the loss was class-weighted for a 0.5 decision).
        s = np.array(scores)
        near = np.abs(candidates - 0.5)
        best[k] = float(candidates[np.lexsort((near, -s))[0]])
    return best


# --- export ---------------------------------------------------------------------------------


def export_onnx(net: PPENet, size: tuple[int, int], path: Path, opset: int, meta: dict[str, str]) -> str:
    import onnx

    model = Exported(net).cpu().eval()
    dummy = torch.full((1, 3, *size), 114.0)
    how = "torchscript"
    try:
        torch.onnx.export(
            model,
            (dummy,),
            str(path),
            input_names=["crops"],
            output_names=["probs"],
            dynamic_axes={"crops": {0: "N"}, "probs": {0: "N"}},
            opset_version=opset,
            dynamo=False,
        )
    except Exception as err:  # noqa: BLE001 - the legacy exporter may be gone; the dynamo one is the fallback
        log(f"torchscript export failed ({err}); trying dynamo")
        how = "dynamo"
        batch = torch.export.Dim("N", min=1, max=256)
        prog = torch.onnx.export(
            model,
            (dummy,),
            dynamo=True,
            input_names=["crops"],
            output_names=["probs"],
            dynamic_shapes={"crops": {0: batch}},
            opset_version=opset,
        )
        prog.save(str(path))
    m = onnx.load(str(path))
    for k, v in meta.items():
        entry = m.metadata_props.add()
        entry.key, entry.value = k, v
    onnx.checker.check_model(m)
    onnx.save(m, str(path))
    return how


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default=str(REPO / "run" / "ppe_data" / "ppe_crops.npz"))
    ap.add_argument("--config", default=str(Path(__file__).with_name("config.json")))
    ap.add_argument("--out", required=True)
    ap.add_argument("--smoke", action="store_true", help="tiny run on the CPU to check the script end to end")
    args = ap.parse_args()
    t0 = time.perf_counter()
    cfg = json.loads(Path(args.config).read_text())
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    d = np.load(args.data)
    _DATA.update({k: d[k] for k in d.files if k not in ("jpeg", "offsets")})
    jpeg, offs = d["jpeg"], d["offsets"]
    for k in range(len(offs) - 1):
        img = cv2.imdecode(jpeg[offs[k] : offs[k + 1]], cv2.IMREAD_COLOR)
        assert img is not None, f"crop {k} does not decode"
        _IMAGES.append(img)
    if args.smoke:
        cfg["epochs"] = 2
    split, image = _DATA["split"], _DATA["image"]
    train_all = np.flatnonzero(split == 0)
    holdout = train_all[image[train_all] % cfg["holdout_every"] == 0]
    fit = train_all[image[train_all] % cfg["holdout_every"] != 0]
    dev = np.flatnonzero(split == 1)
    dev_missed = np.isnan(_DATA["det"][dev, 0])  # persons the detector did not find (end-to-end figures)
    if args.smoke:
        fit, holdout, dev, dev_missed = fit[:300], holdout[:100], dev[:60], dev_missed[:60]
    log(f"crops: {len(_IMAGES)}; fit {len(fit)}, holdout {len(holdout)}, dev {len(dev)} ({int(dev_missed.sum())} not detected)")
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    env = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "device": torch.cuda.get_device_name(0) if device.type == "cuda" else "cpu",
    }
    log(f"env {env}")
    ctx = mp.get_context("fork")
    report: dict[str, Any] = {"env": env, "config": cfg, "candidates": {}}
    saved: dict[str, np.ndarray] = {"dev_missed": dev_missed}
    with ctx.Pool(min(16, mp.cpu_count())) as pool:
        for name, cand in cfg["candidates"].items():
            size = (cand["input"][0], cand["input"][1])
            t = time.perf_counter()
            net = train_model(pool, cfg, cand, fit, device, cfg["epochs"], name)
            hp, hl = predict(pool, net, holdout, size, device)
            th = pick_thresholds(hp, hl, cfg["threshold_grid"])
            dp, dl = predict(pool, net, dev, size, device)
            saved |= {f"{name}_holdout": hp, "holdout_labels": hl, f"{name}_dev": dp, "dev_labels": dl}
            np.savez(out / "probs.npz", **saved)  # type: ignore[arg-type]
            rec = {
                "train_s": round(time.perf_counter() - t, 1),
                "params": sum(p.numel() for p in net.parameters()),
                "thresholds": th,
                "holdout": metrics(decide(hp, th), hl),
                "dev_detector_boxes": metrics(decide(dp, th), dl, dev_missed),
            }
            report["candidates"][name] = rec
            log(f"{name}: {json.dumps(rec)}")
            (out / "metrics.json").write_text(json.dumps(report, indent=1))

        # The holdout alone picks the winner: accuracies plus each item's violation F1 (no-helmet is
        # rare: pooled over both items its misses would hardly count).
        def score(r: dict[str, Any]) -> float:
            h = r["holdout"]
            return h["helmet_accuracy"] + h["vest_accuracy"] + h["helmet_violation_f1"] + h["vest_violation_f1"]

        best = max(report["candidates"], key=lambda n: score(report["candidates"][n]))
        cand = cfg["candidates"][best]
        size = (cand["input"][0], cand["input"][1])
        th = report["candidates"][best]["thresholds"]
        log(f"winner {best}; retraining on all {len(train_all)} train persons")
        t = time.perf_counter()
        net = train_model(pool, cfg, cand, train_all if not args.smoke else fit, device, cfg["epochs"], f"{best}-final")
        train_s = time.perf_counter() - t
        dp, dl = predict(pool, net, dev, size, device)
        torch.save({"state_dict": net.state_dict(), "candidate": cand, "thresholds": th}, out / "ppe_helmet_vest.pt")
        meta = {
            "safecam.items": "helmet,vest",
            "safecam.classes": "no,yes,hidden",
            "safecam.thresholds": json.dumps(th),
            "safecam.input": f"crops [N,3,{size[0]},{size[1]}] float32 BGR 0-255, engine.ppe.crop_person (box grown 5 %)",
            "safecam.data": "Roboflow-100 construction-safety-gsnvb v2 train split (CC BY 4.0)",
        }
        onnx_path = out / cfg["model_file"]
        how = export_onnx(net, size, onnx_path, cfg["opset"], meta)
        # The exported file, through onnxruntime, must give what torch gave.
        import onnxruntime as ort

        sess = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
        crops, _ = make_crops(pool, dev, 0, size, None)
        op = sess.run(None, {"crops": crops.transpose(0, 3, 1, 2).astype(np.float32)})[0]
    report["final"] = {
        "candidate": best,
        "train_s": round(train_s, 1),
        "epochs": cfg["epochs"],
        "thresholds": th,
        "export": how,
        "onnx_bytes": onnx_path.stat().st_size,
        "onnx_vs_torch_max_abs": float(np.abs(op - dp).max()),
        "dev_detector_boxes_torch": metrics(decide(dp, th), dl, dev_missed),
        "dev_detector_boxes_onnx": metrics(decide(op, th), dl, dev_missed),
    }
    report["total_s"] = round(time.perf_counter() - t0, 1)
    (out / "metrics.json").write_text(json.dumps(report, indent=1))
    log(f"final: {json.dumps(report['final'])}")
    log(f"total {report['total_s']} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
