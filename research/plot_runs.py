"""Compare training runs side by side: flow-matching loss and quick-evaluation score against steps,
read from each run folder's progress.json (app/train/loop.py writes it as it trains).

    python research/plot_runs.py runs/p8x/canvas runs/labels/canvas --labels plain "label loss" \
        --out docs/figures/some-comparison.png
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np


def smoothed(points: list[list[float]], window: int) -> tuple[np.ndarray, np.ndarray]:
    """Running mean over `window` logged points (each already a mean over 50 steps)."""
    steps = np.array([p[0] for p in points], float)
    values = np.array([p[1] for p in points], float)
    if window > 1 and len(values) >= window:
        kernel = np.ones(window) / window
        return steps[window - 1:], np.convolve(values, kernel, mode="valid")
    return steps, values


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("runs", nargs="+", help="run folders (with progress.json)")
    ap.add_argument("--labels", nargs="+", default=None, help="legend names, one per run")
    ap.add_argument("--metric", default="overall", help="quick-evaluation key to plot (overall, position, ...)")
    ap.add_argument("--smooth", type=int, default=4, help="running mean over this many logged losses")
    ap.add_argument("--from-step", type=int, default=300, help="leave out the first steps' large losses")
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    labels = args.labels or [str(r) for r in args.runs]
    if len(labels) != len(args.runs):
        print("give one --labels name per run", file=sys.stderr)
        return 2

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_loss, ax_eval) = plt.subplots(1, 2, figsize=(11, 4))
    for run, label in zip(args.runs, labels):
        progress = json.loads((Path(run) / "progress.json").read_text())
        losses = [p for p in progress["losses"] if p[0] >= args.from_step]
        if losses:
            ax_loss.plot(*smoothed(losses, args.smooth), label=label)
        evals = [(e["step"], e[args.metric]) for e in progress["evals"] if args.metric in e]
        if evals:
            ax_eval.plot(*zip(*evals), marker="o", label=label)
    ax_loss.set_title(f"flow-matching loss (running mean of {args.smooth} x 50 steps)")
    ax_loss.set_yscale("log")
    ax_eval.set_title(f"quick evaluation: {args.metric}")
    for ax in (ax_loss, ax_eval):
        ax.set_xlabel("step")
        ax.legend()
    fig.tight_layout()
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.out, dpi=90)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
