"""The training loop for a MetaCanvas model on the shapes world, readable top to bottom.

Why over 600 lines: stage 1 (teaching the planner) and stage 2 (flow matching) still share this file and
its run-start logic; the planned split gives each stage a file of its own.

Stage 1 teaches the planner (canvas and context states) to ground instructions in the layout.
Stage 2 freezes it and trains the DiT and both connectors with rectified flow matching:
    z_t = (1 - t) z + t e,  target e - z,  MSE          (METHOD.md)
AdamW, constant LR after a short warm-up, weight decay 0, grad clip 1.0, EMA of the trained weights.
A cooldown (`--cooldown-steps N`) ends a run: N more steps with the LR falling linearly to zero, as
warmup-stable-decay schedules end (Hu et al. 2024, "MiniCPM"; Haegele et al. 2024, "Scaling Laws and
Compute-Optimal Training beyond Fixed Training Durations"), so a run of unknown length can train at a
constant LR for as long as the sessions allow and still finish annealed.
Runs as is on one CPU or GPU, and under `accelerate launch` on several.
Every `checkpoint_every` steps the run writes a resumable checkpoint (safetensors only); killing it
and running the same command again continues where it stopped. SIGTERM or Ctrl-C asks the run to
stop after the current step: it then saves a checkpoint and exports the model, as at a time budget.
"""
from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from app.core.canvas import CanvasTokens
from app.core.checkpoints import load_state, save_model, save_module
from app.train.build import build_model
from app.train.data import ShapesStream
from app.train.ema import EMA
from app.train.label_alignment import LabelAlignment
from app.train.optim_state import load_optimizer, save_optimizer
from app.train.planner_teaching import PlannerTeacher, batch_drafts
from app.train.recipe import Recipe

DRAFTER = "layout_drafter"  # the folder of a planner's layout drafter (app/core/draft.py), as in model folders
EDIT_DRAFTER = "edit_drafter"  # and of its drafter of image edits


def _atomic_json(path: Path, data: dict) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=2))
    os.replace(tmp, path)


def _lr_lambda(warmup: int, cooldown: tuple[int, int] | None = None):
    """LR factor at a step: linear warm-up, then constant; inside `cooldown` = (first, end) it falls
    linearly to zero at `end`."""
    def factor(step: int) -> float:
        f = min(1.0, (step + 1) / max(1, warmup))
        if cooldown is not None and step >= cooldown[0]:
            f *= max(0.0, (cooldown[1] - step) / max(1, cooldown[1] - cooldown[0]))
        return f
    return factor


