"""Assembly (app/core/assembly.py, `python main.py models assemble`): a MetaCanvas model folder made from a
tiny Qwen2.5-VL folder and a tiny SANA, FLUX.1-Kontext or Wan pipeline folder (standard layouts, written by
save_pretrained) points at them without copying weights, loads through checkpoints.load_model, and runs;
fresh connectors leave the canvas without effect, given trained ones are used and checked."""
from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from app.core.assembly import assemble
from app.core.checkpoints import ModelFolderError, load_model, save_module
from app.core.model_catalog import METACANVAS, inspect_folder
from app.core.request import GenerationRequest, Task
from tests.core.checkpoint_folders import QWEN_CHAT_TEMPLATE, base_folders, nudge_canvas  # noqa: F401 - a fixture

REPO = Path(__file__).resolve().parents[2]
SIZE = 32


def _still(task=Task.TEXT_TO_IMAGE, **kw) -> GenerationRequest:
    return GenerationRequest(task, "a red circle left of a blue star", width=SIZE, height=SIZE, steps=2, seed=3, **kw)


@pytest.fixture(scope="module")
def sana_model(base_folders, tmp_path_factory):
    return assemble(base_folders["qwen"], base_folders["sana"], tmp_path_factory.mktemp("assembled") / "sana")


def test_an_assembly_points_at_the_base_checkpoints_and_copies_no_weights(base_folders, sana_model):
    index = json.loads((sana_model / "model_index.json").read_text())
    assert index["_class_name"] == "MetaCanvasPipeline" and index["family"] == "sana"
    assert index["planner"] == {"path": str(base_folders["qwen"].resolve())}
    assert index["transformer"] == {"path": str((base_folders["sana"] / "transformer").resolve())}
    assert index["vae"] == {"path": str((base_folders["sana"] / "vae").resolve()), "class": "AutoencoderDC"}
    assert sorted(p.name for p in sana_model.iterdir()) == [
        "adapter", "canvas_connector", "canvas_tokens", "context_connector", "model_index.json"]
    assert index["defaults"]["tasks"] == ["text_to_image"] and index["defaults"]["width"] == SIZE
    entry = inspect_folder(sana_model)
    assert (entry.kind, entry.family, entry.usable) == (METACANVAS, "sana", True)
    assert any("untrained" in note for note in entry.notes)


def test_an_assembled_sana_model_loads_generates_and_its_fresh_canvas_changes_nothing(sana_model):
    pipe = load_model(sana_model)
    assert type(pipe.planner.mllm).__name__ == "Qwen2_5_VLModel"
    assert type(pipe.adapter.transformer).__name__ == "SanaTransformer2DModel"
    # The processor's chat template (chat_template.json) is the prompt's format, not a fallback.
    assert pipe.planner.processor._template() == QWEN_CHAT_TEMPLATE
    assert pipe.planner.processor.prompt_text("a star", 0, False).startswith("<|im_start|>user\n")
    result = pipe(_still())
    assert result.frames.shape == (1, SIZE, SIZE, 3)
    assert result.plan.canvas.shape[1:4] == (1, 8, 8)
    assert np.array_equal(pipe(_still(use_canvas=False)).frames, result.frames)


def test_an_older_qwen_config_with_its_text_settings_at_the_top_gives_the_same_model(base_folders, sana_model,
                                                                                   tmp_path):
    """Qwen2.5-VL folders on the hub were saved by transformers 4.x: hidden_size, rope_scaling and the
    other text settings at the top level of config.json, no text_config."""
    qwen = Path(shutil.copytree(base_folders["qwen"], tmp_path / "qwen-4x"))
    config = json.loads((qwen / "config.json").read_text())
    text = config.pop("text_config")
    rope = text.pop("rope_parameters")
    config = {**text, **config, "model_type": "qwen2_5_vl", "torch_dtype": config.pop("dtype", "float32"),
              "rope_theta": rope["rope_theta"], "rope_scaling": {"type": "mrope", "mrope_section": rope["mrope_section"]}}
    (qwen / "config.json").write_text(json.dumps(config))
    assert inspect_folder(qwen).usable
    out = assemble(qwen, base_folders["sana"], tmp_path / "model")
    assert np.array_equal(load_model(out)(_still()).frames, load_model(sana_model)(_still()).frames)


