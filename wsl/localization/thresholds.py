"""Component trees of a uint8 map: the components of every threshold level at once.

For a ``uint8`` map ``v`` and increasing levels ``t``, the components of ``{v > t}`` are nested
across levels (a component tree). :func:`component_levels` builds that tree top-down and returns
the bounding box (and, on request, the outer-contour area) of every component at every level
without labelling every level: a component is followed upward while it stays in one piece, and
its boxes at all those levels come at once from its row / column maxima. Used by
``wsl.localization.sweep_boxes`` to reproduce wsolevaluation's per-threshold contours quickly.
"""

from __future__ import annotations

import cv2
import numpy as np

__all__ = ["component_levels", "euler8", "fill_levels", "hole_levels"]

_KERNELS = {4: cv2.getStructuringElement(cv2.MORPH_CROSS, (3, 3)), 8: np.ones((3, 3), np.uint8)}


def _above(arrays, weights) -> np.ndarray:
    """``out[i] = sum_k weights[k] * #{q in arrays[k] : q >= i}``, ``i = 0..256``, for uint8 arrays."""
    total = np.zeros(257, dtype=np.int64)
    for q, w in zip(arrays, weights):
        if q.size:
            hist = cv2.calcHist([np.ascontiguousarray(q).reshape(1, -1)], [0], None, [256], [0, 256])
            total[:256] += w * hist.ravel().astype(np.int64)
    return total[::-1].cumsum()[::-1]


def _quads(v: np.ndarray):
    """The four pixels of every 2 x 2 quad and their sorted values (uint8 arrays)."""
    a, b, c, d = v[:-1, :-1], v[:-1, 1:], v[1:, :-1], v[1:, 1:]
    s1, l1, s2, l2 = np.minimum(a, b), np.maximum(a, b), np.minimum(c, d), np.maximum(c, d)
    m1, m2 = np.maximum(s1, s2), np.minimum(l1, l2)
    return (a, b, c, d), (np.minimum(s1, s2), np.minimum(m1, m2), np.maximum(m1, m2), np.maximum(l1, l2))


def euler8(v: np.ndarray, levels: np.ndarray) -> np.ndarray:
    """Euler number (8-connected components minus holes) of ``{v > t}`` at every level, ``(L,)``.

    Gray's bit-quad formula ``E8 = (n1 - n3 - 2 nD) / 4`` (Gray, IEEE Trans. Computers 1971) over
    the quads of the zero-padded image, for all levels at once: a quad has exactly ``k`` pixels
    above ``t`` for ``t`` between its ``(4-k)``-th and ``(5-k)``-th smallest values.
    """
    (a, b, c, d), (q0, q1, q2, q3) = _quads(cv2.copyMakeBorder(v, 1, 1, 1, 1, cv2.BORDER_CONSTANT, value=0))
    ad_lo, ad_hi, bc_lo, bc_hi = np.maximum(b, c), np.minimum(a, d), np.maximum(a, d), np.minimum(b, c)
    ad, bc = ad_hi > ad_lo, bc_hi > bc_lo  # the two pixels above t can be a diagonal pair
    arrays = [q3, q2, q1, q0, ad_hi[ad], ad_lo[ad], bc_hi[bc], bc_lo[bc]]
    above = _above(arrays, [1, -1, -1, 1, -2, 2, -2, 2])
    return above[np.asarray(levels) + 1] // 4


def _regional_maxima(v: np.ndarray, conn: int, floor: int, interior: bool = False):
    """One pixel (raster index), the value and a touches-the-border flag per regional maximum.

    A regional maximum is a ``conn``-connected plateau whose neighbours are all strictly lower;
    every component of ``{v > t}`` contains one. Plateaus ``<= floor`` are left out, and so are
    those touching the border when ``interior``.
    """
    k = _KERNELS[conn]
    cand = cv2.bitwise_and(cv2.compare(v, cv2.dilate(v, k), cv2.CMP_EQ), cv2.compare(v, floor, cv2.CMP_GT))
    other = cv2.dilate(cv2.bitwise_and(v, cv2.bitwise_not(cand)), k)  # highest non-candidate neighbour
    n, lab = cv2.connectedComponents(cand, connectivity=conn)
    keep = np.ones(n, dtype=bool)
    keep[0] = False
    keep[lab[cv2.bitwise_and(cand, cv2.compare(other, v, cv2.CMP_EQ)) > 0]] = False  # not a plateau top
    edge = np.zeros(n, dtype=bool)
    edge[np.concatenate([lab[0], lab[-1], lab[:, 0], lab[:, -1]])] = True
    if interior:
        keep &= ~edge
    flat = np.flatnonzero(keep[lab])
    rep = np.zeros(n, dtype=np.int64)
    rep[lab.ravel()[flat]] = flat  # any pixel of the plateau will do
    good = np.flatnonzero(keep)
    return rep[good], v.ravel()[rep[good]], edge[good]