class Trainer:
    def __init__(self, recipe: Recipe, out_dir: str | Path, *, use_canvas: bool = True,
                 planner_from: str | Path | None = None, init_from: str | Path | None = None,
                 planner_init: str | Path | None = None, device: str | None = None, workers: int = 0, log=print):
        from accelerate import Accelerator

        self.recipe = recipe
        self.out = Path(out_dir)
        self.out.mkdir(parents=True, exist_ok=True)
        self.use_canvas = use_canvas
        self.log = log
        cpu = device == "cpu" or not torch.cuda.is_available()
        self.accelerator = Accelerator(cpu=cpu, mixed_precision="no" if cpu else "bf16")
        self.device = self.accelerator.device
        torch.manual_seed(recipe.seed)
        self.pipe = build_model(recipe, use_canvas=use_canvas)
        self.pipe.to(self.device)
        self.workers = workers
        self._tokens_ema: EMA | None = None  # set when stage 2 trains the canvas tokens
        self.label_alignment = (LabelAlignment(self.pipe.adapter, recipe.label_loss_layer).to(self.device)
                                if recipe.label_loss_weight > 0 else None)
        self.progress_path = self.out / "progress.json"
        self.progress = json.loads(self.progress_path.read_text()) if self.progress_path.exists() else {
            "teach_done": False, "step": 0, "losses": [], "evals": [], "wall_seconds": 0.0,
            "use_canvas": use_canvas, "recipe": recipe.to_dict()}
        # The run's planner lives in out/planner_taught once it is known (taught here, given by
        # --planner-from, or taken from --init-from's model), so that every later process on this
        # folder (training after --teach-only, a resumed run) plans with it. Without this, a new
        # process silently planned with a fresh random planner: the MetaCanvas runs of two GPU
        # sessions trained that way while their text-only baselines had the taught one.
        own = self.out / "planner_taught"
        if planner_init is not None and (planner_from is not None or init_from is not None):
            raise ValueError("--planner-init starts teaching from a planner; --planner-from and --init-from skip "
                             "teaching: give one of them")
        if planner_from is not None:
            if init_from is not None and self.progress["step"] == 0:
                # Both: the backbone and connectors go on from the model, the planner is replaced (a
                # re-taught planner given to an already trained DiT, which then learns to read it).
                self._init_from_model(Path(init_from))
                self.progress["planner_replaced"] = True
            self._load_planner(Path(planner_from))
            self.progress["teach_done"] = True
            self.progress["planner_from"] = str(planner_from)
            if Path(planner_from).resolve() != own.resolve():
                self._save_planner(own)
        elif init_from is not None and self.progress["step"] == 0:
            self._init_from_model(Path(init_from))
            self._save_planner(own)
        elif (own / "planner").is_dir():
            self._load_planner(own)
        elif planner_init is not None and not self.progress["teach_done"]:
            # Teaching starts from an already taught planner (as the paper starts from a pretrained
            # MLLM) instead of from nothing; a different canvas grid is resampled from its tokens.
            self._load_planner(Path(planner_init), resample_canvas=True)
            self.progress["planner_init"] = str(planner_init)
            # Its earlier teaching counts too: the record says how long the planner was taught in all.
            self.progress["teach_prior_steps"] = self.progress.pop("teach_steps_done", None) or _taught_steps(Path(planner_init))

    def _init_from_model(self, folder: Path) -> None:
        """Continue from an exported model (its EMA weights), with a fresh optimizer: how a run goes on
        in a new session when only the small exported model, not the optimizer state, was kept."""
        from app.core.checkpoints import load_model

        src = load_model(folder, device="cpu", dtype=torch.float32)
        src_canvas = src.adapter.canvas_connector is not None
        own_canvas = self.pipe.adapter.canvas_connector is not None
        if src_canvas and not own_canvas:
            raise ValueError(f"{folder} is a MetaCanvas model; a text-only run cannot start from it "
                             f"(it would inherit a backbone trained with a plan)")
        missing, unexpected = self.pipe.planner.load_state_dict(src.planner.state_dict(), strict=False)
        # Drafts may be new to the run: they come from a taught planner (--planner-from).
        new = ("canvas_tokens.draft_embedding", "drafter.", "edit_drafter.")
        if unexpected or any(not k.startswith(new) for k in missing):
            raise ValueError(f"the planner in {folder} does not fit this recipe: missing {missing[:5]}, unexpected {unexpected[:5]}")
        # A MetaCanvas run may start from a trained text-only model: the paper adds MetaCanvas to a
        # pretrained backbone. Everything but the canvas connector is loaded; that stays freshly
        # zero-initialised, so the model starts out exactly as the text-only one and learns the plan.
        missing, unexpected = self.pipe.adapter.load_state_dict(src.adapter.state_dict(), strict=False)
        # Options that start as exact no-ops (zero-initialised) may be new to the run too.
        fresh = ("canvas_connector.", "source_residual.")
        if unexpected or any(not k.startswith(fresh) for k in missing):
            raise ValueError(f"{folder} does not fit this recipe: missing {missing[:5]}, unexpected {unexpected[:5]}")
        if own_canvas and not src_canvas:
            self.progress["canvas_added_at"] = src.name
        self.progress["teach_done"] = True
        self.progress["init_from"] = str(folder)
        prior = folder / "training.json"
        if prior.exists():  # keep counting steps and wall time across sessions
            info = json.loads(prior.read_text())
            self.progress["prior_steps"] = info.get("steps", 0)
            self.progress["prior_wall_seconds"] = info.get("wall_seconds", 0.0)
            if "teach_steps" in info:
                self.progress["teach_steps_done"] = info["teach_steps"]
            # Each leg's steps, variant and recipe, so a model continued across sessions (or given
            # a canvas after text-only training) says how each of its steps was trained.
            self.progress["prior_history"] = info.get("history") or [
                {"steps": info.get("steps", 0), "use_canvas": info.get("use_canvas"), "recipe": info.get("recipe")}]

    # -- stage 1 ----------------------------------------------------------------------------------
    def _load_planner(self, folder: Path, resample_canvas: bool = False) -> None:
        """Reuse a taught planner (the same one for the canvas model and its text-only baseline).
        `folder` is a run's planner_taught folder or an exported model folder (same sub-folders).
        With `resample_canvas`, canvas tokens of another grid are interpolated to this recipe's grid
        (bilinear: halving the grid averages each 2 x 2 block)."""
        planner = self.pipe.planner
        if not list((folder / "planner").glob("*.safetensors")) or not list((folder / "canvas_tokens").glob("*.safetensors")):
            raise ValueError(f"no planner in {folder}: expected a model folder or a run's planner_taught folder "
                             f"(with planner/ and canvas_tokens/ holding .safetensors)")
        state = load_state(folder / "planner")
        try:
            missing, unexpected = planner.model.load_state_dict(state, strict=False)
        except RuntimeError as e:  # a tensor of another shape: another planner size
            raise ValueError(f"planner weights in {folder} do not fit this recipe: {str(e).splitlines()[-1].strip()}") from e
        if unexpected or [k for k in missing if "lm_head" not in k]:
            raise ValueError(f"planner weights in {folder} do not fit this recipe: missing {missing[:5]}, unexpected {unexpected[:5]}")
        tokens = load_state(folder / "canvas_tokens")
        own = planner.canvas_tokens.tokens
        if resample_canvas and tokens["tokens"].shape != own.shape:
            from app.core.canvas import CanvasSpec

            k, h, w, d = tokens["tokens"].shape
            if d != own.shape[-1]:
                raise ValueError(f"canvas tokens in {folder} are {d} wide; this recipe's planner is {own.shape[-1]}")
            source = CanvasTokens(CanvasSpec(k, h, w), d)
            source.load_state_dict(tokens)
            with torch.no_grad():
                tokens = {"tokens": source(planner.canvas_tokens.spec).reshape(own.shape).clone()}
        if planner.drafts and "draft_embedding" not in tokens:
            if not resample_canvas:
                raise ValueError(f"the planner in {folder} has no layout drafter, and this recipe drafts layouts: "
                                 f"teach one first (--planner-init {folder} --teach-only)")
            self.log(f"{folder} has no layout drafter: this run teaches a new one")
            tokens = {**tokens, "draft_embedding": planner.canvas_tokens.draft_embedding.detach().clone()}
        elif "draft_embedding" in tokens and not planner.drafts:
            raise ValueError(f"the planner in {folder} drafts layouts; this recipe does not (model.canvas_drafts): "
                             f"use a recipe with drafts, or a planner without")
        planner.canvas_tokens.load_state_dict(tokens)
        if planner.drafts and (folder / DRAFTER).is_dir():
            planner.drafter.load_state_dict(load_state(folder / DRAFTER))
        if planner.edit_drafter is not None and (folder / EDIT_DRAFTER).is_dir():
            planner.edit_drafter.load_state_dict(load_state(folder / EDIT_DRAFTER))
        taught, trained = folder / "teaching.json", folder / "training.json"
        record = None
        if taught.exists():  # how long it was taught, for this run's training.json
            record = json.loads(taught.read_text())
            self.progress["teach_steps_done"] = record["steps"]
        elif trained.exists():  # a model folder: its drafters' own steps are in its training record
            record = json.loads(trained.read_text())
        for key in ("drafter_steps", "edit_drafter_steps"):
            if record and record.get(key):
                self.progress[key] = record[key]

    def teach_planner(self, max_minutes: float | None = None) -> None:
        r = self.recipe.teach
        if self.progress["teach_done"] or r.steps <= 0:
            return
        if self.recipe.teach_drafter_only:
            return self._teach_drafter(max_minutes)
        teacher = PlannerTeacher(self.pipe.planner, grid=self.recipe.model.image_size // self.recipe.model.patch_size,
                                 foreground_weight=self.recipe.teach_foreground_weight).to(self.device)
        params = [p for p in teacher.parameters() if p.requires_grad]
        if self.recipe.teach_drafts_only:
            if not self.pipe.planner.drafts:
                raise ValueError("teach_drafts_only needs layout drafts (model.canvas_drafts)")
            planner = self.pipe.planner
            params = [planner.canvas_tokens.draft_embedding, *planner.drafter.parameters(),
                      *(planner.edit_drafter.parameters() if planner.edit_drafter is not None else ()),
                      *teacher.canvas_head.parameters()]
        opt = torch.optim.AdamW(params, lr=r.lr, weight_decay=0.0)
        sched = torch.optim.lr_scheduler.LambdaLR(opt, _lr_lambda(r.warmup))
        stream = iter(ShapesStream(self.recipe, seed=self.recipe.seed + 1, batch=r.batch,
                                   edit_fraction=self.recipe.teach_edit_fraction,
                                   ambiguous_fraction=self.recipe.teach_ambiguous_fraction,
                                   workers=self.workers).loader())
        done, seconds = self._teaching_loop("teach planner", opt, sched, params, r.steps,
                                            lambda: teacher.loss(next(stream), self.device), max_minutes)
        self.progress["teach_steps_done"] = self.progress.get("teach_prior_steps", 0) + done
        self.progress["teach_seconds"] = seconds
        self.progress["teach_done"] = True
        self._save_planner(self.out / "planner_taught")
        _atomic_json(self.progress_path, self.progress)

    def _teaching_loop(self, name: str, opt, sched, params, steps: int, next_loss, max_minutes) -> tuple[int, float]:
        """Stage 1's optimisation loop: `next_loss()` gives (loss, stats) for a fresh batch. Returns
        (steps done, seconds)."""
        t0 = time.time()
        bar = tqdm(range(steps), desc=name, disable=None)
        done = 0
        cooldown = self.recipe.teach_time_cooldown if max_minutes is not None else 0.0
        for step in bar:
            loss, stats = next_loss()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, self.recipe.grad_clip)
            opt.step()
            sched.step()
            if cooldown > 0:  # the budget's last share: the LR falls with the time left
                left = 1.0 - (time.time() - t0) / 60 / max_minutes
                scale = min(1.0, max(0.0, left / cooldown))
                for group, base_lr in zip(opt.param_groups, sched.base_lrs):
                    group["lr"] = base_lr * sched.lr_lambdas[0](sched.last_epoch) * scale
            done = step + 1
            if step % 50 == 0:
                bar.set_postfix(loss=f"{loss.item():.3f}", **{k: f"{v:.3f}" for k, v in stats.items()})
                self.progress.setdefault("teach_losses", []).append([step, float(loss.item()), stats])
            if step % 200 == 0:
                self.log(f"{name} step {step} ({time.time() - t0:.0f} s): loss {loss.item():.3f} "
                         + " ".join(f"{k} {v:.3f}" for k, v in stats.items()))
            if max_minutes is not None and (time.time() - t0) / 60 > max_minutes:
                self.log(f"teaching stopped at step {done}: time budget of {max_minutes} min reached")
                break
        return done, time.time() - t0

    def _teach_drafter(self, max_minutes: float | None = None) -> None:
        """Stage 1 for the layout drafters alone (recipe.teach_drafter_tasks): captions and their
        scenes' drafts, and/or edits (instruction + source image) and their targets' drafts; the
        MLLM's prompt states read without gradients (app/core/draft.py). Everything else in the
        planner stays. With both tasks, each step teaches each drafter one batch."""
        from app.shapes.captions import sample_captioned_scene
        from app.shapes.dataset import edit_named_index
        from app.shapes.edits import EDIT_KINDS, sample_edit
        from app.shapes.render import render
        from app.train.data import draft_rows, edit_draft_rows

        r, planner = self.recipe.teach, self.pipe.planner
        tasks = tuple(self.recipe.teach_drafter_tasks)
        if not planner.drafts:
            raise ValueError("teach_drafter_only needs layout drafts (model.canvas_drafts)")
        if unknown := set(tasks) - {"text_to_image", "image_edit"}:
            raise ValueError(f"teach_drafter_tasks: unknown {sorted(unknown)}; known: text_to_image, image_edit")
        if "image_edit" in tasks and planner.edit_drafter is None:
            raise ValueError("teach_drafter_tasks has image_edit: the recipe needs model.edit_drafts")
        params = [*(planner.drafter.parameters() if "text_to_image" in tasks else ()),
                  *(planner.edit_drafter.parameters() if "image_edit" in tasks else ())]
        opt = torch.optim.AdamW(params, lr=r.lr, weight_decay=0.0)
        sched = torch.optim.lr_scheduler.LambdaLR(opt, _lr_lambda(r.warmup))
        # A sitting that goes on from taught drafters draws examples it has not seen: the stream is
        # keyed by the steps they were already taught.
        prior = self.progress.get("edit_drafter_steps" if "image_edit" in tasks else "drafter_steps", 0)
        rng = np.random.default_rng([self.recipe.seed + 1, prior])
        size = self.recipe.model.image_size

        weights = self.recipe.teach_edit_kind_weights
        share = np.array([weights.get(k, 1.0) for k in EDIT_KINDS]) / sum(weights.get(k, 1.0) for k in EDIT_KINDS)

        def edit_kinds(n: int) -> list:  # None: sample_edit's own uniform pick (the stream as before)
            return [EDIT_KINDS[i] for i in rng.choice(len(EDIT_KINDS), size=n, p=share)] if weights else [None] * n

        def drafter_loss():
            loss, stats = 0.0, {}
            if "text_to_image" in tasks:
                examples = [sample_captioned_scene(rng) for _ in range(r.batch)]
                drafts = torch.from_numpy(np.stack([draft_rows(e.scene, planner.drafter.config) for e in examples]))
                context, mask = planner.context_states([e.caption for e in examples])
                loss, stats = planner.drafter.loss(context, mask, drafts)
            if "image_edit" in tasks:
                triples = [sample_edit(rng, kind) for kind in edit_kinds(r.batch)]
                config = planner.edit_drafter.config
                drafts = torch.from_numpy(np.stack([edit_draft_rows(t.target, config) for t in triples]))
                source_drafts = torch.from_numpy(np.stack([edit_draft_rows(t.source, config) for t in triples]))
                named = torch.tensor([edit_named_index(t) for t in triples])
                inputs = planner.processor([t.instruction for t in triples],
                                           images=[[render(t.source, size)] for t in triples])
                context, mask = planner.context_states([], inputs=inputs)
                sources = planner.source_images(inputs) if config.pixel_width else None
                edit_loss, edit_stats = planner.edit_drafter.loss(context, mask, drafts, where=planner.image_places(inputs),
                                                                  sources=sources, source_drafts=source_drafts,
                                                                  named=named)
                loss = loss + edit_loss
                stats.update({f"edit_{k}": v for k, v in edit_stats.items()})
            return loss, stats

        done, seconds = self._teaching_loop("teach drafter", opt, sched, params, r.steps, drafter_loss, max_minutes)
        # The record counts the planner's teaching steps; the drafter's own are kept apart.
        self.progress["teach_steps_done"] = self.progress.get("teach_prior_steps", 0)
        for task, key in (("text_to_image", "drafter_steps"), ("image_edit", "edit_drafter_steps")):
            if task in tasks:
                self.progress[key] = self.progress.get(key, 0) + done
        self.progress["teach_seconds"] = seconds
        self.progress["teach_done"] = True
        self._save_planner(self.out / "planner_taught")
        _atomic_json(self.progress_path, self.progress)

    def _save_planner(self, folder: Path) -> None:
        planner = self.pipe.planner
        folder.mkdir(parents=True, exist_ok=True)
        save_module(planner.model, folder / "planner", {"what": "taught planner weights"})
        save_module(planner.canvas_tokens, folder / "canvas_tokens", {"what": "taught canvas tokens"})
        if planner.drafter is not None:
            # The same config a model folder's drafter has, so a taught drafter can go into one as it is.
            save_module(planner.drafter, folder / DRAFTER, {"what": "layout drafter", "draft": planner.drafter.config.to_dict(),
                                                            "context_dim": planner.hidden_size})
        if planner.edit_drafter is not None:
            save_module(planner.edit_drafter, folder / EDIT_DRAFTER,
                        {"what": "edit drafter", "draft": planner.edit_drafter.config.to_dict(),
                         "context_dim": planner.hidden_size})
        steps = self.progress.get("teach_steps_done", self.recipe.teach.steps)
        record = {"steps": steps, "seconds": round(self.progress.get("teach_seconds", 0.0), 1)}
        for key in ("drafter_steps", "edit_drafter_steps"):  # the drafters' own (teach_drafter_only)
            if self.progress.get(key):
                record[key] = self.progress[key]
        (folder / "teaching.json").write_text(json.dumps(record))

    # -- stage 2 ----------------------------------------------------------------------------------
    def train_diffusion(self, max_minutes: float | None = None, cooldown_steps: int | None = None) -> None:
        r = self.recipe.diffusion
        planner, adapter = self.pipe.planner, self.pipe.adapter
        planner.requires_grad_(False).eval()
        adapter.train()
        params = [p for p in adapter.parameters() if p.requires_grad]
        groups = [{"params": params}]
        tokens = planner.canvas_tokens if self.use_canvas and self.recipe.train_canvas_tokens else None
        self._tokens_ema = None
        if tokens is not None:
            tokens.requires_grad_(True)
            groups.append({"params": list(tokens.parameters())})
            self._tokens_ema = EMA(tokens, self.recipe.ema_decay)
        if self.label_alignment is not None:
            groups.append({"params": list(self.label_alignment.parameters())})
        trained = [p for g in groups for p in g["params"]]
        ckpt = self.out / "checkpoint"
        start = self.progress["step"]
        cooldown = self._cooldown(start, cooldown_steps)
        last = cooldown[1] if cooldown is not None else r.steps
        opt = torch.optim.AdamW(groups, lr=r.lr, weight_decay=self.recipe.weight_decay)
        sched = torch.optim.lr_scheduler.LambdaLR(opt, _lr_lambda(r.warmup, cooldown))
        ema = EMA(adapter, self.recipe.ema_decay)
        if start > 0 and (ckpt / "adapter.safetensors").exists():
            state = load_state_file(ckpt / "adapter.safetensors")
            adapter.load_state_dict(state)
            ema.load_state_dict(load_state_file(ckpt / "ema.safetensors"))
            if tokens is not None:
                tokens.load_state_dict(load_state_file(ckpt / "canvas_tokens.safetensors"))
                self._tokens_ema.load_state_dict(load_state_file(ckpt / "canvas_tokens_ema.safetensors"))
            if self.label_alignment is not None:
                if not (ckpt / "label_head.safetensors").exists():
                    raise ValueError(f"{ckpt} was saved without the label loss; this recipe has label_loss_weight "
                                     f"{self.recipe.label_loss_weight}: resume with the recipe the run began with")
                self.label_alignment.load_state_dict(load_state_file(ckpt / "label_head.safetensors"))
            load_optimizer(opt, ckpt / "optimizer.safetensors")
            sched.last_epoch = start
            # The scheduler set the LR of step 0 when it was built; the first resumed step needs its own.
            for group, base_lr in zip(opt.param_groups, sched.base_lrs):
                group["lr"] = base_lr * sched.lr_lambdas[0](start)
            self.log(f"resumed at step {start}")
        adapter, opt = self.accelerator.prepare(adapter, opt)
        # A run that goes on from a model (--init-from) draws scenes and noise past those its model's
        # own run drew: the stream is keyed by the steps behind it, not only by this run's.
        behind = self.progress.get("prior_steps", 0) + start
        stream = iter(ShapesStream(self.recipe, seed=self.recipe.seed + 1000 + behind, batch=r.batch,
                                   edit_fraction=self.recipe.edit_fraction, workers=self.workers,
                                   cfg_dropout=self.recipe.cfg_dropout).loader())
        gen = self.noise_generator(self.recipe.seed + behind)
        t_begin, wall0 = time.time(), self.progress["wall_seconds"]
        stop = _StopRequest()
        bar = tqdm(range(start, last), desc="flow matching" + ("" if self.use_canvas else " (text-only)")
                   + (" (cooldown)" if cooldown is not None else ""), initial=start, total=last, disable=None)
        running, running_labels = [], []
        for step in bar:
            batch = next(stream)
            loss = self._flow_matching_loss(batch, adapter, gen)
            total = loss
            if self.label_alignment is not None:
                label_loss = self.label_alignment.loss(torch.from_numpy(batch["labels"]))
                total = loss + self.recipe.label_loss_weight * label_loss
                running_labels.append(label_loss.item())
            opt.zero_grad(set_to_none=True)
            self.accelerator.backward(total)
            if self.accelerator.num_processes > 1:
                # Parameters outside the DDP-wrapped adapter: average their gradients by hand.
                outside = list(tokens.parameters()) if tokens is not None else []
                if self.label_alignment is not None:
                    outside += list(self.label_alignment.parameters())
                for p in outside:
                    p.grad = self.accelerator.reduce(p.grad, reduction="mean")
            self.accelerator.clip_grad_norm_(trained, self.recipe.grad_clip)
            opt.step()
            sched.step()
            ema.update(self.accelerator.unwrap_model(adapter), step)
            if tokens is not None:
                self._tokens_ema.update(tokens, step)
            running.append(loss.item())
            done = step + 1
            if done % 50 == 0:
                self.progress["losses"].append([done, float(np.mean(running))])
                bar.set_postfix(loss=f"{np.mean(running):.4f}")
                if running_labels:
                    self.progress.setdefault("label_losses", []).append([done, float(np.mean(running_labels))])
                if done % 500 == 0:
                    labels = f", label loss {np.mean(running_labels):.3f}" if running_labels else ""
                    self.log(f"step {done} ({time.time() - t_begin:.0f} s): loss {np.mean(running):.4f}{labels}")
                running, running_labels = [], []
            out_of_time = (max_minutes is not None and (time.time() - t_begin) / 60 > max_minutes) or stop.requested
            if done % self.recipe.checkpoint_every == 0 or done == last or out_of_time:
                self.progress["step"] = done
                self.progress["wall_seconds"] = wall0 + time.time() - t_begin
                self._save_checkpoint(ckpt, self.accelerator.unwrap_model(adapter), ema, opt)
            if self.recipe.eval_every and (done % self.recipe.eval_every == 0 or done == last or out_of_time):
                self.evaluate(ema, done)
            if out_of_time:
                why = "stop requested" if stop.requested else f"time budget of {max_minutes} min reached"
                self.log(f"stopping at step {done}: {why} (resumable)")
                break
        stop.restore()
        self.export_model(ema)

    def _cooldown(self, start: int, cooldown_steps: int | None) -> tuple[int, int] | None:
        """The (first, end) steps of this run's cooldown. A cooldown cut short (killed, out of time)
        continues on resume with or without the flag: the LR would otherwise jump back to full. A new
        `--cooldown-steps` after a finished one starts another from the current step."""
        current = self.progress.get("cooldown")
        if current is not None and start < current[1]:
            if cooldown_steps is not None and current[1] - current[0] != cooldown_steps:
                self.log(f"continuing the cooldown begun at step {current[0]} (to step {current[1]}); "
                         f"--cooldown-steps {cooldown_steps} is ignored until it ends")
            return current[0], current[1]
        if cooldown_steps is None:
            return None
        self.progress["cooldown"] = [start, start + cooldown_steps]
        self.log(f"cooldown: LR falls linearly to zero over steps {start}-{start + cooldown_steps}")
        return start, start + cooldown_steps

    def noise_generator(self, seed: int) -> torch.Generator:
        """Timesteps and noise are drawn on the training device: on a GPU, drawing a batch of noise on
        the CPU and copying it over cost 22 ms of a ~190 ms step (H100, batch 256)."""
        return torch.Generator(device=self.device).manual_seed(seed)

    def _flow_matching_loss(self, batch: dict, adapter, gen: torch.Generator) -> torch.Tensor:
        rec = self.recipe
        sources = batch.get("sources")
        spec = self.pipe.canvas_spec_for(rec.model.image_size)
        with torch.set_grad_enabled(self._tokens_ema is not None):
            plan = self.pipe.planner(batch["texts"], spec, inputs=batch["planner_inputs"],
                                     drafts=batch_drafts(self.pipe.planner, batch))
        target = torch.from_numpy(batch["images"]).to(self.device).permute(0, 3, 1, 2).float() / 127.5 - 1.0
        reference = None
        if sources is not None:
            reference = torch.from_numpy(sources).to(self.device).permute(0, 3, 1, 2).float() / 127.5 - 1.0
        b = target.shape[0]
        t = shifted(torch.sigmoid(torch.randn(b, generator=gen, device=gen.device) * rec.logit_normal_std),
                    rec.timestep_shift).to(self.device)
        noise = torch.randn(target.shape, generator=gen, device=gen.device).to(self.device)
        tt = t.view(b, 1, 1, 1)
        noisy = (1 - tt) * target + tt * noise
        with self.accelerator.autocast():
            unwrapped = self.accelerator.unwrap_model(adapter)
            plan_tokens = unwrapped.prepare_plan(plan.canvas) if self.use_canvas else None
            velocity = adapter(noisy, t, plan.context, plan.context_mask, plan_tokens=plan_tokens, reference=reference)
        return F.mse_loss(velocity.float(), noise - target)

    def _save_checkpoint(self, folder: Path, adapter, ema: EMA, opt) -> None:
        from safetensors.torch import save_file

        tmp = folder.with_name(folder.name + ".tmp")
        tmp.mkdir(parents=True, exist_ok=True)
        save_file({k: v.detach().contiguous().cpu() for k, v in adapter.state_dict().items()}, str(tmp / "adapter.safetensors"))
        save_file({k: v.contiguous().cpu() for k, v in ema.state_dict().items()}, str(tmp / "ema.safetensors"))
        save_optimizer(opt, tmp / "optimizer.safetensors")
        if self._tokens_ema is not None:
            tokens = self.pipe.planner.canvas_tokens
            save_file({k: v.detach().contiguous().cpu() for k, v in tokens.state_dict().items()}, str(tmp / "canvas_tokens.safetensors"))
            save_file({k: v.contiguous().cpu() for k, v in self._tokens_ema.state_dict().items()}, str(tmp / "canvas_tokens_ema.safetensors"))
        if self.label_alignment is not None:
            save_file({k: v.detach().contiguous().cpu() for k, v in self.label_alignment.state_dict().items()}, str(tmp / "label_head.safetensors"))
        # Swap in the new checkpoint only when it is complete: a kill mid-save keeps the old one.
        if folder.exists():
            old = folder.with_name(folder.name + ".old")
            if old.exists():
                _rmtree(old)
            os.replace(folder, old)
            os.replace(tmp, folder)
            _rmtree(old)
        else:
            os.replace(tmp, folder)
        _atomic_json(self.progress_path, self.progress)

    # -- evaluation and export ----------------------------------------------------------------------
    @torch.no_grad()
    def evaluate(self, ema: EMA, step: int) -> dict:
        from app.eval.model_eval import quick_eval

        adapter, tokens = self.pipe.adapter, self.pipe.planner.canvas_tokens
        backup = {k: v.detach().clone() for k, v in adapter.state_dict().items()}
        tokens_backup = {k: v.detach().clone() for k, v in tokens.state_dict().items()}
        ema.copy_to(adapter)
        if self._tokens_ema is not None:
            self._tokens_ema.copy_to(tokens)
        adapter.eval()
        try:
            scores = quick_eval(self.pipe, self.recipe.eval_prompts, seed=1234, steps=self.recipe.sample_steps,
                                guidance=self.recipe.guidance, use_canvas=self.use_canvas)
        finally:
            adapter.load_state_dict(backup)
            tokens.load_state_dict(tokens_backup)
            adapter.train()
        scores["step"] = step
        self.progress["evals"].append(scores)
        _atomic_json(self.progress_path, self.progress)
        self.log(f"eval at step {step}: " + ", ".join(f"{k} {v:.3f}" for k, v in scores.items() if isinstance(v, float)))
        return scores

    def export_model(self, ema: EMA, folder: Path | None = None) -> Path:
        folder = folder or self.out / "model"
        ema.copy_to(self.pipe.adapter)
        if self._tokens_ema is not None:
            self._tokens_ema.copy_to(self.pipe.planner.canvas_tokens)
        self.pipe.adapter.eval()
        save_model(self.pipe, folder, dtype=getattr(torch, self.recipe.save_dtype))
        (folder / "training.json").write_text(json.dumps(training_record(self.progress, self.recipe, self.use_canvas), indent=2))
        self.plot_curves()
        return folder

    def plot_curves(self) -> None:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, axes = plt.subplots(1, 2, figsize=(10, 4))
        if self.progress["losses"]:
            s, l = zip(*self.progress["losses"])
            axes[0].plot(s, l)
            axes[0].set_yscale("log")
        axes[0].set_title("flow-matching loss")
        axes[0].set_xlabel("step")
        for key in ("overall", "position", "counting", "edit_success"):
            pts = [(e["step"], e[key]) for e in self.progress["evals"] if key in e]
            if pts:
                axes[1].plot(*zip(*pts), marker="o", label=key)
        axes[1].set_title("quick evaluation (EMA weights)")
        axes[1].set_xlabel("step")
        if axes[1].get_legend_handles_labels()[0]:
            axes[1].legend()
        fig.tight_layout()
        fig.savefig(self.out / "curves.png", dpi=90)
        plt.close(fig)

    def run(self, max_minutes: float | None = None, teach_only: bool = False,
            teach_minutes: float | None = None, cooldown_steps: int | None = None) -> Path:
        if cooldown_steps is not None and cooldown_steps <= 0:  # refused before any teaching time is spent
            raise ValueError(f"--cooldown-steps must be positive, got {cooldown_steps}")
        self.teach_planner(max_minutes=teach_minutes)
        if teach_only:
            return self.out / "planner_taught"
        self.train_diffusion(max_minutes=max_minutes, cooldown_steps=cooldown_steps)
        return self.out / "model"


