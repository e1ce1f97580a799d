"""Train the embedded video model (models/metacanvas-shapes-video) and its text-only twin.

    python -m app.train.video --recipe app/train/recipes/video/shapes-video-48-cpu.json --out runs/video

The video model is the method's video arm at a size a laptop CPU runs: a Wan-class diffusers
`WanTransformer3DModel` in pixel space (PixelCodec with Wan's causal 1 + 4k frame packing), a 3-keyframe
canvas spread over the latent frames, condition frames (the given first frame, reference stills, the
source clip) clean at timestep 0 and never on the canvas (app/core/backbones/wan.py).

Its planner starts from the embedded image model's taught planner (models/metacanvas-shapes): it already
grounds classes, colours and places, and reads images through its vision tower. The clip words are added
to its vocabulary (VIDEO_VOCABULARY keeps every image word's id) and stage 1 teaches it clips: each canvas
keyframe learns the label map of the target clip at that keyframe's time, for all four tasks.

A recipe with `track_drafts` gives the planner a track drafter (app/core/draft.py: each object's start
and end place, drawn onto the keyframes): from stage-2 step `drafts_from_step` on, text-to-video clips
(and, from `image_drafts_from_step` on, image-to-video clips, from `reference_drafts_from_step` on
reference-video clips, whose drafts the pipeline moves onto the given image or stills:
app/core/frame_detector.py) are planned with their own true tracks (teacher forcing, as the image model's
scenes are), after a
draft-teaching stage (`draft_teach`) in which, the MLLM frozen, the canvas's draft embedding learns to
carry the tracks into the canvas's states (the keyframes' label maps, as in stage 1) and the drafter
learns to draw tracks from the words' states. The MLLM stays frozen so the context states, which the
text-only twin reads too, stay exactly what they were. Without `track_drafts` the canvas is the
planner's own plan.

Stage 2 trains the MetaCanvas model and, with `--twin`, its text-only twin in the same process on the
very same batches and noise, so the two have exactly the same steps and data (the comparison the method
asks for). Resumable: RUN/checkpoint holds both adapters, their EMAs and optimizers; SIGTERM or the time
budget saves and exports. Why not app/train/loop.Trainer: that trainer builds stills models from nothing;
this one starts from a trained planner and its batches carry clip conditions the still stages do not have.

The recipe and the clip batches are in app/train/video_data.py; the clip edit drafter's teaching in
app/train/clip_edit_drafter.py. About 625 lines: each stage of a run and the run's ways in (a new run, a
resumed one, one started from a model folder, a drafter taught alone) share the trainer's state and its
progress record, and are read together when one of them changes.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from app.core.backbones.wan import WanAdapter
from app.core.canvas import CanvasSpec, CanvasTokens
from app.core.checkpoints import replace_folder
from app.core.draft import DraftConfig, LayoutDrafter, no_drafts
from app.core.latents import PixelCodec
from app.core.pipeline import MetaCanvasPipeline, PipelineDefaults
from app.core.planner import PlannerProcessor
from app.shapes.vocab import CLIP_WORDS, VIDEO_VOCABULARY
from app.train.ema import EMA
from app.train.optim_state import load_optimizer, save_optimizer
from app.train.planner_teaching import PlannerTeacher
from app.train.progress import atomic_json
from app.train.schedule import cooldown_record, cooldown_window, lr_lambda
from app.train.stage2_flow_matching import StopRequest, load_state_file, shifted
from app.train.video_data import (VIDEO_TASKS, VideoRecipe, VideoStage, conditions, encode_clips, make_video_batch,
                                  pick_task, track_draft_config)

# ----------------------------------------------------------------------------------------------- model

def video_processor(recipe: VideoRecipe) -> PlannerProcessor:
    """The image planner's processor with the clip words: the vision tower sees stills and clip frames at
    64 x 64, as the image model's does."""
    return PlannerProcessor.word_level(list(VIDEO_VOCABULARY), patch_size=4, min_pixels=64 * 64, max_pixels=64 * 64)


def grow_vocabulary(planner, processor: PlannerProcessor) -> None:
    """Give the planner's embedding table rows for the words the new tokenizer adds (ids of the old words
    stay: VIDEO_VOCABULARY starts with VOCABULARY). New rows start at the mean of the old ones."""
    mllm = planner.mllm
    old = mllm.get_input_embeddings()
    n_old, d = old.weight.shape
    n_new = len(processor.tokenizer)
    if n_new <= n_old:
        return
    grown = nn.Embedding(n_new, d, padding_idx=old.padding_idx).to(old.weight)
    with torch.no_grad():
        grown.weight[:n_old] = old.weight
        gen = torch.Generator().manual_seed(0)
        noise = torch.randn(n_new - n_old, d, generator=gen).to(old.weight) * old.weight.std() * 0.1
        grown.weight[n_old:] = old.weight.mean(0, keepdim=True) + noise
    mllm.set_input_embeddings(grown)
    for config in (mllm.config, getattr(mllm.config, "text_config", None)):
        if config is not None and hasattr(config, "vocab_size"):
            config.vocab_size = n_new
    planner.processor = processor


