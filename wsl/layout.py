"""The one owner of the output layout: where every stage of a run reads and writes.

    <run>/train/{last,best}.pt            <run>/cams/<cam>/<split>/<id>.npz
    <run>/boxes/<cam>/<split>/boxes.json  <run>/seeds/<cam>/<split>/<id>.png
    <run>/sec/<cam>/{last,final}.pt       <run>/labels/<cam>/<split>/<id>.png, <split>.txt
    <run>/affinity/<cam>/{last,final}.pt, confident/<id>.png
    <run>/randomwalk/<cam>/<split>/<id>.png, <split>.txt
    <run>/segtrain/<labels>/<cam>/{last,final}.pt                        <run>/eval/<cam>/loop.{json,md}
    <run>/eval/<cam>/<split>/<task>/      <run>/eval/<cam>/<split>/network/<network>/
    <run>/benchmark/    <run>/visualize/<split>/
    <run>/explain/<stem>.png              <run>/logs/

Folders are deterministic (no timestamps), so a stage finds what the stages before it wrote, and a run made
by an earlier version of wsl is read by a later one. Nothing here reads a configuration: a notebook makes a
``RunLayout("outputs/toy-small_cnn")`` and finds the same files the stages do.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

MANIFEST = "manifest.json"
METRICS = "metrics.json"


@dataclass(frozen=True)
class RunLayout:
    """The folders and files of one run rooted at ``root`` (``<output_root>/<run>``)."""

    root: Path

    def __init__(self, root: str | os.PathLike) -> None:
        object.__setattr__(self, "root", Path(root))

    # ------------------------------------------------------------------------------ classifier
    def train(self) -> Path:
        return self.root / "train"

    def classifier(self) -> Path:
        """The trained classifier the later stages use (the best val mAP)."""
        return self.train() / "best.pt"

    # ------------------------------------------------------------------------------ per CAM method
    def cams(self, cam: str, split: str) -> Path:
        return self.root / "cams" / cam / split

    def cam_file(self, cam: str, split: str, image_id: str) -> Path:
        return self.cams(cam, split) / f"{image_id}.npz"

    def boxes(self, cam: str, split: str) -> Path:
        return self.root / "boxes" / cam / split

    def boxes_file(self, cam: str, split: str) -> Path:
        """COCO results JSON of stage=boxes."""
        return self.boxes(cam, split) / "boxes.json"

    def seeds(self, cam: str, split: str) -> Path:
        return self.root / "seeds" / cam / split

    def sec(self, cam: str) -> Path:
        return self.root / "sec" / cam

    def sec_network(self, cam: str) -> Path:
        """The final SEC network of stage=sec."""
        return self.sec(cam) / "final.pt"

    def labels(self, cam: str, split: str) -> Path:
        return self.root / "labels" / cam / split

    def label_list(self, cam: str, split: str) -> Path:
        """The DeepLab-style list file of stage=labels."""
        return self.labels(cam, split) / f"{split}.txt"

    def affinity(self, cam: str) -> Path:
        return self.root / "affinity" / cam

    def affinity_labels(self, cam: str) -> Path:
        """IRN's confident regions ``<id>.png`` stage=affinity trains on (0 bg, class + 1, 255 unsure)."""
        return self.affinity(cam) / "confident"

    def affinity_network(self, cam: str) -> Path:
        """The trained affinity (boundary) network of stage=affinity."""
        return self.affinity(cam) / "final.pt"

    def randomwalk(self, cam: str, split: str) -> Path:
        return self.root / "randomwalk" / cam / split

    def randomwalk_list(self, cam: str, split: str) -> Path:
        """The DeepLab-style list file of stage=randomwalk (same format as :meth:`label_list`)."""
        return self.randomwalk(cam, split) / f"{split}.txt"

    def pseudo_labels(self, refiner: str, cam: str, split: str) -> Path:
        """The pseudo-label PNGs of a refiner: ``sec`` (stage=labels) or ``randomwalk``."""
        folders = {"sec": self.labels, "randomwalk": self.randomwalk}
        if refiner not in folders:
            raise ValueError(f"unknown refiner {refiner!r}; known: {', '.join(folders)}")
        return folders[refiner](cam, split)

    def segtrain(self, labels: str, cam: str) -> Path:
        """stage=segtrain's network trained on the pseudo-labels of refiner ``labels`` (sec, randomwalk)."""
        return self.root / "segtrain" / labels / cam

    def segtrain_network(self, labels: str, cam: str) -> Path:
        return self.segtrain(labels, cam) / "final.pt"

    def eval(self, cam: str, split: str, task: str) -> Path:
        return self.root / "eval" / cam / split / task

    def eval_network(self, cam: str, split: str, network: str) -> Path:
        """stage=eval's scores of a trained segmentation network (``sec``, ``segtrain-<labels>``)."""
        return self.root / "eval" / cam / split / "network" / network

    def loop(self, cam: str) -> Path:
        """stage=eval's summary of the whole WSSS loop (``loop.json``, ``loop.md``)."""
        return self.root / "eval" / cam

    # ------------------------------------------------------------------------------ whole run
    def benchmark(self) -> Path:
        return self.root / "benchmark"

    def visualize(self, split: str) -> Path:
        return self.root / "visualize" / split

    def explain(self) -> Path:
        return self.root / "explain"

    def logs(self, stage: str) -> Path:
        return self.root / "logs" / stage

    # ------------------------------------------------------------------------------ markers
    @staticmethod
    def manifest(folder: Path) -> Path:
        """``manifest.json`` of a leaf folder: written last, so its presence says the folder is finished."""
        return Path(folder) / MANIFEST

    @staticmethod
    def metrics(folder: Path) -> Path:
        return Path(folder) / METRICS
