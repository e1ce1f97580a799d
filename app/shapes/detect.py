"""The shapes world's object detector (OpenCV), used to score generated images.

Segmentation: a pixel p belongs to palette colour c with coverage alpha = <p - bg, c - bg> / |c - bg|^2,
the position of p on the segment from the background to c (an anti-aliased rim is a mix of exactly
these two). Each pixel takes the colour whose segment it lies closest to; pixels with alpha >= 0.5
form per-colour masks, split into connected components.

Classification uses moments of the soft coverage, which stay put under noise and mild blur, rather
than outline features: at 64 px a star is about 10 px across and a 3x3 blur fills its notches, so its
solidity and polygon vertex count overlap the triangle's and the circle's (measured: 14 % of blurred
noisy scenes had a star called a triangle or circle that way). The features:
- lift: (area centroid y - box centre y) / box height. Apex-up shapes carry their mass low: a
  triangle +1/6, a star about +0.05 (its box is taller above its centre), circle and square 0.
  Blur is symmetric, so it leaves the centroid where it was.
- spread: (mu20 + mu02) / area^2, the normalised second moment: 1/(2 pi) for a disc, 1/6 for a
  square, about 0.2 for the triangle and 0.22 for the star (thin arms spread the mass).
- fill: area / (width * height) with widths from each column's peak coverage: pi/4 for a circle,
  1 for a square. It splits the two symmetric classes.
- solidity (area over convex-hull area) is reported for diagnostics and breaks ties for the star.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from .palette import BACKGROUND, COLOR_NAMES, COLORS

_BG = np.asarray(BACKGROUND, np.float32)
_DIRS = np.asarray([COLORS[c] for c in COLOR_NAMES], np.float32) - _BG  # (6, 3)
_DIRS_SQ = (_DIRS ** 2).sum(axis=1)

# Smallest component kept, as a fraction of the image area. The smallest legal object (a star of
# half-size 8 %) covers about 0.8 % of a 64 px image; noise specks are a few pixels at most.
MIN_AREA_FRACTION = 0.0025
# A pixel farther than this (in RGB units) from every colour's segment is no palette colour at all.
MAX_COLOR_DISTANCE = 60.0


@dataclass(frozen=True)
class Detection:
    cls: str
    color: str
    box: tuple[int, int, int, int]  # x0, y0, x1, y1 in pixels, inclusive-exclusive
    center: tuple[float, float]  # box centre in pixels (GenEval positions use box centres)
    area: float  # soft area in pixels
    fill: float = 0.0
    solidity: float = 0.0


def _coverage(image: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per pixel: nearest palette colour index, its coverage alpha, and the distance to its segment."""
    v = image.astype(np.float32) - _BG  # (H, W, 3)
    alpha = np.einsum("hwc,kc->hwk", v, _DIRS) / _DIRS_SQ  # (H, W, 6)
    a = np.clip(alpha, 0.0, 1.0)
    resid = v[:, :, None, :] - a[..., None] * _DIRS  # (H, W, 6, 3)
    dist = np.sqrt((resid ** 2).sum(-1))
    # Dark or very saturated pixels beyond the colour are fine (alpha > 1 clipped above), and a pixel
    # on the background side of every colour gets alpha 0 and so never joins a mask.
    label = dist.argmin(-1)
    best_alpha = np.take_along_axis(alpha, label[..., None], -1)[..., 0]
    best_dist = np.take_along_axis(dist, label[..., None], -1)[..., 0]
    return label, best_alpha, best_dist


def _classify(fill: float, lift: float, spread: float, solidity: float) -> str:
    # Thresholds sit midway between the classes' ranges measured on 2,400 renders with and without
    # noise (sigma 6) and blur (3x3, sigma 0.8): lift star 0.025-0.067, triangle 0.109-0.157,
    # circle and square |lift| < 0.01; spread circle/square <= 0.18, star >= 0.21;
    # fill circle <= 0.81, square >= 0.92.
    if lift >= 0.088:
        return "triangle"
    if lift >= 0.017 or spread >= 0.197 or solidity < 0.75:
        return "star"
    return "square" if fill >= 0.86 else "circle"


