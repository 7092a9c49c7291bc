"""wsl.benchmark's rows, columns and tables on hand-made typed results and values (fractions)."""

from __future__ import annotations

import csv
import io as _io
import json
import math

import numpy as np
import pytest

from wsl.benchmark import (
    BY_KEY,
    COLUMNS,
    best,
    cell_scores,
    csv_text,
    findings,
    gallery_table,
    identical,
    markdown,
    quality_row,
    report_html,
    style,
    summary,
    table,
)
from wsl.benchmark.rows import failed_methods, json_safe
from wsl.evaluation import CamMaskResult, LocalizationProtocol, LocalizationResult

T = np.round(np.arange(0, 1, 0.25), 2)  # 4 CAM thresholds


def localization_result(**over) -> LocalizationResult:
    fields = dict(
        top1_loc_err=0.4, top5_loc_err=0.3, gt_known_loc=0.615, corloc=0.5, pointing_game=0.8,
        corloc_per_class={"a": 0.5}, max_box_acc=0.6, max_box_acc_threshold=0.25, max_box_acc_v2=0.55,
        max_box_acc_v2_per_iou={"0.3": 0.7, "0.5": 0.6, "0.7": 0.35},
        max_box_acc_v2_thresholds={"0.3": 0.25, "0.5": 0.25, "0.7": 0.5}, pxap=0.42, coco_ap=None,
        coco_ap50=None, images=10, pairs=12, skipped_images=0, missing=0, failed=0, thresholds=T,
        box_acc_v1=np.array([0.1, 0.6, 0.5, 0.0]),
        box_acc_v2={"0.3": np.array([0.2, 0.7, 0.6, 0.1]), "0.5": np.array([0.1, 0.6, 0.55, 0.0]),
                    "0.7": np.array([0.0, 0.3, 0.35, 0.0])},
        pr_precision=None, pr_recall=None, protocol=LocalizationProtocol(),
    )  # fmt: skip
    return LocalizationResult(**(fields | over))


def mask_result() -> CamMaskResult:
    return CamMaskResult(
        miou=0.3, threshold=0.15, per_class_iou={"background": 0.5}, miou_tuned=0.35, best_threshold=0.2,
        per_class_iou_tuned={"background": 0.6}, sweep_thresholds=np.array([0.1, 0.15, 0.2]),
        sweep_miou=np.array([0.25, 0.3, np.nan]), images=10, missing=0, failed=0, missing_maps=0,
    )  # fmt: skip


def test_row_is_built_from_the_typed_results():
    row = quality_row(localization_result(), mask_result())
    assert set(c.key for c in COLUMNS) <= set(row)
    assert row["gt_known_loc"] == 0.615 and row["top1_loc_err"] == 0.4 and row["maxboxacc_v2"] == 0.55
    assert row["corloc"] == 0.5 and row["pointing_game"] == 0.8 and row["pxap"] == 0.42
    assert row["miou"] == 0.3 and row["miou_tuned"] == 0.35
    # the curves are the evaluators' own: BoxAcc V2 at the protocol's IoU, the mIoU sweep (NaN -> None)
    assert row["boxacc_curve"] == (T.tolist(), [0.1, 0.6, 0.55, 0.0]) and row["boxacc_iou"] == 0.5
    assert row["miou_curve"] == ([0.1, 0.15, 0.2], [0.25, 0.3, None])
    assert all(row[k] is None for k in ("deletion_auc", "sanity_spearman", "ms_per_map"))
    # V2 not swept at the protocol's IoU: the V1 curve; no masks: PxAP n/a; no result: n/a
    odd = quality_row(localization_result(pxap=None, protocol=LocalizationProtocol(iou_threshold=0.6)))
    assert odd["boxacc_curve"][1] == [0.1, 0.6, 0.5, 0.0] and odd["pxap"] is None and odd["miou"] is None
    assert quality_row()["gt_known_loc"] is None and "boxacc_curve" not in quality_row()


def test_columns_show_fractions_as_percent():
    col, auc = BY_KEY["gt_known_loc"], BY_KEY["deletion_auc"]
    assert col.percent and col.display(0.615) == "61.5" and col.shown(0.61549) == 61.5
    assert col.title() == "GT-known loc (%) ↑" and BY_KEY["top1_loc_err"].title() == "top-1 loc err (%) ↓"
    assert not auc.percent and auc.display(0.1234) == "0.123" and auc.title() == "deletion AUC ↓"
    assert BY_KEY["average_drop"].percent and BY_KEY["increase_in_confidence"].percent
    assert BY_KEY["sanity_spearman"].title() == "sanity ρ" and col.display(None) == "n/a"
    rows = {"a": quality_row(localization_result(), mask_result())}
    md = markdown(rows, {"title": "t", "notes": ""})
    assert (
        "| a | **61.5** | **40.0** | **55.0** | **50.0** | **80.0** | **30.0** | **35.0** | **42.0** | n/a |"
        in md
    )
    page = report_html(rows, {"title": "t", "subtitle": "s", "notes": ""}, [], [])
    assert '<td class="best start">61.5</td>' in page and ">42.0</td>" in page and "0.615" not in page
    assert summary(rows)[0] == "Best localization (MaxBoxAccV2): a (55.0 %)."


