"""Pixel conversions between numpy frames, plans and Qt images.

Kept in one place because every widget needs them and each copy is a chance to share memory with a
numpy buffer that dies before the QImage does (QImage does not own a buffer passed to it).
"""
from __future__ import annotations

import functools

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
    elsewhere, so a heatmap under it stays readable.

    Drawn for every frame a clip plays (its keyframes' drafts blended), so the work is done per cell and
    only upscaled per pixel, in uint8, with the outline of a mask cached: per pixel in float it took 1.3 ms
    (5-14 ms while the engine ran) and stretched the studio's play ticks past 20 ms."""
    c = np.clip(np.nan_to_num(np.asarray(cover, np.float32)), 0.0, 1.0)
    scale = scale or draft_scale(*c.shape)
    # The outline takes in every cell an object covers a fifth of: a drafted disc of about a cell's radius
    # spreads over 2 x 2 cells and none of them is mostly covered. A fainter draft is cut at half its peak.
    level = min(0.2, 0.5 * float(c.max())) if c.max() > 0 else np.inf
    mask = c >= level
    edge = _cached_outline(mask.tobytes(), mask.shape, scale, max(1, scale // 12))
    # Hatched cells: 0.25 + 0.55 * coverage, as alpha (the same value on every hatched pixel of a cell).
    cell_alpha = np.where(c > 0, (0.25 + 0.55 * c) * 255.0 * alpha, 0.0)
    cell_alpha = np.clip(np.round(cell_alpha), 0, 255).astype(np.uint8)
    a = np.repeat(np.repeat(cell_alpha, scale, axis=0), scale, axis=1)
    a *= _hatch(*a.shape, max(4, scale // 4))
    a[edge] = np.clip(np.round(np.float32(255.0) * np.float32(alpha)), 0, 255).astype(np.uint8)
    out = np.empty(a.shape + (4,), np.uint8)
    out[..., :3] = DRAFT_COLOUR
    out[..., 3] = a
    return out


@functools.lru_cache(maxsize=64)
def _cached_outline(mask_bytes: bytes, shape: tuple[int, int], scale: int, width: int) -> np.ndarray:
    """cell_outline of a mask given as bytes (hashable); a clip's frames mostly share their masks."""
    edge = cell_outline(np.frombuffer(mask_bytes, dtype=bool).reshape(shape), scale, width)
    edge.setflags(write=False)
    return edge


@functools.lru_cache(maxsize=8)
def _hatch(height: int, width: int, period: int) -> np.ndarray:
    """The diagonal hatching's pixels (read-only, shared: every draft of a grid has the same)."""
    ys, xs = np.indices((height, width))
    hatch = (ys + xs) % period < max(1, period // 4)
    hatch.setflags(write=False)
    return hatch


def cell_outline(cells: np.ndarray, scale: int, width: int) -> np.ndarray:
    """bool [H, W] cells -> bool [H*scale, W*scale]: the pixels of marked cells within `width` steps (4-
    neighbour, i.e. Manhattan distance) of a pixel not marked or of the border; what eroding the upscaled
    mask `width` times and taking the difference gives, computed per cell side (width < scale: only the 8
    neighbouring cells can be that near) instead of on every pixel, 3 to 4 x faster at 256 px."""
    h, w = cells.shape
    padded = np.pad(cells, 1, constant_values=False)
    offset = np.arange(scale)
    to_side = {-1: offset + 1, 0: None, 1: scale - offset}  # steps from a pixel to the cell before / after
    out = np.zeros((h, scale, w, scale), bool)
    for di in (-1, 0, 1):
        for dj in (-1, 0, 1):
            if di == dj == 0:
                continue
            rows, cols = to_side[di], to_side[dj]
            steps = (rows[:, None] if rows is not None else 0) + (cols[None, :] if cols is not None else 0)
            band = np.broadcast_to(steps <= width, (scale, scale))
            off = ~padded[1 + di:1 + di + h, 1 + dj:1 + dj + w]
            out |= off[:, None, :, None] & band[None, :, None, :]
    out &= cells[:, None, :, None]
    return out.reshape(h * scale, w * scale)


def upscale_cells(rgba: np.ndarray, height: int, width: int) -> np.ndarray:
    """Nearest-neighbour upscale by whole cells (height and width multiples of rgba's)."""
    return np.repeat(np.repeat(rgba, height // rgba.shape[0], axis=0), width // rgba.shape[1], axis=1)


def over(top: np.ndarray, bottom: np.ndarray) -> np.ndarray:
    """uint8 RGBA `top` composited over `bottom` (Porter-Duff "over", straight alpha); bottom is
    upscaled by whole cells to top's size when smaller."""
    if bottom.shape[:2] != top.shape[:2]:
        bottom = upscale_cells(bottom, *top.shape[:2])
    ta = top[..., 3].astype(np.float32) * np.float32(1 / 255)
    wb = bottom[..., 3].astype(np.float32) * np.float32(1 / 255) * (1 - ta)  # what shows of the bottom
    oa = ta + wb
    inv = np.divide(1, oa, out=np.zeros_like(oa), where=oa > 1e-6)
    rgb = top[..., :3] * (ta * inv)[..., None] + bottom[..., :3] * (wb * inv)[..., None]
    out = np.empty(top.shape, np.uint8)
    out[..., :3] = np.clip(np.rint(rgb), 0, 255)
    out[..., 3] = np.clip(np.rint(oa * 255), 0, 255)
    return out


def thumbnail_pixmap(frame: np.ndarray, size: int = 96) -> QPixmap:
    from PySide6.QtCore import Qt
    img = rgb_to_qimage(frame)
    return QPixmap.fromImage(img.scaled(size, size, Qt.AspectRatioMode.KeepAspectRatio,
                                        Qt.TransformationMode.SmoothTransformation))
