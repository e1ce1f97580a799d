"""The training loop for a MetaCanvas model on the shapes world, readable top to bottom.

    Trainer(recipe, out, start=RunStart...)   where the run starts (app/train/run_start.py)
      -> stage 1: teach the planner            (app/train/stage1_planner.py)
      -> stage 2: flow matching                (app/train/stage2_flow_matching.py)
      -> export RUN/model (EMA weights)        (evaluate and export_model below)

Stage 1 teaches the planner (canvas and context states) to ground instructions in the layout, unless
the run's planner comes taught. Stage 2 freezes it and trains the DiT and both connectors with
rectified flow matching. Runs as is on one CPU or GPU, and under `accelerate launch` on several.
Killing a run and running the same command again continues where it stopped (progress.json, the
checkpoint and RUN/planner_taught).
"""
from __future__ import annotations

import json
from pathlib import Path

import torch

from app.core.checkpoints import save_model
from app.train.build import build_model
from app.train.ema import EMA
from app.train.label_alignment import LabelAlignment
from app.train.planner_folder import PLANNER_TAUGHT, load_planner, taught_steps
from app.train.progress import atomic_json
from app.train.recipe import Recipe
from app.train.run_start import RunStart, resolve
from app.train.stage1_planner import PlannerTeaching
from app.train.stage2_flow_matching import FlowMatching
from app.train.schedule import cooldown_record