def _count(mask: np.ndarray, conn: int) -> int:
    """Number of components of a binary uint8 image, with ``findContours``.

    ``conn=8``: 8-connected components (outer contours). ``conn=4``: 4-connected components (the
    holes of the complement framed by foreground: the holes of an 8-connected set are the
    4-connected components of its complement). ``conn=0``: 4-connected components that do not
    touch the image border (the complement framed by background).
    """
    if conn in (0, 4):
        framed = np.full((mask.shape[0] + 2, mask.shape[1] + 2), 255 if conn else 0, dtype=np.uint8)
        framed[1:-1, 1:-1] = cv2.compare(mask, 0, cv2.CMP_EQ)
        hierarchy = cv2.findContours(framed, cv2.RETR_CCOMP, cv2.CHAIN_APPROX_SIMPLE)[-1]
        return 0 if hierarchy is None else int((hierarchy[0, :, 3] >= 0).sum())
    hierarchy = cv2.findContours(mask, cv2.RETR_CCOMP, cv2.CHAIN_APPROX_SIMPLE)[-1]
    return 0 if hierarchy is None else int((hierarchy[0, :, 3] < 0).sum())


class _Tree:
    """State of one :func:`component_levels` call (see there)."""

    def __init__(self, v, conn, levels, area=False):
        self.v, self.conn, self.levels, self.area = v, conn, levels, area
        keys = ("level", "x0", "y0", "x1", "y1", "start") + (("area2",) if area else ())
        self.parts = {k: [] for k in keys}
        self.stack = []

    def push(self, mask, j, oy, ox, ry, rx, rv):
        """Queue the components of ``mask`` (uint8 crop at ``oy, ox``) as nodes anchored at ``j``."""
        n, lab = cv2.connectedComponents(mask, connectivity=self.conn)
        stats = cv2.connectedComponentsWithStats(mask, connectivity=self.conn)[2] if n > 5 else None
        inside = lab[ry, rx]
        for c in range(1, n):
            part = mask if n == 2 else cv2.compare(lab, c, cv2.CMP_EQ)
            if stats is not None:
                x, y, w, h = (int(q) for q in stats[c, :4])
            else:
                rows, cols = np.flatnonzero(part.any(1)), np.flatnonzero(part.any(0))
                y, x, h, w = (
                    int(rows[0]),
                    int(cols[0]),
                    int(rows[-1] - rows[0] + 1),
                    int(cols[-1] - cols[0] + 1),
                )
            crop = self.v[oy + y : oy + y + h, ox + x : ox + x + w]
            node = cv2.bitwise_and(crop, crop, mask=part[y : y + h, x : x + w])
            sel = inside == c
            self.stack.append((node, oy + y, ox + x, j, ry[sel] - y, rx[sel] - x, rv[sel]))

    def emit(self, node, oy, ox, ja, jb):
        """Record the boxes of the node's component at levels ``ja..jb``."""
        lv = self.levels[ja : jb + 1]
        h, w = node.shape
        rows, cols = node.max(1)[None] > lv[:, None], node.max(0)[None] > lv[:, None]
        y0, x0 = rows.argmax(1), cols.argmax(1)
        y1, x1 = h - 1 - rows[:, ::-1].argmax(1), w - 1 - cols[:, ::-1].argmax(1)
        start = (oy + y0) * self.v.shape[1] + ox + (node[y0] > lv[:, None]).argmax(1)
        for key, val in zip(self.parts, (np.arange(ja, jb + 1), ox + x0, oy + y0, ox + x1, oy + y1, start)):
            self.parts[key].append(val)
        if self.area:  # Pick on 2 x 2 quads: 4 pixels above t count 1, 3 pixels count 1/2
            _, (q0, q1, _, _) = _quads(node)
            self.parts["area2"].append(_above([q0, q1], [1, 1])[lv + 1])

    def split_level(self, node, j, top, rv):
        """First level index in (j, top] where the node is in several parts, or None.

        By bisection: below the lowest regional maximum of the node, being split is monotone."""
        levels, conn = self.levels, self.conn
        jlim = min(int(np.searchsorted(levels, rv.min() - 1, side="right")) - 1, top)
        lo, hi = j, None
        if jlim > j and _count(cv2.compare(node, int(levels[jlim]), cv2.CMP_GT), conn) >= 2:
            hi = jlim
            while hi - lo > 1:
                mid = (lo + hi) // 2
                if _count(cv2.compare(node, int(levels[mid]), cv2.CMP_GT), conn) >= 2:
                    hi = mid
                else:
                    lo = mid
        elif jlim > j:
            lo = jlim
        return hi if hi is not None else (lo + 1 if lo + 1 <= top else None)

    def run(self, counts=None):
        """Process the queued nodes; returns the parts as int64 arrays (see component_levels)."""
        levels, live = self.levels, []
        while self.stack:
            node, oy, ox, j, ry, rx, rv = self.stack.pop()
            top = int(np.searchsorted(levels, rv.max(), side="left")) - 1  # last level below the peak
            if counts is None:
                s = self.split_level(node, j, top, rv) if rv.size > 1 else None
                self.emit(node, oy, ox, j, top if s is None else s - 1)
                if s is not None:
                    self.push(cv2.compare(node, int(levels[s]), cv2.CMP_GT), s, oy, ox, ry, rx, rv)
            else:
                live.append((node, oy, ox, j, top, ry, rx, rv))
            while counts is not None and not self.stack and any(n[7].size > 1 for n in live):
                if callable(counts):  # computed only once a node may split
                    counts = counts()
                alive = np.bincount([n[4] for n in live], minlength=len(levels) + 1)[::-1].cumsum()[::-1]
                cur = max(n[3] for n in live)
                more = np.flatnonzero(counts[cur + 1 :] > alive[cur + 1 : len(levels)])
                if more.size == 0:
                    break
                s, rest = cur + 1 + int(more[0]), []
                for n in live:
                    node, oy, ox, j, top, ry, rx, rv = n
                    mask = cv2.compare(node, int(levels[s]), cv2.CMP_GT) if rv.size > 1 and top >= s else None
                    if mask is not None and _count(mask, 8) >= 2:
                        self.emit(node, oy, ox, j, s - 1)
                        self.push(mask, s, oy, ox, ry, rx, rv)
                    else:
                        rest.append(n)
                if len(rest) == len(live):
                    raise RuntimeError("component counts disagree with the labelling")  # a bug, never input
                live = rest
        for node, oy, ox, j, top, *_ in live:
            self.emit(node, oy, ox, j, top)
        return {
            k: np.concatenate(p).astype(np.int64) if p else np.zeros(0, np.int64)
            for k, p in self.parts.items()
        }


