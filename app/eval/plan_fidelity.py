"""How well a plan's heatmap covers the objects that were generated."""
from __future__ import annotations

import cv2
import numpy as np

from app.shapes.detect import foreground_mask


def otsu_threshold(values: np.ndarray, bins: int = 256) -> float:
    """Otsu's threshold on float values: the cut that maximises the between-class variance."""
    v = np.asarray(values, np.float64).ravel()
    lo, hi = float(v.min()), float(v.max())
    if hi - lo < 1e-12:
        return hi
    hist, edges = np.histogram(v, bins=bins, range=(lo, hi))
    p = hist / hist.sum()
    centers = (edges[:-1] + edges[1:]) / 2
    w0 = np.cumsum(p)
    m0 = np.cumsum(p * centers)
    mt = m0[-1]
    with np.errstate(divide="ignore", invalid="ignore"):
        between = (mt * w0 - m0) ** 2 / (w0 * (1 - w0))
    between[~np.isfinite(between)] = -1
    # Values strictly above the chosen bin's upper edge form the "plan says object here" side.
    return float(edges[int(np.argmax(between)) + 1])


def heatmap_mask(heatmap: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Bool [h, w]: the heatmap upsampled bilinearly to `size` (h, w) and cut at Otsu's threshold.

    Otsu, not a fixed level or mean + std: heatmaps come normalised per plan, and a plan that marks
    objects is bimodal (object cells vs the rest), which is the case Otsu's cut separates; a flat
    heatmap marks nothing.
    """
    h, w = size
    up = cv2.resize(np.asarray(heatmap, np.float32), (w, h), interpolation=cv2.INTER_LINEAR)
    if float(up.max() - up.min()) < 1e-6:
        return np.zeros((h, w), bool)
    return up > otsu_threshold(up)


def plan_iou(heatmap: np.ndarray, image: np.ndarray) -> float:
    """IoU between the thresholded heatmap and the detected objects' pixels. 1.0 when both are empty
    (nothing planned, nothing drawn)."""
    objects = foreground_mask(image)
    planned = heatmap_mask(heatmap, objects.shape)
    union = int((planned | objects).sum())
    if union == 0:
        return 1.0
    return float((planned & objects).sum()) / union
