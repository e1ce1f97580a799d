"""The method's keyframe study in miniature (its Table 6): no canvas / 1 / 3 / all keyframes, at equal steps.

    OMP_NUM_THREADS=2 python research/keyframe_study.py --run runs/video-48 --out runs/keyframe-study \
        --steps 1200 --teach-steps 150 --max-minutes 100

Every arm starts from the same weights and sees the same batches and noise, so the keyframe count is the
only difference:
- the DiT: the text-only twin of a video run's checkpoint (RUN/checkpoint/twin_ema, 6,223 steps for
  runs/video-48), so no arm's DiT has learned to read a canvas of some count before the study;
- each canvas arm adds a fresh canvas connector (zero output at first: it starts as the twin) and plans
  with K keyframes (1, 3, all 5 latent frames); the no-canvas arm is the twin, trained on;
- the planner: the run's taught planner (RUN/planner_taught), its MLLM frozen (each arm a copy of it). Its canvas
  tokens were taught at 3 keyframes; each arm's are resized to K keyframes (CanvasTokens' trilinear
  resize) and then taught `--teach-steps` more on label maps at its own keyframes' times (canvas tokens and
  a canvas head only, as the video trainer's stage 1), the same steps for every K, 3 included;
- stage 2 as the video trainer's (app/train/video.py): every task, without drafts, `--steps` steps.

With `--drafted` (the product's way of planning clips): the run's track drafter is kept, each batch of a
drafted task carries its true tracks, drawn on each arm's canvas at its own keyframes' times (a 1-keyframe canvas
holds the tracks' starts), and the exported arms draft their clips as the product does. `--tasks` trains on some
tasks only (their recipe shares renormalised).

Exports RUN_OUT/k0 (no canvas), k1, k3, k5 as model folders (EMA weights, decay --ema) for
`python main.py bench video_quality --model RUN_OUT/kN`. Resumable: RUN_OUT/checkpoint every 200 steps;
a rerun goes on from it. Step time per K is bench/bench_video_speed.py's (one run, same DiT).
"""
from __future__ import annotations

import argparse
import copy
import json
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from app.core.canvas import CanvasSpec, CanvasTokens  # noqa: E402
from app.core.checkpoints import replace_folder, save_model  # noqa: E402
from app.train.ema import EMA  # noqa: E402
from app.train.optim_state import load_optimizer, save_optimizer  # noqa: E402
from app.train.planner_teaching import PlannerTeacher  # noqa: E402
from app.train.progress import atomic_json  # noqa: E402
from app.train.schedule import lr_lambda  # noqa: E402
from app.train.stage2_flow_matching import load_state_file, shifted  # noqa: E402
from app.train.video import build_video_model, planner_inputs, taught_video_planner  # noqa: E402
from app.train.video_data import VideoRecipe, conditions, encode_clips, make_video_batch, pick_task  # noqa: E402


def log(out: Path, text: str) -> None:
    line = f"[{time.strftime('%H:%M:%S')}] {text}"
    print(line, flush=True)
    with open(out / "log.txt", "a") as fh:
        fh.write(line + "\n")


def planner_with_keyframes(planner, k: int):
    """A copy of `planner` whose canvas tokens are K keyframes (resized from its own), sharing nothing
    trainable with the others."""
    arm = copy.deepcopy(planner)
    old = arm.canvas_tokens
    spec = CanvasSpec(k, old.spec.rows, old.spec.cols)
    tokens = CanvasTokens(spec, old.dim, positions=old.positions, draft_labels=old.draft_labels)
    with torch.no_grad():
        tokens.tokens.copy_(old(spec).reshape(k, spec.rows, spec.cols, old.dim))
        if old.draft_labels:  # the taught embedding a draft's labels are drawn with (its per-cell coverage)
            tokens.draft_embedding.copy_(old.draft_embedding)
    arm.canvas_tokens = tokens
    return arm


