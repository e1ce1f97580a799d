"""Model folders: save -> load is bit-identical; pickles and broken folders are refused clearly."""
import json
import os
from pathlib import Path

import numpy as np
import pytest

from app.core.checkpoints import ModelFolderError, load_model, save_model, validate_model_folder
from app.core.request import GenerationRequest, Task


def _frames(pipe, **kw):
    req = GenerationRequest(Task.TEXT_TO_IMAGE, "a green square above a red star", steps=3, seed=9, **kw)
    return pipe(req).frames


def test_save_then_load_gives_bit_identical_outputs(tiny_pipe, tmp_path):
    folder = save_model(tiny_pipe, tmp_path / "model")
    index = validate_model_folder(folder)
    assert index["family"] == "sana" and "canvas_connector" in index
    assert not list(folder.rglob("*.bin")) and list(folder.rglob("*.safetensors"))
    loaded = load_model(folder)
    assert np.array_equal(_frames(tiny_pipe), _frames(loaded))
    assert np.array_equal(_frames(tiny_pipe, use_canvas=False), _frames(loaded, use_canvas=False))


def test_saving_over_a_model_keeps_a_complete_folder(tiny_pipe, tmp_path):
    folder = save_model(tiny_pipe, tmp_path / "model")
    save_model(tiny_pipe, folder)  # overwrite in place
    assert validate_model_folder(folder)
    assert not (tmp_path / "model.saving").exists() and not (tmp_path / "model.old").exists()


def test_pickled_weights_are_refused_with_what_to_do(tiny_pipe, tmp_path):
    folder = save_model(tiny_pipe, tmp_path / "model")
    weights = folder / "transformer" / "diffusion_pytorch_model.safetensors"
    weights.unlink()
    (folder / "transformer" / "diffusion_pytorch_model.bin").write_bytes(b"\x80\x04not really a pickle")
    with pytest.raises(ModelFolderError, match="pickled weights.*safetensors"):
        load_model(folder)


def test_a_folder_of_only_pickles_is_refused(tmp_path):
    (tmp_path / "model.ckpt").write_bytes(b"x")
    with pytest.raises(ModelFolderError, match="pickled"):
        validate_model_folder(tmp_path)


@pytest.mark.parametrize("breakage, message", [
    ("missing", "does not exist"),
    ("no_index", "not a MetaCanvas model folder"),
    ("bad_json", "not valid JSON"),
    ("wrong_class", "not a MetaCanvasPipeline"),
    ("no_component", "does not exist"),
])
def test_broken_folders_get_a_clear_message(tiny_pipe, tmp_path, breakage, message):
    folder = save_model(tiny_pipe, tmp_path / "model")
    index = folder / "model_index.json"
    if breakage == "missing":
        folder = tmp_path / "nowhere"
    elif breakage == "no_index":
        index.unlink()
    elif breakage == "bad_json":
        index.write_text("{ not json")
    elif breakage == "wrong_class":
        index.write_text(json.dumps({"_class_name": "StableDiffusionPipeline"}))
    elif breakage == "no_component":
        import shutil
        shutil.rmtree(folder / "context_connector")
    with pytest.raises(ModelFolderError, match=message):
        load_model(folder)


def test_text_only_model_round_trips(tmp_path):
    from app.train.build import build_model
    from app.train.recipe import Recipe
    import os

    recipe = Recipe.load(os.path.join(os.path.dirname(__file__), "..", "..", "app", "train", "recipes", "tiny-test.json"))
    pipe = build_model(recipe, use_canvas=False).eval()
    folder = save_model(pipe, tmp_path / "text-only")
    assert "canvas_connector" not in json.loads((folder / "model_index.json").read_text())
    loaded = load_model(folder)
    assert loaded.adapter.canvas_connector is None
    assert np.array_equal(_frames(pipe), _frames(loaded))


def _tiny_recipe(**model_settings):
    """The test recipe (app/train/recipes/tiny-test.json) with some model settings changed."""
    from app.train.recipe import Recipe

    recipe = Recipe.load(Path(__file__).resolve().parents[2] / "app" / "train" / "recipes" / "tiny-test.json")
    for key, value in model_settings.items():
        setattr(recipe.model, key, value)
    return recipe


