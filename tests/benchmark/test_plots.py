"""The benchmark's figures and the training curves: one look per method everywhere, identical curves drawn
once and named together, and no two texts of a figure overlapping (measured with matplotlib's renderer)."""

from __future__ import annotations

import numpy as np
import pytest
from matplotlib.colors import to_hex

import wsl.viz as viz
from wsl.benchmark import COLUMNS, style, write_plots
from wsl.benchmark.styles import group_label, identical_groups, same
from wsl.cam import METHODS

# The toy benchmark's own values (ms per map, MaxBoxAccV2, mIoU tuned, insertion AUC): four methods with
# identical scores and nearly the same cost, the crowded case the labels must survive.
TOY = {
    "cam": (5.9, 0.710, 0.518, 0.725), "gradcam": (11.6, 0.710, 0.518, 0.725),
    "hirescam": (6.8, 0.710, 0.518, 0.725), "gradcampp": (12.9, 0.707, 0.525, 0.714),
    "xgradcam": (6.3, 0.710, 0.518, 0.725), "layercam": (3.1, 0.684, 0.510, 0.713),
    "scorecam": (55.9, 0.730, 0.580, 0.705), "ablationcam": (7.6, 0.601, 0.405, 0.666),
    "eigencam": (2.9, 0.436, 0.332, 0.602), "guided_backprop": (6.9, 0.652, 0.521, 0.703),
    "guided_gradcam": (9.0, 0.754, 0.577, 0.737),
}  # fmt: skip


def toy_rows() -> dict:
    x = np.linspace(0, 1, 21)
    rows = {}
    for k, (m, (ms, box, miou, ins)) in enumerate(TOY.items()):
        shape = 0.0 if m in ("cam", "gradcam", "hirescam", "xgradcam") else k  # the same curves for four
        curve = (x.tolist(), (box * np.exp(-((x - 0.3 - shape / 40) ** 2) * 8)).tolist())
        rows[m] = {c.key: None for c in COLUMNS} | {
            "ms_per_map": ms, "maxboxacc_v2": box, "miou_tuned": miou, "insertion_auc": ins,
            "maxboxacc_v2_low": box - 0.03, "maxboxacc_v2_high": box + 0.035, "boxacc_curve": curve,
            "miou_curve": curve, "deletion_curve": curve, "insertion_curve": curve,
            "sanity_curve": [0.5 - shape / 30, 0.2, 0.1], "flagged": m == "guided_backprop",
        }  # fmt: skip
    return rows


@pytest.fixture
def figures(monkeypatch):
    """Every figure the code under test saves: ``(path name, overlapping texts, figure)``."""
    seen = []
    save = viz._save

    def spy(fig, path):
        seen.append((str(path).rsplit("/", 1)[-1], viz.text_overlaps(fig), fig))
        save(fig, path)

    monkeypatch.setattr(viz, "_save", spy)
    return seen


def test_every_method_has_its_own_fixed_look():
    looks = [style(m) for m in METHODS]
    assert len({s["color"] for s in looks}) == len(METHODS)
    assert len({s["marker"] for s in looks}) == len(METHODS)
    assert style("gradcam") == style("gradcam", tuple(METHODS)) and style("my_cam")["color"].startswith("#")


def test_identical_values_are_grouped_and_named_together():
    items = {"a": (0.5, [1.0, 2.0]), "b": (0.5 + 1e-7, [1.0, 2.0]), "c": (0.5, [1.0, 2.1]), "d": None}
    assert identical_groups(items) == [["a", "b"], ["c"], ["d"]]
    assert identical_groups({"x": None, "y": None}) == [["x"], ["y"]]  # absent values are never "identical"
    assert same([None, 1.0], [None, 1.0 + 1e-9]) and not same([1.0], [1.0, 2.0])
    label = group_label(["cam", "gradcam", "hirescam", "xgradcam"])
    assert label.replace("\n", " ") == "cam = gradcam = hirescam = xgradcam" and "\n" in label


