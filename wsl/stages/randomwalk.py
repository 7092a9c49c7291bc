"""stage=randomwalk: IRN's pseudo-labels (Ahn, Cho & Kwak, CVPR 2019, Sec. 3.4, ``make_sem_seg_labels``).

For every image of the split: the affinity network of stage=affinity on the image (and its mirror,
``flip``) gives pair affinities within ``radius`` (5) on the stride-4 grid; the max-normalised CAMs of the
image's LABELLED classes, brought to that grid (and multiplied by ``1 - boundary`` for a boundary network,
as IRN), are propagated by ``2^exp_times`` steps of the random walk ``T = D^-1 A^beta``
(:func:`wsl.refine.random_walk`, sparse); then x4 upsampling, division by the maximum, a background plane at
``bg_threshold`` (0.25) and the argmax (:func:`wsl.refine.rw_scores`), optionally after SEC's dense CRF on
the normalised scores (``crf``).

Writes ``randomwalk/<cam>/<split>/<id>.png`` (VOC palette, 0 background, class index + 1) and the list file
``<split>.txt`` exactly as stage=labels does, ``metrics.json`` (mIoU where the split has masks) and
``manifest.json``. Resumable (complete PNGs are kept unless ``overwrite``), sharded over torchrun ranks; an
unusable image or CAM file is skipped and counted; more than ``stage.max_failed`` of the split is an error.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import numpy as np
import torch
from omegaconf import DictConfig

from wsl import dist, io
from wsl.data.transforms import downscale, to_tensor
from wsl.errors import Failures, UserError
from wsl.refine import KINDS, AffinityNet, grid_size, labelled_maps, random_walk, rw_scores
from wsl.segmentation import label_job
from wsl.stages import common

log = logging.getLogger(__name__)


def _network(cfg: DictConfig, device: torch.device) -> tuple[AffinityNet, dict]:
    """The trained affinity network (``stage.checkpoint`` or ``affinity/<cam>/final.pt``), eval mode."""
    lay = common.layout(cfg)
    path = cfg.stage.checkpoint or lay.affinity_network(cfg.cam.name)
    if not Path(path).is_file():
        raise UserError(f"stage=randomwalk needs {path}: run `python -m wsl.run stage=affinity cam="
                        f"{cfg.cam.name}` first")  # fmt: skip
    state = io.load_checkpoint(path)
    if not isinstance(state.get("model"), dict) or state.get("kind") not in KINDS:
        raise UserError(f"{path} is not an affinity network of stage=affinity")
    net = AffinityNet(common.load_classifier(cfg, device).cpu(), state["kind"], state["width"],
                      state["embed_dim"])  # fmt: skip
    net.load_state_dict(state["model"])
    return net.to(device).eval(), state


@torch.no_grad()
def _walk(net: AffinityNet, image: np.ndarray, maps: np.ndarray, cfg: DictConfig, device) -> np.ndarray:
    """The ``(K + 1, H, W)`` scores of one image (index 0 background)."""
    st = cfg.stage
    x = to_tensor(image, cfg.dataset.mean, cfg.dataset.std)[None].to(device)
    out = net(x)
    if st.flip:  # IRN averages the boundary logits of the image and of its mirror
        out = (out + net(x.flip(-1)).flip(-1)) / 2
    aff = net.affinity(out, st.radius)[0].float().cpu()
    boundary = torch.sigmoid(out[0, 0]).float().cpu() if net.kind == "boundary" else None
    walked = random_walk(torch.from_numpy(maps), aff, st.radius, st.beta, st.exp_times, boundary)
    return rw_scores(walked, image.shape[:2], st.bg_threshold)


def run(cfg: DictConfig) -> dict:
    started = time.time()
    st = cfg.stage
    device = common.resolve_device(cfg.device)
    dist.init(device)
    split = common.split_name(cfg)
    lay = common.layout(cfg)
    cams, out = lay.cams(cfg.cam.name, split), lay.randomwalk(cfg.cam.name, split)
    net, _ = _network(cfg, device)
    ds = common.build_dataset(cfg, split)
    labels = ds.labels()
    mine, todo, skipped = common.pending(
        ds.ids, st.limit, st.overwrite, lambda i: (out / f"{i}.png").is_file(), "pseudo-labels", out
    )
    failures = Failures()

    def jobs_of(part: list[int]) -> tuple[list[int], list[tuple]]:
        kept, jobs = [], []
        for i in part:
            try:  # a huge photo is labelled at max_side, its PNG written at its size
                image = downscale(ds.load_image(i), cfg.dataset.max_side)
                rec = io.load_cams(cams / f"{ds.ids[i]}.npz", ds.num_classes)
                maps, keys = labelled_maps(rec, np.flatnonzero(labels[i] > 0), grid_size(image.shape[:2]))
            except (OSError, ValueError) as e:  # BadItem: the image or the CAM file
                failures.add(ds.ids[i], e)
                continue
            scores = _walk(net, image, maps, cfg, device)
            probs = scores / scores.sum(0, keepdims=True)  # argmax unchanged; a distribution for the CRF
            jobs.append((image, probs, np.concatenate([[0], keys]), st.crf, st.prob_floor, st.crf_iterations))
            kept.append(i)
        return kept, jobs

    processes = st.crf_processes if st.crf else 0  # no CRF: no workers to start
    done = common.write_label_pngs(ds, todo, out, 4 * max(1, st.crf_processes), jobs_of, label_job, processes,
                                   f"randomwalk {cfg.cam.name} {split}")  # fmt: skip
    failures = common.settle_failures(cfg, failures, common.first_n(ds, st.limit))
    list_file = lay.randomwalk_list(cfg.cam.name, split)
    return common.finish_pseudo_labels(cfg, ds, out, list_file, mine, done, skipped, failures, started)
