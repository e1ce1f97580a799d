"""What a DiT does with a right edit draft: the benchmark's edits (200, seed 7, as bench/bench_quality.py)
with each edit's canvas seeded with its own target's draft (app/train/data.edit_draft_rows) in place
of whatever the planner would draft, or with no draft at all.

    python research/probe_edit_oracle.py MODEL --drafts true|none    # research/LOG.md, "Drafting edits"

Separates the DiT's part of an edit from the drafter's: with true drafts, a failure is the DiT's.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402
import torch  # noqa: E402
from app.core.checkpoints import load_model  # noqa: E402
from app.core.draft import no_drafts  # noqa: E402
from app.eval.edits import make_edit_benchmark  # noqa: E402
from app.eval.model_eval import evaluate_edits  # noqa: E402
from app.train.data import edit_draft_rows  # noqa: E402
from app.shapes.render import render  # noqa: E402

ap = argparse.ArgumentParser()
ap.add_argument("model")
ap.add_argument("--drafts", choices=("true", "none"), default="true")
ap.add_argument("--edits", type=int, default=200)
args = ap.parse_args()

pipe = load_model(args.model)
planner = pipe.planner
config = planner.drafter.config
# Keyed by instruction AND source: the benchmark repeats instructions ("move the star up") over scenes.
triples = {(t.instruction, render(t.source).tobytes()): t for t in make_edit_benchmark(args.edits, seed=7)}
plan_with = planner.forward


def forward(instructions, spec, images=None, videos=None, inputs=None, seeds=None, drafts=None):
    if drafts is None and images is not None:
        drafts = no_drafts(len(instructions), config)
        if args.drafts == "true":
            for i, text in enumerate(instructions):
                if text.strip():  # guidance's empty row stays undrafted, as in training
                    target = triples[(text, np.asarray(images[i][0]).tobytes())].target
                    drafts[i] = torch.from_numpy(edit_draft_rows(target, config))
    return plan_with(instructions, spec, images=images, videos=videos, inputs=inputs, seeds=seeds, drafts=drafts)


planner.forward = forward
t0 = time.time()
scores = evaluate_edits(pipe, args.edits, seed=7)
print(json.dumps({"model": args.model, "drafts": args.drafts, "seconds": round(time.time() - t0), **scores}))