class _StopRequest:
    """SIGTERM / SIGINT set a flag instead of killing the run mid-step, so the loop can save and export.
    A second signal falls through to the default handler (a stuck run can still be killed)."""

    def __init__(self):
        self.requested = False
        self._previous = {}
        if threading_is_main():
            for sig in (signal.SIGTERM, signal.SIGINT):
                self._previous[sig] = signal.signal(sig, self._handle)

    def _handle(self, signum, frame) -> None:
        self.requested = True
        signal.signal(signum, self._previous.get(signum, signal.SIG_DFL))

    def restore(self) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous = {}


def threading_is_main() -> bool:
    import threading

    return threading.current_thread() is threading.main_thread()


def training_record(progress: dict, recipe: Recipe, use_canvas: bool) -> dict:
    """What an exported model's training.json says: steps and wall time over all legs (sessions),
    how many of the steps trained the canvas, and each leg's recipe."""
    history = list(progress.get("prior_history", [])) + [
        {"steps": progress["step"], "use_canvas": use_canvas, "recipe": recipe.to_dict()}]
    return {"steps": progress.get("prior_steps", 0) + progress["step"],
            "canvas_steps": sum(leg["steps"] for leg in history if leg.get("use_canvas")),
            "wall_seconds": round(progress.get("prior_wall_seconds", 0.0) + progress["wall_seconds"], 1),
            "teach_steps": progress.get("teach_steps_done", recipe.teach.steps),
            **{key: progress[key] for key in ("drafter_steps", "edit_drafter_steps") if progress.get(key)},
            **({"cooldown": progress["cooldown"]} if "cooldown" in progress else {}),
            "use_canvas": use_canvas, "recipe": recipe.to_dict(), "history": history, "evals": progress["evals"]}


def _taught_steps(folder: Path) -> int:
    """How many steps the planner in `folder` (a run's planner_taught or a model folder) was taught."""
    for name, key in (("teaching.json", "steps"), ("training.json", "teach_steps")):
        if (folder / name).exists():
            return int(json.loads((folder / name).read_text()).get(key, 0))
    return 0


def shifted(t: torch.Tensor, shift: float) -> torch.Tensor:
    """SD3's timestep shift (the same map FlowMatchEulerDiscreteScheduler applies to its sigmas)."""
    return t if shift == 1.0 else shift * t / (1 + (shift - 1) * t)


def load_state_file(path: Path) -> dict:
    from safetensors.torch import load_file

    return load_file(str(path))


def _rmtree(path: Path) -> None:
    import shutil

    shutil.rmtree(path, ignore_errors=True)
