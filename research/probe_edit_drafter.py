"""Can a drafter draft an edit's target scene, and from which of the planner's states?
A fresh edit drafter (LayoutDrafter, reads_images) taught alone on edit triples, the committed planner
frozen and read without gradients, then scored on the benchmark's 200 edits (seed 7): each drafted
target (greedy) drawn and judged by edit_success against the true target.

    python research/probe_edit_drafter.py MINUTES BATCH --memory canvas   # research/LOG.md, "Drafting edits"

--memory prompt:  the prompt's states (instruction + source image tokens), image tokens not placed
                  (how the first try read them: 0.02 right after 1,558 steps);
--memory image:   the same, each image token placed in the frame (what recipe
                  shapes-64-p8-edit-drafter-cpu.json teaches);
--memory canvas:  the same plus the edit's (undrafted) canvas states, each placed at its cell: the
                  planner's own plan of the target, which the drafter only has to parse into objects;
--memory pixels:  the prompt's states (image tokens placed) plus the source's own pixels through a small
                  convolutional stem taught with the drafter (16 x 16 tokens of 4 px, each placed at
                  its cell): a finer look at the source than the planner's 8 px image tokens give.
Nothing here is kept. The edit drafter the app builds now has a pixel stem of its own, taught as a
detector (DraftConfig.pixel_width; research/LOG.md, "Edit drafts from the source's pixels"); score
one taught with the recipe by research/eval_edit_drafter.py.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402
import torch  # noqa: E402
from app.core.checkpoints import load_model  # noqa: E402
from app.core.draft import LayoutDrafter, no_drafts  # noqa: E402
from app.eval.drafts import draft_scene  # noqa: E402
from app.eval.edits import edit_success, make_edit_benchmark  # noqa: E402
from app.train.data import edit_draft_rows  # noqa: E402
from app.shapes.edits import edit_kind, sample_edit  # noqa: E402
from app.shapes.render import render  # noqa: E402

ap = argparse.ArgumentParser()
ap.add_argument("minutes", type=float)
ap.add_argument("batch", type=int)
ap.add_argument("--memory", choices=("prompt", "image", "canvas", "pixels"), default="canvas")
ap.add_argument("--model", default="models/metacanvas-shapes")
args = ap.parse_args()

torch.manual_seed(0)
pipe = load_model(args.model)
planner = pipe.planner
spec = pipe.canvas_spec_for(pipe.defaults.width)
cfg = replace(planner.drafter.config, reads_images=args.memory != "prompt")
drafter = LayoutDrafter(cfg, planner.hidden_size)


@torch.no_grad()
def memory(triples):
    inputs = planner.processor([t.instruction for t in triples], images=[[render(t.source)] for t in triples])
    where = planner.image_places(inputs) if args.memory != "prompt" else None
    if args.memory != "canvas":
        context, mask = planner.context_states([], inputs=inputs)
        return context, mask, where
    plan = planner([t.instruction for t in triples], spec, inputs=inputs, drafts=no_drafts(len(triples), cfg))
    b = len(triples)
    canvas = plan.canvas.reshape(b, -1, plan.canvas.shape[-1])
    cells = torch.arange(spec.rows * spec.cols)
    cell_where = torch.stack([((cells % spec.cols + 0.5) / spec.cols * cfg.bins).long(),
                              ((cells // spec.cols + 0.5) / spec.rows * cfg.bins).long()], -1).expand(b, -1, -1)
    return (torch.cat([plan.context, canvas], 1), torch.cat([plan.context_mask, torch.ones(b, canvas.shape[1], dtype=torch.bool)], 1),
            torch.cat([where, cell_where], 1))


# The pixels variant's stem: 64 px -> 16 x 16 tokens (receptive field about 19 px, an object's size).
stem = torch.nn.Sequential(
    torch.nn.Conv2d(3, 32, 3, padding=1), torch.nn.GELU(), torch.nn.Conv2d(32, 64, 3, stride=2, padding=1),
    torch.nn.GELU(), torch.nn.Conv2d(64, 128, 3, stride=2, padding=1), torch.nn.GELU(),
    torch.nn.Conv2d(128, planner.hidden_size, 3, padding=1))


def pixel_tokens(triples):
    x = torch.from_numpy(np.stack([render(t.source) for t in triples])).float().permute(0, 3, 1, 2) / 127.5 - 1
    feats = stem(x)  # [B, d, 16, 16]
    b, d, h, w = feats.shape
    cells = torch.arange(h * w)
    where = torch.stack([((cells % w + 0.5) / w * cfg.bins).long(), ((cells // w + 0.5) / h * cfg.bins).long()], -1)
    return feats.flatten(2).transpose(1, 2), where.expand(b, -1, -1)


def full_memory(triples):
    context, mask, where = memory(triples)
    if args.memory != "pixels":
        return context, mask, where
    tokens, cell_where = pixel_tokens(triples)
    b = len(triples)
    return (torch.cat([context, tokens], 1), torch.cat([mask, torch.ones(b, tokens.shape[1], dtype=torch.bool)], 1),
            torch.cat([where, cell_where], 1))


params = [*drafter.parameters(), *(stem.parameters() if args.memory == "pixels" else ())]
opt = torch.optim.AdamW(params, lr=1e-3)
rng = np.random.default_rng(5)
t0, step = time.time(), 0
while (time.time() - t0) / 60 < args.minutes:
    triples = [sample_edit(rng) for _ in range(args.batch)]
    drafts = torch.from_numpy(np.stack([edit_draft_rows(t.target, cfg) for t in triples]))
    context, mask, where = full_memory(triples)
    loss, stats = drafter.loss(context, mask, drafts, where=where)
    opt.zero_grad()
    loss.backward()
    torch.nn.utils.clip_grad_norm_(params, 1.0)
    opt.step()
    if step % 100 == 0:
        print(step, round(time.time() - t0), round(loss.item(), 3), {k: round(v, 3) for k, v in stats.items()}, flush=True)
    step += 1
drafter.eval()
bench = make_edit_benchmark(200, seed=7)
ok, by = [], {}
for i in range(0, 200, 50):
    chunk = bench[i:i + 50]
    with torch.no_grad():
        context, mask, where = full_memory(chunk)
    drafts = drafter.sample(context, mask, temperature=0, where=where)
    for t, d in zip(chunk, drafts):
        good = edit_success(render(draft_scene(d, cfg)), t.target)
        ok.append(good)
        by.setdefault(edit_kind(t.instruction), []).append(good)
print(json.dumps({"memory": args.memory, "steps": step, "minutes": args.minutes, "batch": args.batch,
                  "target_drafted_right": float(np.mean(ok)), **{k: float(np.mean(v)) for k, v in by.items()}}))