def test_a_sample_predicting_model_gives_the_velocity_of_its_clean_image_and_round_trips(tmp_path):
    """recipe prediction "sample": the DiT draws the clean image x and the adapter hands samplers the
    velocity (z_t - x) / t; a saved model keeps that meaning (else it would sample garbage)."""
    import torch

    from app.train.build import build_model

    recipe = _tiny_recipe(prediction="sample")
    torch.manual_seed(0)
    pipe = build_model(recipe).eval()
    adapter = pipe.adapter
    z = torch.randn(2, 3, 64, 64)
    t = torch.tensor([0.7, 0.01])
    ctx = torch.randn(2, 5, recipe.model.planner_hidden)
    with torch.no_grad():
        velocity = adapter(z, t, ctx)
        adapter.prediction = "velocity"
        drawn = adapter(z, t, ctx)  # the transformer's own output: the clean image
        adapter.prediction = "sample"
    assert torch.allclose(velocity[0], (z[0] - drawn[0]) / 0.7, atol=1e-5)
    assert torch.allclose(velocity[1], (z[1] - drawn[1]) / 0.05, atol=1e-4)  # t floored at the last steps
    # z_t - t v gives back the drawn image: what the trajectory probe shows as the estimate
    assert torch.allclose(z[0] - 0.7 * velocity[0], drawn[0], atol=1e-5)

    folder = save_model(pipe, tmp_path / "x-pred")
    loaded = load_model(folder)
    assert loaded.adapter.prediction == "sample"
    assert np.array_equal(_frames(pipe), _frames(loaded))
    with pytest.raises(ValueError, match="prediction"):
        recipe.model.prediction = "noise"
        build_model(recipe)


def test_folders_saved_with_retired_options_off_load_as_before_and_on_are_refused(tmp_path):
    """Layout codes and the pooled context were rejected experiments and left the code. Folders saved
    while they existed say `"layouts": 0` (canvas tokens) and `"pooled_context": false` (adapter), as
    the committed models do: those load and sample as before. A folder that uses one is refused by name."""
    from app.train.build import build_model

    pipe = build_model(_tiny_recipe()).eval()
    folder = save_model(pipe, tmp_path / "old")
    canvas_cfg, adapter_cfg = folder / "canvas_tokens" / "config.json", folder / "adapter" / "config.json"
    canvas_cfg.write_text(json.dumps({**json.loads(canvas_cfg.read_text()), "layouts": 0}))
    adapter_cfg.write_text(json.dumps({**json.loads(adapter_cfg.read_text()), "pooled_context": False}))
    assert np.array_equal(_frames(pipe), _frames(load_model(folder)))

    canvas_cfg.write_text(json.dumps({**json.loads(canvas_cfg.read_text()), "layouts": 8}))
    with pytest.raises(ModelFolderError, match="layout codes"):
        load_model(folder)
    canvas_cfg.write_text(json.dumps({**json.loads(canvas_cfg.read_text()), "layouts": 0}))
    adapter_cfg.write_text(json.dumps({**json.loads(adapter_cfg.read_text()), "pooled_context": True}))
    with pytest.raises(ModelFolderError, match="pooled_context"):
        load_model(folder)


def test_recipes_with_retired_options_off_load_and_on_are_refused():
    from app.train.recipe import Recipe

    data = json.loads((Path(__file__).resolve().parents[2] / "app" / "train" / "recipes" / "tiny-test.json").read_text())
    old = {**data, "teach_layout_codes_only": False,
           "model": {**data.get("model", {}), "canvas_layouts": 0, "pooled_context": False}}
    assert Recipe.from_dict(old) == Recipe.from_dict(data)
    with pytest.raises(ValueError, match="canvas_layouts"):
        Recipe.from_dict({**old, "model": {**old["model"], "canvas_layouts": 8}})
    with pytest.raises(ValueError, match="teach_layout_codes_only"):
        Recipe.from_dict({**old, "teach_layout_codes_only": True})


def test_a_saved_model_keeps_its_trained_source_residual(tmp_path):
    """recipe source_residual: the edit path's extra Linear is saved with the adapter and loaded back
    (else a loaded model would silently edit as an untrained one)."""
    import torch

    from app.train.build import build_model

    recipe = _tiny_recipe(source_residual=True)
    torch.manual_seed(0)
    pipe = build_model(recipe).eval()
    torch.nn.init.normal_(pipe.adapter.source_residual.weight, std=0.2)  # as after training
    loaded = load_model(save_model(pipe, tmp_path / "residual"), dtype=torch.float32)
    assert loaded.adapter.config["source_residual"] is True
    size = recipe.model.image_size
    z, ref, ctx = torch.randn(1, 3, size, size), torch.randn(1, 3, size, size), torch.randn(1, 4, recipe.model.planner_hidden)
    t = torch.tensor([0.8])
    with torch.no_grad():
        assert torch.allclose(loaded.adapter(z, t, ctx, reference=ref), pipe.adapter(z, t, ctx, reference=ref), atol=1e-5)
        kept, loaded.adapter.source_residual = loaded.adapter.source_residual, None
        assert not torch.allclose(loaded.adapter(z, t, ctx, reference=ref), pipe.adapter(z, t, ctx, reference=ref), atol=1e-3)
        loaded.adapter.source_residual = kept


