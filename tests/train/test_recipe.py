"""Recipes (app/train/recipe.py): every shipped one loads, a bad value is refused by name."""
import json

import pytest

from app.train.connector_recipe import is_connector_recipe
from app.train.recipe import Recipe
from tests.train.helpers import TINY

# Recipes that name user data train an assembly's connectors (tests/train/test_connector_training.py).
SHAPES_RECIPES = [p for p in sorted(TINY.parent.glob("*.json")) if not is_connector_recipe(p)]


def test_a_recipe_with_a_share_outside_zero_to_one_is_refused_with_its_name(tmp_path):
    data = json.loads(TINY.read_text())
    data["teach_edit_fraction"] = 20  # meant 0.2
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(data))
    with pytest.raises(ValueError, match="teach_edit_fraction is 20"):
        Recipe.load(bad)


@pytest.mark.parametrize("path", SHAPES_RECIPES, ids=lambda p: p.name)
def test_every_shipped_recipe_loads_and_names_a_trainable_model(path):
    """A misspelt key in a recipe would otherwise surface only on a GPU machine, minutes into a session."""
    recipe = Recipe.load(path)
    m = recipe.model
    assert m.image_size % m.patch_size == 0
    assert m.prediction in ("velocity", "sample")
    if recipe.label_loss_weight > 0:
        assert -m.dit_layers <= recipe.label_loss_layer < m.dit_layers
