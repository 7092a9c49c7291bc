"""Drawing primitives of the toy dataset: colours, cluttered backgrounds, object shapes and textures.

Every function draws with vectorised numpy/cv2 on full-canvas coordinate grids and takes its randomness
from the ``numpy.random.Generator`` it is given, so a scene is a pure function of its generator state.
Object classes differ in shape AND texture; colours of objects and backgrounds all come from the same
distribution (:func:`random_colour`), so colour alone says little about the class.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

Grid = tuple[np.ndarray, np.ndarray]  # (yy, xx) float32 (H, W) pixel-centre coordinates
LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)  # ITU-R BT.601 luminance weights
Drawn = tuple[np.ndarray, np.ndarray, np.ndarray]  # bool mask, pattern in [0, 1], shading ramp; all (H, W)


def grid(h: int, w: int) -> Grid:
    """Pixel coordinate grids (yy, xx), float32 (H, W)."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    return yy, xx


def random_colour(rng: np.random.Generator) -> np.ndarray:
    """A colour from the distribution shared by every class and the background: float32 RGB in [0, 255]."""
    hsv = np.array([[[rng.uniform(0, 180), rng.uniform(40, 255), rng.uniform(60, 255)]]], dtype=np.float32)
    hsv[..., 0] = np.floor(hsv[..., 0])
    rgb = cv2.cvtColor(hsv.astype(np.uint8), cv2.COLOR_HSV2RGB)
    return rgb.reshape(3).astype(np.float32)