def component_levels(
    v: np.ndarray, conn: int, levels: np.ndarray, max_extrema: int, area: bool = False, counts=None
) -> dict | None:
    """Boxes of the components of ``{v > t}`` at every level, from the component tree.

    A node (a component labelled at an anchor level) with a single regional maximum never
    splits. Otherwise its first split level is found either by bisection, or, when ``counts``
    gives the exact number of components at every level (Euler number plus holes), by walking
    the levels: a split shows as more components than live nodes, and only the nodes that may
    have split are labelled there.

    Args:
        v: ``(H, W)`` uint8 map; conn: 4 or 8; levels: ``(L,)`` increasing ints in ``[0, 254]``.
        max_extrema: give up (return None) above this many regional maxima: the per-level loop
            is then faster.
        area: also return ``area2``, twice the area of the polygon through the centres of the
            outer border pixels (Pick's theorem), valid for hole-free 8-connected components.
        counts: ``(L,)`` ints (8-connectivity only), a callable returning them (called only if
            some node holds several maxima), or None (bisection).

    Returns:
        dict of int64 ``(N,)`` arrays ``level`` (index into ``levels``), inclusive ``x0, y0, x1,
        y1``, ``start`` (raster index of the first pixel), [``area2``]; or None.
    """
    levels = np.asarray(levels, dtype=np.int64)
    rep, rep_val, _ = _regional_maxima(v, conn, int(levels[0]))
    if rep.size > max_extrema:
        return None
    tree = _Tree(v, conn, levels, area)
    ry, rx = np.divmod(rep, v.shape[1])
    tree.push(cv2.compare(v, int(levels[0]), cv2.CMP_GT), 0, 0, 0, ry, rx, rep_val)
    return tree.run(counts)


