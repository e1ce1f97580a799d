"""Does a model use its conditions? The flow-matching loss on fresh shapes-world batches with the right
source image / instruction against the same batch with them shuffled across examples. A model that
copies an edit's source has a much lower loss with the right source; one that follows its instruction,
with the right text. Cheap (no sampling), so it runs on a CPU in seconds and tells early in training
whether a conditioning path is being learned.

    python research/probe_conditioning.py MODEL_FOLDER [MORE ...] [--n 64] [--t 0.5,0.9]

With several noise levels (--t 0.3,0.6,0.8,0.9,0.95,0.98,1.0) it shows WHERE a model uses a condition:
a 64 px scene's layout is decided at high noise, so an instruction that helps only at t <= 0.9 colours
objects but does not choose them.

For a MetaCanvas model it also swaps the canvas: mirrored left-right, another example's, or off. A DiT
that follows where its plan puts things pays for the mirrored canvas; one that reads the canvas only
as one more condition pays for another example's but not for the mirror (research/LOG.md, "Why the
canvas does not help here yet").

It also asks which path carries a caption's relation: on text-to-image examples whose caption names a
side ("left of", "above", "on the right"), the loss with the side words swapped (left <-> right,
above <-> below) in the whole plan, and for a MetaCanvas model in the context states only or in the
canvas only. A model that places objects where the caption says pays for the swap; the path whose
swap costs the loss is the one it reads the relation from.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def conditioning_losses(pipe, n: int = 64, t_values=(0.5, 0.9), seed: int = 0) -> dict[str, float]:
    """{'edit t=0.9 right': loss, 'edit t=0.9 shuffled source': ..., 'edit t=0.9 shuffled text': ...,
    't2i t=0.9 right': ..., 't2i t=0.9 shuffled text': ...} at the model's own image size."""
    import numpy as np
    import torch
    import torch.nn.functional as F

    from app.core.planner import prefix_position_ids
    from app.train.data import make_batch

    size = pipe.defaults.width
    spec = pipe.canvas_spec_for(size)
    grid = spec.rows
    rng = np.random.default_rng(seed)
    device = next(pipe.adapter.parameters()).device
    perm = np.roll(np.arange(n), 1)
    out = {}

    # A drafting planner plans each training scene with that scene's own draft (app/core/draft.py), as
    # training does; a text taken from another example brings that example's draft along.
    draft_config = pipe.planner.drafter.config if getattr(pipe.planner, "drafts", False) else None

    def loss(batch, t_val, shuffle_source=False, shuffle_text=False, canvas="right"):
        from app.train.planner_teaching import batch_drafts

        texts = list(batch["texts"])
        drafts = batch_drafts(pipe.planner, batch)
        if shuffle_text:
            texts = [texts[i] for i in perm]
            drafts = drafts[torch.from_numpy(perm)] if drafts is not None else None
        sources = batch.get("sources")
        inputs = pipe.planner.processor(texts, images=[[s] for s in sources] if sources is not None else None)
        inputs.prefix_position_ids = prefix_position_ids(pipe.planner.model, inputs)
        plan = pipe.planner(texts, spec, inputs=inputs, drafts=drafts)
        x = torch.from_numpy(batch["images"]).to(device).permute(0, 3, 1, 2).float() / 127.5 - 1
        ref = None
        if sources is not None:
            ref = torch.from_numpy(sources).to(device).permute(0, 3, 1, 2).float() / 127.5 - 1
            if shuffle_source:
                ref = ref[torch.from_numpy(perm).to(device)]
        g = torch.Generator().manual_seed(seed)
        noise = torch.randn(x.shape, generator=g).to(device)
        t = torch.full((n,), t_val, device=device)
        noisy = (1 - t_val) * x + t_val * noise
        # canvas: "right", "mirrored" (left-right: a DiT that follows WHERE the plan puts things pays
        # for it), "shuffled" (another example's plan: WHAT it says) or "off".
        layout = {"right": plan.canvas, "mirrored": plan.canvas.flip(-2),
                  "shuffled": plan.canvas[torch.from_numpy(perm).to(device)], "off": None}[canvas]
        plan_tokens = None if layout is None else pipe.adapter.prepare_plan(layout)
        v = pipe.adapter(noisy, t, plan.context, plan.context_mask, plan_tokens, ref)
        return F.mse_loss(v.float(), noise - x).item()

    with torch.no_grad():
        edit = make_batch(rng, n, size, grid, True)
        t2i = make_batch(rng, n, size, grid, False, draft=draft_config)
        for t in t_values:
            out[f"edit t={t} right"] = loss(edit, t)
            out[f"edit t={t} shuffled source"] = loss(edit, t, shuffle_source=True)
            out[f"edit t={t} shuffled text"] = loss(edit, t, shuffle_text=True)
            out[f"t2i t={t} right"] = loss(t2i, t)
            out[f"t2i t={t} shuffled text"] = loss(t2i, t, shuffle_text=True)
            if pipe.adapter.canvas_connector is not None:
                for kind, batch in (("t2i", t2i), ("edit", edit)):
                    for mode in ("mirrored", "shuffled", "off"):
                        out[f"{kind} t={t} canvas {mode}"] = loss(batch, t, canvas=mode)
    return out