def colour_pair(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Two shared-distribution colours whose luminances differ by >= 70 (of 255), so that a texture shows
    in any colour; after 50 rejected draws the second is the complement of the first."""
    c1 = random_colour(rng)
    for _ in range(50):
        c2 = random_colour(rng)
        if abs(float((c1 - c2) @ LUMA)) >= 70:
            return c1, c2
    return c1, 255 - c1


def background(rng: np.random.Generator, g: Grid) -> np.ndarray:
    """A cluttered background: colour gradient, low-frequency blotches, grain, strokes and soft blobs."""
    yy, xx = g
    h, w = yy.shape
    a = rng.uniform(0, 2 * math.pi)
    t = xx * math.cos(a) + yy * math.sin(a)
    t = (t - t.min()) / max(float(t.max() - t.min()), 1.0)
    ca, cb = random_colour(rng), random_colour(rng)
    img = ca * (1 - t)[..., None] + cb * t[..., None]
    gh, gw = rng.integers(2, 7, size=2)
    blotch = rng.normal(0, 22, size=(gh, gw, 3)).astype(np.float32)
    img += cv2.resize(blotch, (w, h), interpolation=cv2.INTER_CUBIC)
    grain = rng.standard_normal(size=(h, w), dtype=np.float32)
    k = (1, int(rng.choice([7, 11, 15]))) if rng.random() < 0.5 else (int(rng.choice([7, 11, 15])), 1)
    grain = cv2.GaussianBlur(grain, k, 0)
    img += (grain / (grain.std() + 1e-6) * rng.uniform(3, 10))[..., None]
    for _ in range(int(rng.integers(2, 7))):
        if rng.random() < 0.6:
            _stroke(rng, img)
        else:
            _blob(rng, img, g)
    return img


def _stroke(rng: np.random.Generator, img: np.ndarray) -> None:
    h, w = img.shape[:2]
    n = int(rng.integers(3, 7))
    steps = rng.normal(0, rng.uniform(8, 30), size=(n, 2)).cumsum(0)
    pts = (steps + [rng.uniform(0, w), rng.uniform(0, h)]).round().astype(np.int32)
    colour = tuple(float(c) for c in random_colour(rng))
    cv2.polylines(img, [pts], False, colour, int(rng.integers(1, 3)), cv2.LINE_AA)


def _blob(rng: np.random.Generator, img: np.ndarray, g: Grid) -> None:
    """A soft Gaussian spot, drawn in a window of +- 3 sigma around its centre."""
    h, w = img.shape[:2]
    cy, cx = rng.uniform(0, h), rng.uniform(0, w)
    r = rng.uniform(3, 10)
    y0, y1 = max(int(cy - 3 * r), 0), min(int(cy + 3 * r) + 1, h)
    x0, x1 = max(int(cx - 3 * r), 0), min(int(cx + 3 * r) + 1, w)
    yy, xx = g[0][y0:y1, x0:x1], g[1][y0:y1, x0:x1]
    alpha = np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * r * r))[..., None]
    win = img[y0:y1, x0:x1]
    win *= 1 - alpha
    win += alpha * random_colour(rng)


def _frame(g: Grid, cy: float, cx: float, angle: float) -> tuple[np.ndarray, np.ndarray]:
    """Object-local coordinates (u along the object's axis, v across), float32 (H, W)."""
    yy, xx = g
    c, s = math.cos(angle), math.sin(angle)
    dx, dy = xx - cx, yy - cy
    return dx * c + dy * s, -dx * s + dy * c


def _poly(shape_hw: tuple[int, int], pts_local: np.ndarray, cy: float, cx: float, angle: float) -> np.ndarray:
    """Fill a polygon given in object-local (u, v) coordinates; returns a bool (H, W) mask."""
    c, s = math.cos(angle), math.sin(angle)
    u, v = pts_local[:, 0], pts_local[:, 1]
    x, y = cx + u * c - v * s, cy + u * s + v * c
    canvas = np.zeros(shape_hw, dtype=np.uint8)
    pts = np.round(np.stack([x, y], 1) * 16).astype(np.int32)  # 4 bits of sub-pixel precision
    cv2.fillPoly(canvas, [pts], 1, cv2.LINE_8, shift=4)
    return canvas.astype(bool)


def _stripes(t: np.ndarray, period: float, duty: float = 0.5) -> np.ndarray:
    return (np.mod(t / period, 1.0) < duty).astype(np.float32)


def draw_ellipse(rng: np.random.Generator, g: Grid, cy: float, cx: float, s: float) -> Drawn:
    """Ellipse with concentric rings (a target pattern) around its centre."""
    u, v = _frame(g, cy, cx, rng.uniform(0, math.pi))
    a = s / 2
    b = a * rng.uniform(0.55, 1.0)
    mask = (u / a) ** 2 + (v / b) ** 2 <= 1
    return mask, _stripes(np.sqrt(u * u + v * v) + rng.uniform(0, 13), rng.uniform(8, 13)), u / s


def draw_rectangle(rng: np.random.Generator, g: Grid, cy: float, cx: float, s: float) -> Drawn:
    """Rotated rectangle with a checkerboard."""
    u, v = _frame(g, cy, cx, rng.uniform(0, math.pi))
    a = s / 2
    b = a * rng.uniform(0.45, 0.9)
    mask = (np.abs(u) <= a) & (np.abs(v) <= b)
    period = rng.uniform(8, 13)
    p = np.mod(np.floor(u / period) + np.floor(v / period), 2).astype(np.float32)
    return mask, p, u / s


def draw_triangle(rng: np.random.Generator, g: Grid, cy: float, cx: float, s: float) -> Drawn:
    """Triangle with straight hard stripes at a random angle."""
    ang = rng.uniform(0, 2 * math.pi)
    th = np.array([0, 2 * math.pi / 3, 4 * math.pi / 3]) + rng.uniform(-0.2, 0.2, 3)
    r = 0.55 * s * rng.uniform(0.9, 1.1, 3)
    mask = _poly(g[0].shape, np.stack([r * np.cos(th), r * np.sin(th)], 1), cy, cx, ang)
    u, v = _frame(g, cy, cx, rng.uniform(0, math.pi))
    return mask, _stripes(u, rng.uniform(7, 12)), v / s


def draw_star(rng: np.random.Generator, g: Grid, cy: float, cx: float, s: float) -> Drawn:
    """Five-pointed star with polka dots."""
    ang = rng.uniform(0, 2 * math.pi)
    th = np.arange(10) * math.pi / 5
    r = 0.55 * s * np.where(np.arange(10) % 2 == 0, 1.0, rng.uniform(0.42, 0.55))
    mask = _poly(g[0].shape, np.stack([r * np.cos(th), r * np.sin(th)], 1), cy, cx, ang)
    u, v = _frame(g, cy, cx, ang)
    period = rng.uniform(9, 13)
    fu, fv = np.mod(u / period, 1.0) - 0.5, np.mod(v / period, 1.0) - 0.5
    p = (fu * fu + fv * fv < 0.09).astype(np.float32)
    return mask, p, u / s


def draw_boat(rng: np.random.Generator, g: Grid, cy: float, cx: float, s: float) -> Drawn:
    """Sailing boat: trapezoid hull with planks, mast and a plain triangular sail; (cy, cx) is the deck."""
    ang = rng.uniform(-0.12, 0.12)
    hh = 0.28 * s
    hull = np.array([[-s / 2, 0], [s / 2, 0], [0.3 * s, hh], [-0.3 * s, hh]])
    m, mw = rng.uniform(-0.15, 0.05) * s, max(1.2, 0.025 * s)
    mast = np.array([[m - mw, -0.8 * s], [m + mw, -0.8 * s], [m + mw, 0], [m - mw, 0]])
    sail = np.array([[m + mw, -0.75 * s], [m + mw, -0.1 * s], [m + rng.uniform(0.3, 0.42) * s, -0.1 * s]])
    shape = g[0].shape
    mask = _poly(shape, hull, cy, cx, ang) | _poly(shape, mast, cy, cx, ang) | _poly(shape, sail, cy, cx, ang)
    u, v = _frame(g, cy, cx, ang)
    p = np.where(v > 0, _stripes(v, rng.uniform(6, 9), duty=0.3), 0.85).astype(np.float32)
    return mask, p, u / s


def water_surface(rng: np.random.Generator, w: int, h: int) -> np.ndarray:
    """The y of the water's wavy top edge at each column, float32 (W,)."""
    x = np.arange(w, dtype=np.float32)
    y0 = h * rng.uniform(0.42, 0.72)
    waves = sum(
        rng.uniform(1.5, 5) * np.sin(2 * math.pi * x / rng.uniform(25, 70) + rng.uniform(0, 6.3))
        for _ in range(2)
    )
    return (y0 + waves).astype(np.float32)


def draw_water(rng: np.random.Generator, g: Grid, surface: np.ndarray) -> Drawn:
    """Water: everything below a wavy surface, with wavy horizontal ripples."""
    yy, xx = g
    mask = yy >= surface[None, :]
    bend = rng.uniform(1.5, 4) * np.sin(2 * math.pi * xx / rng.uniform(15, 35) + rng.uniform(0, 6.3))
    p = np.clip(0.5 + 0.9 * np.sin(2 * math.pi * (yy + bend) / rng.uniform(8, 12)), 0, 1)
    return mask, p.astype(np.float32), (yy - surface[None, :]) / max(yy.shape)


def paint(
    rng: np.random.Generator, img: np.ndarray, mask: np.ndarray, p: np.ndarray, shade: np.ndarray
) -> None:
    """Paint a textured object into ``img`` where ``mask``: two shared-distribution colours mixed by the
    pattern ``p`` in [0, 1], times a soft shading ramp along ``shade`` (object-local, about [-0.5, 0.5])."""
    c1, c2 = colour_pair(rng)
    k = 1 + rng.uniform(-0.35, 0.35) * shade[mask]
    pm = p[mask][:, None]
    img[mask] = (c1 * (1 - pm) + c2 * pm) * k[:, None]


DRAWERS = {
    "ellipse": draw_ellipse,
    "rectangle": draw_rectangle,
    "triangle": draw_triangle,
    "star": draw_star,
    "boat": draw_boat,
}