def video_planner(recipe: VideoRecipe, planner_from: str | Path | None = None):
    """The image model's planner, made a video planner: clip words, a K-keyframe canvas (its tokens start
    as the image canvas's, resized to this grid, on every keyframe), no layout drafters or frame detector."""
    from app.core.checkpoints import load_model

    planner = load_model(Path(planner_from or recipe.planner_from)).planner
    planner.drafter = None
    planner.edit_drafter = None
    planner.frame_detector = None
    grow_vocabulary(planner, video_processor(recipe))
    old = planner.canvas_tokens.tokens.detach()  # [1, h, w, d]
    spec = CanvasSpec(recipe.keyframes, recipe.grid, recipe.grid)
    canvas = CanvasTokens(spec, planner.hidden_size)
    with torch.no_grad():
        resized = F.interpolate(old[0].permute(2, 0, 1)[None], size=(recipe.grid, recipe.grid), mode="bilinear",
                                align_corners=False, antialias=True)[0].permute(1, 2, 0)
        canvas.tokens.copy_(resized[None].expand(recipe.keyframes, -1, -1, -1))
    planner.canvas_tokens = canvas
    return planner


def attach_track_drafter(planner, config: DraftConfig) -> None:
    """Give `planner` a fresh track drafter and canvas tokens that embed drafts (their tokens kept; the
    draft embedding starts at zero, so the plans are unchanged until it is taught)."""
    old = planner.canvas_tokens
    tokens = CanvasTokens(old.spec, planner.hidden_size, draft_labels=config.labels, positions=old.positions)
    with torch.no_grad():
        tokens.tokens.copy_(old.tokens)
    planner.canvas_tokens = tokens.to(old.tokens.device)
    torch.manual_seed(0)
    planner.drafter = LayoutDrafter(config, planner.hidden_size)


def taught_video_planner(recipe: VideoRecipe, folder: Path, progress: dict):
    """A video planner with the weights a run taught it (RUN/planner_taught), its track drafter too once
    the run has taught one."""
    from app.train.planner_folder import DRAFTER, load_planner

    from app.train.planner_folder import EDIT_DRAFTER

    planner = video_planner(recipe)
    if (config := track_draft_config(recipe)) is not None and (folder / DRAFTER).is_dir():
        attach_track_drafter(planner, config)
        if (folder / EDIT_DRAFTER).is_dir():  # taught by --teach-edit-drafter
            from app.train.clip_edit_drafter import clip_edit_drafter
            planner.edit_drafter = clip_edit_drafter(planner)
    load_planner(planner, folder, progress)
    return planner


def build_video_model(recipe: VideoRecipe, planner, use_canvas: bool = True) -> MetaCanvasPipeline:
    from diffusers import WanTransformer3DModel

    torch.manual_seed(recipe.seed)
    width = recipe.dit_heads * recipe.dit_head_dim
    codec = PixelCodec(temporal_factor=recipe.temporal_factor)
    transformer = WanTransformer3DModel(
        patch_size=(1, recipe.patch_size, recipe.patch_size), num_attention_heads=recipe.dit_heads,
        attention_head_dim=recipe.dit_head_dim, in_channels=codec.channels, out_channels=codec.channels,
        text_dim=planner.hidden_size, freq_dim=64, ffn_dim=int(width * recipe.dit_ffn_ratio),
        num_layers=recipe.dit_layers, cross_attn_norm=True, qk_norm="rms_norm_across_heads", rope_max_seq_len=64)
    adapter = WanAdapter(transformer, planner.hidden_size, canvas=use_canvas, connector_heads=recipe.connector_heads,
                         prediction="sample", source_residual=recipe.source_residual)
    defaults = PipelineDefaults(width=recipe.size, height=recipe.size, frames=recipe.frames, fps=recipe.fps,
                                planner_frames=recipe.planner_frames, steps=recipe.sample_steps,
                                guidance=recipe.guidance, guidance_interval=tuple(recipe.guidance_interval),
                                keyframes=recipe.keyframes, shift=recipe.sample_shift, solver=recipe.sample_solver,
                                max_canvas_side=recipe.grid, tasks=VIDEO_TASKS,
                                keep_source_threshold=recipe.keep_source_threshold,
                                own_size_only=recipe.own_size_only, trained_words=CLIP_WORDS)
    name = recipe.name if use_canvas else recipe.name + "-text-only"
    return MetaCanvasPipeline(planner, adapter, codec, defaults, name=name)