def test_flux_kontext_and_wan_assemblies_run_their_tasks(base_folders, tmp_path):
    flux = load_model(assemble(base_folders["qwen"], base_folders["flux"], tmp_path / "flux"))
    assert flux.tasks == ("text_to_image", "image_edit") and flux.defaults.guidance == 2.5
    source = np.random.default_rng(0).integers(0, 255, (SIZE, SIZE, 3), dtype=np.uint8)
    assert flux(_still(Task.IMAGE_EDIT, images=[source])).frames.shape == (1, SIZE, SIZE, 3)

    wan = load_model(assemble(base_folders["qwen"], base_folders["wan_i2v"], tmp_path / "wan"))
    assert wan.planner.canvas_tokens.spec.keyframes == 3 and wan.defaults.frames == 121
    clip = wan(GenerationRequest(Task.IMAGE_TO_VIDEO, "the circle moves right", images=[source], width=SIZE,
                                 height=SIZE, frames=5, steps=2, seed=3))
    assert clip.frames.shape == (5, SIZE, SIZE, 3)


def test_trained_connectors_are_used_and_checked_against_the_base_models(base_folders, sana_model, tmp_path):
    pipe = load_model(sana_model)
    nudge_canvas(pipe)
    trained = Path(shutil.copytree(sana_model, tmp_path / "trained"))
    (trained / "model_index.json").unlink()  # a bare folder of connectors
    save_module(pipe.adapter.canvas_connector, trained / "canvas_connector", pipe.adapter.canvas_connector.config)
    out = assemble(base_folders["qwen"], base_folders["sana"], tmp_path / "with-trained", connectors_dir=trained)
    loaded = load_model(out)
    for (name, a), b in zip(pipe.adapter.canvas_connector.state_dict().items(),
                            loaded.adapter.canvas_connector.state_dict().values()):
        assert torch.equal(a, b), name
    assert torch.equal(loaded.planner.canvas_tokens.tokens, pipe.planner.canvas_tokens.tokens)
    with_canvas = loaded(_still()).frames
    assert not np.array_equal(with_canvas, loaded(_still(use_canvas=False)).frames)
    # A MetaCanvas model folder serves as the connectors as well.
    again = assemble(base_folders["qwen"], base_folders["sana"], tmp_path / "from-model", connectors_dir=out)
    assert np.array_equal(load_model(again)(_still()).frames, with_canvas)
    # Connectors made for another backbone are refused, naming both.
    flux = assemble(base_folders["qwen"], base_folders["flux"], tmp_path / "flux")
    with pytest.raises(ModelFolderError, match="trained for a flux backbone.*these base checkpoints are sana"):
        assemble(base_folders["qwen"], base_folders["sana"], tmp_path / "wrong", connectors_dir=flux)
    assert not (tmp_path / "wrong").exists()


def test_assembly_refuses_wrong_or_incomplete_folders_naming_the_part(base_folders, sana_model, tmp_path):
    with pytest.raises(ModelFolderError, match="is a backbone pipeline \\(sana\\), not a planner"):
        assemble(base_folders["sana"], base_folders["sana"], tmp_path / "x")
    broken = Path(shutil.copytree(base_folders["sana"], tmp_path / "sana-no-vae"))
    shutil.rmtree(broken / "vae")
    with pytest.raises(ModelFolderError, match="lacks vae/"):
        assemble(base_folders["qwen"], broken, tmp_path / "x")
    with pytest.raises(ModelFolderError, match="exists"):
        assemble(base_folders["qwen"], base_folders["sana"], sana_model)
    assert not (tmp_path / "x").exists()