def test_report_figures_have_no_overlapping_text_and_one_look_per_method(tmp_path, figures):
    rows = toy_rows()
    drawn = write_plots(tmp_path, rows, ["fc", "features.17"])
    assert [p for p, _ in drawn][0] == "plots/quality_vs_cost.png" and len(drawn) == 6
    assert len(figures) == 6
    for name, overlaps, _ in figures:
        assert overlaps == [], (name, overlaps)
    tradeoff = dict((n, f) for n, _, f in figures)["quality_vs_cost.png"]
    for ax in tradeoff.axes:  # every point in its method's colour, every method labelled once
        texts = [t.get_text() for t in ax.texts]
        assert sorted(" = ".join(texts).replace(" (fails sanity)", "").split(" = ")) == sorted(TOY)
        colors = {to_hex(line.get_markeredgecolor()) for line in ax.lines}
        assert {style(m)["color"] for m in TOY} <= colors
    for name, _, fig in figures[1:]:  # the curves: the four identical ones drawn once, named together
        legend = {t.get_text().replace("\n", " "): t for t in fig.axes[0].get_legend().get_texts()}
        assert "cam = gradcam = hirescam = xgradcam" in legend and "gradcam" not in legend, name
        lines = {line.get_label().replace("\n", " "): line for line in fig.axes[0].get_lines()}
        assert to_hex(lines["cam = gradcam = hirescam = xgradcam"].get_color()) == style("cam")["color"]
        assert to_hex(lines["scorecam"].get_color()) == style("scorecam")["color"], name


def test_text_overlaps_sees_overlapping_labels():
    fig, ax = viz.plt.subplots()
    ax.annotate("first label", (0.5, 0.5))
    ax.annotate("second label", (0.5, 0.5))
    assert viz.text_overlaps(fig) == [("first label", "second label")]
    viz.plt.close(fig)


def test_training_curves_compare_train_and_val_and_say_map(tmp_path, figures):
    history = [
        {"epoch": e, "loss": 1 / e, "map": 0.5 + e / 40, "f1_macro": 0.4 + e / 50} for e in range(1, 13)
    ]
    viz.plot_curves(tmp_path / "curves.png", history, ("loss", "map", "f1_macro"), "classifier training")
    both = [h | {"val_loss": 1.2 / h["epoch"], "train_map": h["map"] + 0.02} for h in history]
    viz.plot_curves(tmp_path / "both.png", both, ("loss", "map", "f1_macro"), "classifier training")
    sec = [{"iteration": 10 * i, "seed": 1 / i, "expand": 0.5, "constrain": 0.2 / i, "total": 2 / i}
           for i in range(1, 80)]  # fmt: skip
    viz.plot_curves(tmp_path / "loss.png", sec, ("seed", "expand", "constrain", "total"), "SEC losses (a, b)")
    assert (tmp_path / "curves.png").is_file() and (tmp_path / "loss.png").is_file()
    for name, overlaps, _ in figures:  # the title above the panels, never over one
        assert overlaps == [], (name, overlaps)
    (_, _, plain), (_, _, paired), (_, _, losses) = figures
    assert [ax.get_ylabel() for ax in plain.axes] == ["loss (train)", "mAP (val)", "F1 macro (val)"]
    assert plain.axes[0].get_legend() is None
    assert [ax.get_ylabel() for ax in paired.axes][:2] == ["loss", "mAP"]
    for ax in paired.axes[:2]:  # train against val where both exist
        assert sorted(t.get_text() for t in ax.get_legend().get_texts()) == ["train", "val"]
    assert losses.axes[2].get_ylabel() == "constrain-to-boundary loss (train)"
    title = plain._suptitle.get_window_extent()
    assert all(title.y0 >= ax.get_window_extent().y1 - 1 for ax in plain.axes)
