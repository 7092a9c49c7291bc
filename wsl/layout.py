"""The one owner of the output layout: where every stage of a run reads and writes.

    <run>/train/{last,best}.pt            <run>/cams/<cam>/<split>/<id>.npz
    <run>/boxes/<cam>/<split>/boxes.json  <run>/seeds/<cam>/<split>/<id>.png
    <run>/sec/<cam>/{last,final}.pt       <run>/labels/<cam>/<split>/<id>.png, <split>.txt
    <run>/eval/<cam>/<split>/<task>/      <run>/benchmark/    <run>/visualize/<split>/
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

    def eval(self, cam: str, split: str, task: str) -> Path:
        return self.root / "eval" / cam / split / task

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
