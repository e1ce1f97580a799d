"""How well the still edit check (app/core/frame_detector.still_edit_shortfall) tells a wrong image edit apart.

    OMP_NUM_THREADS=1 python research/eval_still_edit_check.py models/metacanvas-shapes 200 7

Samples the benchmark's image edits (app/eval/edits.make_edit_benchmark for the seed) with the model's drafts,
checks each result against its own draft, and prints how often the check flags the edits the benchmark judges
wrong (`edit_success`) and the ones it judges right. Seed 11 tuned nothing here; 7 is the reported one.
"""
from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from app.core.checkpoints import load_model  # noqa: E402
from app.core.frame_detector import still_edit_shortfall  # noqa: E402
from app.eval.edits import edit_success, make_edit_benchmark  # noqa: E402
from app.shapes.render import render  # noqa: E402


def main(folder: str, n: int = 200, seed: int = 7) -> dict:
    pipe = load_model(folder).eval()
    size = pipe.defaults.width
    triples = make_edit_benchmark(n, seed=seed)
    right, flagged = [], []
    t0 = time.time()
    for start in range(0, n, 50):
        chunk = triples[start:start + 50]
        sources = [render(t.source, size) for t in chunk]
        seeds = [seed + start + k for k in range(len(chunk))]
        results = pipe.sample([t.instruction for t in chunk], seeds, sources=sources)
        with torch.no_grad():  # the drafts the edits were sampled with (the same seeds draw the same drafts)
            drafts = pipe.planner([t.instruction for t in chunk], pipe.canvas_spec_for(size),
                                  images=[[s] for s in sources], seeds=seeds).draft
        for t, draft, result, source in zip(chunk, drafts, results, sources):
            unseen, unplanned = still_edit_shortfall(pipe.planner, draft, result, source=source,
                                                     instruction=t.instruction)
            right.append(edit_success(result, t.target))
            flagged.append(bool(unseen or unplanned))
    ok, fl = np.array(right), np.array(flagged)
    out = {"edits": n, "seed": seed, "right": float(ok.mean()), "flagged": float(fl.mean()),
           "flagged_of_wrong": float(fl[~ok].mean()) if (~ok).any() else float("nan"), "wrong": int((~ok).sum()),
           "flagged_of_right": float(fl[ok].mean()) if ok.any() else float("nan"), "seconds": time.time() - t0}
    print(out)
    return out


if __name__ == "__main__":
    torch.set_num_threads(1)
    main(sys.argv[1], *(int(a) for a in sys.argv[2:4]))
