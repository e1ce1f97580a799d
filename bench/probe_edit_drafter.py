"""Can a drafter draft an edit's target scene from the instruction and the source image's planner states?
A fresh LayoutDrafter (max 5 objects) taught alone on edit triples (the committed planner frozen, its
prompt states over instruction + source image read without gradients), then scored on the benchmark's
200 edits: the drafted target drawn and judged by edit_success against the true target.

    python bench/probe_edit_drafter.py MINUTES BATCH     # e.g. 14 64 (docs/BENCHMARKS.md, "Layout drafts")

An experiment towards drafting edits (app/core/draft.py drafts text-to-image only): nothing here is kept.
"""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402
import torch  # noqa: E402
from app.core.checkpoints import load_model  # noqa: E402
from app.core.draft import DraftConfig, LayoutDrafter  # noqa: E402
from app.eval.drafts import draft_scene  # noqa: E402
from app.eval.edits import edit_success, make_edit_benchmark  # noqa: E402
from app.shapes.dataset import draft_rows  # noqa: E402
from app.shapes.edits import edit_kind, sample_edit  # noqa: E402
from app.shapes.palette import NUM_LABELS  # noqa: E402
from app.shapes.render import render  # noqa: E402

minutes, batch = float(sys.argv[1]), int(sys.argv[2])
torch.manual_seed(0)
pipe = load_model('models/metacanvas-shapes')
planner = pipe.planner
cfg = DraftConfig(labels=NUM_LABELS, max_objects=5, dim=128)
drafter = LayoutDrafter(cfg, 128)
opt = torch.optim.AdamW(drafter.parameters(), lr=1e-3)
rng = np.random.default_rng(5)
t0, step = time.time(), 0
while (time.time() - t0) / 60 < minutes:
    triples = [sample_edit(rng) for _ in range(batch)]
    drafts = torch.from_numpy(np.stack([draft_rows(t.target, cfg) for t in triples]))
    ctx, mask = planner.context_states([t.instruction for t in triples], images=[[render(t.source)] for t in triples])
    loss, stats = drafter.loss(ctx, mask, drafts)
    opt.zero_grad()
    loss.backward()
    torch.nn.utils.clip_grad_norm_(drafter.parameters(), 1.0)
    opt.step()
    if step % 100 == 0:
        print(step, round(time.time() - t0), round(loss.item(), 3), {k: round(v, 3) for k, v in stats.items()}, flush=True)
    step += 1
drafter.eval()
bench = make_edit_benchmark(200, seed=7)
ok, by = [], {}
with torch.no_grad():
    for i in range(0, 200, 50):
        chunk = bench[i:i + 50]
        ctx, mask = planner.context_states([t.instruction for t in chunk], images=[[render(t.source)] for t in chunk])
        drafts = drafter.sample(ctx, mask, seeds=list(range(i, i + len(chunk))))
        for t, d in zip(chunk, drafts):
            good = edit_success(render(draft_scene(d, cfg)), t.target)
            ok.append(good)
            by.setdefault(edit_kind(t.instruction), []).append(good)
print(json.dumps({"steps": step, "minutes": minutes, "batch": batch, "target_drafted_right": float(np.mean(ok)),
                  **{k: float(np.mean(v)) for k, v in by.items()}}))
