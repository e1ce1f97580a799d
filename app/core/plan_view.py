"""Pictures of a plan for files and terminals (the studio draws its own overlay with Qt)."""
from __future__ import annotations

import numpy as np


def _upsample(cells: np.ndarray, height: int, width: int) -> np.ndarray:
    from PIL import Image

    mode = "RGB" if cells.ndim == 3 else "L"
    return np.asarray(Image.fromarray(cells, mode).resize((width, height), Image.NEAREST))


def heat_colours(heat: np.ndarray) -> np.ndarray:
    """float [H, W] in 0..1 -> uint8 [H, W, 3]: dark blue (no effect) to yellow (strong)."""
    import matplotlib

    rgba = matplotlib.colormaps["inferno"](np.clip(heat, 0, 1))
    return (rgba[..., :3] * 255).astype(np.uint8)


def overlay(frame: np.ndarray, heat: np.ndarray, opacity: float = 0.6) -> np.ndarray:
    """The heatmap blended over the frame, at the frame's size."""
    h, w = frame.shape[:2]
    colours = _upsample(heat_colours(heat), h, w).astype(np.float32)
    return (frame[..., :3].astype(np.float32) * (1 - opacity) + colours * opacity).round().astype(np.uint8)


def plan_strip(plan, result: np.ndarray | None = None, item: int = 0, keyframe: int = 0, scale: int = 4) -> np.ndarray:
    """[result | heatmap over the result | PCA colours], each upscaled `scale` times, side by side."""
    heat = plan.heatmap(item=item, keyframe=keyframe)
    pca = plan.pca_rgb(item=item, keyframe=keyframe)
    if result is None:
        result = np.full((heat.shape[0] * 4, heat.shape[1] * 4, 3), 245, np.uint8)
    h, w = result.shape[0] * scale, result.shape[1] * scale
    frame = _upsample(result, h, w)
    panels = [frame, overlay(frame, heat), _upsample(pca, h, w)]
    gap = np.full((h, 4, 3), 255, np.uint8)
    return np.concatenate([panels[0], gap, panels[1], gap, panels[2]], axis=1)
