"""The planner's teaching heads (app/train/planner_teaching.py)."""
import torch

from app.train.build import build_model
from app.train.data import ShapesStream
from app.train.planner_teaching import PlannerTeacher
from app.train.recipe import Recipe
from tests.train.helpers import TINY


def test_planner_teaching_lowers_its_loss():
    recipe = Recipe.load(TINY)
    torch.manual_seed(0)
    pipe = build_model(recipe)
    teacher = PlannerTeacher(pipe.planner, grid=16)
    batch = next(iter(ShapesStream(recipe, seed=1, batch=8, edit_fraction=0.0).loader()))
    opt = torch.optim.AdamW([p for p in teacher.parameters() if p.requires_grad], lr=3e-3)
    first = teacher.loss(batch, "cpu")[0].item()
    for _ in range(20):
        loss, _ = teacher.loss(batch, "cpu")
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < 0.5 * first
