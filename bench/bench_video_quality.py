"""Quality of a video model on the shapes world in motion (app/eval/video_eval.py defines each figure):
the four video tasks on held-out prompts with fixed seeds, beside its text-only twin when given.

    python bench/bench_video_quality.py [--model models/metacanvas-shapes-video]
        [--twin models/metacanvas-shapes-video-text-only] [--n 64] [--seed 7] [--json out.json]
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="models/metacanvas-shapes-video")
    ap.add_argument("--twin", default=None, help="its text-only twin's folder")
    ap.add_argument("--n", type=int, default=64, help="clips per task")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--json", default=None, help="also write the figures here")
    args = ap.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    from app.core.checkpoints import load_model
    from app.eval.video_eval import evaluate_video_model, format_markdown

    rows = []
    for folder in [args.model] + ([args.twin] if args.twin else []):
        t = time.perf_counter()
        row = evaluate_video_model(load_model(folder), args.n, seed=args.seed)
        row.update(model=folder, n=args.n, seconds=time.perf_counter() - t)
        rows.append(row)
    print(format_markdown(rows))
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