def test_best_and_markdown_mark_the_right_cells():
    cols = BY_KEY
    rows = {
        "a": {"top1_loc_err": 0.30, "gt_known_loc": 0.50, "miou": 0.40},
        "b": {"top1_loc_err": 0.20, "gt_known_loc": 0.5004, "miou": 0.40},
        "c": {"top1_loc_err": 0.25, "gt_known_loc": 0.41, "miou": None, "flagged": True},
    }
    assert best(rows, cols["top1_loc_err"]) == {"b"}  # lower is better
    assert best(rows, cols["gt_known_loc"]) == {"a", "b"}  # equal as shown (50.0 %): they share it
    assert best(rows, cols["miou"]) == set()  # every method shows the same value: nothing to mark
    assert best(rows, cols["pxap"]) == set()  # n/a everywhere
    assert (
        best({"a": {"sanity_spearman": 0.1}, "b": {"sanity_spearman": 0.9}}, cols["sanity_spearman"]) == set()
    )
    assert best({"a": {"ms_per_map": 3.0}}, cols["ms_per_map"]) == {"a"}  # a single method is the best
    md = markdown(rows, {"title": "t", "notes": ""})
    assert "top-1 loc err (%) ↓" in md and "GT-known loc (%) ↑" in md
    assert "| b | **50.0** | **20.0** |" in md and "| c ⚠ | 41.0 | 25.0 |" in md and "n/a" in md
    assert any("Flagged by the sanity check" in s and s.endswith(": c.") for s in summary(rows))


def test_csv_holds_fractions_flag_and_status():
    rows = {
        "a": quality_row(localization_result(), mask_result())
        | {"deletion_auc": 0.1234567, "average_drop": 0.25, "flagged": True,
           "status": {"cams": "ran", "boxes": "reused"}},
        "b": quality_row() | {"status": {"cams": "failed: UserError: no map"}},
    }  # fmt: skip
    lines = list(csv.DictReader(_io.StringIO(csv_text(rows))))
    assert [r["method"] for r in lines] == ["a", "b"]
    a, b = lines
    assert list(a)[1 : len(COLUMNS) + 1] == [c.key for c in COLUMNS]
    assert float(a["gt_known_loc"]) == 0.615 and float(a["maxboxacc_v2"]) == 0.55 and a["miou"] == "0.3"
    assert a["deletion_auc"] == "0.123457" and float(a["average_drop"]) == 0.25 and a["pxap"] == "0.42"
    assert (
        a["images_per_s"] == "n/a"
        and a["sanity_flagged"] == "true"
        and a["status"] == "cams ran; boxes reused"
    )
    assert all(b[c.key] == "n/a" for c in COLUMNS) and b["sanity_flagged"] == "false"
    assert failed_methods(rows) == ["b"]
    tab = table(rows)
    assert (
        tab["a"]["gt_known_loc"] == 0.615 and tab["a"]["flagged"] is True and "boxacc_curve" not in tab["a"]
    )


def test_json_safe_is_strict_json():
    out = json_safe({"x": (1.0, math.nan), "y": np.float32(0.5), "z": np.arange(2), 0.5: {"w": math.inf}})
    assert out == {"x": [1.0, None], "y": 0.5, "z": [0, 1], "0.5": {"w": None}}
    json.dumps(out, allow_nan=False)


@pytest.mark.parametrize("value", [None, "x", math.nan, math.inf, True])
def test_quality_values_that_are_not_numbers_are_na(value):
    assert quality_row(localization_result(pxap=value))["pxap"] is None


