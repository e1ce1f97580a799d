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


def numbered(panel: np.ndarray, objects: list[tuple[int, float, float, float]]) -> np.ndarray:
    """The drafted objects' numbers (1, 2, ... in the draft's order: what `--plan-edit` calls them), each at
    its object's centre, light on a dark disc so they read on any colour."""
    from PIL import Image, ImageDraw, ImageFont

    image = Image.fromarray(panel)
    draw = ImageDraw.Draw(image)
    h, w = panel.shape[:2]
    size = max(10, min(h, w) // 12)
    font = ImageFont.load_default(size=size)
    for n, (_, cx, cy, _) in enumerate(objects, 1):
        x, y, r = cx * w, cy * h, size * 0.75
        draw.ellipse((x - r, y - r, x + r, y + r), fill=(0, 0, 0))
        draw.text((x, y), str(n), fill=(255, 255, 255), font=font, anchor="mm")
    return np.asarray(image)


def plan_strip(plan, result: np.ndarray | None = None, item: int = 0, keyframe: int = 0, scale: int = 4) -> np.ndarray:
    """[result | drafted layout over it (drafted plans only) | canvas effect over it | PCA colours],
    each upscaled `scale` times, side by side. The draft and the canvas's own effect are separate
    panels because they are different things: the draft is where a layout drafter put the objects, the
    canvas effect is what the connector adds to each cell (Plan.draft_map / Plan.canvas_effect)."""
    effect = plan.canvas_effect(item=item, keyframe=keyframe)
    draft = plan.draft_map(item=item, keyframe=keyframe)
    pca = plan.pca_rgb(item=item, keyframe=keyframe)
    if result is None:
        result = np.full((effect.shape[0] * 4, effect.shape[1] * 4, 3), 245, np.uint8)
    h, w = result.shape[0] * scale, result.shape[1] * scale
    frame = _upsample(result, h, w)
    panels = [frame]
    if draft is not None:
        panels.append(numbered(overlay(frame, draft / max(float(draft.max()), 1e-6)), plan.objects(item)))
    panels += [overlay(frame, effect), _upsample(pca, h, w)]
    gap = np.full((h, 4, 3), 255, np.uint8)
    out = [panels[0]]
    for panel in panels[1:]:
        out += [gap, panel]
    return np.concatenate(out, axis=1)
