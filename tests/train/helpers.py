"""Shared by the training tests."""
from pathlib import Path

import torch

TINY = Path(__file__).resolve().parents[2] / "app" / "train" / "recipes" / "tiny-test.json"


def planner_state(trainer) -> dict:
    return {k: v.clone() for k, v in trainer.pipe.planner.state_dict().items()}


def same(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
