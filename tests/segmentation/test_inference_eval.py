"""evaluate_network (a network scored on val) against the PNG scorer of pseudo-labels, CRF included."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from wsl import io
from wsl.evaluation import score_labels
from wsl.evaluation.network import NetworkResult, evaluate_network, save_network
from wsl.models.deeplab import DeepLabSmall
from wsl.segmentation import label_job
from wsl.segmentation.inference import predict_probs
from wsl.stages.common import build_dataset

CPU = torch.device("cpu")


@pytest.mark.slow
def test_network_scores_equal_the_label_scorer_on_its_predictions(compose, tmp_path):
    cfg = compose(["stage=eval"])
    ds = build_dataset(cfg, "val", with_masks=True)
    torch.manual_seed(0)
    model = DeepLabSmall(ds.num_classes + 1, width=8).eval()
    mean, std, mine = list(cfg.dataset.mean), list(cfg.dataset.std), [0, 2, 3, 5, 7]
    res = evaluate_network(ds, model, "tiny", mean, std, CPU, [1.0, 0.5], True, None, True, batch_size=2,
                           indices=mine)  # fmt: skip
    # the reference: predict image by image, write PNGs, score them as pseudo-labels
    for name in ("plain", "crf"):
        (tmp_path / name).mkdir()
    keys = np.arange(ds.num_classes + 1)
    for i in mine:
        image = ds.load_image(i)
        (p,) = predict_probs(model, [image], [1.0, 0.5], True, mean, std, CPU)
        io.write_label_png(tmp_path / "plain" / f"{ds.ids[i]}.png", p.argmax(0).astype(np.uint8))
        io.write_label_png(tmp_path / "crf" / f"{ds.ids[i]}.png", label_job(image, p, keys, True, 1e-5, 10))
    for name, got in (("plain", res.plain), ("crf", res.crf)):
        want = score_labels(ds, tmp_path / name, mine)
        assert got.images == want.images == 5 and got.miou == want.miou
        assert got.per_class_iou == want.per_class_iou
    assert res.miou == res.plain.miou and res.miou_crf == res.crf.miou
    save_network(tmp_path / "out", res)
    back = NetworkResult.from_json(io.read_json(tmp_path / "out" / "metrics.json"))
    assert back == res and "tiny + dense CRF" in (tmp_path / "out" / "metrics.md").read_text()
    no_crf = evaluate_network(ds, model, "tiny", mean, std, CPU, crf=False, indices=[0])
    assert no_crf.crf is None and no_crf.miou_crf is None and no_crf.scales == [1.0]