def test_a_saved_model_keeps_its_planners_rotary_base(tmp_path):
    """recipe planner_rope_theta reaches the planner's Qwen2.5-VL config, so a loaded model plans with
    the positions it was trained with (with another base its canvas would mean something else)."""
    import torch

    from app.train.build import build_model

    pipe = build_model(_tiny_recipe(planner_rope_theta=10.0)).eval()
    assert pipe.planner.mllm.language_model.rotary_emb.inv_freq[-1] > 0.1
    loaded = load_model(save_model(pipe, tmp_path / "theta"), dtype=torch.float32)
    assert loaded.planner.mllm.config.text_config.rope_parameters["rope_theta"] == 10.0
    assert torch.allclose(loaded.planner.mllm.language_model.rotary_emb.inv_freq,
                          pipe.planner.mllm.language_model.rotary_emb.inv_freq)


def _weights_file(folder: Path) -> Path:
    return next(folder.glob("*.safetensors"))


def _truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _flip_header_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[20] ^= 0x40  # inside the JSON header that names every tensor
    path.write_bytes(bytes(data))


def _edit_config(folder: Path, **changes) -> None:
    config = json.loads((folder / "config.json").read_text())
    for key, value in changes.items():
        if value is None:
            config.pop(key)
        else:
            config[key] = value
    (folder / "config.json").write_text(json.dumps(config))


@pytest.mark.parametrize("damage, message", [
    (lambda f: _truncate(_weights_file(f / "transformer")), "The transformer.s weights file .* is incomplete"),
    (lambda f: _truncate(_weights_file(f / "planner")), "The planner's weights file .* is incomplete.*copy it again"),
    (lambda f: _truncate(_weights_file(f / "context_connector")), "The context connector's weights file .* is incomplete"),
    (lambda f: _flip_header_byte(_weights_file(f / "planner")), "The planner.s weights file .* is damaged"),
    (lambda f: _flip_header_byte(_weights_file(f / "canvas_tokens")), "canvas token weights .* damaged"),
    (lambda f: _edit_config(f / "canvas_tokens", rows=None), "canvas tokens config .* has no 'rows'"),
    (lambda f: _edit_config(f / "canvas_tokens", rows=2 * json.loads((f / "canvas_tokens" / "config.json").read_text())["rows"]),
     "canvas token weights .* do not fit"),
    (lambda f: _edit_config(f / "canvas_tokens", rows=10**9), "rows must be a whole number from 1 to 256"),
    (lambda f: _edit_config(f / "canvas_tokens", dim=10**9), "dim 1000000000 does not match the planner's width"),
    (lambda f: _edit_config(f / "transformer", num_layers=4), "transformer weights .* do not match its config.json"),
    (lambda f: _edit_config(f / "adapter", prediction="noise"), "adapter config .* does not fit"),
])
def test_a_damaged_model_folder_is_refused_in_one_line_naming_the_part(tiny_pipe, tmp_path, damage, message):
    """Truncated or bit-flipped weights, configs edited under their weights, absurd canvas sizes: each
    one clear line naming the part, never a traceback and never a model that loads and runs wrong."""
    folder = save_model(tiny_pipe, tmp_path / "model")
    damage(folder)
    with pytest.raises(ModelFolderError, match=message) as err:
        load_model(folder)
    assert "\n" not in str(err.value) and len(str(err.value)) < 600


def test_an_adapter_file_lacking_its_parameters_is_refused_not_run_at_their_zero_start(tmp_path):
    """The adapter's own weights (the source residual of video edits) were loaded leniently: a damaged file that
    lacked them left them at their zero start, a trained model running as an untrained one without a word."""
    import shutil

    from safetensors.torch import load_file, save_file

    from app.settings import DEFAULT_VIDEO_MODEL

    folder = Path(shutil.copytree(DEFAULT_VIDEO_MODEL, tmp_path / "model", copy_function=os.symlink))  # links
    weights = folder / "adapter" / "model.safetensors"
    state = load_file(str(weights))
    weights.unlink()  # a file of its own, not the committed model's
    save_file(state, str(weights))
    assert "source_residual.weight" in state
    load_model(folder)  # whole: loads
    del state["source_residual.weight"]
    save_file(state, str(weights))
    with pytest.raises(ModelFolderError, match="lack 1 of its parameters .e.g. source_residual.weight."):
        load_model(folder)


def test_a_model_loaded_in_a_low_precision_keeps_its_rotary_frequencies_in_float32():
    """pipe.to(dtype) cast the planner's rotary frequencies to bfloat16 with everything else, where transformers
    keeps them float32 (in bfloat16 a position of 1,000 is off by up to 0.1 rad)."""
    import torch

    from app.settings import DEFAULT_MODEL

    pipe = load_model(DEFAULT_MODEL, dtype=torch.bfloat16)
    rotary = {n: b.dtype for n, b in pipe.planner.named_buffers() if n.endswith("inv_freq")}
    assert rotary and set(rotary.values()) == {torch.float32}
    assert next(pipe.planner.parameters()).dtype == torch.bfloat16
    frames = pipe(GenerationRequest(Task.TEXT_TO_IMAGE, "a red circle", steps=2, seed=1)).frames
    assert frames.shape[-1] == 3 and frames.dtype == np.uint8
