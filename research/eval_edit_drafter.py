"""How often does an edit drafter draft an edit's target right, and where does it go wrong?

Loads the planner of MODEL (a model folder, or a run's planner_taught/ with the model folder whose
MLLM it reads given as --mllm), drafts the benchmark's edits greedily (as the studio does), draws
each draft and judges it against the true target with edit_success (the rule the images are judged
by). Also counts, over the target's objects, those an edit leaves alone (kept) and the new or changed
ones, drafted within 0.1 of the frame with their class and colour.

    python research/eval_edit_drafter.py runs/pix/drafter/planner_taught --mllm models/metacanvas-shapes
"""
from __future__ import annotations

import argparse
import collections
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402
import torch  # noqa: E402
from app.core.checkpoints import load_model, load_state  # noqa: E402
from app.core.draft import DraftConfig, LayoutDrafter  # noqa: E402
from app.eval.drafts import draft_scene  # noqa: E402
from app.eval.edits import edit_success, make_edit_benchmark  # noqa: E402
from app.shapes.edits import edit_kind  # noqa: E402
from app.shapes.render import render  # noqa: E402

ap = argparse.ArgumentParser()
ap.add_argument("folder", help="a folder holding edit_drafter/ (a model folder or a run's planner_taught/)")
ap.add_argument("--mllm", default=None, help="the model folder whose planner the drafter reads (default: FOLDER)")
ap.add_argument("--edits", type=int, default=200)
ap.add_argument("--seed", type=int, default=7)
ap.add_argument("--out", default=None, help="write the summary JSON here too")
args = ap.parse_args()

folder = Path(args.folder)
pipe = load_model(args.mllm or folder)
planner = pipe.planner
config = DraftConfig.from_dict(json.loads((folder / "edit_drafter" / "config.json").read_text())["draft"])
drafter = LayoutDrafter(config, planner.hidden_size)
drafter.load_state_dict(load_state(folder / "edit_drafter"))
drafter.eval()
planner.edit_drafter = drafter  # image_places reads the edit drafter's bins

bench = make_edit_benchmark(args.edits, seed=args.seed)


def found(o, objects, tol=0.1) -> bool:
    return any(q.cls == o.cls and q.color == o.color and np.hypot(q.cx - o.cx, q.cy - o.cy) <= tol for q in objects)


right, by_kind, counts = [], collections.defaultdict(list), collections.Counter()
for i in range(0, len(bench), 50):
    chunk = bench[i:i + 50]
    inputs = planner.processor([t.instruction for t in chunk], images=[[render(t.source)] for t in chunk])
    with torch.no_grad():
        context, mask = planner.context_states([], inputs=inputs)
        sources = planner.source_images(inputs) if config.pixel_width else None
        drafts = drafter.sample(context, mask, temperature=0, where=planner.image_places(inputs), sources=sources)
    for t, rows in zip(chunk, drafts):
        scene = draft_scene(rows, config)
        good = edit_success(render(scene), t.target)
        right.append(good)
        by_kind[edit_kind(t.instruction)].append(good)
        kept = [o for o in t.target.objects if o in t.source.objects]
        new = [o for o in t.target.objects if o not in t.source.objects]
        counts["count_right"] += len(scene.objects) == len(t.target.objects)
        counts["kept"] += len(kept)
        counts["kept_right"] += sum(found(o, scene.objects) for o in kept)
        counts["new"] += len(new)
        counts["new_right"] += sum(found(o, scene.objects) for o in new)

teaching = folder / "teaching.json"
summary = {"folder": str(folder), "edits": len(bench), "target_drafted_right": float(np.mean(right)),
           **{f"right_{k}": float(np.mean(v)) for k, v in sorted(by_kind.items())},
           "count_right": counts["count_right"] / len(bench),
           "kept_objects_right": counts["kept_right"] / max(counts["kept"], 1),
           "new_objects_right": counts["new_right"] / max(counts["new"], 1),
           "teaching": json.loads(teaching.read_text()) if teaching.exists() else None}
print(json.dumps(summary, indent=1))
if args.out:
    Path(args.out).write_text(json.dumps(summary, indent=1))