def test_best_is_marked_only_where_it_means_something():
    peak = BY_KEY["peak_mb"]
    ten = {
        f"m{k}": {"peak_mb": 0.1 + k * 1e-3, "pointing_game": 0.968, "gt_known_loc": 0.5} for k in range(10)
    }
    ten["m9"] |= {"peak_mb": 160.0, "pointing_game": 0.9, "gt_known_loc": 0.7}
    assert best(ten, peak) == set()  # 0.1 MB for 9 of 10: shared by most methods, below the sampler
    assert best(ten, BY_KEY["pointing_game"]) == set()  # the same 96.8 % for 9 of 10
    assert best(ten, BY_KEY["gt_known_loc"]) == {"m9"}
    close = {"a": {"peak_mb": 10.2}, "b": {"peak_mb": 10.6}, "c": {"peak_mb": 10.9}}
    assert best(close, peak) == set()  # spread 0.7 MB < the documented 1 MB
    assert best({"a": {"peak_mb": 10.2}, "b": {"peak_mb": 30.0}}, peak) == {"a"}
    flagged = {"a": {"miou": 0.6, "flagged": True}, "b": {"miou": 0.5}, "c": {"miou": 0.4}}
    assert best(flagged, BY_KEY["miou"]) == {"b"}  # never a method that fails the sanity check
    assert best({"a": {"miou": 0.6, "flagged": True}}, BY_KEY["miou"]) == set()
    assert BY_KEY["sanity_spearman"].better is None  # pass / fail: no best


def test_intervals_are_shown_and_stored_apart():
    row = quality_row(localization_result(), mask_result()) | {
        "gt_known_loc_low": 0.58,
        "gt_known_loc_high": 0.649,
    }
    row |= {"deletion_auc": 0.183, "deletion_auc_low": 0.171, "deletion_auc_high": 0.195}
    rows = {"a": row, "b": quality_row(localization_result(gt_known_loc=0.5), mask_result())}
    md = markdown(rows, {"title": "t", "notes": ""})
    assert "| a | **61.5** [58.0, 64.9] |" in md and "**0.183** [0.171, 0.195]" in md
    assert "bootstrap 95 % interval over the images (1000 resamples" in md
    page = report_html(rows, {"title": "t", "subtitle": "s", "notes": ""}, [], [])
    assert '61.5<br><span class="ci">[58.0, 64.9]</span></td>' in page and "no interval" in page
    a = next(csv.DictReader(_io.StringIO(csv_text(rows))))
    assert float(a["gt_known_loc_low"]) == 0.58 and a["pxap_low"] == "n/a" and "peak_mb_low" not in a
    assert BY_KEY["gt_known_loc"].bounds(row) == (0.58, 0.649) and BY_KEY["pxap"].bounds(row) is None
    assert not BY_KEY["ms_per_map"].interval and BY_KEY["sanity_spearman"].interval


def test_identical_maps_and_scores_are_said_in_words():
    base = quality_row(localization_result(), mask_result()) | {"deletion_auc": 0.2, "status": {}}
    rows = {
        "cam": base | {"ms_per_map": 3.0},
        "gradcam": base | {"ms_per_map": 4.0, "deletion_auc": 0.2 + 1e-8},  # float rounding only
        "eigencam": base | {"gt_known_loc": 0.3},
    }
    assert identical(rows) == [["cam", "gradcam"]]
    lines = summary(rows)
    assert any(
        s.startswith("Identical scores: cam and gradcam (") and "the plots draw them once" in s for s in lines
    )
    maps = {"groups": [["cam", "gradcam"]], "maps": 34, "tolerance": 0.002}
    said = findings(rows, {"identical_maps": maps})
    assert any(s.startswith("Identical maps and scores: cam and gradcam (their 34 stored maps") for s in said)
    assert not any(s.startswith("Identical scores") for s in said)
    other = findings(rows, {"identical_maps": maps | {"groups": [["cam", "eigencam"]]}})
    assert any(s.startswith("Identical maps: cam and eigencam") for s in other)


def test_gallery_cells_show_every_class_with_its_scores():
    scores = [{"box_iou": 0.72, "mask_iou": 0.55}, None, {"box_iou": 0.4, "mask_iou": None}]
    cells = {"cam": {"src": "gallery/im__cam.png", "scores": scores}, "eigencam": None}
    gallery = [{"id": "im", "classes": ["boat", "water", "star"], "image": "gallery/im.png", "cells": cells}]
    page = gallery_table(gallery, ["cam", "eigencam"])
    assert "<span>boat</span><span>water</span><span>star</span>" in page and "width:420px" in page
    assert "box IoU 0.72<br>mask IoU 0.55" in page and "<span>no map</span>" in page
    assert "<span>box IoU 0.40</span>" in page and '<td class="missing">no map</td>' in page
    assert style("cam")["color"] in page
    m = np.zeros((20, 30), np.float32)
    m[5:10, 5:15] = 1.0
    mask = np.zeros((20, 30), np.uint8)
    mask[5:10, 5:20] = 3  # class 2 (mask value = class + 1)
    mask[0, :] = 255  # void: left out
    s = cell_scores(m, np.array([[5, 5, 19, 9]]), mask, 2, 0.15)
    assert s["box_iou"] == pytest.approx(50 / 75) and s["mask_iou"] == pytest.approx(50 / 75)
    assert cell_scores(m, np.zeros((0, 4)), None, 2, 0.15) == {"box_iou": None, "mask_iou": None}
