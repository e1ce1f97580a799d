"""Does the planner know the prompt? A linear probe on its frozen states.

For prompts of four GenEval tags, a logistic regression (fit on 1,500 prompts, scored on 500 held out)
reads one fact of the prompt from the planner's output: the count of a counting prompt, the relation
of a position prompt, the class and the colour of a colours prompt, the first object's colour of a
colour-attribution prompt; once from the masked mean of the context states, once from the canvas
states. Accuracy near 1 means the information reaches the DiT, and a model that ignores its prompt is
held back by the DiT, not by the planner.

    python research/probe_planner.py MODEL_FOLDER
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


class LinearProbe:
    """Multinomial logistic regression on standardised features, fitted with L-BFGS (torch only:
    the project does not depend on scikit-learn for one bench)."""

    def __init__(self, iterations: int = 300, l2: float = 1e-3):
        self.iterations, self.l2 = iterations, l2

    def fit(self, x: np.ndarray, y: list) -> "LinearProbe":
        import torch

        self.classes = sorted(set(y))
        target = torch.tensor([self.classes.index(v) for v in y])
        feats = torch.tensor(x, dtype=torch.float32)
        self.mean, self.std = feats.mean(0), feats.std(0) + 1e-5
        feats = (feats - self.mean) / self.std
        self.linear = torch.nn.Linear(feats.shape[1], len(self.classes))
        opt = torch.optim.LBFGS(self.linear.parameters(), max_iter=self.iterations)

        def closure():
            opt.zero_grad()
            loss = torch.nn.functional.cross_entropy(self.linear(feats), target) + self.l2 * self.linear.weight.pow(2).sum()
            loss.backward()
            return loss

        opt.step(closure)
        return self

    def accuracy(self, x: np.ndarray, y: list) -> float:
        import torch

        with torch.no_grad():
            pred = self.linear((torch.tensor(x, dtype=torch.float32) - self.mean) / self.std).argmax(1).tolist()
        return float(np.mean([self.classes[p] == v for p, v in zip(pred, y)]))


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("--prompts", type=int, default=2000, help="per task; the last quarter is held out")
    args = ap.parse_args()

    import torch

    from app.core.checkpoints import load_model
    from app.shapes.captions import geneval_metadata

    pipe = load_model(args.model, device="cpu")
    spec = pipe.canvas_spec_for(pipe.defaults.width)
    rng = np.random.default_rng(0)

    def states(prompts: list[str]) -> tuple[np.ndarray, np.ndarray]:
        pooled, canvas = [], []
        with torch.no_grad():
            for i in range(0, len(prompts), 256):
                plan = pipe.planner(prompts[i:i + 256], spec)
                mask = plan.context_mask.unsqueeze(-1).float()
                pooled.append(((plan.context * mask).sum(1) / mask.sum(1)).numpy())
                canvas.append(plan.canvas.reshape(plan.canvas.shape[0], -1).numpy())
        return np.concatenate(pooled), np.concatenate(canvas)

    def records(tag: str) -> list[dict]:
        return [geneval_metadata(rng, tag) for _ in range(args.prompts)]

    counting, position, colors, attribution = (records(t) for t in ("counting", "position", "colors", "color_attr"))
    tasks = {
        "count": (counting, lambda m: m["include"][0]["count"]),
        "relation": (position, lambda m: m["include"][1]["position"][0]),
        "class": (colors, lambda m: m["include"][0]["class"]),
        "colour": (colors, lambda m: m["include"][0]["color"]),
        "first colour (attribution)": (attribution, lambda m: m["include"][0]["color"]),
    }
    split = args.prompts * 3 // 4
    print(f"{'fact':28s} {'from':16s} held-out accuracy   chance")
    for name, (metas, fact) in tasks.items():
        y = [fact(m) for m in metas]
        chance = max(np.mean([v == c for v in y[split:]]) for c in set(y))
        pooled, canvas = states([m["prompt"] for m in metas])
        for where, x in (("context (mean)", pooled), ("canvas", canvas)):
            acc = LinearProbe().fit(x[:split], y[:split]).accuracy(x[split:], y[split:])
            print(f"{name:28s} {where:16s} {acc:.3f}               {chance:.2f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
