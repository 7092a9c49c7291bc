"""stage=labels: pseudo-labels from the trained SEC network (Kolesnikov & Lampert, ECCV 2016, test time).

For every image of a split: the network's softmax at ``segmodel.input_size`` (optionally several
``scales`` and the horizontal ``flip``, averaged; :func:`wsl.segmentation.sec.predict_probs`), upsampled
to the image size, clamped at ``prob_floor`` (1e-5), then a full-resolution dense CRF (scale s = 1) and the
argmax (:func:`wsl.segmentation.label_job`). With ``restrict_to_labels`` the CRF and the argmax only see
the background and the image's LABELLED classes: the usual practice for pseudo-labels of a training set.

Writes ``labels/<cam>/<split>/<id>.png`` (VOC palette, 0 background, class index + 1), the list file
``<split>.txt`` with one ``image label`` line per image (default ``JPEGImages/<id>.jpg
SegmentationClassAug/<id>.png``, the DeepLab train_aug list format), ``metrics.json`` (the mIoU where the
split has masks) and ``manifest.json``. Resumable, sharded. An unusable image is skipped and counted
(``failed_items``); more than ``stage.max_failed`` of the split is one error line.
"""

from __future__ import annotations

import logging
import time

import numpy as np
from omegaconf import DictConfig

from wsl import dist
from wsl.data.transforms import downscale
from wsl.errors import Failures
from wsl.segmentation import label_job
from wsl.segmentation.sec import predict_probs
from wsl.stages import common

log = logging.getLogger(__name__)


def run(cfg: DictConfig) -> dict:
    started = time.time()
    st = cfg.stage
    device = common.resolve_device(cfg.device)
    dist.init(device)
    split = common.split_name(cfg)
    lay = common.layout(cfg)
    out = lay.labels(cfg.cam.name, split)
    model = common.load_segmodel(cfg, device, st.checkpoint)
    ds = common.build_dataset(cfg, split)
    labels = ds.labels()
    mine, todo, skipped = common.pending(
        ds.ids, st.limit, st.overwrite, lambda i: (out / f"{i}.png").is_file(), "pseudo-labels", out
    )
    failures = Failures()
    predict_kw = dict(
        size=cfg.segmodel.input_size,
        scales=list(st.scales),
        flip=st.flip,
        mean=list(cfg.dataset.mean),
        std=list(cfg.dataset.std),
        device=device,
    )

    def jobs_of(part: list[int]) -> tuple[list[int], list[tuple]]:
        kept, images = [], []
        for i in part:
            try:  # a huge photo is labelled at max_side, its PNG written at its size
                images.append(downscale(ds.load_image(i), cfg.dataset.max_side))
                kept.append(i)
            except OSError as e:  # BadItem
                failures.add(ds.ids[i], e)
        probs = predict_probs(model, images, **predict_kw) if images else []
        keys = [
            np.concatenate([[0], np.flatnonzero(labels[i] > 0) + 1])
            if st.restrict_to_labels
            else np.arange(ds.num_classes + 1)
            for i in kept
        ]
        jobs = [
            (im, p[k], k, st.crf, st.prob_floor, st.crf_iterations) for im, p, k in zip(images, probs, keys)
        ]
        return kept, jobs

    done = common.write_label_pngs(ds, todo, out, st.batch_size, jobs_of, label_job, st.crf_processes,
                                   f"labels {cfg.cam.name} {split}")  # fmt: skip
    failures = common.settle_failures(cfg, failures, common.first_n(ds, st.limit))
    list_file = lay.label_list(cfg.cam.name, split)
    return common.finish_pseudo_labels(cfg, ds, out, list_file, mine, done, skipped, failures, started)
