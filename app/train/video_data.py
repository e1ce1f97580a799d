"""The video trainer's recipe and its clip batches: what a run is asked to do, and the data each step sees.

A recipe (a JSON file under app/train/recipes/video) names the model's size, the stages' steps and the
tasks' shares; a batch is one task's clips rendered from the shapes world in motion (app/shapes/motion.py),
with what each stage reads: the planner's media, the condition latents, the target's label maps at the
canvas keyframes' times (stage 1) and, for a drafted run's drafted tasks' batches, the true track drafts.
Kept apart from app/train/video.py (the model and the trainer) so a study can build its own batches
(research/keyframe_study.py) without the trainer.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import numpy as np
import torch

from app.core.backbones.wan import WanReference
from app.core.draft import DraftConfig, quantize_objects
from app.core.latents import PixelCodec
from app.shapes.dataset import label_map
from app.shapes.motion import MAX_CLIP_OBJECTS, MotionScene, motion_caption, random_motion_scene, render_clip
from app.shapes.palette import COLOR_NAMES, NUM_LABELS, label_index
from app.shapes.video_edits import random_reference_video, sample_video_edit

VIDEO_TASKS = ("text_to_video", "image_to_video", "video_edit", "reference_to_video")


@dataclass
class VideoStage:
    steps: int = 1000
    batch: int = 16
    lr: float = 3e-4
    warmup: int = 50


@dataclass
class VideoRecipe:
    name: str = "metacanvas-shapes-video"
    seed: int = 0
    planner_from: str = "models/metacanvas-shapes"  # the image model whose taught planner this one starts from
    size: int = 48
    frames: int = 17  # 1 + 4k: the causal packing's lengths
    fps: float = 8.0  # the rate its clips play at: the world's motion per frame reads as steady at 8
    # Its video edits keep the source's own pixels where the DiT did not change the clip (app/core/keep_source.py;
    # 48 chosen on 48 held-out edits, seed 11: research/LOG.md, "Video edits keep their source").
    keep_source_threshold: int = 48
    own_size_only: bool = True  # trained at `size` alone: other sizes are refused (PipelineDefaults)
    temporal_factor: int = 4
    patch_size: int = 8
    keyframes: int = 3
    planner_frames: int = 4  # frames of a source clip the planner sees
    dit_layers: int = 8
    dit_heads: int = 4
    dit_head_dim: int = 32
    dit_ffn_ratio: float = 2.5
    connector_heads: int = 4
    # A video edit's source clip also enters each target token of the same frame and cell (app/core/backbones/wan.py)
    source_residual: bool = False
    # Share of batches per task (a batch is one task: its token count and conditions are its own).
    task_weights: dict = field(default_factory=lambda: {"text_to_video": 0.3, "image_to_video": 0.25,
                                                        "video_edit": 0.25, "reference_to_video": 0.2})
    teach: VideoStage = field(default_factory=lambda: VideoStage(steps=300, batch=32, lr=3e-4, warmup=20))
    diffusion: VideoStage = field(default_factory=lambda: VideoStage(steps=4000, batch=16, lr=3e-4, warmup=50))
    # Stage 1's cross-entropy weight of object cells: at 48 px on a 6 x 6 canvas only ~4 % of cells are an
    # object's, and unweighted the canvas head learns "background everywhere" (foreground accuracy 0).
    teach_foreground_weight: float = 5.0
    cfg_dropout: float = 0.1
    ema_decay: float = 0.999
    logit_normal_std: float = 1.0
    timestep_shift: float = 3.0
    grad_clip: float = 1.0
    checkpoint_every: int = 200
    sample_steps: int = 12
    guidance: float = 2.0
    guidance_interval: tuple = (0.0, 0.8)
    sample_shift: float = 3.0
    sample_solver: str = "dpm++2m"
    # Track drafts: DraftConfig fields (labels, max_objects and track are set here); None: no drafter.
    track_drafts: dict | None = None
    # Stage-2 steps planned without drafts before the draft-teaching stage (the run that trained the
    # committed model added its drafter to a model trained 6,223 steps without one).
    drafts_from_step: int = 0
    # Stage-2 step from which image-to-video batches carry their true tracks too (None: never), as the
    # pipeline drafts them (app/core/frame_detector.py). runs/video-48t turned this on at step 14,009.
    image_drafts_from_step: int | None = None
    # Likewise for reference-video batches (their drafts: the words' tracks moved onto the stills' objects,
    # app/core/reference_stills.reference_drafts). runs/video-48t turned this on at step 18,949.
    reference_drafts_from_step: int | None = None
    # Likewise for video edits (their drafts: the target's tracks; app/core/frame_detector.edit_drafts drafts
    # them from the source clip's tracks and the instruction).
    edit_drafts_from_step: int | None = None
    # The tasks' shares once drafting starts (None: task_weights).
    drafted_task_weights: dict | None = None
    # An image model folder whose edit drafter's detector the exported model drafts clips from images
    # with (app/core/frame_detector.py); None: image-to-video clips are planned undrafted.
    frame_detector_from: str | None = None
    draft_teach: VideoStage = field(default_factory=lambda: VideoStage(steps=0, batch=32, lr=1e-3, warmup=20))

    @classmethod
    def load(cls, path: str | Path) -> "VideoRecipe":
        data = json.loads(Path(path).read_text())
        known = {f.name for f in fields(cls)}
        if unknown := set(data) - known:
            raise ValueError(f"{path}: unknown recipe keys {sorted(unknown)}")
        for key in ("teach", "diffusion", "draft_teach"):
            if key in data:
                data[key] = VideoStage(**data[key])
        if "guidance_interval" in data:
            data["guidance_interval"] = tuple(data["guidance_interval"])
        return cls(**data)

    def to_dict(self) -> dict:
        return asdict(self)

    @property
    def grid(self) -> int:
        return self.size // self.patch_size


# ----------------------------------------------------------------------------------------------- data

def keyframe_times(recipe: VideoRecipe) -> np.ndarray:
    """The clip time (0 first frame, 1 last) each canvas keyframe stands for. The connector puts keyframe
    0 on latent frame 0 and the last on the last latent frame, linear between (CanvasConnector.resize);
    latent frame 0 is frame 0, latent frame j >= 1 packs frames 4j-3 .. 4j (centre 4j - 1.5)."""
    tf, f = recipe.temporal_factor, recipe.frames
    latent = (f - 1) // tf + 1
    times = []
    for k in range(recipe.keyframes):
        p = k * (latent - 1) / max(1, recipe.keyframes - 1)
        centre = tf * p - (tf - 1) / 2 if p >= 1 else p * (tf - (tf - 1) / 2)
        times.append(centre / (f - 1))
    return np.array(times)


def track_draft_config(recipe: VideoRecipe) -> DraftConfig | None:
    """The track drafter's config a recipe asks for (None: the recipe drafts nothing)."""
    if recipe.track_drafts is None:
        return None
    return DraftConfig(**{**recipe.track_drafts, "labels": NUM_LABELS, "colours": len(COLOR_NAMES),
                          "max_objects": MAX_CLIP_OBJECTS, "track": True})


