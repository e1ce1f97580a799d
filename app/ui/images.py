"""Pixel conversions between numpy frames, plans and Qt images.

Kept in one place because every widget needs them and each copy is a chance to share memory with a
numpy buffer that dies before the QImage does (QImage does not own a buffer passed to it).
"""
from __future__ import annotations

import numpy as np
from PySide6.QtGui import QImage, QPixmap


def rgb_to_qimage(frame: np.ndarray) -> QImage:
    """uint8 [H, W, 3] (or [H, W]) -> QImage that owns its pixels (the .copy() detaches from numpy)."""
    frame = np.ascontiguousarray(frame)
    if frame.dtype != np.uint8:
        frame = np.clip(frame, 0, 255).astype(np.uint8)
    if frame.ndim == 2:
        h, w = frame.shape
        return QImage(frame.data, w, h, w, QImage.Format.Format_Grayscale8).copy()
    h, w, c = frame.shape
    if c == 4:
        return QImage(frame.data, w, h, 4 * w, QImage.Format.Format_RGBA8888).copy()
    return QImage(frame.data, w, h, 3 * w, QImage.Format.Format_RGB888).copy()


def qimage_to_rgb(image: QImage) -> np.ndarray:
    """QImage -> uint8 [H, W, 3] copy."""
    image = image.convertToFormat(QImage.Format.Format_RGB888)
    w, h, bpl = image.width(), image.height(), image.bytesPerLine()
    buf = np.frombuffer(image.constBits(), dtype=np.uint8, count=bpl * h).reshape(h, bpl)
    return buf[:, : 3 * w].reshape(h, w, 3).copy()


# A perceptual "inferno"-like ramp sampled at 5 stops: cheap to compute per keystroke and readable on
# both dark and bright frames (a plain red ramp vanishes on red objects).
_RAMP_STOPS = np.array([
    [0, 0, 4], [87, 16, 110], [188, 55, 84], [249, 142, 9], [252, 255, 164]], dtype=np.float32)


def heatmap_rgba(values: np.ndarray, alpha: float = 1.0) -> np.ndarray:
    """float [H, W] in 0..1 -> uint8 [H, W, 4]; low strength is also more transparent so the frame shows."""
    v = np.clip(np.nan_to_num(values.astype(np.float32)), 0.0, 1.0)
    pos = v * (len(_RAMP_STOPS) - 1)
    lo = np.floor(pos).astype(np.int64).clip(0, len(_RAMP_STOPS) - 2)
    frac = (pos - lo)[..., None]
    rgb = _RAMP_STOPS[lo] * (1 - frac) + _RAMP_STOPS[lo + 1] * frac
    a = (0.25 + 0.75 * v) * 255.0 * alpha
    out = np.concatenate([rgb, a[..., None]], axis=-1)
    return np.clip(out, 0, 255).astype(np.uint8)


def pca_rgba(rgb: np.ndarray, alpha: float = 1.0) -> np.ndarray:
    """uint8 [H, W, 3] PCA colours -> uint8 [H, W, 4] with a uniform alpha."""
    a = np.full(rgb.shape[:2] + (1,), int(round(255 * alpha)), dtype=np.uint8)
    return np.concatenate([rgb.astype(np.uint8), a], axis=-1)


# The drafted layout is drawn at about this many pixels on its long side, whatever the grid: its outline
# and hatching must stay thin lines over the heatmap's cells (one pixel per cell would make them cells).
DRAFT_PIXELS = 256
# Cyan: on no stop of the heatmap's ramp (black, purple, red, orange, pale yellow), so the two never blend.
DRAFT_COLOUR = (64, 224, 255)


def draft_scale(rows: int, cols: int) -> int:
    """Pixels per cell for the drafted layout of a rows x cols grid."""
    return max(4, -(-DRAFT_PIXELS // max(rows, cols, 1)))


def draft_rgba(cover: np.ndarray, alpha: float = 1.0, scale: int | None = None) -> np.ndarray:
    """float [H, W] draft coverage in 0..1 -> uint8 [H*scale, W*scale, 4] (scale: draft_scale): the drafted
    objects outlined in cyan, hatched inside (stronger where more of the cell is covered), transparent
    elsewhere, so a heatmap under it stays readable."""
    c = np.clip(np.nan_to_num(np.asarray(cover, np.float32)), 0.0, 1.0)
    scale = scale or draft_scale(*c.shape)
    frac = np.repeat(np.repeat(c, scale, axis=0), scale, axis=1)
    # The outline takes in every cell an object covers a fifth of: a drafted disc of about a cell's radius
    # spreads over 2 x 2 cells and none of them is mostly covered. A fainter draft is cut at half its peak.
    level = min(0.2, 0.5 * float(c.max())) if c.max() > 0 else np.inf
    inside = frac >= level
    interior = inside.copy()
    for _ in range(max(1, scale // 12)):  # erode: what is left of `inside` after it is the outline
        padded = np.pad(interior, 1, constant_values=False)
        interior = (padded[1:-1, 1:-1] & padded[:-2, 1:-1] & padded[2:, 1:-1]
                    & padded[1:-1, :-2] & padded[1:-1, 2:])
    edge = inside & ~interior
    period = max(4, scale // 4)
    ys, xs = np.indices(frac.shape)
    hatch = (ys + xs) % period < max(1, period // 4)
    a = np.where(hatch & (frac > 0), 0.25 + 0.55 * frac, 0.0)
    a = np.where(edge, 1.0, a) * 255.0 * alpha
    out = np.empty(frac.shape + (4,), np.uint8)
    out[..., :3] = DRAFT_COLOUR
    out[..., 3] = np.clip(np.round(a), 0, 255).astype(np.uint8)
    return out


def upscale_cells(rgba: np.ndarray, height: int, width: int) -> np.ndarray:
    """Nearest-neighbour upscale by whole cells (height and width multiples of rgba's)."""
    return np.repeat(np.repeat(rgba, height // rgba.shape[0], axis=0), width // rgba.shape[1], axis=1)


def over(top: np.ndarray, bottom: np.ndarray) -> np.ndarray:
    """uint8 RGBA `top` composited over `bottom` (Porter-Duff "over", straight alpha); bottom is
    upscaled by whole cells to top's size when smaller."""
    if bottom.shape[:2] != top.shape[:2]:
        bottom = upscale_cells(bottom, *top.shape[:2])
    ta = top[..., 3:].astype(np.float32) / 255.0
    ba = bottom[..., 3:].astype(np.float32) / 255.0
    oa = ta + ba * (1.0 - ta)
    rgb = top[..., :3] * ta + bottom[..., :3] * ba * (1.0 - ta)
    rgb = np.where(oa > 1e-6, rgb / np.maximum(oa, 1e-6), 0.0)
    return np.clip(np.round(np.concatenate([rgb, oa * 255.0], axis=-1)), 0, 255).astype(np.uint8)


def thumbnail_pixmap(frame: np.ndarray, size: int = 96) -> QPixmap:
    from PySide6.QtCore import Qt
    img = rgb_to_qimage(frame)
    return QPixmap.fromImage(img.scaled(size, size, Qt.AspectRatioMode.KeepAspectRatio,
                                        Qt.TransformationMode.SmoothTransformation))
