"""Build a fresh (random) MetaCanvas model for the shapes world from a recipe.

Real classes throughout: a transformers Qwen2.5-VL planner with a word-level tokenizer over the
shapes vocabulary, and a diffusers SANA transformer working in pixel space (64 x 64 x 3 is small
enough that no VAE is needed), wrapped with the MetaCanvas connectors.
"""
from __future__ import annotations

from dataclasses import replace

from diffusers import SanaTransformer2DModel
from transformers import Qwen2_5_VLModel

from app.core.ablations import canvas_positions
from app.core.backbones.sana import SanaAdapter
from app.core.canvas import CanvasSpec, CanvasTokens
from app.core.draft import DraftConfig, LayoutDrafter
from app.core.latents import PixelCodec
from app.core.pipeline import MetaCanvasPipeline, PipelineDefaults
from app.core.planner import Planner, PlannerProcessor, tiny_qwen25vl_config
from app.shapes.palette import NUM_LABELS
from app.shapes.scene import MAX_OBJECTS
from app.shapes.vocab import VOCABULARY
from app.train.recipe import Recipe


def build_processor(recipe: Recipe) -> PlannerProcessor:
    """The word-level tokenizer over the shapes vocabulary, and the image processor. The vision tower
    sees the source image of an edit at its full 64 x 64: 16 x 16 patches of 4 pixels, merged 2 x 2
    into 64 tokens."""
    m = recipe.model
    return PlannerProcessor.word_level(list(VOCABULARY), patch_size=m.vision_patch,
                                       min_pixels=m.image_size ** 2, max_pixels=m.image_size ** 2)


def planner_config(recipe: Recipe, processor: PlannerProcessor):
    m = recipe.model
    config = tiny_qwen25vl_config(len(processor.tokenizer), hidden=m.planner_hidden, layers=m.planner_layers,
                                  heads=m.planner_heads, kv_heads=m.planner_heads, vision_hidden=m.vision_hidden,
                                  vision_depth=m.vision_depth, vision_heads=max(1, m.vision_hidden // 32),
                                  patch_size=m.vision_patch, tokenizer=processor.tokenizer,
                                  rope_theta=m.planner_rope_theta)
    config.text_config.intermediate_size = m.planner_intermediate
    # One attention window per image: transformers runs the vision tower's attention one window at a
    # time in a Python loop (unless flash attention is installed), so 16 windows per 64 px image made
    # an edit batch of 128 cost ~2000 small kernels per layer. A 64 px image is small enough to
    # attend whole.
    config.vision_config.window_size = m.image_size
    return config


def rope_only_planner(recipe: Recipe, processor: PlannerProcessor):
    """The planner's model class with no weights (meta device): enough to call its own get_rope_index
    in a data worker."""
    import torch

    with torch.device("meta"):
        return Qwen2_5_VLModel(planner_config(recipe, processor))


def draft_config(recipe: Recipe) -> DraftConfig | None:
    """The shapes world's drafts: its labels (background / stop + class x colour), at most 4 objects."""
    if not recipe.model.canvas_drafts:
        if recipe.model.draft_context:
            raise ValueError("model.draft_context needs model.canvas_drafts (the model drafts layouts at all)")
        return None
    return DraftConfig(labels=NUM_LABELS, max_objects=MAX_OBJECTS, dim=recipe.model.planner_hidden)


def build_model(recipe: Recipe, use_canvas: bool = True) -> MetaCanvasPipeline:
    m = recipe.model
    size = m.image_size
    processor = build_processor(recipe)
    mllm = Qwen2_5_VLModel(planner_config(recipe, processor))
    grid = size // m.patch_size
    # Drafts seed the canvas: a text-only baseline (no canvas branch) has nothing to draft for, unless
    # its drafts go into its context (model.draft_context: the supervision-matched control).
    if m.draft_context and use_canvas:
        raise ValueError("model.draft_context is the text-only control (drafts as context tokens): train it "
                         "with --no-canvas; a MetaCanvas model's drafts go onto its canvas")
    drafts = draft_config(recipe) if use_canvas or m.draft_context else None
    if drafts is not None and m.draft_context:
        drafts = replace(drafts, context_tokens=True)
    drafter = LayoutDrafter(drafts, m.planner_hidden) if drafts is not None else None
    edit_drafter = None
    if m.edit_drafts and drafts is not None:
        if drafts is None:
            raise ValueError("model.edit_drafts needs model.canvas_drafts (edits are drafted as captions are)")
        edit_drafter = LayoutDrafter(replace(drafts, reads_images=True, pixel_width=m.edit_drafter_pixels,
                                             context_tokens=False), m.planner_hidden)
    onto_canvas = drafts is not None and not m.draft_context
    canvas = CanvasTokens(CanvasSpec(1, grid, grid), m.planner_hidden, draft_labels=NUM_LABELS if onto_canvas else 0,
                          positions=canvas_positions(m.ablations))
    planner = Planner(mllm, processor, canvas, drafter=drafter, edit_drafter=edit_drafter)

    width = m.dit_heads * m.dit_head_dim
    transformer = SanaTransformer2DModel(
        in_channels=3, out_channels=3, num_attention_heads=m.dit_heads, attention_head_dim=m.dit_head_dim,
        num_layers=m.dit_layers, num_cross_attention_heads=m.dit_heads, cross_attention_head_dim=m.dit_head_dim,
        cross_attention_dim=width, caption_channels=m.planner_hidden, mlp_ratio=m.dit_mlp_ratio,
        sample_size=size, patch_size=m.patch_size, interpolation_scale=1)
    adapter = SanaAdapter(transformer, m.planner_hidden, canvas=use_canvas, self_attention=m.self_attention,
                          connector_heads=m.connector_heads, prediction=m.prediction,
                          source_residual=m.source_residual, ablations=m.ablations)
    defaults = PipelineDefaults(width=size, height=size, steps=recipe.sample_steps, guidance=recipe.guidance,
                                guidance_interval=tuple(recipe.guidance_interval),
                                shift=recipe.sample_shift, solver=recipe.sample_solver,
                                tasks=("text_to_image", "image_edit"))
    name = recipe.name if use_canvas else recipe.name + "-text-only"
    return MetaCanvasPipeline(planner, adapter, PixelCodec(), defaults, name=name)