_SIDE_SWAP = {"left": "right", "right": "left", "above": "below", "below": "above"}


def swap_side_words(text: str) -> str:
    """"a circle left of a star" -> "a circle right of a star"; "above" <-> "below" likewise."""
    import re

    return re.sub(r"\b(left|right|above|below)\b", lambda m: _SIDE_SWAP[m.group(1)], text)


def relation_word_losses(pipe, n: int = 64, t_values=(0.9,), seed: int = 0) -> dict[str, float]:
    """{'t=0.9 right': loss, 't=0.9 swapped': ..., and for a MetaCanvas model 't=0.9 swapped in context',
    't=0.9 swapped in canvas'} over n text-to-image examples whose caption names a side.
    A drafting planner drafts both captions itself here (seed 0 each), not with the scene's own draft:
    the swapped caption has no scene to take one from."""
    import numpy as np
    import torch
    import torch.nn.functional as F

    from app.core.planner import prefix_position_ids
    from app.train.data import make_batch

    size = pipe.defaults.width
    spec = pipe.canvas_spec_for(size)
    rng = np.random.default_rng(seed)
    device = next(pipe.adapter.parameters()).device
    texts, images = [], []
    for _ in range(50):  # about a fifth of the captions name a side
        if len(texts) >= n:
            break
        batch = make_batch(rng, 4 * n, size, spec.rows, False)
        for text, image in zip(batch["texts"], batch["images"]):
            if swap_side_words(text) != text and len(texts) < n:
                texts.append(text)
                images.append(image)
    if len(texts) < n:
        raise RuntimeError(f"only {len(texts)} of {n} sampled captions name a side (left, right, above, below)")

    def plan_for(captions):
        inputs = pipe.planner.processor(captions)
        inputs.prefix_position_ids = prefix_position_ids(pipe.planner.model, inputs)
        return pipe.planner(captions, spec, inputs=inputs)

    x = torch.from_numpy(np.stack(images)).to(device).permute(0, 3, 1, 2).float() / 127.5 - 1
    out = {}
    with torch.no_grad():
        right, swapped = plan_for(texts), plan_for([swap_side_words(t) for t in texts])
        for t_val in t_values:
            noise = torch.randn(x.shape, generator=torch.Generator().manual_seed(seed)).to(device)
            t = torch.full((n,), t_val, device=device)
            noisy = (1 - t_val) * x + t_val * noise

            def loss(context_from, canvas_from):
                tokens = None
                if pipe.adapter.canvas_connector is not None:
                    tokens = pipe.adapter.prepare_plan(canvas_from.canvas)
                v = pipe.adapter(noisy, t, context_from.context, context_from.context_mask, tokens, None)
                return F.mse_loss(v.float(), noise - x).item()

            out[f"t={t_val} right"] = loss(right, right)
            out[f"t={t_val} swapped"] = loss(swapped, swapped)
            if pipe.adapter.canvas_connector is not None:
                out[f"t={t_val} swapped in context"] = loss(swapped, right)
                out[f"t={t_val} swapped in canvas"] = loss(right, swapped)
    return out


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("models", nargs="+")
    ap.add_argument("--n", type=int, default=64)
    ap.add_argument("--t", default="0.5,0.9", help="noise levels, comma-separated")
    args = ap.parse_args()
    t_values = tuple(float(v) for v in args.t.split(","))
    from app.core.checkpoints import load_model

    for folder in args.models:
        pipe = load_model(folder, device="cpu")
        print(folder)
        losses = conditioning_losses(pipe, args.n, t_values=t_values)
        for t in t_values:
            for kind, cond in (("t2i", "text"), ("edit", "source")):
                right, shuffled = losses[f"{kind} t={t} right"], losses[f"{kind} t={t} shuffled {cond}"]
                print(f"  t={t:<5} {kind:4s} loss {right:.4f}, with shuffled {cond:6s} {shuffled:.4f} "
                      f"(the {cond} lowers it by {100 * (shuffled - right) / shuffled:4.1f} %)")
                if f"{kind} t={t} canvas mirrored" in losses:
                    print("              canvas mirrored {:.4f}, another example's {:.4f}, off {:.4f}".format(
                        *(losses[f"{kind} t={t} canvas {m}"] for m in ("mirrored", "shuffled", "off"))))
        relations = relation_word_losses(pipe, args.n, t_values=t_values)
        for t in t_values:
            right = relations[f"t={t} right"]

            def change(key):
                return f"{relations[key]:.4f} ({100 * (relations[key] / right - 1):+.1f} %)"

            line = f"  t={t:<5} side words swapped (captions with a relation): {right:.4f} -> {change(f't={t} swapped')}"
            if f"t={t} swapped in canvas" in relations:
                line += (f"; in the context only {change(f't={t} swapped in context')}, "
                         f"in the canvas only {change(f't={t} swapped in canvas')}")
            print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
