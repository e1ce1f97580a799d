"""Quality of a video model on the shapes world in motion (app/eval/video_eval.py defines each figure):
the four video tasks on held-out prompts with fixed seeds; beside it, when asked, the same model with
its track drafter removed (its canvas is then the planner's own plan: what the canvas adds apart from the
drafter), the same model run text-only (its canvas branch off) and its text-only twin (a folder trained
on the same batches).

    python main.py bench video_quality [--model models/metacanvas-shapes-video] [--drafter-removed]
        [--twin models/metacanvas-shapes-video-text-only] [--text-only] [--n 100] [--seed 7] [--json OUT.json]

Prints a markdown table (one column per row evaluated) and writes every figure as JSON (default
runs/bench/video_quality.json). Progress goes to stderr.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def main() -> int:
    ap = argparse.ArgumentParser(prog="python main.py bench video_quality")
    ap.add_argument("--model", default="models/metacanvas-shapes-video")
    ap.add_argument("--twin", default=None,
                    help="its text-only twin's folder (e.g. models/metacanvas-shapes-video-text-only)")
    ap.add_argument("--text-only", action="store_true", help="also run --model with its canvas branch off")
    ap.add_argument("--drafter-removed", action="store_true",
                    help="also run --model with its layout drafter removed (the canvas's own plan)")
    ap.add_argument("--n", type=int, default=100, help="clips per task")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--tasks", nargs="+", default=None,
                    help="some of text_to_video image_to_video video_edit reference_to_video (default: all)")
    ap.add_argument("--batch", type=int, default=16, help="clips sampled at once")
    ap.add_argument("--steps", type=int, default=None, help="denoising steps (default: the model's)")
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--json", default="runs/bench/video_quality.json", help="where to write the figures")
    args = ap.parse_args()
    if args.n < 1:
        raise ValueError(f"--n must be at least 1, not {args.n}")

    import torch
    from tqdm import tqdm

    torch.set_num_threads(args.threads)
    from app.core.checkpoints import load_model
    from app.eval.video_eval import VIDEO_EVAL_TASKS, evaluate_video_model, format_markdown

    tasks = tuple(args.tasks or VIDEO_EVAL_TASKS)
    runs = [(args.model, True, "")] \
        + ([(args.model, True, " (drafter removed)")] if args.drafter_removed else []) \
        + ([(args.model, False, " (canvas off)")] if args.text_only else []) \
        + ([(args.twin, True, " (twin)")] if args.twin else [])
    rows, pipes = [], {}
    for folder, use_canvas, note in runs:
        key = (folder, note == " (drafter removed)")
        if key not in pipes:
            pipes[key] = load_model(folder, device=args.device)
            if key[1]:
                if pipes[key].planner.drafter is None:
                    raise ValueError(f"{folder} has no layout drafter to remove")
                pipes[key].planner.drafter = None
        pipe = pipes[key]
        bar = tqdm(total=args.n * len([t for t in tasks if t in pipe.tasks]), desc=pipe.name + note, unit="clip",
                   file=sys.stderr)
        t = time.perf_counter()
        row = evaluate_video_model(pipe, args.n, seed=args.seed, tasks=tasks, use_canvas=use_canvas,
                                   steps=args.steps, batch=args.batch, progress=bar.update)
        bar.close()
        row.update(label=pipe.name + note, model=pipe.name, folder=str(folder), use_canvas=use_canvas, n=args.n,
                   seed=args.seed, steps=args.steps or pipe.defaults.steps, guidance=pipe.defaults.guidance,
                   device=args.device, threads=args.threads, machine=platform.processor() or platform.machine(),
                   seconds=round(time.perf_counter() - t, 1))
        rows.append(row)
    print(format_markdown(rows))
    out = Path(args.json)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(rows, indent=1))
    print(f"\nwrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
