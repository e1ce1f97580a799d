"""A/B on a CPU: does giving an edit's source rows the positions of the target rows (Kontext-style,
app/core/backbones/sana.py) make copying the source learnable sooner than diffusers' own positions for
the 2H-tall stack (rows squashed to half steps)? Trains the same small model on edits only, twice, and
reports research/probe_conditioning.py's losses: the gap between a shuffled and the right source is how
much the model uses its source.

    python research/ab_edit_positions.py [--steps 300] [--probe-every 0] [--only shared|squashed] [--threads 2]

With --probe-every N the probe also runs every N steps (a curve: when does copying start?). Run the two
arms as two processes with --only and --threads 1 to use both cores of a 2-core machine.

--copy-task isolates the question: the DiT alone (no planner, no canvas) learns to output its source
(target = source, t in [0.6, 1]), and the log compares the loss with the right and a shuffled source
every 100 steps. Minutes on a CPU, and it says whether copying through in-sequence attention is learnable.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


PROBE_TIMES = (0.5, 0.9, 1.0)  # at t = 1 the target is pure noise: only a copied source lowers the loss


def train_and_probe(steps: int, shared_positions: bool, out: Path, probe_every: int = 0, report=None) -> dict:
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
            "edit_fraction": 1.0, "eval_every": 0, "checkpoint_every": probe_every or 100000, "sample_steps": 10})
        trainer = Trainer(recipe, out, device="cpu", log=lambda *_: None)
        t0 = time.time()
        # Train in legs of `probe_every` steps: each leg resumes from the last one's checkpoint (the
        # trainer's own resume), and the probe reads the EMA-free live weights after each leg.
        legs = list(range(probe_every, steps, probe_every)) + [steps] if probe_every else [steps]
        losses = {}
        for leg_end in legs:
            recipe.diffusion.steps = leg_end
            trainer.train_diffusion()
            pipe = trainer.pipe
            pipe.adapter.eval()
            losses = {"step": leg_end, "seconds": round(time.time() - t0),
                      **conditioning_losses(pipe, n=64, t_values=PROBE_TIMES)}
            pipe.adapter.train()
            if report:
                report(losses)
        return losses
    finally:
        sana.shared_position_correction = original


def copy_task(steps: int, shared_positions: bool, report, seed: int = 0) -> None:
    """A small SANA adapter (32 px, patch 4, 4 layers of width 64, softmax attention) learns target =
    source on shapes-world images; `report(step, loss, loss_with_shuffled_source)` every 100 steps."""
    import numpy as np
    import torch
    import torch.nn.functional as F
    from diffusers import SanaTransformer2DModel

    import app.core.backbones.sana as sana
    from app.shapes.dataset import sample_t2i_examples

    original = sana.shared_position_correction
    if not shared_positions:
        sana.shared_position_correction = lambda *a, **k: None
    try:
        torch.manual_seed(seed)
        transformer = SanaTransformer2DModel(
            in_channels=3, out_channels=3, num_attention_heads=4, attention_head_dim=16, num_layers=4,
            num_cross_attention_heads=4, cross_attention_head_dim=16, cross_attention_dim=64, caption_channels=32,
            mlp_ratio=2.5, sample_size=32, patch_size=4, interpolation_scale=1)
        adapter = sana.SanaAdapter(transformer, 32, canvas=False, self_attention="softmax")
        opt = torch.optim.AdamW([p for p in adapter.parameters() if p.requires_grad], lr=1e-3)
        rng = np.random.default_rng(seed)
        batch = 32
        context, mask = torch.zeros(batch, 4, 32), torch.ones(batch, 4, dtype=torch.bool)  # no instruction
        for step in range(steps):
            images = np.stack([im for _, im in sample_t2i_examples(rng, batch, 32)])
            x = torch.from_numpy(images).permute(0, 3, 1, 2).float() / 127.5 - 1
            t = torch.rand(batch) * 0.4 + 0.6
            noise = torch.randn_like(x)
            noisy = (1 - t.view(-1, 1, 1, 1)) * x + t.view(-1, 1, 1, 1) * noise
            loss = F.mse_loss(adapter(noisy, t, context, mask, plan_tokens=None, reference=x), noise - x)
            opt.zero_grad()
            loss.backward()
            opt.step()
            if step % 100 == 0 or step == steps - 1:
                with torch.no_grad():
                    shuffled = F.mse_loss(adapter(noisy, t, context, mask, plan_tokens=None, reference=x.roll(1, 0)),
                                          noise - x).item()
                report(step, loss.item(), shuffled)
    finally:
        sana.shared_position_correction = original


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--out", default="runs/ab-edit-positions")
    ap.add_argument("--only", type=lambda v: v == "shared", default=None, help="shared or squashed: run one arm")
    ap.add_argument("--probe-every", type=int, default=0, help="also probe every N steps (a curve)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--copy-task", action="store_true", help="the DiT alone learns target = source")
    args = ap.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    for shared in (args.only,) if args.only is not None else (True, False):
        name = "shared positions" if shared else "diffusers' squashed positions"
        if args.copy_task:
            copy_task(args.steps, shared, lambda step, loss, shuffled, name=name: print(
                f"{name}, copy task step {step}: loss {loss:.4f}, with a shuffled source {shuffled:.4f} "
                f"(the source lowers it by {100 * (shuffled - loss) / shuffled:.1f} %)", flush=True))
            continue

        def report(r, name=name):
            print(f"{name}, step {r['step']} ({r['seconds']} s)", flush=True)
            for t in PROBE_TIMES:
                right, shuffled = r[f"edit t={t} right"], r[f"edit t={t} shuffled source"]
                print(f"  t={t}: edit loss right source {right:.4f}, shuffled source {shuffled:.4f} "
                      f"(source lowers it by {100 * (shuffled - right) / shuffled:.1f} %)", flush=True)

        train_and_probe(args.steps, shared, Path(args.out) / ("shared" if shared else "squashed"),
                        args.probe_every, report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
