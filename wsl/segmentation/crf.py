"""Fully connected CRF (Kraehenbuehl & Koltun, NIPS 2011) on pydensecrf2, with strict input checks.

- :func:`dense_crf`: the probability CRF of SEC (Kolesnikov & Lampert, ECCV 2016) and DeepLab (Chen et
  al.): unary ``-log p``, a Gaussian kernel (sxy 3/s, compat 3) and a bilateral kernel (sxy 80/s, srgb 13,
  compat 10), 10 mean-field iterations. ``s`` is 12 on SEC's 41x41 training grid (about image side / grid
  side) and 1 at full resolution.
- :func:`label_crf`: IRN's label CRF (Ahn et al., CVPR 2019): unary from a label map with ``gt_prob`` 0.7,
  Gaussian (sxy 3, compat 3), bilateral (sxy 50, srgb 5, compat 10).
- :class:`CRFPool` / :func:`crf_map`: run many CRFs in worker processes (spawn start method), or inline.

The image must be the original uint8 picture ``(H, W, 3)``, not a normalised float tensor cast to uint8;
pydensecrf takes the width first (``DenseCRF2D(W, H, C)``).
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import numpy as np
import pydensecrf.densecrf as dcrf
from pydensecrf.utils import unary_from_labels

__all__ = ["CRFPool", "check_image", "crf_map", "dense_crf", "label_crf"]


def check_image(image: np.ndarray) -> np.ndarray:
    """Validate the picture for a CRF and return a C-contiguous copy.

    Args:
        image: uint8 ``(H, W, 3)`` original picture (the channel order does not matter: srgb is isotropic).

    Raises:
        TypeError: not a NumPy uint8 array (e.g. a float image or a torch tensor).
        ValueError: not ``(H, W, 3)``.
    """
    if not isinstance(image, np.ndarray):
        raise TypeError(f"CRF image must be a NumPy uint8 array (H, W, 3), got {type(image).__name__}")
    if image.dtype != np.uint8:
        raise TypeError(
            f"CRF image must be the original uint8 picture, got dtype {image.dtype} "
            "(a normalised float image cast to uint8 loses the colour contrast)"
        )
    if image.ndim != 3 or image.shape[2] != 3 or image.shape[0] < 1 or image.shape[1] < 1:
        raise ValueError(f"CRF image must be (H, W, 3), got shape {image.shape}")
    return np.ascontiguousarray(image.copy())


def _check_scalars(iterations: int, scale: float = 1.0) -> None:
    if not (isinstance(iterations, int | np.integer) and iterations >= 0):
        raise ValueError(f"iterations must be a non-negative int, got {iterations!r}")
    if not (np.isfinite(scale) and scale > 0):
        raise ValueError(f"scale must be a positive number, got {scale!r}")


def dense_crf(image: np.ndarray, probs: np.ndarray, scale: float = 1.0, iterations: int = 10) -> np.ndarray:
    """SEC's dense CRF on class probabilities.

    Args:
        image: uint8 ``(H, W, 3)`` original picture (resized to the probabilities' grid by the caller).
        probs: ``(C, H, W)`` class probabilities, finite and strictly positive (clamp, e.g. at 1e-5, before
            calling; they need not sum to one: only ``-log p`` is used).
        scale: s in the kernel widths ``3 / s`` and ``80 / s`` (SEC: 12 on the 41x41 grid, 1 at full size).
        iterations: mean-field iterations.

    Returns:
        float32 ``(C, H, W)`` posterior marginals Q (each pixel sums to one).
    """
    image = check_image(image)
    _check_scalars(iterations, scale)
    probs = np.asarray(probs)
    if not np.issubdtype(probs.dtype, np.floating) or probs.ndim != 3:
        raise ValueError(f"probs must be a float (C, H, W) array, got {probs.dtype} {probs.shape}")
    h, w = image.shape[:2]
    if probs.shape[1:] != (h, w):
        raise ValueError(f"probs {probs.shape} do not match the image: expected (C, {h}, {w})")
    if not (np.isfinite(probs).all() and (probs > 0).all()):
        raise ValueError("probs must be finite and strictly positive (clamp them before the CRF)")
    c = probs.shape[0]
    unary = np.ascontiguousarray(-np.log(probs.astype(np.float32)).reshape(c, h * w))
    crf = dcrf.DenseCRF2D(w, h, c)  # width first
    crf.setUnaryEnergy(unary)
    crf.addPairwiseGaussian(sxy=3 / scale, compat=3)
    crf.addPairwiseBilateral(sxy=80 / scale, srgb=13, rgbim=image, compat=10)
    return np.asarray(crf.inference(iterations), dtype=np.float32).reshape(c, h, w)


def label_crf(
    image: np.ndarray, labels: np.ndarray, n_labels: int, gt_prob: float = 0.7, iterations: int = 10
) -> np.ndarray:
    """IRN's CRF on a label map: each pixel's label has probability ``gt_prob``, the rest share the remainder.

    Args:
        image: uint8 ``(H, W, 3)`` original picture.
        labels: integer ``(H, W)`` with values in ``[0, n_labels)`` (0 is a label like any other).
        n_labels: number of labels.
        gt_prob: confidence of the given label, in (0, 1).

    Returns:
        int64 ``(H, W)`` refined labels (argmax of the marginals).
    """
    image = check_image(image)
    _check_scalars(iterations)
    labels = np.asarray(labels)
    h, w = image.shape[:2]
    if labels.shape != (h, w) or not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f"labels must be an integer ({h}, {w}) array, got {labels.dtype} {labels.shape}")
    if n_labels < 1 or labels.min() < 0 or labels.max() >= n_labels:
        raise ValueError(f"labels must lie in [0, {n_labels})")
    if not 0 < gt_prob < 1:
        raise ValueError(f"gt_prob must lie in (0, 1), got {gt_prob}")
    if n_labels == 1:
        return np.zeros((h, w), dtype=np.int64)
    unary = np.ascontiguousarray(
        unary_from_labels(labels.astype(np.int64), n_labels, gt_prob, zero_unsure=False)
    )
    crf = dcrf.DenseCRF2D(w, h, n_labels)
    crf.setUnaryEnergy(unary)
    crf.addPairwiseGaussian(sxy=3, compat=3)
    crf.addPairwiseBilateral(sxy=50, srgb=5, rgbim=image, compat=10)
    q = np.asarray(crf.inference(iterations)).reshape(n_labels, h, w)
    return q.argmax(axis=0).astype(np.int64)


def _call(job: tuple[Callable[..., Any], tuple[Any, ...]]) -> Any:
    fn, args = job
    return fn(*args)


class CRFPool:
    """A pool of worker processes for CRFs over batches and datasets.

    ``processes`` 0 or 1 runs everything inline in the calling process (no workers). Workers use the
    ``spawn`` start method by default, safe with threads and CUDA in the parent; the callables must be
    module-level functions (picklable). Use as a context manager, or call :meth:`close`.
    """

    def __init__(self, processes: int = 0, context: str = "spawn") -> None:
        if processes < 0:
            raise ValueError("processes must be >= 0")
        self.processes = processes
        self._pool = multiprocessing.get_context(context).Pool(processes) if processes > 1 else None

    def imap(self, fn: Callable[..., Any], jobs: Iterable[tuple[Any, ...]]) -> Iterator[Any]:
        """``fn(*args)`` for each argument tuple, in order (lazily; jobs may be a generator)."""
        if self._pool is None:
            return (fn(*args) for args in jobs)
        return self._pool.imap(_call, ((fn, tuple(args)) for args in jobs))

    def dense(
        self,
        images: Iterable[np.ndarray],
        probs: Iterable[np.ndarray],
        scale: float = 1.0,
        iterations: int = 10,
    ) -> list[np.ndarray]:
        """:func:`dense_crf` for each (image, probs) pair, e.g. the 15 images of a SEC batch.

        Args:
            images: uint8 ``(H, W, 3)`` pictures (a ``(B, H, W, 3)`` array works too).
            probs: matching ``(C, H, W)`` probabilities (or a ``(B, C, H, W)`` array).

        Returns:
            list of float32 ``(C, H, W)`` marginals, in order.
        """
        return list(self.imap(dense_crf, ((im, p, scale, iterations) for im, p in zip(images, probs))))

    def close(self) -> None:
        if self._pool is not None:
            self._pool.close()
            self._pool.join()
            self._pool = None

    def __enter__(self) -> CRFPool:
        return self

    def __exit__(self, *exc: object) -> None:
        if self._pool is not None and exc[0] is not None:
            self._pool.terminate()
        self.close()


def crf_map(
    images: Iterable[np.ndarray],
    probs: Iterable[np.ndarray],
    scale: float = 1.0,
    iterations: int = 10,
    processes: int = 0,
) -> list[np.ndarray]:
    """One-shot :meth:`CRFPool.dense` (starts and stops its own pool; keep a :class:`CRFPool` for many)."""
    with CRFPool(processes) as pool:
        return pool.dense(images, probs, scale, iterations)
