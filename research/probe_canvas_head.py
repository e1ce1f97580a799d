"""How much of the scene can be read off a planner's canvas? A fresh linear head is fitted on the
frozen canvas states of shapes-world batches (each cell's state -> that cell's label in the target
scene: background, or class x colour) and scored on held-out batches, edits and text-to-image apart:

- fg accuracy: of the target's object cells, the share the head labels exactly right;
- recall / precision: object cells called objects (any label) / cells called objects that are.

An edit's layout is in its source image, so a planner that reads the source scores high there; a
caption leaves most of the layout open ("a red circle" can be anywhere), so text-to-image scores
stay low even for a good planner: compare planners with each other, not with 1.

    python research/probe_canvas_head.py --recipe RECIPE MODEL_OR_PLANNER_TAUGHT [MORE ...] [--referring N] [--adds N]

With --referring, the edit head is also read on recolour, replace and remove edits that name their
object by class alone ("the star": the only star) and on those that need its colour too ("the blue
star", beside an orange one): the share of the named object's cells given the target's label, and of
the other (or the same-class) objects' cells that keep theirs. Does the plan find the named object?
With --adds, on add edits: the share of the new object's cells given its label, and on which side
of the reference object the plan puts it (the cells labelled as the new object, their centre taken
along the named direction): does the plan put "to the left of" on the left?

Why a fresh head and not the teaching head: that one is thrown away after teaching, and a model
folder has none. The same fit for every planner makes their numbers comparable. About two minutes a
planner on one CPU core at the defaults (measured while other work shared the machine).
"""
from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def canvas_head_scores(train_x, train_y, test_x, test_y, num_labels: int, foreground_weight: float = 3.0,
                       iters: int = 400, lr: float = 1e-2, seed: int = 0) -> dict[str, float]:
    """Fit a linear head cell state -> label on (train_x [N, d], train_y [N]) and score it on the
    test cells."""
    import torch

    head = fit_canvas_head(train_x, train_y, num_labels, foreground_weight, iters, lr, seed)
    with torch.no_grad():
        pred = head(test_x).argmax(-1)
    fg, called = test_y > 0, pred > 0
    share = lambda mask, hit: (hit[mask].float().mean().item() if mask.any() else float("nan"))  # noqa: E731
    return {"fg_accuracy": share(fg, pred == test_y), "recall": share(fg, called), "precision": share(called, fg)}


def fit_canvas_head(train_x, train_y, num_labels: int, foreground_weight: float = 3.0, iters: int = 400,
                    lr: float = 1e-2, seed: int = 0):
    """A linear head cell state -> label, fitted with full-batch Adam. Foreground labels weigh
    `foreground_weight` (background is ~85 % of cells; unweighted, "background everywhere" wins)."""
    import torch
    import torch.nn.functional as F

    torch.manual_seed(seed)
    head = torch.nn.Linear(train_x.shape[1], num_labels)
    weights = torch.full((num_labels,), float(foreground_weight))
    weights[0] = 1.0
    opt = torch.optim.Adam(head.parameters(), lr=lr)
    for _ in range(iters):
        loss = F.cross_entropy(head(train_x), train_y, weight=weights)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return head


REFERRING_KINDS = ("recolour", "replace", "remove")


def referring_edits(rng, n: int, ambiguous: bool) -> list[tuple]:
    """n (edit, named object, other objects) of the REFERRING_KINDS. `ambiguous`: another object of
    the named one's class is in the scene (the instruction must give its colour), and `others` are
    those; else the class alone names it, and `others` are all the other objects."""
    from app.shapes.edits import edit_kind, sample_edit

    out = []
    while len(out) < n:
        edit = sample_edit(rng, REFERRING_KINDS[len(out) % len(REFERRING_KINDS)])
        changed = [o for o in edit.source.objects if o not in edit.target.objects]
        if len(changed) != 1 or edit_kind(edit.instruction) not in REFERRING_KINDS:
            continue
        named = changed[0]
        same = [o for o in edit.source.objects if o is not named and o.cls == named.cls]
        others = same if ambiguous else [o for o in edit.source.objects if o is not named]
        if bool(same) == ambiguous and others:
            out.append((edit, named, others))
    return out


def referring_cells(pred, edit, others, grid: int) -> tuple[int, int, int, int]:
    """(named cells given the target's label, named cells, other objects' cells kept, their cells)
    for one predicted [grid, grid] label map. Named cells: where the target's label map differs from
    the source's."""
    import numpy as np

    from app.shapes.dataset import label_map
    from app.shapes.scene import Scene

    target, source = label_map(edit.target, grid), label_map(edit.source, grid)
    named = target != source
    other = np.zeros_like(named)
    for obj in others:
        other |= label_map(Scene((obj,)), grid) > 0
    other &= ~named
    return (int((pred[named] == target[named]).sum()), int(named.sum()),
            int((pred[other] == source[other]).sum()), int(other.sum()))


def added_cells_side(pred, edit, grid: int) -> tuple[int, int, str]:
    """For an add edit and a predicted [grid, grid] label map: (new object's cells given its label,
    its cells, side) where side is where the cells predicted as the new object (and not already
    that label in the source) lie along the named direction from the reference object's centre:
    "instructed side", "opposite side", or "not planned" (no such cell)."""
    import numpy as np

    from app.shapes.dataset import label_map
    from app.shapes.edits import add_anchor
    from app.shapes.palette import label_index

    target, source = label_map(edit.target, grid), label_map(edit.source, grid)
    new = edit.target.objects[-1]
    named = target != source
    label = label_index(new.cls, new.color)
    ys, xs = np.nonzero((pred == label) & (source != label))
    right = int((pred[named] == target[named]).sum())
    if len(xs) == 0:
        return right, int(named.sum()), "not planned"
    ref, (ux, uy) = add_anchor(edit)
    # Cell centres in frame fractions, like the objects' centres.
    along = ((xs.mean() + 0.5) / grid - ref.cx) * ux + ((ys.mean() + 0.5) / grid - ref.cy) * uy
    return right, int(named.sum()), "instructed side" if along > 0 else "opposite side"