def teach_canvas(out: Path, recipe: VideoRecipe, planner, pipe, steps: int, seed: int) -> None:
    """`steps` steps of the canvas tokens (and a fresh canvas head) on the label maps at this recipe's
    keyframe times; the MLLM frozen."""
    planner.requires_grad_(False).eval()
    teacher = PlannerTeacher(planner, grid=recipe.grid, keyframes=recipe.keyframes,
                             foreground_weight=recipe.teach_foreground_weight)
    teacher.context_head.requires_grad_(False)
    params = [planner.canvas_tokens.tokens, *teacher.canvas_head.parameters()]
    for p in params:
        p.requires_grad_(True)
    opt = torch.optim.AdamW(params, lr=recipe.teach.lr, weight_decay=0.0)
    rng = np.random.default_rng([seed, 1])
    for step in range(steps):
        batch = make_video_batch(rng, recipe, pick_task(rng, recipe.task_weights), recipe.teach.batch)
        batch["planner_inputs"] = planner_inputs(planner, batch, pipe)
        loss, stats = teacher.loss(batch, "cpu")
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, recipe.grad_clip)
        opt.step()
        if step % 50 == 0 or step == steps - 1:
            log(out, f"K={recipe.keyframes} canvas teach {step}: " + " ".join(f"{k} {v:.3f}" for k, v in stats.items()))
    planner.requires_grad_(False)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--run", default="runs/video-48", help="a video run folder (recipe, planner_taught, checkpoint)")
    ap.add_argument("--out", default="runs/keyframe-study")
    ap.add_argument("--keyframes", type=int, nargs="+", default=[0, 1, 3, 5], help="0: no canvas")
    ap.add_argument("--steps", type=int, default=1200)
    ap.add_argument("--teach-steps", type=int, default=150)
    ap.add_argument("--ema", type=float, default=0.995, help="EMA decay (a short run: ~200 steps' window)")
    ap.add_argument("--max-minutes", type=float)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--drafted", action="store_true", help="plans drafted from the true tracks (see the docstring)")
    ap.add_argument("--tasks", nargs="+", help="train on these tasks only (default: the recipe's)")
    args = ap.parse_args()
    torch.set_flush_denormal(True)
    torch.set_num_threads(args.threads)
    run, out = Path(args.run), Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    base = VideoRecipe.load(run / "recipe.json")
    if not args.drafted:
        base = replace(base, track_drafts=None, drafts_from_step=0, drafted_task_weights=None)
    weights = dict((base.drafted_task_weights if args.drafted and base.drafted_task_weights else base.task_weights))
    if args.tasks:
        weights = {task: weights[task] for task in args.tasks}
    weights = {task: w / sum(weights.values()) for task, w in weights.items()}
    drafted_tasks = ("text_to_video",) + tuple(task for task, start in (
        ("image_to_video", base.image_drafts_from_step), ("reference_to_video", base.reference_drafts_from_step),
        ("video_edit", base.edit_drafts_from_step)) if start is not None) if args.drafted else ()
    progress_path = out / "progress.json"
    progress = json.loads(progress_path.read_text()) if progress_path.exists() else {"step": 0, "losses": []}
    planner = taught_video_planner(base, run / "planner_taught", {})
    if not args.drafted:
        planner.drafter = None
    elif planner.drafter is None:
        raise SystemExit(f"--drafted: {run}/planner_taught has no track drafter")
    draft_config = planner.drafter.config if args.drafted else None
    twin_start = load_state_file(run / "checkpoint" / "twin_ema.safetensors")
    twin_start = {k[len("ema."):]: v for k, v in twin_start.items()}

    arms: dict[int, tuple] = {}
    for k in args.keyframes:
        recipe = replace(base, keyframes=max(k, 1))
        arm_planner = planner if k == 0 else planner_with_keyframes(planner, k)
        pipe = build_video_model(recipe, arm_planner, use_canvas=k > 0)
        missing, unexpected = pipe.adapter.load_state_dict(twin_start, strict=False)
        if unexpected or any(not m.startswith("canvas_connector") for m in missing):
            raise RuntimeError(f"the twin's weights do not fit the K={k} adapter: {unexpected or missing}")
        taught = out / f"canvas_k{k}.safetensors"
        if k > 0:
            if taught.exists():
                arm_planner.canvas_tokens.load_state_dict(load_state_file(taught))
            else:
                teach_canvas(out, recipe, arm_planner, pipe, args.teach_steps, base.seed)
                from safetensors.torch import save_file
                save_file({n: t.contiguous() for n, t in arm_planner.canvas_tokens.state_dict().items()}, str(taught))
        arms[k] = (recipe, pipe)

    r = base.diffusion
    state = {}
    for k, (recipe, pipe) in arms.items():
        adapter = pipe.adapter
        adapter.train()
        params = [p for p in adapter.parameters() if p.requires_grad]
        opt = torch.optim.AdamW(params, lr=r.lr, weight_decay=0.0)
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_lambda(r.warmup))
        state[k] = (adapter, params, opt, sched, EMA(adapter, args.ema))
    start, ckpt = progress["step"], out / "checkpoint"
    if start > 0:
        for k, (adapter, params, opt, sched, ema) in state.items():
            adapter.load_state_dict(load_state_file(ckpt / f"k{k}_adapter.safetensors"))
            ema.load_state_dict(load_state_file(ckpt / f"k{k}_ema.safetensors"))
            load_optimizer(opt, ckpt / f"k{k}_optimizer.safetensors")
            sched.last_epoch = start
            for group, lr in zip(opt.param_groups, sched.base_lrs):
                group["lr"] = lr * sched.lr_lambdas[0](start)
        log(out, f"resumed at step {start}")

    def save_checkpoint(done: int) -> None:
        from safetensors.torch import save_file

        tmp = ckpt.with_name("checkpoint.tmp")
        tmp.mkdir(parents=True, exist_ok=True)
        for k, (adapter, params, opt, sched, ema) in state.items():
            save_file({n: v.detach().contiguous() for n, v in adapter.state_dict().items()}, str(tmp / f"k{k}_adapter.safetensors"))
            save_file({n: v.contiguous() for n, v in ema.state_dict().items()}, str(tmp / f"k{k}_ema.safetensors"))
            save_optimizer(opt, tmp / f"k{k}_optimizer.safetensors")
        replace_folder(tmp, ckpt)
        progress["step"] = done
        atomic_json(progress_path, progress)

    rng = np.random.default_rng([base.seed, 2, start])
    gen = torch.Generator().manual_seed(base.seed + start)
    t0 = time.time()
    running: dict[int, list] = {k: [] for k in state}
    done = start
    for step in range(start, args.steps):
        batch = make_video_batch(rng, base, pick_task(rng, weights), r.batch, draft_config, drafted_tasks)
        drop = rng.random(len(batch["texts"])) < base.cfg_dropout
        batch["texts"] = ["" if d else t for t, d in zip(batch["texts"], drop)]
        drafts = None
        if draft_config is not None:  # as app/train/video.py: true tracks, none for undrafted batches or no words
            from app.core.draft_rows import no_drafts

            drafts = (torch.from_numpy(batch["draft"]) if batch.get("draft") is not None
                      else no_drafts(len(batch["texts"]), draft_config))
            drafts[torch.from_numpy(drop)] = -1
        codec = next(iter(arms.values()))[1].codec
        target = encode_clips(codec, batch["clips"], base.size)
        reference = conditions(batch, codec, base.size)
        b = target.shape[0]
        t = shifted(torch.sigmoid(torch.randn(b, generator=gen) * base.logit_normal_std), base.timestep_shift)
        noise = torch.randn(target.shape, generator=gen)
        tt = t.view(b, 1, 1, 1, 1)
        noisy = (1 - tt) * target + tt * noise
        first = 1 if batch["kind"] == "image_to_video" else 0  # the given first frame is not generated
        inputs = planner_inputs(planner, batch, arms[args.keyframes[0]][1])
        for k, (adapter, params, opt, sched, ema) in state.items():
            recipe, pipe = arms[k]
            with torch.no_grad():
                plan = pipe.planner(batch["texts"], CanvasSpec(recipe.keyframes, base.grid, base.grid), inputs=inputs,
                                    drafts=drafts if k > 0 else None)
            velocity = adapter(noisy, t, plan.context, plan.context_mask, plan_tokens=adapter.prepare_plan(plan.canvas),
                               reference=reference)
            loss = F.mse_loss(velocity[:, :, first:], (noise - target)[:, :, first:])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, base.grad_clip)
            opt.step()
            sched.step()
            ema.update(adapter, step)
            running[k].append(loss.item())
        done = step + 1
        if done % 50 == 0:
            progress["losses"].append([done, {str(k): float(np.mean(v)) for k, v in running.items()}])
            log(out, f"step {done} ({time.time() - t0:.0f} s): "
                + ", ".join(f"K={k} {np.mean(v):.4f}" for k, v in running.items()))
            running = {k: [] for k in state}
        out_of_time = args.max_minutes is not None and (time.time() - t0) / 60 > args.max_minutes
        if done % 200 == 0 or done == args.steps or out_of_time:
            save_checkpoint(done)
        if out_of_time:
            log(out, f"out of time at step {done} (resumable)")
            break

    for k, (adapter, params, opt, sched, ema) in state.items():
        recipe, pipe = arms[k]
        ema.copy_to(adapter)
        adapter.eval()
        folder = out / f"k{k}"
        save_model(pipe, folder)
        (folder / "training.json").write_text(json.dumps({
            "study": "keyframes", "keyframes": k, "start": f"{run}/checkpoint/twin_ema", "steps": done,
            "canvas_teach_steps": args.teach_steps if k else 0, "ema": args.ema, "drafted": args.drafted,
            "task_weights": weights}, indent=1))
        log(out, f"exported {folder} ({done} steps)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