def track_rows(scene: MotionScene, config: DraftConfig) -> np.ndarray:
    """A clip's true track draft: each object in the caption's order (scene.objects), its first label,
    where it is at the first frame and at the last (where it would be for an object not on screen then)."""
    return quantize_objects([(label_index(m.obj.cls, m.obj.color), m.obj.cx, m.obj.cy, m.obj.half,
                              m.obj.cx + m.dx, m.obj.cy + m.dy) for m in scene.objects], config)


def make_video_batch(rng: np.random.Generator, recipe: VideoRecipe, task: str, batch: int,
                     drafts: DraftConfig | None = None, drafted: tuple[str, ...] = ("text_to_video",)) -> dict:
    """One batch of one task: texts, target clips [B, F, H, W, 3], the planner's media, the conditions,
    and the target's label map at each keyframe time [B, K, g, g] (what stage 1 teaches the canvas);
    with `drafts`, the true track drafts ("draft", [B, length, 6]) of a batch of a `drafted` task."""
    f, size = recipe.frames, recipe.size
    out: dict = {"kind": task, "images": None, "videos": None}
    targets, texts = [], []
    if task in ("text_to_video", "image_to_video"):
        for _ in range(batch):
            scene = random_motion_scene(rng)
            targets.append(scene)
            texts.append(motion_caption(scene, rng))
    elif task == "video_edit":
        sources = []
        for _ in range(batch):
            triple = sample_video_edit(rng)
            sources.append(render_clip(triple.source, f, size))
            targets.append(triple.target)
            texts.append(triple.instruction)
        out["sources"] = np.stack(sources)
    elif task == "reference_to_video":
        n_images = int(rng.integers(1, 3))  # one count per batch: the token count is the batch's own
        refs = []
        for _ in range(batch):
            ref = random_reference_video(rng, n_images)
            refs.append(ref.images(size))
            targets.append(ref.target)
            texts.append(ref.instruction)
        out["references"] = np.stack([np.stack(r) for r in refs])  # [B, R, H, W, 3]
        out["images"] = [list(r) for r in refs]
    else:
        raise ValueError(f"unknown video task {task!r}")
    out["texts"] = texts
    out["clips"] = np.stack([render_clip(s, f, size) for s in targets])
    if task == "image_to_video":
        out["images"] = [[clip[0]] for clip in out["clips"]]
    if drafts is not None and task in drafted:
        out["draft"] = np.stack([track_rows(s, drafts) for s in targets])
    times = keyframe_times(recipe)
    out["labels"] = np.stack([np.stack([label_map(s.at(float(t)), recipe.grid) for t in times]) for s in targets])
    return out


def pick_task(rng: np.random.Generator, weights: dict) -> str:
    tasks = list(weights)
    p = np.array([weights[t] for t in tasks], float)
    return tasks[int(rng.choice(len(tasks), p=p / p.sum()))]



# ----------------------------------------------------------------------------------------------- tensors

def encode_clips(codec: PixelCodec, clips: np.ndarray, size: int) -> torch.Tensor:
    return torch.cat([codec.encode(c, size, size, "cpu", torch.float32) for c in clips])


def conditions(batch: dict, codec: PixelCodec, size: int) -> WanReference | None:
    """A batch's clean condition latents, as WanAdapter takes them."""
    if batch["kind"] == "image_to_video":
        return WanReference(first_frame=encode_clips(codec, batch["clips"][:, :1], size))
    if batch["kind"] == "video_edit":
        return WanReference(frames=encode_clips(codec, batch["sources"], size), source_clip=True)
    if batch["kind"] == "reference_to_video":
        refs = batch["references"]  # [B, R, H, W, 3]: each still a latent frame of its own
        return WanReference(frames=torch.cat([torch.cat([codec.encode(im, size, size, "cpu", torch.float32)
                                                         for im in item], dim=2) for item in refs]))
    return None
