"""stage=labels: pseudo-labels from the trained SEC network (Kolesnikov & Lampert, ECCV 2016, test time).

For every image of a split: the network's softmax at ``segmodel.input_size`` (optionally several
``scales`` and the horizontal ``flip``, averaged), upsampled bilinearly to the image size and clamped at
``prob_floor`` (1e-5), then a full-resolution dense CRF (scale s = 1, sec.md) and the argmax. With
``restrict_to_labels`` the CRF and the argmax only see the background and the image's LABELLED classes:
the usual practice for pseudo-labels of a training set, whose image-level labels are known (SEC's own test
time, without labels, keeps every class). CRFs run in a process pool of ``crf_processes``.

Writes ``labels/<cam>/<split>/<id>.png`` (VOC palette, 0 background, class index + 1) and the list file
``labels/<cam>/<split>/<split>.txt`` with one ``image label`` line per image (default
``JPEGImages/<id>.jpg SegmentationClassAug/<id>.png``, the DeepLab train_aug list format), plus
``metrics.json`` (the mIoU where the split has masks) and ``manifest.json``. Resumable, sharded.
"""

from __future__ import annotations

import logging
import time

import numpy as np
import torch
import torch.nn.functional as F
from omegaconf import DictConfig

from wsl import dist, io
from wsl.data.transforms import resize, to_tensor
from wsl.segmentation import CRFPool
from wsl.stages import common
from wsl.stages.sec_model import load_segmodel
from wsl.stages.segjobs import label_job
from wsl.stages.segscore import masks_or_none, score_labels

log = logging.getLogger(__name__)


@torch.no_grad()
def predict(
    model: torch.nn.Module,
    images: list[np.ndarray],
    size: int,
    scales: list[float],
    flip: bool,
    mean: list[float],
    std: list[float],
    device: torch.device,
) -> list[np.ndarray]:
    """Class probabilities ``(C, H, W)`` per image: softmax at ``size * scale`` (square, as SEC resizes),
    upsampled bilinearly to each image's size, averaged over scales and flips."""
    sums = [None] * len(images)
    for scale in scales:
        side = max(8, round(size * scale))
        x = torch.stack([to_tensor(resize(im, (side, side)), mean, std) for im in images]).to(device)
        probs = torch.softmax(model(x), dim=1)
        if flip:
            probs = (probs + torch.softmax(model(x.flip(-1)), dim=1).flip(-1)) / 2
        for k, im in enumerate(images):
            up = F.interpolate(probs[k : k + 1], size=im.shape[:2], mode="bilinear", align_corners=False)[0]
            sums[k] = up if sums[k] is None else sums[k] + up
    return [(s / len(scales)).float().cpu().numpy() for s in sums]


def run(cfg: DictConfig) -> dict:
    started = time.time()
    st = cfg.stage
    device = common.resolve_device(cfg.device)
    dist.init(device)
    split = common.split_name(cfg)
    out = common.run_dir(cfg) / "labels" / cfg.cam.name / split
    model = load_segmodel(cfg, device, st.checkpoint)
    ds = common.build_dataset(cfg, split)
    labels = ds.labels()
    mine, todo, skipped = common.pending(
        ds.ids, st.limit, st.overwrite, lambda i: (out / f"{i}.png").is_file(), "pseudo-labels", out
    )
    done = failed = 0
    predict_kw = dict(size=cfg.segmodel.input_size, scales=list(st.scales), flip=st.flip,
                      mean=list(cfg.dataset.mean), std=list(cfg.dataset.std), device=device)  # fmt: skip
    bar = common.progress(None, f"labels {cfg.cam.name} {split}", total=len(todo))
    with CRFPool(st.crf_processes if todo else 0) as pool:
        for start in range(0, len(todo), st.batch_size):
            chunk, images = [], []
            for i in todo[start : start + st.batch_size]:
                try:
                    images.append(ds.load_image(i))
                    chunk.append(i)
                except OSError as e:
                    log.warning("skipping %s: %s", ds.ids[i], e)
                    failed += 1
            probs = predict(model, images, **predict_kw) if images else []
            keys = [np.concatenate([[0], np.flatnonzero(labels[i] > 0) + 1]) if st.restrict_to_labels
                    else np.arange(ds.num_classes + 1) for i in chunk]  # fmt: skip
            jobs = [
                (im, p[k], k, st.crf, st.prob_floor, st.crf_iterations)
                for im, p, k in zip(images, probs, keys)
            ]
            for i, pred in zip(chunk, pool.imap(label_job, jobs)):
                io.write_label_png(out / f"{ds.ids[i]}.png", pred)
                done += 1
            bar.update(len(todo[start : start + st.batch_size]))
    bar.close()
    done, skipped, failed = (int(v) for v in dist.all_reduce_sum([done, skipped, failed]))
    dist.barrier()
    indices = range(len(ds) if st.limit is None else min(st.limit, len(ds)))
    listed = _write_list(out, split, ds.ids, indices, st)
    metrics = {
        "split": split,
        "images": done + skipped,
        "done": done,
        "skipped": skipped,
        "failed": failed,
        "listed": listed,
        "list_file": str(out / f"{split}.txt"),
    }
    gt = masks_or_none(cfg, split) if getattr(ds, "has_masks", False) else None
    if gt is not None:
        metrics["labels"] = score_labels(gt, mine, out, ["background", *ds.class_names])
        metrics["miou"] = metrics["labels"]["miou"]
    common.write_metrics(out, metrics)
    common.write_manifest(out, cfg, started, done=done, skipped=skipped, failed=failed)
    log.info(
        "labels %s/%s: %d written, %d skipped, %d failed%s; list %s",
        cfg.cam.name,
        split,
        done,
        skipped,
        failed,
        f"; mIoU {100 * metrics['miou']:.1f}" if metrics.get("miou") is not None else "",
        out / f"{split}.txt",
    )
    return metrics


def _write_list(out, split: str, ids: list[str], indices: list[int], st: DictConfig) -> int:
    """``<split>.txt``: ``<list_image_prefix><id><list_image_suffix> <list_label_prefix><id>.png`` for each
    image that has a pseudo-label (rank 0 writes)."""
    image, label = (st.list_image_prefix, st.list_image_suffix), st.list_label_prefix
    lines = [
        f"{image[0]}{ids[i]}{image[1]} {label}{ids[i]}.png\n"
        for i in indices
        if (out / f"{ids[i]}.png").is_file()
    ]
    if dist.is_main():
        io.write_text(out / f"{split}.txt", "".join(lines))
    return len(lines)