def hole_levels(
    u8: np.ndarray, levels: np.ndarray, max_extrema: int
) -> tuple[dict, np.ndarray | None] | None:
    """The holes of ``{u8 > t}`` at every level, and where the outside reaches.

    Holes are the 4-connected components of ``{u8 <= t}`` off the image border, i.e. of
    ``{g > s}`` with ``g = 255 - u8`` and ``s = 254 - t``. All the border-touching background is
    followed as one "outside" set, re-labelled only at the levels where a part of it leaves the
    border; those parts are holes, followed as ordinary components (bisection mode). Only the
    levels where E8 drops more than births and filled holes explain are tried.

    Returns:
        ``(holes, reach)``: the dict of :func:`component_levels` for the holes, with ``level``
        an index into ``levels``, and ``reach`` ``(H, W)`` int16, the index into ``bg_levels =
        (254 - levels)[::-1]`` of the highest level at which each pixel is outside (-1 never),
        or None when no level has a hole; None when ``g`` has more than ``max_extrema``
        interior regional maxima (interior regional minima of ``u8``).
    """
    g = cv2.bitwise_not(u8)
    bg_levels = (254 - np.asarray(levels, dtype=np.int64))[::-1]
    rep, rep_val, _ = _regional_maxima(g, 4, int(bg_levels[0]), interior=True)
    inner = np.ones(rep.size, dtype=bool)  # only interior maxima of g are needed
    if rep.size > max_extrema:
        return None
    if not rep.size:  # every hole holds an interior regional minimum of u8: none, no hole
        empty = np.zeros(0, np.int64)
        return {k: empty for k in ("level", "x0", "y0", "x1", "y1", "start")}, None
    ry, rx, rv = rep // g.shape[1], rep % g.shape[1], rep_val
    # A hole can leave the outside only where, going down in t, E8 = C - H drops more than the
    # births (maxima of u8) and the filled holes (interior minima of u8) can explain.
    lv = np.asarray(levels, dtype=np.int64)
    peaks = _regional_maxima(u8, 8, int(lv[0]))[1]
    born = np.histogram(peaks, np.append(lv, 256) + 0.5)[0]  # value in (levels[i], levels[i+1]]
    filled = np.histogram(255 - rv[inner], np.append(lv, 256) + 0.5)[0]
    e = euler8(u8, lv)
    drop = np.append(e[1:], 1) - e + born + filled  # events between levels i + 1 and i
    candidates = len(lv) - 1 - np.flatnonzero(drop > 0)[::-1]  # as background level indices
    tree = _Tree(g, 4, bg_levels)
    detach = np.full(g.shape, len(bg_levels), dtype=np.int16)  # level index a pixel became a hole

    def off_border(mask):  # the parts of mask off the image border (uint8 0/255), or None
        n, lab = cv2.connectedComponents(mask, connectivity=4)
        lut = np.full(n, 255, dtype=np.uint8)
        lut[0] = 0
        lut[np.concatenate([lab[0], lab[-1], lab[:, 0], lab[:, -1]])] = 0
        return lut[lab] if lut.any() else None

    j, outside = 0, cv2.compare(g, int(bg_levels[0]), cv2.CMP_GT)
    holes = off_border(outside)
    while True:
        if holes is not None:  # parts that left the border: holes from level j on
            inside = (holes[ry, rx] > 0) & inner
            tree.push(holes, j, 0, 0, ry[inside], rx[inside], rv[inside])
            detach[holes > 0] = j
            outside = cv2.bitwise_and(outside, cv2.bitwise_not(holes))
            ry, rx, rv, inner = ry[~inside], rx[~inside], rv[~inside], inner[~inside]
        node = cv2.bitwise_and(g, outside)
        inner &= node[ry, rx] > 0
        s = None
        for c in candidates[candidates > j] if inner.any() else ():
            if _count(cv2.compare(node, int(bg_levels[c]), cv2.CMP_GT), 0):
                s = int(c)
                break
        if s is None:
            break
        j, outside = s, cv2.compare(node, int(bg_levels[s]), cv2.CMP_GT)
        holes = off_border(outside)
    # outside at level k: above it (k below the first level >= its value) and not yet detached
    below = (np.searchsorted(bg_levels, np.arange(256)) - 1).astype(np.int16)
    reach = np.minimum(below[g], detach - 1)
    holes = tree.run()
    holes["level"] = len(levels) - 1 - holes["level"]
    return holes, reach


def fill_levels(bg_reach: np.ndarray, bg_levels: np.ndarray) -> np.ndarray:
    """A uint8 map ``f`` whose ``{f > t}`` is the foreground at ``t`` with its holes filled.

    A pixel is outside every hole at ``t`` exactly when it lies in a background component that
    touches the border at ``s = 254 - t``, i.e. for ``s <= bg_levels[reach]``; so
    ``f = 254 - bg_levels[reach]`` (255, above every level, where ``reach`` is -1).
    """
    lut = np.concatenate([[255], 254 - np.asarray(bg_levels)]).astype(np.uint8)
    return lut[bg_reach + 1]
