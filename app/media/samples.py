"""Sample media for first runs, demos and tests: flat shapes on a light grey background (the look of
the shapes world the embedded model is trained on), drawn here with PIL so this module does not
depend on app/shapes. Everything is deterministic: the same call writes the same pictures.

    python -m app.media.samples resources/samples
"""
from __future__ import annotations

import math
import os
import sys
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

BACKGROUND = (245, 245, 245)
COLORS = {"red": (220, 40, 40), "green": (40, 170, 60), "blue": (40, 80, 220), "yellow": (235, 200, 30),
          "purple": (140, 60, 190), "orange": (245, 140, 30)}


def draw_shape(draw: ImageDraw.ImageDraw, shape: str, center: tuple[float, float], radius: float, color) -> None:
    cx, cy = center
    if shape == "circle":
        draw.ellipse([cx - radius, cy - radius, cx + radius, cy + radius], fill=color)
    elif shape == "square":
        r = radius * 0.85
        draw.rectangle([cx - r, cy - r, cx + r, cy + r], fill=color)
    elif shape == "triangle":
        pts = [(cx + radius * math.cos(a), cy + radius * math.sin(a))
               for a in (-math.pi / 2, -math.pi / 2 + 2 * math.pi / 3, -math.pi / 2 + 4 * math.pi / 3)]
        draw.polygon(pts, fill=color)
    elif shape == "star":
        pts = []
        for k in range(10):
            r = radius if k % 2 == 0 else radius * 0.45
            a = -math.pi / 2 + k * math.pi / 5
            pts.append((cx + r * math.cos(a), cy + r * math.sin(a)))
        draw.polygon(pts, fill=color)
    else:
        raise ValueError(f"unknown shape {shape!r}")


def scene(size: int, shapes: list[tuple[str, str, float, float, float]]) -> np.ndarray:
    """shapes: (shape, colour name, x, y, radius), positions and radius in fractions of `size`.
    Drawn at 4x and scaled down, for clean anti-aliased edges."""
    scale = 4
    img = Image.new("RGB", (size * scale, size * scale), BACKGROUND)
    draw = ImageDraw.Draw(img)
    for shape, color, x, y, r in shapes:
        draw_shape(draw, shape, (x * size * scale, y * size * scale), r * size * scale, COLORS[color])
    return np.asarray(img.resize((size, size), Image.Resampling.LANCZOS))


SCENES = {
    "red_circle": [("circle", "red", 0.5, 0.5, 0.3)],
    "blue_square_left": [("square", "blue", 0.3, 0.5, 0.22)],
    "green_triangle": [("triangle", "green", 0.5, 0.55, 0.32)],
    "yellow_star": [("star", "yellow", 0.5, 0.5, 0.34)],
    "three_shapes": [("circle", "red", 0.25, 0.3, 0.15), ("square", "blue", 0.72, 0.35, 0.13),
                     ("star", "yellow", 0.45, 0.72, 0.18)],
}


def write_samples(folder: str | os.PathLike, sizes: tuple[int, ...] = (64, 256), clip_frames: int = 24,
                  clip_size: int = 128, fps: float = 12.0, overwrite: bool = True) -> list[Path]:
    """Write the sample images (every scene at every size, PNG) and a short H.264 clip of a red ball
    rolling to the right. Returns the paths written."""
    from .export import export_image, export_video

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for name, shapes in SCENES.items():
        for size in sizes:
            path = folder / f"{name}_{size}.png"
            export_image(scene(size, shapes), path, "png", overwrite=overwrite)
            written.append(path)
    frames = [scene(clip_size, [("circle", "red", 0.15 + 0.7 * k / max(1, clip_frames - 1), 0.55, 0.12),
                                ("square", "green", 0.5, 0.85, 0.06)])
              for k in range(clip_frames)]
    path = folder / "ball_rolls_right.mp4"
    export_video(frames, path, fps, crf=23, overwrite=overwrite)
    written.append(path)
    return written


if __name__ == "__main__":
    for p in write_samples(sys.argv[1] if len(sys.argv) > 1 else "resources/samples"):
        print(p, p.stat().st_size)
