"""Stage 2: flow matching. The planner is frozen; the DiT and both connectors are trained with rectified
flow matching:
    z_t = (1 - t) z + t e,  target e - z,  MSE          (METHOD.md)
AdamW, constant LR after a short warm-up, weight decay 0, grad clip 1.0, an EMA of the trained weights.
A cooldown (`--cooldown-steps N`) ends a run: N more steps with the LR falling linearly to zero, as
warmup-stable-decay schedules end (Hu et al. 2024, "MiniCPM"; Haegele et al. 2024, "Scaling Laws and
Compute-Optimal Training beyond Fixed Training Durations"), so a run of unknown length can train at a
constant LR for as long as the sessions allow and still finish annealed.
Every `checkpoint_every` steps the run writes a resumable checkpoint (safetensors only); SIGTERM or
Ctrl-C asks the run to stop after the current step: it then saves a checkpoint and exports the model,
as at a time budget.

`FlowMatching` is a part of `app.train.loop.Trainer`: it uses the trainer's recipe, pipe, progress,
accelerator, device, use_canvas, label_alignment, workers and log, and its evaluate and export_model.
"""
from __future__ import annotations

import signal
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from app.core.checkpoints import replace_folder
from app.train.data import ShapesStream
from app.train.ema import EMA
from app.train.optim_state import load_optimizer, save_optimizer
from app.train.planner_teaching import batch_drafts
from app.train.progress import atomic_json
from app.train.schedule import cooldown_window, lr_lambda


