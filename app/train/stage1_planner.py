"""Stage 1: teach the planner (its canvas and context states), or its layout drafters alone.

A pretrained MLLM arrives able to ground "a red circle left of a blue star"; the shapes world's small
planner does not, so stage 1 teaches it with auxiliary heads (app/train/planner_teaching.py), or, with
a drafting recipe, teaches only the drafts (`teach_drafts_only`: the drafter and the canvas's draft
embedding) or the drafters alone (`teach_drafter_only`: app/core/draft.py). The taught planner is saved
in RUN/planner_taught, which every later process on the run (and a text-only twin) plans with.

`PlannerTeaching` is a part of `app.train.loop.Trainer`: it uses the trainer's recipe, pipe, progress,
out, device, workers and log.
"""
from __future__ import annotations

import time

import numpy as np
import torch
from tqdm import tqdm

from app.train.data import ShapesStream
from app.train.planner_folder import PLANNER_TAUGHT, save_planner
from app.train.planner_teaching import PlannerTeacher
from app.train.progress import atomic_json
from app.train.schedule import lr_lambda


class PlannerTeaching:
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
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_lambda(r.warmup))
        stream = iter(ShapesStream(self.recipe, seed=self.recipe.seed + 1, batch=r.batch,
                                   edit_fraction=self.recipe.teach_edit_fraction,
                                   ambiguous_fraction=self.recipe.teach_ambiguous_fraction,
                                   workers=self.workers).loader())
        done, seconds = self._teaching_loop("teach planner", opt, sched, params, r.steps,
                                            lambda: teacher.loss(next(stream), self.device), max_minutes)
        self.progress["teach_steps_done"] = self.progress.get("teach_prior_steps", 0) + done
        self.progress["teach_seconds"] = seconds
        self.progress["teach_done"] = True
        self._save_planner(self.out / PLANNER_TAUGHT)
        atomic_json(self.progress_path, self.progress)

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
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_lambda(r.warmup))
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
        self._save_planner(self.out / PLANNER_TAUGHT)
        atomic_json(self.progress_path, self.progress)

    def _save_planner(self, folder) -> None:
        save_planner(self.pipe.planner, folder, self.progress, self.recipe.teach.steps)