def test_the_command_line_assembles_lists_and_generates(base_folders, tmp_path):
    env = dict(os.environ, METACANVAS_CONFIG_DIR=str(tmp_path / "config"), HF_HUB_OFFLINE="1", OMP_NUM_THREADS="1",
               HOME=str(tmp_path))

    def run(*args):
        return subprocess.run([sys.executable, str(REPO / "main.py"), *args], capture_output=True, text=True,
                              timeout=300, env=env, cwd=tmp_path)

    out_dir = tmp_path / "my metacanvas ü"  # a space and a letter beyond ASCII, as users' folders have
    r = run("models", "assemble", "--planner", str(base_folders["qwen"]), "--backbone", str(base_folders["sana"]),
            "-o", str(out_dir))
    assert r.returncode == 0, r.stderr
    assert "no weights copied" in r.stdout and "fresh" in r.stdout
    (run_it,) = [line for line in r.stdout.splitlines() if line.startswith("run it: ")]
    assert shlex.split(run_it.removeprefix("run it: "))[-2:] == ["--model", str(out_dir)]  # pastes as one argument
    r = run("models", str(out_dir))
    assert r.returncode == 0, r.stderr
    assert any(line.startswith("my metacanvas ü ") and "MetaCanvas model" in line and " sana " in line
               for line in r.stdout.splitlines())
    png = tmp_path / "out.png"
    # "~/..." given quoted (a script, a pasted line): the home folder, as `models` already read it.
    r = run("generate", "a red circle left of a blue star", "-o", str(png), "--model", "~/my metacanvas ü",
            "--steps", "2", "--seed", "1")
    assert r.returncode == 0, r.stderr
    assert np.asarray(Image.open(png)).shape == (SIZE, SIZE, 3)
    r = run("models", "assemble", "--planner", str(base_folders["qwen"]), "-o", str(tmp_path / "y"))
    assert r.returncode == 2 and "--backbone" in r.stderr and "Traceback" not in r.stderr

    # FLUX.1-Kontext on the MLLM text path edits; Wan (native text path) makes a clip.
    flux = tmp_path / "my-kontext"
    r = run("models", "assemble", "--planner", str(base_folders["qwen"]), "--backbone", str(base_folders["flux"]),
            "-o", str(flux), "--text", "mllm")
    assert r.returncode == 0, r.stderr
    assert "text: the planner's states through the context connector (mllm): untrained" in r.stdout
    Image.fromarray(np.full((SIZE, SIZE, 3), 200, np.uint8)).save(tmp_path / "in.png")
    r = run("edit", str(tmp_path / "in.png"), "make the circle green", "-o", str(tmp_path / "edited.png"),
            "--model", str(flux), "--steps", "2", "--width", str(SIZE), "--height", str(SIZE))
    assert r.returncode == 0, r.stderr
    assert np.asarray(Image.open(tmp_path / "edited.png")).shape == (SIZE, SIZE, 3)
    wan = tmp_path / "my-wan"
    r = run("models", "assemble", "--planner", str(base_folders["qwen"]), "--backbone", str(base_folders["wan"]),
            "-o", str(wan))
    assert r.returncode == 0 and "own text encoder (native)" in r.stdout, r.stderr
    r = run("video", "a red circle moves to the right", "-o", str(tmp_path / "clip.mp4"), "--model", str(wan),
            "--frames", "5", "--steps", "2", "--width", str(SIZE), "--height", str(SIZE))
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "clip.mp4").stat().st_size > 0


def test_an_output_that_would_replace_the_users_folders_is_refused_even_with_overwrite(base_folders, tmp_path):
    root = tmp_path / "checkpoints"
    qwen = shutil.copytree(base_folders["qwen"], root / "qwen")
    sana = shutil.copytree(base_folders["sana"], root / "sana")
    with pytest.raises(ModelFolderError, match="is or holds the input folder"):
        assemble(qwen, sana, root, overwrite=True)
    assert (qwen / "config.json").is_file() and (sana / "model_index.json").is_file()
    notes = tmp_path / "notes"
    notes.mkdir()
    (notes / "mine.txt").write_text("keep me")
    with pytest.raises(ModelFolderError, match="not a MetaCanvas model folder: it is not replaced"):
        assemble(qwen, sana, notes, overwrite=True)
    assert (notes / "mine.txt").read_text() == "keep me"
    # An earlier assembly is what --overwrite replaces.
    out = assemble(qwen, sana, tmp_path / "mine")
    assert assemble(qwen, sana, out, overwrite=True, text_path="mllm") == out
    # A trained model is a MetaCanvas folder too: --overwrite deleted its own planner, transformer and drafters.
    trained = shutil.copytree(REPO / "models" / "metacanvas-shapes", tmp_path / "trained-copy")
    files = sorted(p.relative_to(trained) for p in trained.rglob("*"))
    with pytest.raises(ModelFolderError, match="not an earlier assembly .it holds .*planner.*: it is not replaced"):
        assemble(qwen, sana, trained, overwrite=True)
    assert sorted(p.relative_to(trained) for p in trained.rglob("*")) == files
    # So is an assembly the user put more into (a folder of their own notes, trained connectors beside it).
    (out / "notes.txt").write_text("keep me")
    with pytest.raises(ModelFolderError, match="holds notes.txt"):
        assemble(qwen, sana, out, overwrite=True)
    assert (out / "notes.txt").read_text() == "keep me"


def test_a_hub_cache_folder_assembles_as_its_snapshot(base_folders, tmp_path):
    cache = tmp_path / "hub" / "models--Qwen--Qwen2.5-VL-tiny"
    shutil.copytree(base_folders["qwen"], cache / "snapshots" / "abc123")
    (cache / "refs").mkdir()
    (cache / "refs" / "main").write_text("abc123")
    out = assemble(cache, base_folders["sana"], tmp_path / "from-cache")
    index = json.loads((out / "model_index.json").read_text())
    assert index["planner"]["path"].endswith("snapshots/abc123")
