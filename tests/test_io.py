import json
import os
import signal
import subprocess
import sys

import numpy as np
import pytest

from wsl import io


def test_cam_store_round_trip_no_pickles(tmp_path):
    p = tmp_path / "a" / "x.npz"
    maps = np.random.default_rng(0).random((3, 5, 7)).astype(np.float32)
    io.save_cams(p, np.array([2, 0, 5]), maps, np.arange(6, dtype=np.float32), (18, 27))
    rec = io.load_cams(p)
    assert rec["classes"].dtype == np.int64 and rec["classes"].tolist() == [2, 0, 5]
    assert rec["maps"].dtype == np.float32 and rec["maps"].shape == (3, 5, 7)
    np.testing.assert_allclose(rec["maps"], maps, atol=1e-3)
    assert rec["image_size"].tolist() == [18, 27]
    with np.load(p, allow_pickle=False) as z:
        assert z["maps"].dtype == np.float16
    assert io.is_complete_npz(p)


def test_cam_store_rejects_bad_maps(tmp_path):
    with pytest.raises(ValueError, match="non-finite"):
        io.save_cams(tmp_path / "x.npz", np.array([0]), np.full((1, 2, 2), np.nan), np.zeros(2), (4, 4))
    with pytest.raises(ValueError, match="K=2"):
        io.save_cams(tmp_path / "x.npz", np.array([0, 1]), np.zeros((1, 2, 2)), np.zeros(2), (4, 4))
    assert not (tmp_path / "x.npz").exists()


def test_truncated_npz_is_not_complete(tmp_path):
    p = tmp_path / "x.npz"
    io.save_cams(p, np.array([1]), np.ones((1, 4, 4)), np.zeros(3), (16, 16))
    p.write_bytes(p.read_bytes()[:40])
    assert not io.is_complete_npz(p)
    assert not io.is_complete_npz(tmp_path / "missing.npz")


def test_atomic_write_leaves_nothing_on_error(tmp_path):
    target = tmp_path / "out.json"
    io.write_json(target, {"a": 1})
    with pytest.raises(RuntimeError), io.atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("interrupted")
    assert json.loads(target.read_text()) == {"a": 1}
    assert os.listdir(tmp_path) == ["out.json"]


def _python(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)


def test_temporary_of_a_killed_writer_is_removed_by_the_next_write_of_that_file(tmp_path):
    """SIGKILL inside the atomic block leaves the temporary file; the next process that writes the same
    file removes it, and leaves a temporary of another file, or one newer than itself, alone."""
    kill = (
        "import os, signal; from wsl import io\n"
        "with io.atomic_path({!r}) as t:\n"
        "    t.write_text('half')\n"
        "    os.kill(os.getpid(), signal.SIGKILL)"
    )
    for name in ("a.npz", "b.npz"):
        assert _python(kill.format(str(tmp_path / name))).returncode == -signal.SIGKILL
    left = sorted(os.listdir(tmp_path))
    assert len(left) == 2 and all(n.startswith((".a.npz.", ".b.npz.")) and n.endswith(".npz") for n in left)
    r = _python(f"from wsl import io; io.write_json({str(tmp_path / 'a.npz')!r}, 1)")
    assert r.returncode == 0, r.stderr
    assert sorted(os.listdir(tmp_path)) == sorted(["a.npz", left[1]])
    # A temporary written after the writer started is another live process's: never taken.
    io.write_json(tmp_path / "b.npz", 2)
    assert left[1] in os.listdir(tmp_path)


def test_voc_palette_and_label_png(tmp_path):
    pal = io.voc_palette()
    assert (
        tuple(pal[1]) == (128, 0, 0)
        and tuple(pal[255]) == (224, 224, 192)
        and tuple(pal[15]) == (192, 128, 128)
    )
    lab = np.array([[0, 1, 255], [20, 3, 3]], dtype=np.uint8)
    io.write_label_png(tmp_path / "l.png", lab)
    np.testing.assert_array_equal(io.read_label_png(tmp_path / "l.png"), lab)


def test_voc_xml_round_trip_is_one_based_on_disk(tmp_path):
    p = tmp_path / "a.xml"
    io.write_voc_xml(p, "a", (30, 40), [{"name": "cat", "bbox": (0, 2, 9, 19), "difficult": True}])
    assert "<xmin>1</xmin>" in p.read_text() and "<ymax>20</ymax>" in p.read_text()
    rec = io.read_voc_xml(p)
    assert rec["size"] == (30, 40)
    assert rec["objects"] == [{"name": "cat", "difficult": True, "bbox": (0, 2, 9, 19)}]


class _Evil:
    """Any non-tensor class: unpickling it would run arbitrary code paths."""


@pytest.mark.parametrize("bad", ["../x", "a/b", "a\\b", "..", "/etc/passwd", "", "x..y"])
def test_hostile_ids_rejected(bad):
    with pytest.raises(ValueError, match="invalid image id"):
        io.check_id(bad)


def test_id_list_rejects_paths(tmp_path):
    p = tmp_path / "l.txt"
    p.write_text("2007_000032\n../../etc/passwd\n")
    with pytest.raises(ValueError, match="not paths"):
        io.read_id_list(p)
    p.write_text("2007_000032\n\n2007_000039 1\n")
    assert io.read_id_list(p) == ["2007_000032", "2007_000039"]


def test_checkpoint_is_weights_only(tmp_path):
    import torch

    p = tmp_path / "c.pt"
    io.save_checkpoint(p, {"w": torch.ones(2), "epoch": 3})
    assert io.load_checkpoint(p)["epoch"] == 3

    torch.save({"x": _Evil()}, tmp_path / "evil.pt")
    with pytest.raises(Exception, match="(?i)weights_only|unsupported|global"):
        io.load_checkpoint(tmp_path / "evil.pt")
