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


def thumbnail_pixmap(frame: np.ndarray, size: int = 96) -> QPixmap:
    from PySide6.QtCore import Qt
    img = rgb_to_qimage(frame)
    return QPixmap.fromImage(img.scaled(size, size, Qt.AspectRatioMode.KeepAspectRatio,
                                        Qt.TransformationMode.SmoothTransformation))
