"""The bad-input corpus, made by code at test time (no binary fixture is checked in).

Every maker returns the bytes of a file (or writes a tree) that a new user could plausibly hand to wsl:
broken, odd or hostile images, annotations that disagree with their images, damaged stored files. The
tests of this folder assert what happens to each: a counted skip with one warning naming the file, or one
error line with exit code 2 (README "Bad input").
"""

from __future__ import annotations

import io as _io
import json
import struct
import zlib
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from wsl import io

TOY6 = ["ellipse", "rectangle", "triangle", "star", "boat", "water"]


# ------------------------------------------------------------------------------------------------ images


def pattern(h: int, w: int, seed: int = 0) -> np.ndarray:
    """An RGB uint8 (h, w, 3) image with a smooth, asymmetric pattern (survives JPEG, shows rotations)."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w]
    base = np.stack([255 * x / max(1, w - 1), 255 * y / max(1, h - 1), np.full((h, w), 90.0)], -1)
    return np.clip(base + rng.normal(0, 3, base.shape), 0, 255).astype(np.uint8)


def encode(image: np.ndarray | Image.Image, fmt: str, **kw) -> bytes:
    img = image if isinstance(image, Image.Image) else Image.fromarray(image)
    buf = _io.BytesIO()
    img.save(buf, format=fmt, **kw)
    return buf.getvalue()


def jpeg(h: int = 40, w: int = 60, seed: int = 0) -> bytes:
    return encode(pattern(h, w, seed), "JPEG", quality=95)


def exif_rotated_jpeg(stored: np.ndarray, orientation: int = 6) -> bytes:
    """A JPEG holding ``stored`` with an EXIF Orientation tag (6: viewers turn it 90 degrees clockwise)."""
    exif = Image.Exif()
    exif[0x0112] = orientation
    return encode(stored, "JPEG", quality=95, exif=exif.tobytes())


def png16_gray(h: int = 32, w: int = 48) -> tuple[bytes, np.ndarray]:
    """A 16-bit grayscale PNG (a 0..65535 ramp) and its values."""
    ramp = np.linspace(0, 65535, h * w).reshape(h, w).astype(np.uint16)
    ok, data = cv2.imencode(".png", ramp)
    assert ok
    return data.tobytes(), ramp


def png16_rgb(h: int = 32, w: int = 48) -> tuple[bytes, np.ndarray]:
    """A 16-bit RGB PNG and its RGB values (uint16)."""
    rgb = (pattern(h, w).astype(np.uint16) * 257)[..., ::-1].copy()  # cv2 writes BGR
    ok, data = cv2.imencode(".png", rgb)
    assert ok
    return data.tobytes(), rgb[..., ::-1]


def rgba_png(h: int = 32, w: int = 48) -> tuple[bytes, np.ndarray]:
    """White pixels: fully transparent on the left half, half transparent on the right; and the alpha."""
    rgba = np.full((h, w, 4), 255, np.uint8)
    rgba[:, : w // 2, 3] = 0
    rgba[:, w // 2 :, 3] = 128
    return encode(Image.fromarray(rgba, "RGBA"), "PNG"), rgba[..., 3]


def palette_png_with_transparency(h: int = 32, w: int = 48) -> bytes:
    """A palette PNG whose index 1 (pure red) is transparent."""
    idx = np.zeros((h, w), np.uint8)
    idx[:, w // 2 :] = 1
    img = Image.fromarray(idx, "P")
    img.putpalette([0, 255, 0, 255, 0, 0] + [0] * 762)
    return encode(img, "PNG", transparency=1)


def cmyk_jpeg(h: int = 32, w: int = 48) -> bytes:
    return encode(Image.fromarray(pattern(h, w)).convert("CMYK"), "JPEG", quality=95)


def decompression_bomb_png(side: int = 60000) -> bytes:
    """A PNG header claiming ``side`` x ``side`` pixels (3.6 gigapixels) and almost no data."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", side, side, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(b"\0" * 64))
        + chunk(b"IEND", b"")
    )


# What each broken image is, with the words the skip reason must contain.
BROKEN_IMAGES: dict[str, tuple[str, Callable[[], bytes], str]] = {
    "zero_byte": (".jpg", lambda: b"", "cannot identify"),
    "random_bytes": (".png", lambda: np.random.default_rng(1).bytes(3000), "cannot identify"),
    "text_named_jpg": (".jpg", lambda: b"id,labels\nthis is not an image\n", "cannot identify"),
    "truncated_jpeg": (".jpg", lambda: jpeg(64, 64)[:400], "runcated"),
    "truncated_png": (".png", lambda: encode(pattern(64, 64), "PNG")[:300], "runcated"),
    "one_pixel": (".png", lambda: encode(pattern(1, 1), "PNG"), "smaller than min_side"),
    "thin_strip": (".png", lambda: encode(pattern(4, 300), "PNG"), "smaller than min_side"),
    "bomb": (".png", decompression_bomb_png, "decompression bomb"),
}


# ---------------------------------------------------------------------------------------- folder datasets


def write_folder(root: Path, images: dict[str, tuple[str, bytes]], labels: dict[str, list[str]]) -> Path:
    """``root/images/<id><suffix>`` and ``root/labels.csv`` (header id,labels); returns ``root``."""
    for image_id, (suffix, data) in images.items():
        io.write_bytes(root / "images" / f"{image_id}{suffix}", data)
    rows = ["id,labels", *(f"{i},{';'.join(labels[i])}" for i in images)]
    io.write_text(root / "labels.csv", "\n".join(rows) + "\n")
    return root