def _components(image: np.ndarray):
    """Yield (colour index, component mask, soft alpha restricted to it) for each kept component."""
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"expected an RGB image [H, W, 3], got shape {image.shape}")
    h, w = image.shape[:2]
    label, alpha, dist = _coverage(image)
    solid = (alpha >= 0.5) & (dist <= MAX_COLOR_DISTANCE)
    min_area = max(4, int(MIN_AREA_FRACTION * h * w))
    kernel = np.ones((3, 3), np.uint8)
    for k in range(len(COLOR_NAMES)):
        mask_k = (solid & (label == k)).astype(np.uint8)
        if not mask_k.any():
            continue
        n, comp, stats, _ = cv2.connectedComponentsWithStats(mask_k, connectivity=8)
        for i in range(1, n):
            if stats[i, cv2.CC_STAT_AREA] < min_area:
                continue
            x, y, bw, bh = stats[i, :4]
            # Work on a padded crop: the soft rim lies within 2 px of the solid mask.
            xa, ya, xb, yb = max(x - 3, 0), max(y - 3, 0), min(x + bw + 3, w), min(y + bh + 3, h)
            comp_mask = (comp[ya:yb, xa:xb] == i).astype(np.uint8)
            rim = cv2.dilate(comp_mask, kernel, iterations=2).astype(bool) & (label[ya:yb, xa:xb] == k)
            soft = np.where(rim, np.clip(alpha[ya:yb, xa:xb], 0.0, 1.0), 0.0).astype(np.float32)
            yield k, (xa, ya), comp_mask, soft


def _measure(k: int, origin, comp_mask: np.ndarray, soft: np.ndarray) -> Detection:
    xa, ya = origin
    area = float(soft.sum())
    cols = soft.max(axis=0)
    rows = soft.max(axis=1)
    width, height = float(cols.sum()), float(rows.sum())
    fill = area / max(width * height, 1e-6)
    yy, xx = np.mgrid[:soft.shape[0], :soft.shape[1]].astype(np.float32) + 0.5
    mx = float((soft * xx).sum()) / max(area, 1e-6)
    my = float((soft * yy).sum()) / max(area, 1e-6)
    # Box centre from the soft profiles: a column half covered counts half.
    cx = float((cols * (np.arange(cols.size) + 0.5)).sum()) / max(width, 1e-6)
    cy = float((rows * (np.arange(rows.size) + 0.5)).sum()) / max(height, 1e-6)
    lift = (my - cy) / max(height, 1e-6)
    spread = float((soft * ((xx - mx) ** 2 + (yy - my) ** 2)).sum()) / max(area ** 2, 1e-6)
    hull = cv2.convexHull(cv2.findNonZero(comp_mask))
    hull_mask = np.zeros_like(comp_mask)
    cv2.fillPoly(hull_mask, [hull], 1)
    solidity = float(comp_mask.sum()) / max(float(hull_mask.sum()), 1.0)
    cls = _classify(fill, lift, spread, solidity)
    ys, xs = np.nonzero(comp_mask)
    box = (int(xs.min()) + xa, int(ys.min()) + ya, int(xs.max()) + xa + 1, int(ys.max()) + ya + 1)
    return Detection(cls, COLOR_NAMES[k], box, (cx + xa, cy + ya), area, fill, solidity)


def detect(image: np.ndarray) -> list[Detection]:
    """All palette-coloured shapes in an RGB uint8 image, largest first (our stand-in for GenEval's
    detector confidence: the biggest blob is the least likely to be a stray fragment)."""
    found = [_measure(k, origin, m, s) for k, origin, m, s in _components(np.asarray(image))]
    return sorted(found, key=lambda d: (-d.area, d.center[1], d.center[0]))


def foreground_mask(image: np.ndarray) -> np.ndarray:
    """Bool [H, W]: the solid pixels (coverage >= 0.5) of every shape `detect` would report."""
    image = np.asarray(image)
    mask = np.zeros(image.shape[:2], bool)
    for _, (xa, ya), comp_mask, _ in _components(image):
        h, w = comp_mask.shape
        mask[ya:ya + h, xa:xa + w] |= comp_mask.astype(bool)
    return mask
