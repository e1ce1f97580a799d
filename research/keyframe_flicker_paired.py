"""Paired per-clip comparison of text-to-video models on the same prompts, seeds and noise: flicker of what
stands still, motion followed and objects right, each model's mean and the paired differences (each model against
the first) with their standard errors. For the keyframe study's arms (research/keyframe_study.py), whose
benchmark means alone cannot say whether a difference of a few hundredths is more than the clips' spread.

    python research/keyframe_flicker_paired.py runs/kf-drafted/k1 runs/kf-drafted/k3 --n 64 --seeds 7 13
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from app.core.checkpoints import load_model  # noqa: E402
from app.eval.video_eval import _chunks, sample_clips, score_text_to_video, text_to_video_set  # noqa: E402


def per_clip(folder: str, n: int, seeds: list[int], steps: int | None) -> list[dict]:
    pipe = load_model(folder).eval()
    frames, rows = pipe.defaults.frames, []
    sampling = {"steps": steps} if steps else {}
    for seed in seeds:
        metas = text_to_video_set(n, seed, frames)
        for idx in _chunks(n, 16):
            clips = sample_clips(pipe, "text_to_video", [metas[i]["prompt"] for i in idx], [seed + i for i in idx],
                                 frames=frames, **sampling)
            for i, clip in zip(idx, clips):
                s = score_text_to_video(clip, metas[i])
                rows.append({"seed": seed, "i": i, "flicker": s["flicker"], "motion": float(s["motion_followed"]),
                             "objects": float(s["objects_right"])})
    return rows


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("models", nargs="+")
    ap.add_argument("--n", type=int, default=64)
    ap.add_argument("--seeds", type=int, nargs="+", default=[7])
    ap.add_argument("--steps", type=int, help="denoising steps (default: each model's own)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--json", help="write the per-clip rows and the summary here")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    rows = {m: per_clip(m, args.n, args.seeds, args.steps) for m in args.models}
    first = args.models[0]
    summary = {}
    for m in args.models:
        out = {}
        for key in ("flicker", "motion", "objects"):
            pairs = [(a[key], b[key]) for a, b in zip(rows[first], rows[m]) if a[key] is not None and b[key] is not None]
            mine = np.array([b for _, b in pairs], float)
            diff = np.array([b - a for a, b in pairs], float)
            out[key] = {"mean": float(mine.mean()), "clips": len(pairs)}
            if m != first:
                out[key]["minus_first"] = float(diff.mean())
                out[key]["se"] = float(diff.std(ddof=1) / np.sqrt(len(diff)))
        summary[m] = out
        print(m, json.dumps(out))
    if args.json:
        Path(args.json).write_text(json.dumps({"summary": summary, "rows": rows, "args": vars(args)}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