def save_untrained_video_model(folder: str | Path, **overrides) -> Path:
    """A video model folder with random DiT weights at a tiny size (one layer, 32 wide) on the embedded
    planner: the real classes and format, for tests and development before a trained model exists."""
    from app.core.checkpoints import save_model

    recipe = VideoRecipe(**{"dit_layers": 1, "dit_heads": 2, "dit_head_dim": 16, "connector_heads": 2,
                            "sample_steps": 4, **overrides})
    pipe = build_video_model(recipe, video_planner(recipe))
    with torch.no_grad():  # the connectors start at zero output: nudge them so the canvas really acts
        for name, p in pipe.adapter.named_parameters():
            if "canvas_connector" in name and p.abs().sum() == 0:
                p.normal_(0, 0.02)
    return save_model(pipe.eval(), folder)


# ----------------------------------------------------------------------------------------------- training

def planner_inputs(planner, batch: dict, pipe: MetaCanvasPipeline):
    videos = [pipe.planner_clip(s) for s in batch["sources"]] if "sources" in batch else None
    return planner.processor(batch["texts"], images=batch["images"], videos=videos)


class VideoTrainer:
    def __init__(self, recipe: VideoRecipe, out: str | Path, planner_from: str | None = None, twin: bool = True):
        self.recipe, self.out = recipe, Path(out)
        self.out.mkdir(parents=True, exist_ok=True)
        self.progress_path = self.out / "progress.json"
        self.progress = json.loads(self.progress_path.read_text()) if self.progress_path.exists() else {
            "teach_done": False, "step": 0, "wall_seconds": 0.0, "losses": [], "twin_losses": [], "teach_losses": []}
        taught = self.out / "planner_taught"
        planner = (taught_video_planner(recipe, taught, self.progress) if taught.exists()
                   else video_planner(recipe, planner_from))
        self.pipe = build_video_model(recipe, planner, use_canvas=True)
        self.twin = build_video_model(recipe, planner, use_canvas=False) if twin else None
        (self.out / "recipe.json").write_text(json.dumps(recipe.to_dict(), indent=1))

    def start_from_model(self, folder: str | Path) -> None:
        """Begin this (empty) run where an exported model left off: its planner (drafters, frame detector)
        becomes RUN/planner_taught, its weights and its text-only twin's (FOLDER-text-only) become the
        checkpoint's weights and EMAs, and its step count the run's. The optimizer's moments are not in a
        model folder: they start fresh, with the recipe's warm-up again (VideoTrainer.train). For going on
        with a committed model on a machine that no longer has the run that trained it."""
        from app.core.checkpoints import load_model
        from app.train.planner_folder import save_planner

        if self.progress["step"] > 0 or (self.out / "checkpoint").exists():
            raise ValueError(f"{self.out} is a begun run: resume it, or start from a model in a new folder")
        folder = Path(folder)
        record = json.loads((folder / "training.json").read_text())
        if (folder / "frame_detector").is_dir() and not self.recipe.frame_detector_from:
            # planner_taught holds no frame detector: later processes of the run take it from the recipe
            raise ValueError(f"{folder} drafts clips with a frame detector; the recipe names none to export it "
                             f"with (frame_detector_from)")
        models = {"canvas": folder} | ({"twin": folder.with_name(folder.name + "-text-only")} if self.twin else {})
        tmp = self.out / "checkpoint.tmp"
        tmp.mkdir(parents=True, exist_ok=True)
        from safetensors.torch import save_file

        for name, path in models.items():
            loaded = load_model(path)
            if name == "canvas":
                self.pipe.planner = loaded.planner
                for pipe in (self.pipe, self.twin):
                    if pipe is not None:
                        pipe.planner = loaded.planner
            pipe = self.pipe if name == "canvas" else self.twin
            missing, unexpected = pipe.adapter.load_state_dict(loaded.adapter.state_dict(), strict=False)
            # A zero-initialised option (the source residual) may be new to the run: it starts as a no-op.
            if unexpected or any(not k.startswith("source_residual.") for k in missing):
                raise ValueError(f"{path} does not fit this recipe: missing {missing[:3]}, unexpected {unexpected[:3]}")
            weights = {k: v.detach().contiguous() for k, v in pipe.adapter.state_dict().items()}
            save_file(weights, str(tmp / f"{name}_adapter.safetensors"))
            ema = EMA(pipe.adapter, self.recipe.ema_decay)
            save_file({k: v.contiguous() for k, v in ema.state_dict().items()}, str(tmp / f"{name}_ema.safetensors"))
        replace_folder(tmp, self.out / "checkpoint")
        self.progress.update(step=int(record["steps"]), wall_seconds=float(record.get("wall_seconds", 0.0)),
                             teach_done=True, teach_steps=record.get("teach_steps"), draft_teach_done=True,
                             drafter_steps=record.get("drafter_steps"),
                             edit_drafter_steps=record.get("edit_drafter_steps"), started_from=str(folder))
        save_planner(self.pipe.planner, self.out / "planner_taught", self._teaching_record(), self.recipe.teach.steps)
        atomic_json(self.progress_path, self.progress)
        self.log(f"started from {folder} at step {record['steps']}")

    def log(self, text: str) -> None:
        line = f"[{time.strftime('%H:%M:%S')}] {text}"
        print(line, flush=True)
        with open(self.out / "log.txt", "a") as fh:
            fh.write(line + "\n")

    def _teacher_steps(self, teacher: PlannerTeacher, params: list, stage: VideoStage, next_batch, name: str,
                       losses_key: str, max_minutes: float | None) -> tuple[int, float]:
        """`stage.steps` steps of `teacher`'s loss on `params` (AdamW, warm-up then constant), batches from
        `next_batch()`; stops early on `max_minutes`. Returns the steps done and the seconds they took."""
        opt = torch.optim.AdamW(params, lr=stage.lr, weight_decay=0.0)
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_lambda(stage.warmup))
        t0, done = time.time(), 0
        for step in range(stage.steps):
            batch = next_batch()
            batch["planner_inputs"] = planner_inputs(self.pipe.planner, batch, self.pipe)
            loss, stats = teacher.loss(batch, "cpu")
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, self.recipe.grad_clip)
            opt.step()
            sched.step()
            done = step + 1
            if step % 25 == 0:
                self.progress.setdefault(losses_key, []).append([step, float(loss.item()), stats])
                self.log(f"{name} step {step} ({time.time() - t0:.0f} s): loss {loss.item():.3f} "
                         + " ".join(f"{k} {v:.3f}" for k, v in stats.items()))
            if max_minutes is not None and (time.time() - t0) / 60 > max_minutes:
                self.log(f"{name} stopped at step {done}: time budget reached")
                break
        return done, time.time() - t0

    # -- stage 1
    def teach(self, max_minutes: float | None = None) -> None:
        r = self.recipe.teach
        if self.progress["teach_done"] or r.steps <= 0:
            return
        planner = self.pipe.planner
        teacher = PlannerTeacher(planner, grid=self.recipe.grid, keyframes=self.recipe.keyframes,
                                 foreground_weight=self.recipe.teach_foreground_weight)
        params = [p for p in teacher.parameters() if p.requires_grad]
        rng = np.random.default_rng([self.recipe.seed, 1])
        planner.train()
        steps, seconds = self._teacher_steps(teacher, params, r, lambda: make_video_batch(
            rng, self.recipe, pick_task(rng, self.recipe.task_weights), r.batch), "teach", "teach_losses", max_minutes)
        planner.eval()
        self.progress.update(teach_done=True, teach_steps=steps, teach_seconds=seconds)
        from app.train.planner_folder import save_planner

        save_planner(planner, self.out / "planner_taught", {"teach_steps_done": steps, "teach_seconds": seconds}, r.steps)
        atomic_json(self.progress_path, self.progress)

    # -- draft teaching
    def teach_drafts(self, max_minutes: float | None = None) -> None:
        """Teach the track drafter and the canvas's draft embedding, the MLLM frozen (see the module's
        docstring), on text-to-video batches with their true tracks; saves RUN/planner_taught with them."""
        config, r = track_draft_config(self.recipe), self.recipe.draft_teach
        if config is None or self.progress.get("draft_teach_done"):
            return
        planner = self.pipe.planner
        if planner.drafter is None:
            attach_track_drafter(planner, config)
        planner.requires_grad_(False).eval()
        teacher = PlannerTeacher(planner, grid=self.recipe.grid, keyframes=self.recipe.keyframes,
                                 foreground_weight=self.recipe.teach_foreground_weight)
        teacher.context_head.requires_grad_(False)  # the context is frozen: nothing there to teach
        params = [planner.canvas_tokens.draft_embedding, *planner.drafter.parameters(), *teacher.canvas_head.parameters()]
        for p in params:
            p.requires_grad_(True)
        rng = np.random.default_rng([self.recipe.seed, 3])
        steps, seconds = self._teacher_steps(teacher, params, r, lambda: make_video_batch(
            rng, self.recipe, "text_to_video", r.batch, config), "draft teach", "draft_teach_losses", max_minutes)
        planner.requires_grad_(False)
        self.progress.update(draft_teach_done=True, drafter_steps=steps, draft_teach_seconds=seconds)
        from app.train.planner_folder import save_planner

        save_planner(planner, self.out / "planner_taught", self._teaching_record(), self.recipe.teach.steps)
        atomic_json(self.progress_path, self.progress)

    def _teaching_record(self) -> dict:
        """The run's progress as save_planner reads it: stage 1's steps as they were done."""
        return {**self.progress, "teach_steps_done": self.progress.get("teach_steps_done", self.progress.get("teach_steps"))}

    def teach_drafter_alone(self, steps: int, batch: int = 32, lr: float = 1e-3,
                            tasks: tuple[str, ...] = ("text_to_video",)) -> None:
        """More steps for the track drafter alone, any time after the draft stage: it reads the frozen
        prompt states and writes nothing the DiT reads in training (the DiT is taught on true tracks),
        so this changes no other weight. Saves RUN/planner_taught and, where exported, RUN/model's drafter.
        `tasks`: the batches' tasks, in turn. A reference-video batch is taught from its words alone, as
        app/core/reference_stills.reference_drafts drafts it (the stills place the tracks afterwards)."""
        unknown = set(tasks) - {"text_to_video", "reference_to_video"}
        if unknown or not tasks:
            raise ValueError("the drafter is taught on text_to_video and reference_to_video batches"
                             + (f", not {', '.join(sorted(unknown))}" if unknown else ": name at least one"))
        from app.core.checkpoints import save_module
        from app.train.planner_folder import DRAFTER, save_planner

        planner = self.pipe.planner
        if planner.drafter is None:
            raise ValueError(f"{self.out} has no track drafter yet: run its draft stage first")
        drafter = planner.drafter
        planner.requires_grad_(False).eval()
        drafter.requires_grad_(True).train()
        opt = torch.optim.AdamW(drafter.parameters(), lr=lr, weight_decay=0.0)
        done = int(self.progress.get("drafter_steps", 0))
        rng = np.random.default_rng([self.recipe.seed, 4, done])
        t0 = time.time()
        for step in range(steps):
            task = tasks[step % len(tasks)]
            data = make_video_batch(rng, self.recipe, task, batch, drafter.config, drafted=(task,))
            context, mask = planner.context_states(data["texts"])  # the words alone, as drafting reads them
            loss, stats = drafter.loss(context, mask, torch.from_numpy(data["draft"]))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(drafter.parameters(), self.recipe.grad_clip)
            opt.step()
            if step % 100 == 0 or step == steps - 1:
                self.log(f"drafter step {done + step + 1} ({time.time() - t0:.0f} s): "
                         + " ".join(f"{k} {v:.3f}" for k, v in stats.items()))
        drafter.requires_grad_(False).eval()
        self.progress["drafter_steps"] = done + steps
        save_planner(planner, self.out / "planner_taught", self._teaching_record(), self.recipe.teach.steps)
        model = self.out / "model"
        if (model / DRAFTER).is_dir():  # written aside, then put in place: never half a drafter
            tmp = model / (DRAFTER + ".tmp")
            save_module(drafter, tmp, {"draft": drafter.config.to_dict(), "context_dim": planner.hidden_size})
            replace_folder(tmp, model / DRAFTER)
            record = json.loads((model / "training.json").read_text())
            atomic_json(model / "training.json", {**record, "drafter_steps": done + steps})
        atomic_json(self.progress_path, self.progress)

    def teach_edit_drafter(self, steps: int) -> None:
        """Teach the clip edit drafter `steps` more steps (app/train/clip_edit_drafter.py; nothing else
        changes); saves RUN/planner_taught and, where the run has exported, puts it into RUN/model. Taught
        while the run's stage 2 goes on in another process, it is not in that process's export: run this
        again with 0 steps after it (as for the track drafter, both write RUN/progress.json, stage 2 last)."""
        from app.core.checkpoints import save_module
        from app.train.clip_edit_drafter import teach_clip_edit_drafter
        from app.train.frame_detector import frame_detector_from
        from app.train.planner_folder import EDIT_DRAFTER, save_planner

        planner = self.pipe.planner
        if planner.frame_detector is None:
            if not self.recipe.frame_detector_from:
                raise ValueError("the recipe names no frame_detector_from: edits are drafted from the tracks it finds")
            planner.frame_detector = frame_detector_from(self.recipe.frame_detector_from)
        if steps == 0 and planner.edit_drafter is None:
            raise ValueError(f"{self.out} has no taught clip edit drafter to put into its model: teach one first "
                             f"(--teach-edit-drafter STEPS)")
        done = int(self.progress.get("edit_drafter_steps") or 0)
        editor = teach_clip_edit_drafter(planner, self.recipe, steps, done, log=self.log)
        self.progress["edit_drafter_steps"] = done + steps
        detector, planner.frame_detector = planner.frame_detector, None  # not a planner_taught part
        save_planner(planner, self.out / "planner_taught", self._teaching_record(), self.recipe.teach.steps)
        planner.frame_detector = detector
        model = self.out / "model"
        if (model / "model_index.json").exists():  # written aside, then put in place: never half a drafter
            tmp = model / (EDIT_DRAFTER + ".tmp")
            save_module(editor, tmp, {"draft": editor.config.to_dict(), "context_dim": planner.hidden_size})
            replace_folder(tmp, model / EDIT_DRAFTER)
            index = json.loads((model / "model_index.json").read_text())
            atomic_json(model / "model_index.json", {**index, EDIT_DRAFTER: EDIT_DRAFTER})
            record = json.loads((model / "training.json").read_text())
            atomic_json(model / "training.json", {**record, "edit_drafter_steps": done + steps})
            self.log(f"put the clip edit drafter into {model}")
        atomic_json(self.progress_path, self.progress)

    # -- stage 2
    def _loss(self, pipe: MetaCanvasPipeline, batch: dict, plan, noisy, noise, target, t, reference) -> torch.Tensor:
        adapter = pipe.adapter
        plan_tokens = adapter.prepare_plan(plan.canvas)  # None for the text-only twin
        velocity = adapter(noisy, t, plan.context, plan.context_mask, plan_tokens=plan_tokens, reference=reference)
        start = 1 if batch["kind"] == "image_to_video" else 0  # the given first frame is not generated
        return F.mse_loss(velocity[:, :, start:], (noise - target)[:, :, start:])

    def train(self, max_minutes: float | None = None, stop_at: int | None = None,
              cooldown_steps: int | None = None) -> None:
        """Stage 2 up to the recipe's steps (or `stop_at`), resumable; exports both models at the end.
        With `cooldown_steps` (or a cooldown begun before and cut short) the run goes on that many steps
        past where it stands, past the recipe's steps if need be, the LR falling linearly to zero."""
        r, rec = self.recipe.diffusion, self.recipe
        cooldown = cooldown_window(self.progress, self.progress["step"], cooldown_steps, self.log)
        last = cooldown[1] if cooldown is not None else min(r.steps, stop_at) if stop_at is not None else r.steps
        models = {"canvas": self.pipe} | ({"twin": self.twin} if self.twin is not None else {})
        planner = self.pipe.planner
        planner.requires_grad_(False).eval()
        state = {}
        for name, pipe in models.items():
            adapter = pipe.adapter
            adapter.train()
            params = [p for p in adapter.parameters() if p.requires_grad]
            opt = torch.optim.AdamW(params, lr=r.lr, weight_decay=0.0)
            sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_lambda(r.warmup, cooldown))
            state[name] = (adapter, params, opt, sched, EMA(adapter, rec.ema_decay))
        start = self.progress["step"]
        ckpt = self.out / "checkpoint"
        if start > 0 and ckpt.exists():
            for name, (adapter, params, opt, sched, ema) in state.items():
                adapter.load_state_dict(load_state_file(ckpt / f"{name}_adapter.safetensors"))
                ema.load_state_dict(load_state_file(ckpt / f"{name}_ema.safetensors"))
                moments = ckpt / f"{name}_optimizer.safetensors"
                restart = int(self.progress.get("optimizer_from_step", 0))
                if moments.exists():
                    load_optimizer(opt, moments)
                else:  # a run started from a model folder: fresh moments, warmed up again from here
                    self.progress["optimizer_from_step"] = restart = start
                sched.lr_lambdas = [lr_lambda(r.warmup, cooldown, warmup_from=restart)]
                sched.last_epoch = start
                for group, base in zip(opt.param_groups, sched.base_lrs):
                    group["lr"] = base * sched.lr_lambdas[0](start)
            self.log(f"resumed at step {start}")
        rng = np.random.default_rng([rec.seed, 2, start])
        gen = torch.Generator().manual_seed(rec.seed + start)
        t_begin, wall0 = time.time(), self.progress["wall_seconds"]
        stop = StopRequest()
        running: dict[str, list] = {name: [] for name in state}
        done = start
        for step in range(start, last):
            weights = rec.drafted_task_weights if planner.drafts and rec.drafted_task_weights else rec.task_weights
            drafted = ("text_to_video",) + tuple(task for task, start in (
                ("image_to_video", rec.image_drafts_from_step), ("reference_to_video", rec.reference_drafts_from_step),
                ("video_edit", rec.edit_drafts_from_step)) if start is not None and step >= start)
            batch = make_video_batch(rng, rec, pick_task(rng, weights), r.batch,
                                     planner.drafter.config if planner.drafts else None, drafted)
            drop = rng.random(len(batch["texts"])) < rec.cfg_dropout  # the unconditional branch guidance needs
            batch["texts"] = ["" if d else t for t, d in zip(batch["texts"], drop)]
            drafts = None
            if planner.drafts:  # true tracks for the drafted tasks; none for the others' clips or no words
                drafts = (torch.from_numpy(batch["draft"]) if batch.get("draft") is not None
                          else no_drafts(len(batch["texts"]), planner.drafter.config))
                drafts[torch.from_numpy(drop)] = -1
            with torch.no_grad():
                plan = planner(batch["texts"], CanvasSpec(rec.keyframes, rec.grid, rec.grid),
                               inputs=planner_inputs(planner, batch, self.pipe), drafts=drafts)
            target = encode_clips(self.pipe.codec, batch["clips"], rec.size)
            reference = conditions(batch, self.pipe.codec, rec.size)
            b = target.shape[0]
            t = shifted(torch.sigmoid(torch.randn(b, generator=gen) * rec.logit_normal_std), rec.timestep_shift)
            noise = torch.randn(target.shape, generator=gen)
            tt = t.view(b, 1, 1, 1, 1)
            noisy = (1 - tt) * target + tt * noise
            for name, (adapter, params, opt, sched, ema) in state.items():
                loss = self._loss(models[name], batch, plan, noisy, noise, target, t, reference)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(params, rec.grad_clip)
                opt.step()
                sched.step()
                ema.update(adapter, step)
                running[name].append(loss.item())
            done = step + 1
            if done % 50 == 0:
                for name in state:
                    key = "losses" if name == "canvas" else "twin_losses"
                    self.progress[key].append([done, float(np.mean(running[name]))])
                self.log(f"step {done} ({time.time() - t_begin:.0f} s): "
                         + ", ".join(f"{name} loss {np.mean(v):.4f}" for name, v in running.items()))
                running = {name: [] for name in state}
            out_of_time = (max_minutes is not None and (time.time() - t_begin) / 60 > max_minutes) or stop.requested
            if done % rec.checkpoint_every == 0 or done == last or out_of_time:
                self.progress["step"] = done
                self.progress["wall_seconds"] = wall0 + time.time() - t_begin
                self._save_checkpoint(ckpt, state)
            if out_of_time:
                self.log(f"stopping at step {done} (resumable)")
                break
        stop.restore()
        self.export(state)

    def _save_checkpoint(self, folder: Path, state: dict) -> None:
        from safetensors.torch import save_file

        tmp = folder.with_name(folder.name + ".tmp")
        tmp.mkdir(parents=True, exist_ok=True)
        for name, (adapter, params, opt, sched, ema) in state.items():
            save_file({k: v.detach().contiguous() for k, v in adapter.state_dict().items()}, str(tmp / f"{name}_adapter.safetensors"))
            save_file({k: v.contiguous() for k, v in ema.state_dict().items()}, str(tmp / f"{name}_ema.safetensors"))
            save_optimizer(opt, tmp / f"{name}_optimizer.safetensors")
        replace_folder(tmp, folder)
        atomic_json(self.progress_path, self.progress)

    def export(self, state: dict) -> None:
        """Each model with its EMA weights, as a model folder (RUN/model, RUN/model-text-only)."""
        from app.core.checkpoints import save_model

        record = {"steps": self.progress["step"], "wall_seconds": round(self.progress["wall_seconds"], 1),
                  "teach_steps": self.progress.get("teach_steps"), "recipe": self.recipe.to_dict(),
                  **cooldown_record(self.progress)}
        if not record.get("cooldown_finished", True):
            self.log(f"the cooldown ends at step {record['cooldown'][1]}: this export, at step {record['steps']}, "
                     f"is not cooled down (run the same command again to finish it)")
        planner = self.pipe.planner
        for name, (adapter, params, opt, sched, ema) in state.items():
            pipe = self.pipe if name == "canvas" else self.twin
            live = {k: v.detach().clone() for k, v in adapter.state_dict().items()}
            ema.copy_to(adapter)
            adapter.eval()
            folder = self.out / ("model" if name == "canvas" else "model-text-only")
            drafter, detector, editor = planner.drafter, planner.frame_detector, planner.edit_drafter
            if name != "canvas":  # the twin shares the planner; it has no canvas, so nothing to draft onto
                planner.drafter = planner.frame_detector = planner.edit_drafter = None
            elif drafter is not None and detector is None and self.recipe.frame_detector_from:
                from app.train.frame_detector import frame_detector_from
                planner.frame_detector = detector = frame_detector_from(self.recipe.frame_detector_from)
            try:
                save_model(pipe, folder)
            finally:
                planner.drafter, planner.frame_detector, planner.edit_drafter = drafter, detector, editor
            drafted = {"drafter_steps": self.progress.get("drafter_steps"), "drafts_from_step": self.recipe.drafts_from_step} \
                if name == "canvas" and planner.drafter is not None else {}
            if name == "canvas" and planner.edit_drafter is not None:
                drafted["edit_drafter_steps"] = self.progress.get("edit_drafter_steps")
            atomic_json(folder / "training.json", {**record, **drafted, "use_canvas": name == "canvas"})
            adapter.load_state_dict(live)
            self.log(f"exported {folder}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--recipe", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--planner-from", help="an image model folder (default: the recipe's planner_from)")
    parser.add_argument("--no-twin", action="store_true", help="train the MetaCanvas model alone")
    parser.add_argument("--max-minutes", type=float, help="stage 2's time budget (resumable)")
    parser.add_argument("--teach-minutes", type=float, help="stage 1's time budget")
    parser.add_argument("--threads", type=int)
    parser.add_argument("--cooldown-steps", type=int, metavar="N", help="end the run: N more steps of stage 2 "
                        "with the LR falling linearly to zero (resumable; may go past the recipe's steps)")
    parser.add_argument("--start-from", metavar="MODEL_FOLDER", help="begin a new run where this exported video "
                        "model (and its FOLDER-text-only twin) left off: weights, planner and step count")
    parser.add_argument("--teach-drafter", type=int, metavar="STEPS",
                        help="only teach the run's track drafter this many more steps (nothing else changes)")
    parser.add_argument("--teach-edit-drafter", type=int, metavar="STEPS", help="only teach the run's clip edit "
                        "drafter this many more steps (0: put the taught one into RUN/model); nothing else changes")
    parser.add_argument("--drafter-tasks", default="text_to_video", help="with --teach-drafter: the batches' "
                        "tasks, comma-separated, in turn (text_to_video, reference_to_video)")
    args = parser.parse_args(argv)
    if args.cooldown_steps is not None and args.cooldown_steps <= 0:
        parser.error(f"--cooldown-steps must be positive, got {args.cooldown_steps}")
    # Denormal floats (tiny optimiser moments, near-zero activations) are up to 100x slower on CPUs that
    # do not flush them; flushing changes nothing a float32 model can tell.
    torch.set_flush_denormal(True)
    if args.threads:
        torch.set_num_threads(args.threads)
    trainer = VideoTrainer(VideoRecipe.load(args.recipe), args.out, args.planner_from, twin=not args.no_twin)
    if args.start_from:
        trainer.start_from_model(args.start_from)
    if args.teach_edit_drafter is not None:
        trainer.teach_edit_drafter(args.teach_edit_drafter)
        return 0
    if args.teach_drafter:
        trainer.teach_drafter_alone(args.teach_drafter, tasks=tuple(t.strip() for t in args.drafter_tasks.split(",") if t.strip()))
        return 0
    trainer.teach(args.teach_minutes)
    recipe = trainer.recipe
    started = time.time()

    def minutes_left() -> float | None:  # one --max-minutes for all of stage 2, however it is split
        return None if args.max_minutes is None else max(0.0, args.max_minutes - (time.time() - started) / 60)

    if recipe.track_drafts is not None and not trainer.progress.get("draft_teach_done"):
        # The stage-2 steps planned without drafts, then the draft stage, then the drafted steps.
        if trainer.progress["step"] < recipe.drafts_from_step:
            trainer.train(minutes_left(), stop_at=recipe.drafts_from_step)
            if trainer.progress["step"] < recipe.drafts_from_step:
                return 0  # out of time: resumable
        trainer.teach_drafts(args.teach_minutes)
    trainer.train(minutes_left(), cooldown_steps=args.cooldown_steps)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