class Trainer(PlannerTeaching, FlowMatching):
    def __init__(self, recipe: Recipe, out_dir: str | Path, *, start: RunStart | None = None, use_canvas: bool = True,
                 device: str | None = None, workers: int = 0, log=print):
        """`start`: where the run starts (app/train/run_start.py). None resumes a begun run folder and
        starts an empty one new; a begun run given another start than it began with is refused."""
        from accelerate import Accelerator

        self.recipe = recipe
        self.out = Path(out_dir)
        self.use_canvas = use_canvas
        self.log = log
        self.progress_path = self.out / "progress.json"
        begun = self.progress_path.exists()
        self.progress = json.loads(self.progress_path.read_text()) if begun else {
            "teach_done": False, "step": 0, "losses": [], "evals": [], "wall_seconds": 0.0,
            "use_canvas": use_canvas, "recipe": recipe.to_dict()}
        self.start = resolve(start, self.progress.get("start"), begun, self.out)  # refused before anything is built
        self.progress["start"] = self.start.to_dict()
        self.out.mkdir(parents=True, exist_ok=True)
        cpu = device == "cpu" or not torch.cuda.is_available()
        self.accelerator = Accelerator(cpu=cpu, mixed_precision="no" if cpu else "bf16")
        self.device = self.accelerator.device
        torch.manual_seed(recipe.seed)
        self.pipe = build_model(recipe, use_canvas=use_canvas)
        self.pipe.to(self.device)
        self.workers = workers
        self._planner_emas: dict = {}  # stage 2's EMAs of the planner parts it trains (trained_planner_parts)
        self.label_alignment = (LabelAlignment(self.pipe.adapter, recipe.label_loss_layer).to(self.device)
                                if recipe.label_loss_weight > 0 else None)
        self._apply_start(self.start)

    def _apply_start(self, start: RunStart) -> None:
        """Load what the start names, as far as the run has not got past it. The run's planner lives in
        RUN/planner_taught once it is known (taught here, given, or the model's), so that every later
        process on this folder (training after --teach-only, a resumed run) plans with it. Without
        this, a new process once silently planned with a fresh random planner: the MetaCanvas runs of
        two GPU sessions trained that way while their text-only baselines had the taught one."""
        own = self.out / PLANNER_TAUGHT
        planner = start.planner_start
        if start.model is not None and self.progress["step"] == 0:
            self._init_from_model(start.model, with_planner=start.planner is None)
        if (own / "planner").is_dir():  # written when the planner is known: taught here, given or the model's
            load_planner(self.pipe.planner, own, self.progress, self.log)
            self.progress["teach_done"] = True
        elif planner is not None and planner.folder is not None and not planner.teach:
            load_planner(self.pipe.planner, planner.folder, self.progress, self.log)
            self.progress["teach_done"] = True
            self._save_planner(own)
        elif planner is not None and planner.folder is not None and not self.progress["teach_done"]:
            # Teaching starts from an already taught planner (as the paper starts from a pretrained
            # MLLM) instead of from nothing; a different canvas grid is resampled from its tokens.
            load_planner(self.pipe.planner, planner.folder, self.progress, self.log, resample_canvas=True)
            # Its earlier teaching counts too: the record says how long the planner was taught in all.
            self.progress["teach_prior_steps"] = self.progress.pop("teach_steps_done", None) or taught_steps(planner.folder)

    def _init_from_model(self, folder: Path, with_planner: bool) -> None:
        """Continue from an exported model (its EMA weights), with a fresh optimizer: how a run goes on
        in a new session when only the small exported model, not the optimizer state, was kept. With
        `with_planner`, the model's planner comes too (taught: stage 1 is done) and becomes the run's."""
        from app.core.checkpoints import load_model

        src = load_model(folder, device="cpu", dtype=torch.float32)
        src_canvas = src.adapter.canvas_connector is not None
        own_canvas = self.pipe.adapter.canvas_connector is not None
        if src_canvas and not own_canvas:
            raise ValueError(f"{folder} is a MetaCanvas model; a text-only run cannot start from it "
                             f"(it would inherit a backbone trained with a plan)")
        if with_planner:
            missing, unexpected = self.pipe.planner.load_state_dict(src.planner.state_dict(), strict=False)
            # Drafts may be new to the run (fresh until taught).
            new = ("canvas_tokens.draft_embedding", "drafter.", "edit_drafter.")
            if unexpected or any(not k.startswith(new) for k in missing):
                raise ValueError(f"the planner in {folder} does not fit this recipe: missing {missing[:5]}, "
                                 f"unexpected {unexpected[:5]}")
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
        prior = folder / "training.json"
        if prior.exists():  # keep counting steps and wall time across sessions
            info = json.loads(prior.read_text())
            self.progress["prior_steps"] = info.get("steps", 0)
            self.progress["prior_wall_seconds"] = info.get("wall_seconds", 0.0)
            if with_planner and "teach_steps" in info:
                self.progress["teach_steps_done"] = info["teach_steps"]
            # Each leg's steps, variant and recipe, so a model continued across sessions (or given
            # a canvas after text-only training) says how each of its steps was trained.
            self.progress["prior_history"] = info.get("history") or [
                {"steps": info.get("steps", 0), "use_canvas": info.get("use_canvas"), "recipe": info.get("recipe")}]
        if with_planner:
            self.progress["teach_done"] = True
            self._save_planner(self.out / PLANNER_TAUGHT)

    def run(self, max_minutes: float | None = None, teach_only: bool = False,
            teach_minutes: float | None = None, cooldown_steps: int | None = None) -> Path:
        if cooldown_steps is not None and cooldown_steps <= 0:  # refused before any teaching time is spent
            raise ValueError(f"--cooldown-steps must be positive, got {cooldown_steps}")
        self.teach_planner(max_minutes=teach_minutes)
        if teach_only:
            return self.out / PLANNER_TAUGHT
        self.train_diffusion(max_minutes=max_minutes, cooldown_steps=cooldown_steps)
        return self.out / "model"

    # -- evaluation and export ----------------------------------------------------------------------
    @torch.no_grad()
    def evaluate(self, ema: EMA, step: int) -> dict:
        from app.eval.model_eval import quick_eval

        adapter, parts = self.pipe.adapter, self.trained_planner_parts()
        backup = {k: v.detach().clone() for k, v in adapter.state_dict().items()}
        parts_backup = {name: {k: v.detach().clone() for k, v in part.state_dict().items()} for name, part in parts.items()}
        ema.copy_to(adapter)
        for name, part in parts.items():
            self._planner_emas[name].copy_to(part)
        adapter.eval()
        try:
            scores = quick_eval(self.pipe, self.recipe.eval_prompts, seed=1234, steps=self.recipe.sample_steps,
                                guidance=self.recipe.guidance, use_canvas=self.use_canvas)
        finally:
            adapter.load_state_dict(backup)
            for name, part in parts.items():
                part.load_state_dict(parts_backup[name])
            adapter.train()
        scores["step"] = step
        self.progress["evals"].append(scores)
        atomic_json(self.progress_path, self.progress)
        self.log(f"eval at step {step}: " + ", ".join(f"{k} {v:.3f}" for k, v in scores.items() if isinstance(v, float)))
        return scores

    def export_model(self, ema: EMA, folder: Path | None = None) -> Path:
        folder = folder or self.out / "model"
        ema.copy_to(self.pipe.adapter)
        for name, part in self.trained_planner_parts().items():
            self._planner_emas[name].copy_to(part)
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
            **cooldown_record(progress),
            "use_canvas": use_canvas, "recipe": recipe.to_dict(), "history": history, "evals": progress["evals"]}


