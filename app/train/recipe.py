"""A training recipe: everything that decides a trained model, in one JSON file.

The recipes in app/train/recipes/ are the ones that built the committed models (their cards name
them, leg by leg) and tiny-test.json; experimental ones live in research/recipes/.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path


@dataclass
class ModelRecipe:
    image_size: int = 64
    patch_size: int = 4  # DiT patch in pixels: 64 / 4 = a 16 x 16 token grid = the canvas grid
    planner_hidden: int = 128
    planner_layers: int = 4
    planner_heads: int = 4
    planner_intermediate: int = 384
    # The planner's M-RoPE base. Qwen's 10000 leaves a 32-wide head no frequency that tells canvas
    # columns apart (app/core/planner.py, tiny_qwen25vl_config); the committed models of 2026-11-26 have it.
    planner_rope_theta: float = 10000.0
    vision_hidden: int = 64
    vision_depth: int = 2
    vision_patch: int = 4
    dit_layers: int = 8
    dit_heads: int = 6
    dit_head_dim: int = 32
    dit_mlp_ratio: float = 2.5
    connector_heads: int = 4
    self_attention: str = "softmax"  # softmax attention copies the source image of an edit precisely
    prediction: str = "velocity"  # or "sample": the DiT outputs the clean image (app/core/backbones/sana.py)
    source_residual: bool = False  # an edit's source also enters each target token directly (app/core/backbones/sana.py)
    # Layout drafts: the planner drafts a text-to-image scene object by object with the request's
    # seed, and the draft seeds its canvas (app/core/draft.py).
    canvas_drafts: bool = False
    # Edit drafts: the planner also drafts an image edit's target scene (a second drafter that reads
    # the source image's states where they lie in the frame; app/core/draft.py), and stage 2 trains
    # edits with their targets' drafts on the canvas. Needs canvas_drafts.
    edit_drafts: bool = False
    # The edit drafter also reads the source's pixels through a convolutional stem this many
    # channels wide, taught with a centre loss (app/core/draft.py); 0 reads the MLLM's states alone.
    edit_drafter_pixels: int = 0
    # The supervision-matched control: a text-only model (trained with --no-canvas) given the same layout
    # and edit drafts through its text path, each drafted object an extra context token the DiT
    # cross-attends to (app/core/draft.py, DraftContextTokens), taught with the DiT in stage 2.
    # Needs canvas_drafts (which says the model drafts at all); a MetaCanvas run refuses it.
    draft_context: bool = False
    # The method's ablation switches (the paper's Table 3 and Fig. 4), by name: app/core/ablations.py.
    ablations: list[str] = field(default_factory=list)


@dataclass
class StageRecipe:
    steps: int = 1000
    batch: int = 64
    lr: float = 1e-4
    warmup: int = 100


@dataclass
class Recipe:
    name: str = "metacanvas-shapes"
    seed: int = 0
    model: ModelRecipe = field(default_factory=ModelRecipe)
    # Stage 1 teaches the planner to ground captions and edit instructions in the layout (what a
    # pretrained MLLM arrives knowing); both its canvas and its context states are taught, so the
    # text-only baseline inherits an equally informed planner (a fair comparison, as in the paper).
    teach: StageRecipe = field(default_factory=lambda: StageRecipe(steps=1500, batch=64, lr=1e-3, warmup=100))
    # Stage 2: flow matching of the DiT and both connectors, planner frozen.
    diffusion: StageRecipe = field(default_factory=lambda: StageRecipe(steps=6000, batch=64, lr=3e-4, warmup=200))
    teach_foreground_weight: float = 1.0  # stage-1 cross-entropy weight of object labels (background 1)
    # Share of stage-1 batches that are edits (the rest text-to-image). An edit's layout is in its source
    # and is learned fast; a caption's relations ("left of") take many text-to-image steps: at 0.5 the
    # text-to-image canvas did not tell "left of" from "right of" after 600 steps, and text-to-image
    # batches alone taught it in about 900 (research/LOG.md, "The text-to-image canvas learns left
    # and right").
    teach_edit_fraction: float = 0.5
    # Share of stage-1 edits whose named object has another of its class in the scene, so that only
    # its colour names it. At 0 they come as often as random scenes make them (about a third); the
    # planner's canvas gets such edits half as often right (research/LOG.md, "referring").
    teach_ambiguous_fraction: float = 0.0
    # Stage 1 teaches only the layout drafter and the canvas's draft embedding, on a planner given by
    # --planner teach:FOLDER: its MLLM and base canvas (so every context state and every undrafted plan, edits
    # included) stay bit for bit as they were.
    teach_drafts_only: bool = False
    # Stage 1 teaches the layout drafter alone (from captions and their scenes; nothing is drawn, the
    # MLLM only reads): much faster a step than teach_drafts_only, which also backpropagates through
    # the MLLM into the canvas's draft embedding. For a drafter that needs more steps than the embedding.
    teach_drafter_only: bool = False
    # Which drafters teach_drafter_only teaches: "text_to_image" (captions) and/or "image_edit".
    teach_drafter_tasks: tuple[str, ...] = ("text_to_image",)
    # Under a time budget (--teach-minutes), the LR of stage 1 falls linearly to zero over this last
    # share of the budget, so a teaching sitting of any length ends annealed (a constant LR of 1e-3
    # leaves a drafter's weights jittering around where it would settle). 0 = off.
    teach_time_cooldown: float = 0.0
    # Relative weights of the edit kinds (recolour, move, remove, add, replace) in the edit drafter's
    # teaching, e.g. {"add": 2.0} to give the kind it drafts worst twice the others' share; kinds not
    # named weigh 1. Empty = each kind equally often.
    teach_edit_kind_weights: dict = field(default_factory=dict)
    edit_fraction: float = 0.4  # share of stage-2 steps spent on image editing
    cfg_dropout: float = 0.1  # METHOD.md: our choice, the paper gives none
    logit_normal_std: float = 1.0  # timestep sampling: sigmoid(N(0, std)), the SD3 choice
    # SD3's shift, t' = s t / (1 + (s - 1) t), applied to the sampled training times (s > 1 trains more
    # at high noise, where a 64 px scene's layout is decided) and, as `sample_shift`, exported as the
    # model's sampling default (diffusers' FlowMatchEulerDiscreteScheduler(shift=...)). 1.0 = off.
    timestep_shift: float = 1.0
    sample_shift: float = 1.0
    sample_solver: str = "euler"  # the exported sampling default: "euler" or "dpm++2m" (app/core/pipeline.py)
    ema_decay: float = 0.999
    grad_clip: float = 1.0
    weight_decay: float = 0.0
    # The paper's canvas tokens are learnable and trained with the diffusion loss; ours are taught in
    # stage 1 and, unless this is set, frozen in stage 2 with the rest of the planner. True lets the
    # flow-matching loss reach them (through the frozen planner); the text-only baseline has none.
    train_canvas_tokens: bool = False
    # Auxiliary stage-2 loss: a linear head on the DiT's block `label_loss_layer` predicts each target
    # token's label (app/train/label_alignment.py, REPA-like); 0 = off. Negative layers count from the end.
    label_loss_weight: float = 0.0
    label_loss_layer: int = 3
    checkpoint_every: int = 500
    eval_every: int = 1000
    eval_prompts: int = 96
    sample_steps: int = 20
    guidance: float = 3.0
    # The exported sampling default: the sigmas at which guidance applies (PipelineDefaults.guidance_interval).
    guidance_interval: tuple[float, float] = (0.0, 1.0)
    save_dtype: str = "float16"  # the exported model's weights (halves the committed files); loading upcasts

    def __post_init__(self) -> None:
        from app.core.ablations import check_ablations

        check_ablations(self.model.ablations)  # a typo stops the run before hours are spent
        # A share outside [0, 1] would silently mean "always" or "never" (the data stream compares it
        # with a uniform draw); a typo such as 20 for 0.2 should stop the run before hours are spent.
        for name in ("teach_edit_fraction", "teach_ambiguous_fraction", "edit_fraction", "cfg_dropout",
                     "teach_time_cooldown"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"recipe {name} is {value}: it is a share (of batches, captions or a time budget), between 0 and 1")
        from app.shapes.edits import EDIT_KINDS

        weights = self.teach_edit_kind_weights
        if unknown := set(weights) - set(EDIT_KINDS):
            raise ValueError(f"recipe teach_edit_kind_weights: unknown kinds {sorted(unknown)}; known: {', '.join(EDIT_KINDS)}")
        if any(w < 0 for w in weights.values()) or (weights and sum(weights.get(k, 1.0) for k in EDIT_KINDS) <= 0):
            raise ValueError(f"recipe teach_edit_kind_weights {weights}: weights must be >= 0, not all 0")

    @classmethod
    def load(cls, path: str | Path) -> "Recipe":
        data = json.loads(Path(path).read_text())
        return cls.from_dict(data)

    @classmethod
    def from_dict(cls, data: dict) -> "Recipe":
        data = _without_retired(data, RETIRED)
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown recipe keys: {sorted(unknown)}; known: {sorted(known)}")
        if "model" in data:
            model = _without_retired(data["model"], RETIRED_MODEL)
            known = {f.name for f in fields(ModelRecipe)}
            if unknown := set(model) - known:
                raise ValueError(f"unknown recipe model keys: {sorted(unknown)}; known: {sorted(known)}")
            data["model"] = ModelRecipe(**model)
        for stage in ("teach", "diffusion"):
            if stage in data:
                data[stage] = StageRecipe(**data[stage])
        return cls(**data)

    def to_dict(self) -> dict:
        return asdict(self)

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=2))


# Options of rejected experiments, removed (research/LOG.md): a recipe or a model's training record
# written while they existed names them with their "off" value, which still reads as before.
RETIRED = {"teach_layout_codes_only": False}
RETIRED_MODEL = {"canvas_layouts": 0, "pooled_context": False}


def _without_retired(data: dict, retired: dict) -> dict:
    data = dict(data)
    for key, off in retired.items():
        if key in data:
            if data[key] != off:
                raise ValueError(f"recipe key {key!r} belongs to a rejected experiment that this version no longer "
                                 f"runs (research/LOG.md); only {off!r} is accepted")
            del data[key]
    return data
