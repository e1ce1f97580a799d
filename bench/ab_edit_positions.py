"""A/B on a CPU: does giving an edit's source rows the positions of the target rows (Kontext-style,
app/core/backbones/sana.py) make copying the source learnable sooner than diffusers' own positions for
the 2H-tall stack (rows squashed to half steps)? Trains the same small model on edits only, twice, and
reports bench/probe_conditioning.py's losses: the gap between a shuffled and the right source is how
much the model uses its source.

    python bench/ab_edit_positions.py [--steps 300]
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def train_and_probe(steps: int, shared_positions: bool, out: Path) -> dict:
    import app.core.backbones.sana as sana
    from app.train.loop import Trainer
    from app.train.recipe import Recipe
    from bench.probe_conditioning import conditioning_losses

    original = sana.shared_position_correction
    if not shared_positions:
        sana.shared_position_correction = lambda *a, **k: None
    try:
        recipe = Recipe.from_dict({
            "name": "ab-edit-positions", "seed": 0,
            "model": {"image_size": 32, "patch_size": 4, "planner_hidden": 64, "planner_layers": 2, "planner_heads": 2,
                      "planner_intermediate": 128, "vision_hidden": 32, "vision_depth": 1, "vision_patch": 4,
                      "dit_layers": 4, "dit_heads": 4, "dit_head_dim": 16, "connector_heads": 4,
                      "self_attention": "softmax"},
            "teach": {"steps": 0, "batch": 8, "lr": 1e-3, "warmup": 1},
            "diffusion": {"steps": steps, "batch": 32, "lr": 1e-3, "warmup": 50},
            "edit_fraction": 1.0, "eval_every": 0, "checkpoint_every": 100000, "sample_steps": 10})
        trainer = Trainer(recipe, out, device="cpu", log=lambda *_: None)
        t0 = time.time()
        trainer.train_diffusion()
        pipe = trainer.pipe
        pipe.adapter.eval()
        losses = conditioning_losses(pipe, n=64, t_values=(0.5, 0.9))
        return {"seconds": round(time.time() - t0), **losses}
    finally:
        sana.shared_position_correction = original


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--out", default="runs/ab-edit-positions")
    ap.add_argument("--only", type=lambda v: v == "shared", default=None, help="shared or squashed: run one arm")
    args = ap.parse_args()
    import torch

    torch.set_num_threads(2)
    for shared in (args.only,) if args.only is not None else (True, False):
        r = train_and_probe(args.steps, shared, Path(args.out) / ("shared" if shared else "squashed"))
        print("shared positions" if shared else "diffusers' squashed positions", flush=True)
        for k, v in r.items():
            print(f"  {k:32s} {v:.4f}" if isinstance(v, float) else f"  {k:32s} {v}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