def toy_folder(root: Path, toy_voc: Path, n: int, split: str = "val") -> tuple[dict, dict]:
    """The first ``n`` images of a toy VOC split as folder items: ``(images, labels)`` to extend and write."""
    from wsl.data.voc import VOCDataset

    voc = VOCDataset(toy_voc, split, class_names=TOY6)
    images = {voc.ids[i]: (".png", encode(voc.load_image(i), "PNG")) for i in range(n)}
    labels = {voc.ids[i]: [TOY6[k] for k in np.flatnonzero(voc.labels()[i])] for i in range(n)}
    return images, labels


def folder_overrides(data_root: Path, checkpoint: Path, *extra: str) -> list[str]:
    """dataset=folder with the six toy classes at ``data_root/folder``, the given classifier, no workers."""
    return [
        "dataset=folder",
        "dataset.num_classes=6",
        f"dataset.class_names=[{','.join(TOY6)}]",
        f"paths.data_root={data_root}",
        f"model.checkpoint={checkpoint}",
        "num_workers=0",
        *extra,
    ]


# ------------------------------------------------------------------------------------------ stored files


def cam_file(path: Path, h: int = 40, w: int = 60, k: int = 2, c: int = 6) -> dict[str, np.ndarray]:
    """A valid CAM file (stride 4) at ``path``; returns its arrays."""
    rec = {
        "classes": np.arange(k, dtype=np.int64),
        "maps": np.random.default_rng(0).random((k, -(-h // 4), -(-w // 4))).astype(np.float32),
        "logits": np.linspace(-2, 2, c).astype(np.float32),
        "image_size": np.array([h, w], np.int64),
    }
    io.save_cams(path, rec["classes"], rec["maps"], rec["logits"], (h, w))
    return rec


def raw_npz(path: Path, **arrays) -> None:
    """An ``.npz`` written as given, bypassing :func:`wsl.io.save_cams`'s checks (what a bug or another
    tool could leave)."""
    buf = _io.BytesIO()
    np.savez(buf, **arrays)
    io.write_bytes(path, buf.getvalue())


def damage_cams(path: Path, how: str) -> str:
    """Damage the valid CAM file ``path`` (from :func:`cam_file`) in one way; returns words of the reason."""
    good = dict(np.load(path, allow_pickle=False))
    if how == "truncated":
        path.write_bytes(path.read_bytes()[:100])
        return "unreadable CAM file"
    if how == "zero_byte":
        path.write_bytes(b"")
        return "unreadable CAM file"
    if how == "not_npz":
        path.write_text("maps")
        return "unreadable CAM file"
    if how == "pickled":
        raw_npz(path, **{**good, "maps": np.array([object()], dtype=object)})
        return "unreadable CAM file"
    bad = dict(good)
    words = {
        "missing_maps": "missing",
        "fewer_maps": "maps",
        "nan_maps": "non-finite",
        "inf_logits": "non-finite",
        "classes_out_of_range": "not distinct indices",
        "duplicate_classes": "not distinct indices",
        "size_not_hw": "image_size",
        "negative_size": "image_size",
        "maps_larger_than_image": "do not fit",
        "transposed_maps": "do not fit",
        "logits_of_other_classes": "logits",
    }[how]
    if how == "missing_maps":
        del bad["maps"]
    elif how == "fewer_maps":
        bad["maps"] = good["maps"][:1]
    elif how == "nan_maps":
        bad["maps"] = good["maps"].copy()
        bad["maps"][0, 0, 0] = np.nan
    elif how == "inf_logits":
        bad["logits"] = good["logits"].copy()
        bad["logits"][0] = np.inf
    elif how == "classes_out_of_range":
        bad["classes"] = np.array([0, 99])
    elif how == "duplicate_classes":
        bad["classes"] = np.array([1, 1])
    elif how == "size_not_hw":
        bad["image_size"] = np.array([40, 60, 3])
    elif how == "negative_size":
        bad["image_size"] = np.array([-40, 60])
    elif how == "maps_larger_than_image":
        bad["image_size"] = np.array([4, 6])
    elif how == "transposed_maps":
        bad["maps"] = np.ascontiguousarray(good["maps"].transpose(0, 2, 1))
    elif how == "logits_of_other_classes":
        bad["logits"] = np.zeros(1000, np.float32)
        bad["classes"] = np.array([500, 501])
    raw_npz(path, **bad)
    return words


DAMAGES = [
    "truncated",
    "zero_byte",
    "not_npz",
    "pickled",
    "missing_maps",
    "fewer_maps",
    "nan_maps",
    "inf_logits",
    "classes_out_of_range",
    "duplicate_classes",
    "size_not_hw",
    "negative_size",
    "maps_larger_than_image",
    "transposed_maps",
    "logits_of_other_classes",
]


# ------------------------------------------------------------------------------------------------- COCO


def coco_tree(root: Path, images: list[dict], annotations: list[dict], categories: list[dict]) -> Path:
    """``root/images/<file_name>`` (valid JPEGs of the size each entry says unless it has ``file_size``)
    and ``root/annotations.json``; returns ``root``."""
    for k, info in enumerate(images):
        h, w = info.get("file_size", (info.get("height", 40), info.get("width", 60)))
        io.write_bytes(root / "images" / info["file_name"], jpeg(h, w, seed=k))
    clean = [{k: v for k, v in info.items() if k != "file_size"} for info in images]
    io.write_text(
        root / "annotations.json",
        json.dumps({"images": clean, "annotations": annotations, "categories": categories}),
    )
    return root