def canvas_features(planner, spec, stream, batches: int):
    """[N cells, d] canvas states and [N] labels from `batches` batches of the stream."""
    import torch

    xs, ys = [], []
    for _ in range(batches):
        batch = next(stream)
        with torch.no_grad():
            canvas = planner(list(batch["texts"]), spec, inputs=batch["planner_inputs"]).canvas[:, 0].float()
        xs.append(canvas.reshape(-1, canvas.shape[-1]))
        ys.append(torch.from_numpy(batch["labels"]).reshape(-1).long())
    return torch.cat(xs), torch.cat(ys)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("planners", nargs="+", help="model folders or runs' planner_taught folders")
    ap.add_argument("--recipe", required=True, help="the recipe these planners were built with")
    ap.add_argument("--train-batches", type=int, default=24)
    ap.add_argument("--test-batches", type=int, default=8)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--referring", type=int, default=0, metavar="N",
                    help="also read the edit head on N edits of each sort (class alone names it / colour needed)")
    ap.add_argument("--adds", type=int, default=0, metavar="N",
                    help="also read the edit head on N add edits: the new object's cells, and its side")
    args = ap.parse_args()

    from app.core.canvas import CanvasSpec
    from app.shapes.palette import NUM_LABELS
    from app.train.data import ShapesStream
    from app.train.loop import Trainer
    from app.train.run_start import PlannerStart, RunStart
    from app.train.recipe import Recipe

    recipe = Recipe.load(args.recipe)
    grid = recipe.model.image_size // recipe.model.patch_size
    spec = CanvasSpec(1, grid, grid)
    for folder in args.planners:
        with tempfile.TemporaryDirectory() as scratch:
            planner = Trainer(recipe, scratch, start=RunStart.new(PlannerStart.taught(folder)), device="cpu", log=lambda *_: None).pipe.planner.eval()
        print(folder)
        for kind, edit_fraction in (("edit", 1.0), ("t2i", 0.0)):
            # The same held-out scenes for every planner: the streams are seeded alike.
            train = iter(ShapesStream(recipe, seed=1000, batch=args.batch, edit_fraction=edit_fraction))
            test = iter(ShapesStream(recipe, seed=2000, batch=args.batch, edit_fraction=edit_fraction))
            train_x, train_y = canvas_features(planner, spec, train, args.train_batches)
            s = canvas_head_scores(train_x, train_y, *canvas_features(planner, spec, test, args.test_batches),
                                   num_labels=NUM_LABELS)
            print(f"  {kind:5s} fg accuracy {s['fg_accuracy']:.2f}   recall {s['recall']:.2f}   precision {s['precision']:.2f}")
            if kind == "edit" and args.referring:
                print_referring(planner, fit_canvas_head(train_x, train_y, NUM_LABELS), spec, args.referring, recipe)
            if kind == "edit" and args.adds:
                print_adds(planner, fit_canvas_head(train_x, train_y, NUM_LABELS), spec, args.adds, recipe)
    return 0


def print_referring(planner, head, spec, n: int, recipe) -> None:
    import numpy as np

    from app.shapes.edits import edit_kind

    for ambiguous in (False, True):
        totals = {k: np.zeros(4, int) for k in REFERRING_KINDS}
        for edit, _, others in referring_edits(np.random.default_rng(5), n, ambiguous):
            pred = edit_label_map(planner, head, spec, edit, recipe)
            totals[edit_kind(edit.instruction)] += referring_cells(pred, edit, others, spec.rows)
        which = "colour needed (another of its class there)" if ambiguous else "class alone names it"
        print(f"  referring, {which}: named object right / other{' same-class' if ambiguous else ''} objects kept")
        for kind, (right, named, kept, other) in totals.items():
            print(f"    {kind:9s} {right / max(1, named):.2f} ({right}/{named})   {kept / max(1, other):.2f} ({kept}/{other})")



def edit_label_map(planner, head, spec, edit, recipe):
    """The head's [rows, cols] label map read off the planner's canvas for one edit."""
    import torch

    from app.shapes.render import render

    with torch.no_grad():
        canvas = planner([edit.instruction], spec, images=[[render(edit.source, recipe.model.image_size)]]).canvas[0, 0]
    return head(canvas.float().reshape(-1, canvas.shape[-1])).argmax(-1).reshape(spec.rows, spec.cols).numpy()


def print_adds(planner, head, spec, n: int, recipe) -> None:
    import collections

    import numpy as np

    from app.shapes.edits import sample_edit

    rng = np.random.default_rng(6)
    right = cells = 0
    sides: collections.Counter = collections.Counter()
    for _ in range(n):
        edit = sample_edit(rng, "add")
        r, c, side = added_cells_side(edit_label_map(planner, head, spec, edit, recipe), edit, spec.rows)
        right, cells, sides[side] = right + r, cells + c, sides[side] + 1
    print(f"  adds: new object's cells right {right / max(1, cells):.2f} ({right}/{cells}); planned on the "
          + ", ".join(f"{k} {sides[k]}" for k in ("instructed side", "opposite side", "not planned")))

if __name__ == "__main__":
    raise SystemExit(main())