class FlowMatching:
    def train_diffusion(self, max_minutes: float | None = None, cooldown_steps: int | None = None) -> None:
        r = self.recipe.diffusion
        planner, adapter = self.pipe.planner, self.pipe.adapter
        planner.requires_grad_(False).eval()
        adapter.train()
        params = [p for p in adapter.parameters() if p.requires_grad]
        groups = [{"params": params}]
        # Parts of the planner the flow-matching loss trains too, each with an EMA of its own.
        self._planner_emas = {}
        for name, part in self.trained_planner_parts().items():
            part.requires_grad_(True)
            groups.append({"params": list(part.parameters())})
            self._planner_emas[name] = EMA(part, self.recipe.ema_decay)
        if self.label_alignment is not None:
            groups.append({"params": list(self.label_alignment.parameters())})
        trained = [p for g in groups for p in g["params"]]
        ckpt = self.out / "checkpoint"
        start = self.progress["step"]
        cooldown = cooldown_window(self.progress, start, cooldown_steps, self.log)
        last = cooldown[1] if cooldown is not None else r.steps
        opt = torch.optim.AdamW(groups, lr=r.lr, weight_decay=self.recipe.weight_decay)
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_lambda(r.warmup, cooldown))
        ema = EMA(adapter, self.recipe.ema_decay)
        if start > 0 and (ckpt / "adapter.safetensors").exists():
            state = load_state_file(ckpt / "adapter.safetensors")
            adapter.load_state_dict(state)
            ema.load_state_dict(load_state_file(ckpt / "ema.safetensors"))
            for name, part in self.trained_planner_parts().items():
                part.load_state_dict(load_state_file(ckpt / f"{name}.safetensors"))
                self._planner_emas[name].load_state_dict(load_state_file(ckpt / f"{name}_ema.safetensors"))
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
        # A run that goes on from a model (--start MODEL) draws scenes and noise past those its model's
        # own run drew: the stream is keyed by the steps behind it, not only by this run's.
        behind = self.progress.get("prior_steps", 0) + start
        stream = iter(ShapesStream(self.recipe, seed=self.recipe.seed + 1000 + behind, batch=r.batch,
                                   edit_fraction=self.recipe.edit_fraction, workers=self.workers,
                                   cfg_dropout=self.recipe.cfg_dropout).loader())
        gen = self.noise_generator(self.recipe.seed + behind)
        t_begin, wall0 = time.time(), self.progress["wall_seconds"]
        stop = StopRequest()
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
                outside = [p for part in self.trained_planner_parts().values() for p in part.parameters()]
                if self.label_alignment is not None:
                    outside += list(self.label_alignment.parameters())
                for p in outside:
                    p.grad = self.accelerator.reduce(p.grad, reduction="mean")
            self.accelerator.clip_grad_norm_(trained, self.recipe.grad_clip)
            opt.step()
            sched.step()
            ema.update(self.accelerator.unwrap_model(adapter), step)
            for name, part in self.trained_planner_parts().items():
                self._planner_emas[name].update(part, step)
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

    def trained_planner_parts(self) -> dict:
        """The planner's parts that stage 2 trains with the DiT: the canvas tokens where the recipe says
        so (train_canvas_tokens), and the encoder of drafts into context tokens (model.draft_context)."""
        planner, parts = self.pipe.planner, {}
        if self.use_canvas and self.recipe.train_canvas_tokens:
            parts["canvas_tokens"] = planner.canvas_tokens
        if planner.drafts_to_context:
            parts["draft_context"] = planner.drafter.context_encoder
        return parts

    def noise_generator(self, seed: int) -> torch.Generator:
        """Timesteps and noise are drawn on the training device: on a GPU, drawing a batch of noise on
        the CPU and copying it over cost 22 ms of a ~190 ms step (H100, batch 256)."""
        return torch.Generator(device=self.device).manual_seed(seed)

    def _flow_matching_loss(self, batch: dict, adapter, gen: torch.Generator) -> torch.Tensor:
        rec = self.recipe
        sources = batch.get("sources")
        spec = self.pipe.canvas_spec_for(rec.model.image_size)
        with torch.set_grad_enabled(bool(self._planner_emas)):
            plan = self.pipe.planner(batch["texts"], spec, inputs=batch["planner_inputs"],
                                     drafts=batch_drafts(self.pipe.planner, batch))
        target = torch.from_numpy(batch["images"]).to(self.device).permute(0, 3, 1, 2).float() / 127.5 - 1.0
        reference = None
        if sources is not None:
            reference = torch.from_numpy(sources).to(self.device).permute(0, 3, 1, 2).float() / 127.5 - 1.0
        noisy, t, velocity_target = flow_matching_pair(target, gen, rec.logit_normal_std, rec.timestep_shift)
        with self.accelerator.autocast():
            unwrapped = self.accelerator.unwrap_model(adapter)
            plan_tokens = unwrapped.prepare_plan(plan.canvas) if self.use_canvas else None
            velocity = adapter(noisy, t, plan.context, plan.context_mask, plan_tokens=plan_tokens, reference=reference)
        return F.mse_loss(velocity.float(), velocity_target)

    def _save_checkpoint(self, folder: Path, adapter, ema: EMA, opt) -> None:
        from safetensors.torch import save_file

        tmp = folder.with_name(folder.name + ".tmp")
        tmp.mkdir(parents=True, exist_ok=True)
        save_file({k: v.detach().contiguous().cpu() for k, v in adapter.state_dict().items()}, str(tmp / "adapter.safetensors"))
        save_file({k: v.contiguous().cpu() for k, v in ema.state_dict().items()}, str(tmp / "ema.safetensors"))
        save_optimizer(opt, tmp / "optimizer.safetensors")
        for name, part in self.trained_planner_parts().items():
            save_file({k: v.detach().contiguous().cpu() for k, v in part.state_dict().items()}, str(tmp / f"{name}.safetensors"))
            save_file({k: v.contiguous().cpu() for k, v in self._planner_emas[name].state_dict().items()},
                      str(tmp / f"{name}_ema.safetensors"))
        if self.label_alignment is not None:
            save_file({k: v.detach().contiguous().cpu() for k, v in self.label_alignment.state_dict().items()}, str(tmp / "label_head.safetensors"))
        # Swap in the new checkpoint only when it is complete: a kill mid-save keeps the old one.
        replace_folder(tmp, folder)
        atomic_json(self.progress_path, self.progress)


class StopRequest:
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


def shifted(t: torch.Tensor, shift: float) -> torch.Tensor:
    """SD3's timestep shift (the same map FlowMatchEulerDiscreteScheduler applies to its sigmas)."""
    return t if shift == 1.0 else shift * t / (1 + (shift - 1) * t)


def flow_matching_pair(target: torch.Tensor, gen: torch.Generator, logit_normal_std: float,
                       shift: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(noisy z_t, t [B], the velocity e - z to predict) for clean latents `target` [B, ...]: t logit-normal
    (sigmoid of N(0, std), the SD3 choice) then shifted, drawn before the noise e, both from `gen`."""
    b = target.shape[0]
    t = shifted(torch.sigmoid(torch.randn(b, generator=gen, device=gen.device) * logit_normal_std),
                shift).to(target.device)
    noise = torch.randn(target.shape, generator=gen, device=gen.device).to(target.device)
    tt = t.view(b, *([1] * (target.ndim - 1)))
    return (1 - tt) * target + tt * noise, t, noise - target


def load_state_file(path: Path) -> dict:
    from safetensors.torch import load_file

    return load_file(str(path))


