"""How a model fails, as the detector sees it: the count it draws against the count asked (GenEval's
counting prompts), and why each failed edit failed (app.eval.edits.edit_failure_cause), per kind.

    python research/failure_modes.py models/metacanvas-shapes [--prompts 408 --images 4 --edits 200]

Same prompts, edits and seeds as bench/bench_quality.py (seed 7), so its counts add up to the
benchmark's counting and edit scores.
"""
from __future__ import annotations

import argparse
import collections
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("--prompts", type=int, default=408)
    ap.add_argument("--images", type=int, default=4)
    ap.add_argument("--edits", type=int, default=200)
    ap.add_argument("--batch", type=int, default=128)
    args = ap.parse_args()

    from app.core.checkpoints import load_model
    from app.eval.edits import ADD_SIDE_CAUSES, FAILURE_CAUSES, added_object_side, edit_failure_cause, make_edit_benchmark
    from app.eval.geneval import make_geneval_metadata
    from app.shapes.detect import detect
    from app.shapes.edits import EDIT_KINDS, edit_kind
    from app.shapes.render import render

    seed = 7
    pipe = load_model(args.model, device="cpu")
    metas = make_geneval_metadata(args.prompts, seed=seed)
    jobs = [(i, j) for i, m in enumerate(metas) if m["tag"] == "counting" for j in range(args.images)]
    counts: dict[int, collections.Counter] = collections.defaultdict(collections.Counter)
    for start in range(0, len(jobs), args.batch):
        chunk = jobs[start:start + args.batch]
        images = pipe.sample([metas[i]["prompt"] for i, _ in chunk], [seed + 1000 * i + j for i, j in chunk])
        for (i, _), image in zip(chunk, images):
            req = metas[i]["include"][0]
            counts[req["count"]][sum(d.cls == req["class"] for d in detect(image))] += 1
    most = max((n for c in counts.values() for n in c), default=0)
    print(f"counting prompts: the named class's count found (rows: asked), {len(jobs)} images")
    print("| asked | " + " | ".join(f"found {n}" for n in range(most + 1)) + " | right |")
    print("|---" * (most + 3) + "|")
    for asked in sorted(counts):
        c = counts[asked]
        print(f"| {asked} | " + " | ".join(str(c[n]) for n in range(most + 1))
              + f" | {c[asked] / sum(c.values()):.0%} |")

    triples = make_edit_benchmark(args.edits, seed=seed)
    causes: dict[str, collections.Counter] = {k: collections.Counter() for k in EDIT_KINDS}
    failed_add_sides: collections.Counter = collections.Counter()
    for start in range(0, len(triples), args.batch):
        chunk = triples[start:start + args.batch]
        results = pipe.sample([t.instruction for t in chunk], [seed + start + k for k in range(len(chunk))],
                              sources=[render(t.source, pipe.defaults.width) for t in chunk])
        for t, image in zip(chunk, results):
            kind, cause = edit_kind(t.instruction), edit_failure_cause(image, t.source, t.target)
            causes[kind][cause] += 1
            if kind == "add" and cause != "done":
                failed_add_sides[added_object_side(image, t)] += 1
    print(f"\nedits by what the detector saw, {len(triples)} edits")
    print("| kind | " + " | ".join(FAILURE_CAUSES) + " |")
    print("|---" * (len(FAILURE_CAUSES) + 1) + "|")
    for kind, c in causes.items():
        print(f"| {kind} | " + " | ".join(str(c[k]) for k in FAILURE_CAUSES) + " |")
    total = sum(causes.values(), collections.Counter())
    print("| all | " + " | ".join(str(total[k]) for k in FAILURE_CAUSES) + " |")
    print("\nfailed adds, where the new object went: "
          + ", ".join(f"{failed_add_sides[k]} {k}" for k in ADD_SIDE_CAUSES))
    done = total["done"] / max(1, sum(total.values()))
    print(f"\nedit success {done:.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
