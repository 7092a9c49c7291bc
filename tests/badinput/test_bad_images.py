"""Images as viewers show them (wsl.io.read_image) and images no viewer can show (counted skips)."""

from __future__ import annotations

import logging

import numpy as np
import pytest
from badinput_corpus import (
    BROKEN_IMAGES,
    TOY6,
    cmyk_jpeg,
    encode,
    exif_rotated_jpeg,
    palette_png_with_transparency,
    pattern,
    png16_gray,
    png16_rgb,
    rgba_png,
    write_folder,
)
from PIL import Image

from wsl import io
from wsl.data.folder import FolderDataset
from wsl.errors import BadItem


def _read(tmp_path, name: str, data: bytes) -> np.ndarray:
    path = tmp_path / name
    path.write_bytes(data)
    image = io.read_image(path)
    assert image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3
    assert io.image_size(path) == image.shape[:2], "header size and decoded size must agree"
    return image


def test_16_bit_gray_is_scaled_not_clipped(tmp_path):
    data, ramp = png16_gray()
    image = _read(tmp_path, "g16.png", data)
    want = np.rint(ramp / 257.0).astype(np.uint8)
    assert np.abs(image[..., 0].astype(int) - want).max() <= 1 and (image[..., 0] == image[..., 2]).all()
    assert image.min() == 0 and image.max() == 255 and 120 <= np.median(image) <= 135  # not all 255


def test_16_bit_rgb_keeps_its_colours(tmp_path):
    data, rgb16 = png16_rgb()
    image = _read(tmp_path, "c16.png", data)
    assert np.abs(image.astype(int) - (rgb16 // 257).astype(int)).max() <= 1


def test_exif_orientation_is_applied_as_viewers_do(tmp_path):
    stored = pattern(30, 50)  # stored sideways: 30 rows, 50 columns
    image = _read(tmp_path, "rot.jpg", exif_rotated_jpeg(stored, 6))
    assert image.shape[:2] == (50, 30)  # Orientation 6: shown turned 90 degrees clockwise
    turned = np.rot90(stored, k=-1)
    assert np.abs(image.astype(int) - turned.astype(int)).mean() < 6  # JPEG noise only
    for orientation, shape in [(3, (30, 50)), (8, (50, 30)), (1, (30, 50))]:
        assert (
            _read(tmp_path, f"o{orientation}.jpg", exif_rotated_jpeg(stored, orientation)).shape[:2] == shape
        )


def test_alpha_is_composited_on_black(tmp_path):
    data, alpha = rgba_png()
    image = _read(tmp_path, "a.png", data)
    assert (image[:, : alpha.shape[1] // 2] == 0).all()  # transparent white -> black
    assert (np.abs(image[:, alpha.shape[1] // 2 :].astype(int) - 128) <= 1).all()  # half -> half grey
    la = encode(
        Image.fromarray(np.stack([np.full((8, 8), 200), np.zeros((8, 8))], -1).astype(np.uint8), "LA"), "PNG"
    )
    assert (_read(tmp_path, "la.png", la) == 0).all()
    pal = _read(tmp_path, "p.png", palette_png_with_transparency())
    assert (pal[:, :10] == [0, 255, 0]).all() and (pal[:, -10:] == 0).all()  # transparent red -> black


def test_gray_bilevel_palette_and_cmyk_become_rgb(tmp_path):
    gray = pattern(20, 30)[..., 0]
    image = _read(tmp_path, "l.png", encode(Image.fromarray(gray, "L"), "PNG"))
    assert (image == gray[..., None]).all()
    bilevel = _read(tmp_path, "1.png", encode(Image.fromarray(gray > 128), "PNG"))
    assert set(np.unique(bilevel)) <= {0, 255}
    cmyk = _read(tmp_path, "c.jpg", cmyk_jpeg())
    assert np.abs(cmyk.astype(int) - pattern(32, 48).astype(int)).mean() < 12
    f = np.linspace(0, 1, 12, dtype=np.float32).reshape(3, 4)  # 32-bit float images are taken as [0, 1]
    assert (io._rgb8(Image.fromarray(f, "F"))[..., 0] == np.rint(f * 255)).all()


def test_a_png_named_jpg_and_a_broken_exif_block_still_read(tmp_path):
    image = _read(tmp_path, "png_named.jpg", encode(pattern(20, 30), "PNG"))
    assert (image == pattern(20, 30)).all()
    data = bytearray(exif_rotated_jpeg(pattern(20, 30), 6))
    at = data.find(b"Exif\x00\x00")
    data[at + 6 : at + 30] = b"\xff" * 24  # a garbled TIFF header inside the EXIF block
    assert _read(tmp_path, "bad_exif.jpg", bytes(data)).shape[:2] in {(20, 30), (30, 20)}


@pytest.mark.parametrize("name", sorted(BROKEN_IMAGES))
def test_broken_images_are_bad_items_naming_the_file(tmp_path, name, caplog):
    """Each broken image is a BadItem (a counted skip) whose message names the file and the reason; the
    dataset itself logs nothing (its consumer logs once) and the other images still load."""
    suffix, make, words = BROKEN_IMAGES[name]
    images = {"good": (".png", encode(pattern(40, 60), "PNG")), name: (suffix, make())}
    root = write_folder(tmp_path / "folder", images, {"good": ["star"], name: ["boat"]})
    ds = FolderDataset(root, "train", class_names=TOY6, min_side=32)
    bad = ds.ids.index(name)
    with pytest.raises(BadItem) as e:
        ds.load_image(bad)
    assert f"{name}{suffix}" in str(e.value) and words in str(e.value), str(e.value)
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        sample = ds[bad]
    assert sample["image"] is None and words in sample["error"] and not caplog.records
    assert ds.load_image(ds.ids.index("good")).shape == (40, 60, 3)


def test_a_folder_named_like_an_image_and_a_missing_file(tmp_path):
    root = write_folder(tmp_path / "f", {"a": (".png", encode(pattern(40, 40), "PNG"))}, {"a": ["star"]})
    ds = FolderDataset(root, "train", class_names=TOY6)
    (root / "images" / "a.png").unlink()
    (root / "images" / "a.png").mkdir()
    with pytest.raises(BadItem, match="a.png"):
        ds.load_image(0)
    (root / "images" / "a.png").rmdir()
    with pytest.raises(BadItem, match="a.png"):
        ds.load_image(0)


def test_sizes_are_those_of_the_decoded_image(tmp_path):
    """The size used for batching (image_size, from the header) equals the decoded one, EXIF included."""
    images = {
        "rot": (".jpg", exif_rotated_jpeg(pattern(40, 70), 6)),
        "plain": (".jpg", encode(pattern(40, 70), "JPEG")),
    }
    ds = FolderDataset(
        write_folder(tmp_path / "f", images, {"rot": ["star"], "plain": []}), "x", class_names=TOY6
    )
    for i in range(2):
        assert ds.image_size(i) == ds.load_image(i).shape[:2]
    assert ds.image_size(ds.ids.index("rot")) == (70, 40)
