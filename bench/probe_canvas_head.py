"""How much of the scene can be read off a planner's canvas? A fresh linear head is fitted on the
frozen canvas states of shapes-world batches (each cell's state -> that cell's label in the target
scene: background, or class x colour) and scored on held-out batches, edits and text-to-image apart:

- fg accuracy: of the target's object cells, the share the head labels exactly right;
- recall / precision: object cells called objects (any label) / cells called objects that are.

An edit's layout is in its source image, so a planner that reads the source scores high there; a
caption leaves most of the layout open ("a red circle" can be anywhere), so text-to-image scores
stay low even for a good planner: compare planners with each other, not with 1.

    python bench/probe_canvas_head.py --recipe RECIPE MODEL_OR_PLANNER_TAUGHT [MORE ...]

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
    """Fit a linear head cell state -> label on (train_x [N, d], train_y [N]) with full-batch Adam
    and score it on the test cells. Foreground labels weigh `foreground_weight` (background is ~85 %
    of cells; unweighted, "background everywhere" wins)."""
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
    with torch.no_grad():
        pred = head(test_x).argmax(-1)
    fg, called = test_y > 0, pred > 0
    share = lambda mask, hit: (hit[mask].float().mean().item() if mask.any() else float("nan"))  # noqa: E731
    return {"fg_accuracy": share(fg, pred == test_y), "recall": share(fg, called), "precision": share(called, fg)}


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
    args = ap.parse_args()

    from app.core.canvas import CanvasSpec
    from app.shapes.palette import NUM_LABELS
    from app.train.data import ShapesStream
    from app.train.loop import Trainer
    from app.train.recipe import Recipe

    recipe = Recipe.load(args.recipe)
    grid = recipe.model.image_size // recipe.model.patch_size
    spec = CanvasSpec(1, grid, grid)
    for folder in args.planners:
        with tempfile.TemporaryDirectory() as scratch:
            planner = Trainer(recipe, scratch, planner_from=folder, device="cpu", log=lambda *_: None).pipe.planner.eval()
        print(folder)
        for kind, edit_fraction in (("edit", 1.0), ("t2i", 0.0)):
            # The same held-out scenes for every planner: the streams are seeded alike.
            train = iter(ShapesStream(recipe, seed=1000, batch=args.batch, edit_fraction=edit_fraction))
            test = iter(ShapesStream(recipe, seed=2000, batch=args.batch, edit_fraction=edit_fraction))
            s = canvas_head_scores(*canvas_features(planner, spec, train, args.train_batches),
                                   *canvas_features(planner, spec, test, args.test_batches), num_labels=NUM_LABELS)
            print(f"  {kind:5s} fg accuracy {s['fg_accuracy']:.2f}   recall {s['recall']:.2f}   precision {s['precision']:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
