"""Every file format wsl reads or writes, in one place.

All writers are atomic: they write to a temporary file in the destination folder and ``os.replace`` it,
so an interrupted run never leaves a half-written file behind and a re-run can trust any file it finds;
files get the mode an ordinary ``open()`` would give them (0644 under the usual umask 022). Nothing here
unpickles: arrays are ``.npz`` read with ``allow_pickle=False``, checkpoints are read with
``torch.load(..., weights_only=True)``. Readers of stored files check what they read (:func:`check_cams`):
a damaged file is a :class:`wsl.errors.BadItem` naming it, never a wrong result.
"""

from __future__ import annotations

import contextlib
import fnmatch
import functools
import io
import json
import os
import re
import signal
import tempfile
import time
import xml.etree.ElementTree as ET
import zipfile
import zlib
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageOps

from wsl.errors import BadItem, UserError

# ---------------------------------------------------------------------------------------------- atomic


def _read_umask() -> int:
    """The process's umask. ``os.umask`` can only be read by setting it: done once, at import."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


# mkstemp creates 0600 files; an atomic write must leave what open() would (0666 & ~umask), so that the
# other users of a shared results folder can read them.
FILE_MODE = 0o666 & ~_read_umask()


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; on success it replaces ``path`` atomically.

    The temporary file keeps ``path``'s suffix (or ``suffix``) so that writers that infer the format from
    the name (PIL, matplotlib, torch) work. On error the temporary file is removed.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    for stale in _stale_temporaries(path.parent).pop(path.name, ()):
        with contextlib.suppress(FileNotFoundError):
            stale.unlink()
    fd, tmp = tempfile.mkstemp(
        prefix=f".{path.name}.", suffix=suffix or path.suffix or ".tmp", dir=path.parent
    )
    os.close(fd)
    try:
        os.chmod(tmp, FILE_MODE)
        yield Path(tmp)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    _fault_point(path)


# A process killed with SIGKILL (or by the machine going down) mid-write leaves its temporary file behind:
# ".<name>.<8 random characters><suffix>", as mkstemp names it above. The next write of <name> removes it.
# Only temporaries last modified before this process started count as stale, so that a write never takes
# another live process's file; and only those of the path being written, because under torchrun each
# output path has one owner (a rank sweeping a whole folder could delete another node's file in flight).
_STARTED = time.time()
_TEMPORARY = re.compile(r"\.(?P<target>.+)\.[a-z0-9_]{8}(\.[^.]*)?")
_stale: dict[Path, dict[str, list[Path]]] = {}


def _stale_temporaries(folder: Path) -> dict[str, list[Path]]:
    """The stale temporaries in ``folder`` by the name of the file they were meant to become: listed once
    per folder and process (one listing, not one per write, in a folder of 100,000 CAM files)."""
    if folder not in _stale:  # keyed as the writers spell it: no resolve() syscalls on every write
        found: dict[str, list[Path]] = {}
        with os.scandir(folder) as entries:
            for entry in entries:
                match = _TEMPORARY.fullmatch(entry.name) if entry.name.startswith(".") else None
                with contextlib.suppress(OSError):
                    if match and entry.is_file() and entry.stat().st_mtime < _STARTED:
                        found.setdefault(match["target"], []).append(Path(entry.path))
        _stale[folder] = found
    return _stale[folder]


_writes: dict[str, int] = {}


def _fault_point(path: Path) -> None:
    """Fault injection for the interruption tests: with ``WSL_KILL_AFTER=<glob>:<n>`` the process kills
    itself (SIGKILL, nothing cleaned up) right after its n-th completed write of a file whose name matches
    ``<glob>``, e.g. ``last.pt:2``. Unset (always, outside tests), this is one dictionary lookup."""
    spec = os.environ.get("WSL_KILL_AFTER")
    if not spec:
        return
    pattern, _, n = spec.rpartition(":")
    if fnmatch.fnmatch(path.name, pattern):
        _writes[pattern] = _writes.get(pattern, 0) + 1
        if _writes[pattern] == int(n):
            os.kill(os.getpid(), signal.SIGKILL)


def write_bytes(path: str | os.PathLike, data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def write_text(path: str | os.PathLike, text: str) -> None:
    write_bytes(path, text.encode("utf-8"))


def write_json(path: str | os.PathLike, obj: Any, indent: int | None = 2) -> None:
    write_text(path, json.dumps(obj, indent=indent, default=_json_default) + "\n")


def read_json(path: str | os.PathLike) -> Any:
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def _json_default(o: Any) -> Any:
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"{type(o).__name__} is not JSON serialisable")


# ------------------------------------------------------------------------------------------ CAM store

CAM_KEYS = ("classes", "maps", "logits", "image_size")


def save_cams(
    path: str | os.PathLike,
    classes: np.ndarray,
    maps: np.ndarray,
    logits: np.ndarray,
    image_size: tuple[int, int],
) -> None:
    """Write one image's maps as ``.npz`` with named arrays (no pickles).

    classes: int64 (K,) 0-based class indices; maps: (K, h, w) stored float16 at ``ceil(H/s) x ceil(W/s)``;
    logits: float32 (C,) classifier scores; image_size: (H, W) of the original image.
    """
    classes = np.asarray(classes, dtype=np.int64)
    maps = np.asarray(maps)
    if maps.ndim != 3 or maps.shape[0] != classes.shape[0]:
        raise ValueError(f"maps must be (K, h, w) with K={classes.shape[0]}, got {maps.shape}")
    if not np.isfinite(maps).all():
        raise ValueError(f"refusing to store non-finite maps in {path}")
    buf = io.BytesIO()
    np.savez(
        buf,
        classes=classes,
        maps=maps.astype(np.float16),
        logits=np.asarray(logits, dtype=np.float32),
        image_size=np.asarray(image_size, dtype=np.int64),
    )
    write_bytes(path, buf.getvalue())


def load_cams(path: str | os.PathLike, num_classes: int | None = None) -> dict[str, np.ndarray]:
    """Read a file written by :func:`save_cams`, checked by :func:`check_cams`; maps come back as float32.

    Raises :class:`wsl.errors.BadItem` naming the file and what is wrong with it.
    """
    out = check_cams(path, num_classes)
    out["maps"] = out["maps"].astype(np.float32)
    return out


def check_cams(path: str | os.PathLike, num_classes: int | None = None) -> dict[str, np.ndarray]:
    """The arrays of a CAM file after checking that they are what :func:`save_cams` writes.

    Checked: the file is a readable ``.npz`` (not truncated) holding every array of ``CAM_KEYS``;
    ``classes`` (K,) are distinct indices into ``logits`` (C,) (``C == num_classes`` when given);
    ``maps`` are (K, h, w) with as many maps as classes; ``image_size`` is a positive (H, W) and the maps
    cover it with one stride on both axes (``h / H ~ w / W``, ``h <= H``: stage=cams stores
    ``ceil(H' / stride)`` of the image, downscaled to ``H'`` by ``dataset.max_side``); maps and logits are
    finite. Raises :class:`wsl.errors.BadItem` with the first problem found.
    """
    try:
        with np.load(path, allow_pickle=False) as z:
            missing = [k for k in CAM_KEYS if k not in z.files]
            if missing:
                raise BadItem(f"{path}: not a complete CAM file, arrays {missing} are missing")
            rec = {k: z[k] for k in CAM_KEYS}
    except BadItem:
        raise
    except FileNotFoundError:
        raise BadItem(f"{path}: no such CAM file") from None
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error, KeyError) as e:
        raise BadItem(f"{path}: unreadable CAM file (truncated or not an .npz: {e})") from None
    problem = _cams_problem(rec, num_classes)
    if problem:
        raise BadItem(f"{path}: {problem}")
    return rec


def _cams_problem(rec: dict[str, np.ndarray], num_classes: int | None) -> str | None:
    """What is wrong with the arrays of a CAM file, or None (see :func:`check_cams`)."""
    classes, maps, logits, size = rec["classes"], rec["maps"], rec["logits"], rec["image_size"]
    if size.shape != (2,) or not np.issubdtype(size.dtype, np.integer) or (size <= 0).any():
        return f"image_size must be a positive (H, W), got {size.tolist()}"
    if logits.ndim != 1 or (num_classes is not None and logits.shape[0] != num_classes):
        return f"logits have shape {logits.shape}, expected ({num_classes if num_classes else 'C'},)"
    if classes.ndim != 1 or not np.issubdtype(classes.dtype, np.integer):
        return f"classes must be a 1-d integer array, got {classes.dtype} {classes.shape}"
    if ((classes < 0) | (classes >= logits.shape[0])).any() or len(set(classes.tolist())) != len(classes):
        return f"classes {classes.tolist()} are not distinct indices below {logits.shape[0]}"
    if maps.ndim != 3 or maps.shape[0] != classes.shape[0]:
        return f"{maps.shape[0] if maps.ndim == 3 else '?'} maps {maps.shape} for {len(classes)} classes"
    (h, w), (H, W) = maps.shape[1:], (int(size[0]), int(size[1]))
    # stage=cams stores ceil(round(H * f) / s) rows for a downscale f <= 1 and stride s: h / H and w / W
    # differ by less than 2 / H + 2 / W (rounding), whatever f and s are.
    if h < 1 or w < 1 or h > H or w > W or abs(h / H - w / W) > 2 / H + 2 / W:
        return f"maps of {h}x{w} do not fit an image of {H}x{W}"
    if not (np.isfinite(maps).all() and np.isfinite(logits).all()):
        return "non-finite values (NaN or inf) in maps or logits"
    return None


def is_complete_npz(path: str | os.PathLike, num_classes: int | None = None) -> bool:
    """True when ``path`` is a CAM file that passes :func:`check_cams` (what a resumed run trusts: a
    damaged file is never counted as done, so the stage that makes it makes it again)."""
    try:
        check_cams(path, num_classes)
    except BadItem:
        return False
    return True


# --------------------------------------------------------------------------------------- label PNGs


def voc_palette(n: int = 256) -> np.ndarray:
    """The PASCAL VOC colour map (bit-interleaved): 1 -> (128,0,0), 255 -> (224,224,192). Shape (n, 3)."""
    return _voc_palette(n).copy()


@functools.lru_cache(maxsize=4)
def _voc_palette(n: int) -> np.ndarray:
    pal = np.zeros((n, 3), dtype=np.uint8)
    for i in range(n):
        c, r, g, b = i, 0, 0, 0
        for j in range(8):
            r |= ((c >> 0) & 1) << (7 - j)
            g |= ((c >> 1) & 1) << (7 - j)
            b |= ((c >> 2) & 1) << (7 - j)
            c >>= 3
        pal[i] = (r, g, b)
    return pal


def write_label_png(path: str | os.PathLike, labels: np.ndarray) -> None:
    """Write an (H, W) uint8 label map as a palette PNG with the VOC palette (255 = void / unlabelled)."""
    labels = np.asarray(labels)
    if labels.ndim != 2:
        raise ValueError(f"label map must be (H, W), got {labels.shape}")
    if labels.min(initial=0) < 0 or labels.max(initial=0) > 255:
        raise ValueError("label values must lie in [0, 255]")
    img = Image.fromarray(labels.astype(np.uint8), mode="P")
    img.putpalette(_voc_palette(256).reshape(-1).tolist())
    with atomic_path(path) as tmp:
        img.save(tmp, format="PNG")


def read_label_png(path: str | os.PathLike) -> np.ndarray:
    """Read class indices from a label PNG as they are stored (palette indices, never RGB colours)."""
    with Image.open(path) as img:
        if img.mode not in ("P", "L"):
            raise ValueError(f"{path}: label PNGs must be palette or single-channel, got mode {img.mode}")
        return np.array(img, dtype=np.uint8)


# ------------------------------------------------------------------------------------------- images


# EXIF orientations that swap width and height (transpose, rotate 90 / 270, transverse).
_SWAPS_AXES = {5, 6, 7, 8}


def read_image(path: str | os.PathLike) -> np.ndarray:
    """Read an image as viewers show it: RGB uint8 (H, W, 3), (H, W) those of the displayed image.

    - EXIF orientation applied (``ImageOps.exif_transpose``): a phone photo stored sideways with
      Orientation=6 comes back upright, as every viewer shows it.
    - More than 8 bits per channel is scaled to 8 bits, never clipped: 16-bit grayscale (``I;16``, or
      ``I`` holding 16-bit PNG data) is ``round(v * 255 / 65535)``; 32-bit float (``F``) is taken as
      [0, 1]. (Pillow already reduces 16-bit RGB(A) PNGs to their high byte.)
    - Transparency is composited on black: ``rgb * alpha / 255``, so what a viewer shows as see-through
      never feeds the model hidden colours (palette transparency included).
    - Grayscale, bilevel, palette, CMYK, YCbCr and LAB are converted to RGB.

    Truncated or unreadable files raise ``OSError`` (or ``SyntaxError`` / ``ValueError`` /
    ``Image.DecompressionBombError`` from Pillow; :func:`wsl.data.base.read_image_checked` makes them one
    :class:`wsl.errors.BadItem`).
    """
    with Image.open(path) as img:
        img.load()
        if _orientation(img) != 1:
            ImageOps.exif_transpose(img, in_place=True)
        return _rgb8(img)


def _orientation(img: Image.Image) -> int:
    """The EXIF orientation (1..8), 1 when absent or when the EXIF block is broken (viewers ignore it)."""
    try:
        value = img.getexif().get(0x0112, 1)
    except Exception:  # noqa: BLE001 - Pillow raises several types on a malformed EXIF block
        return 1
    return value if value in range(1, 9) else 1


def _rgb8(img: Image.Image) -> np.ndarray:
    """Any Pillow mode -> RGB uint8 (H, W, 3) as :func:`read_image` documents."""
    if img.mode.startswith("I") or img.mode == "F":
        a = np.asarray(img)
        if img.mode == "F":
            a8 = np.rint(np.clip(np.nan_to_num(a.astype(np.float64)), 0.0, 1.0) * 255.0)
        else:  # I;16*, or I (32-bit signed) as Pillow reads 16-bit PNGs: the PNG's range is 0..65535
            a8 = (np.clip(a.astype(np.int64), 0, 65535) * 255 + 32767) // 65535
        return np.repeat(a8.astype(np.uint8)[..., None], 3, axis=2)
    if img.mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in img.info:
        rgba = np.asarray(img.convert("RGBA"), dtype=np.uint16)
        rgb = (rgba[..., :3] * rgba[..., 3:] + 127) // 255  # composited on black, rounded
        return rgb.astype(np.uint8)
    if img.mode != "RGB":
        img = img.convert("RGB")
    return np.array(img, dtype=np.uint8)


def image_size(path: str | os.PathLike) -> tuple[int, int]:
    """(H, W) of the image :func:`read_image` returns, from the header only (no decoding): the stored size,
    swapped when the EXIF orientation turns the image by 90 degrees. Unreadable headers raise ``OSError``."""
    with Image.open(path) as img:
        (w, h), orientation = img.size, _orientation(img)
    return (w, h) if orientation in _SWAPS_AXES else (h, w)


def write_image(path: str | os.PathLike, image: np.ndarray, quality: int = 95) -> None:
    """Write an RGB uint8 (H, W, 3) image; the format follows the suffix (JPEG, PNG)."""
    img = Image.fromarray(np.asarray(image, dtype=np.uint8))
    with atomic_path(path) as tmp:
        fmt = "JPEG" if Path(path).suffix.lower() in (".jpg", ".jpeg") else "PNG"
        img.save(tmp, format=fmt, **({"quality": quality} if fmt == "JPEG" else {}))


# ----------------------------------------------------------------------------------------- VOC XML


def write_voc_xml(
    path: str | os.PathLike,
    image_id: str,
    size_hw: tuple[int, int],
    objects: list[Mapping[str, Any]],
) -> None:
    """Write a VOC annotation. objects: dicts with ``name``, ``bbox`` (x0, y0, x1, y1, 0-based inclusive)
    and optional ``difficult``; the file stores 1-based inclusive coordinates, as VOC does."""
    root = ET.Element("annotation")
    ET.SubElement(root, "filename").text = f"{image_id}.jpg"
    size = ET.SubElement(root, "size")
    ET.SubElement(size, "width").text = str(size_hw[1])
    ET.SubElement(size, "height").text = str(size_hw[0])
    ET.SubElement(size, "depth").text = "3"
    ET.SubElement(root, "segmented").text = "1"
    for obj in objects:
        o = ET.SubElement(root, "object")
        ET.SubElement(o, "name").text = str(obj["name"])
        ET.SubElement(o, "difficult").text = str(int(bool(obj.get("difficult", False))))
        bb = ET.SubElement(o, "bndbox")
        x0, y0, x1, y1 = (int(v) for v in obj["bbox"])
        for k, v in zip(("xmin", "ymin", "xmax", "ymax"), (x0 + 1, y0 + 1, x1 + 1, y1 + 1)):
            ET.SubElement(bb, k).text = str(v)
    ET.indent(root)
    write_bytes(path, ET.tostring(root, encoding="utf-8"))


def read_voc_xml(path: str | os.PathLike) -> dict[str, Any]:
    """Parse a VOC annotation: ``{"size": (H, W), "objects": [{"name", "difficult", "bbox"}]}``, with
    ``bbox`` converted to 0-based inclusive (x0, y0, x1, y1)."""
    root = ET.parse(path).getroot()
    size = root.find("size")
    hw = (int(size.findtext("height")), int(size.findtext("width"))) if size is not None else (0, 0)
    objects = []
    for o in root.iter("object"):
        bb = o.find("bndbox")
        coords = [int(round(float(bb.findtext(k)))) - 1 for k in ("xmin", "ymin", "xmax", "ymax")]
        objects.append(
            {
                "name": o.findtext("name").strip(),
                "difficult": bool(int(o.findtext("difficult", "0") or 0)),
                "bbox": tuple(coords),
            }
        )
    return {"size": hw, "objects": objects}


# ----------------------------------------------------------------------------------------- id lists


def read_id_list(path: str | os.PathLike) -> list[str]:
    """Read a list file of image ids, one per line (first token), rejecting anything that is a path."""
    ids = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            tok = line.split()
            if tok:
                ids.append(check_id(tok[0], source=str(path)))
    return ids


def check_id(image_id: str, source: str = "") -> str:
    """An id is a file stem, never a path: reject separators, ``..`` and absolute names."""
    bad = (
        not image_id
        or "/" in image_id
        or "\\" in image_id
        or image_id in (".", "..")
        or ".." in image_id
        or os.path.isabs(image_id)
        or "\x00" in image_id
    )
    if bad:
        where = f" in {source}" if source else ""
        raise ValueError(f"invalid image id {image_id!r}{where}: ids are file stems, not paths")
    return image_id


# --------------------------------------------------------------------------------------- checkpoints


def save_checkpoint(path: str | os.PathLike, state: Mapping[str, Any]) -> None:
    """Save a checkpoint made only of tensors, numbers, strings, lists and dicts (loadable weights_only)."""
    import torch

    with atomic_path(path) as tmp:
        torch.save(dict(state), tmp)


def load_checkpoint(path: str | os.PathLike, map_location: str | Any = "cpu") -> dict[str, Any]:
    """Load a checkpoint with ``weights_only=True``: never unpickles arbitrary objects.

    A file that is not a torch checkpoint, or a pickle that would run code, raises
    :class:`wsl.errors.UserError` naming the file.
    """
    import torch

    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except FileNotFoundError:
        raise UserError(f"checkpoint not found: {path}") from None
    except OSError as e:  # a folder, no permission
        raise UserError(f"cannot read checkpoint {path}: {e.strerror or e}") from None
    except Exception as e:  # noqa: BLE001 - whatever torch.load raises on bytes it cannot parse: a text
        # file gives IndexError, a pickle of a class UnpicklingError, a damaged zip RuntimeError/BadZipFile
        why = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise UserError(
            f"{path} is not a checkpoint wsl can load safely (weights_only=True): {why[:200]}"
        ) from None
    if not isinstance(state, dict):
        raise UserError(f"{path} holds a {type(state).__name__}, not a state dict")
    return state


def _whole_module(path: str | os.PathLike) -> str | None:
    """The class of a whole pickled ``nn.Module`` in ``path`` (``torch.save(model)``), else None."""
    import torch

    try:
        unsafe = torch.serialization.get_unsafe_globals_in_checkpoint(path)
    except Exception:  # noqa: BLE001 - not a zip checkpoint at all: load_checkpoint's message says so
        return None
    modules = [
        g for g in unsafe if g.startswith(("torch.nn.modules.", "torchvision.models.", "timm.models."))
    ]
    return (modules or [g for g in unsafe if "model" in g.lower()] or [None])[0]


def _load_safetensors(path: Path) -> dict[str, Any]:
    """A ``.safetensors`` file (timm's hub format): tensors only, no pickle by construction."""
    try:
        from safetensors import SafetensorError
        from safetensors.torch import load_file
    except ImportError:
        raise UserError(
            f"{path}: reading .safetensors needs the safetensors package (pip install safetensors)"
        ) from None
    try:
        return load_file(str(path))
    except (SafetensorError, OSError) as e:
        raise UserError(f"{path} is not a readable safetensors file: {str(e)[:200]}") from None


def load_state_dict(path: str | os.PathLike) -> dict[str, Any]:
    """The model weights of a checkpoint file, whatever its form.

    Accepted: a plain state dict, ``{"model": state_dict}`` (what wsl writes) or ``{"state_dict": ...}``,
    each possibly with DDP's ``module.`` prefix on every key (removed), loaded with ``weights_only=True``;
    or a ``.safetensors`` file. A whole pickled model (``torch.save(model)``) is one line saying to save its
    ``state_dict()`` instead: wsl never unpickles classes.
    """
    p = Path(path).expanduser()
    if p.suffix == ".safetensors" and p.is_file():
        return _load_safetensors(p)
    try:
        state = load_checkpoint(p)
    except UserError:
        cls = _whole_module(p) if p.is_file() else None
        if cls:
            raise UserError(
                f"{p} holds a whole pickled model ({cls}), not a state dict; wsl loads weights only "
                "(no pickles): save it with torch.save(model.state_dict(), path)"
            ) from None
        raise
    return weights_of(state)


def weights_of(checkpoint: dict[str, Any]) -> dict[str, Any]:
    """The model weights inside a loaded checkpoint (:func:`load_state_dict`'s forms, DDP prefix removed),
    for a caller that has already read the file for its other keys."""
    state = checkpoint
    for key in ("model", "state_dict"):
        if isinstance(state.get(key), dict):
            state = state[key]
            break
    if state and all(k.startswith("module.") for k in state):
        state = {k[len("module.") :]: v for k, v in state.items()}
    return state


def imagenet_state_dict(url: str, what: str, key: str = "model.pretrained") -> dict[str, Any]:
    """torchvision ImageNet weights from the torch hub cache, downloaded there (hash checked) if absent.

    Offline (or on a bad hash) this is one :class:`wsl.errors.UserError` line naming the file to place in
    the cache and the key (``key``) that turns pretrained weights off.
    """
    from urllib.parse import urlparse

    import torch

    path = Path(torch.hub.get_dir()) / "checkpoints" / Path(urlparse(url).path).name
    if path.is_file():
        return load_checkpoint(path)
    try:
        return torch.hub.load_state_dict_from_url(
            url, map_location="cpu", progress=False, check_hash=True, weights_only=True
        )
    except Exception as err:  # offline, proxy, bad hash: one clear line instead of a network traceback
        raise UserError(
            f"ImageNet weights of {what} are not in the torch hub cache ({path}) and the download failed "
            f"({type(err).__name__}): download {url} to that path, or set {key}=false"
        ) from None
