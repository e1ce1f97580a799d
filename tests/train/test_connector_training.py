"""Training an assembly's connectors on the user's data (app/train/user_data.py, connector_recipe.py,
connector_training.py; app/core/canvas_lora.py), at tiny configs on the CPU: the data readers, a loss that falls
on a fixed batch, an exact resume, a LoRA that trains alone with the connectors and leaves the MLLM's weights and
the prompt's states as they were, and connectors trained by `python main.py train` that `models assemble
--connectors` loads and that change what the model draws."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file

from app.core.assembly import assemble
from app.core.canvas_lora import load_canvas_lora
from app.core.checkpoints import load_model
from app.core.request import GenerationRequest, Task
from app.media.export import export_video
from app.train.connector_recipe import ConnectorRecipe
from app.train.connector_training import ConnectorTrainer
from app.train.user_data import UserData, UserDataError, read_records
from tests.core.checkpoint_folders import base_folders  # noqa: F401 - a fixture

REPO = Path(__file__).resolve().parents[2]
SIZE = 32


def _image(path: Path, seed: int, shape=(SIZE, SIZE)) -> Path:
    Image.fromarray(np.random.default_rng(seed).integers(0, 255, (*shape, 3), dtype=np.uint8)).save(path)
    return path


def caption_folder(folder: Path, n: int = 4) -> Path:
    """Images of other sizes and aspects, each with a same-name .txt caption, one in a subfolder."""
    (folder / "more").mkdir(parents=True)
    for i in range(n):
        where = folder / "more" if i == n - 1 else folder
        _image(where / f"img{i}.png", i, shape=(40 + 8 * i, 48))
        (where / f"img{i}.txt").write_text(f"a red circle left of a blue star {i}\n")
    return folder


def clip(path: Path, frames: int = 9) -> Path:
    export_video(list(np.random.default_rng(0).integers(0, 255, (frames, SIZE, SIZE, 3), dtype=np.uint8)), path, fps=8)
    return path


def trainer(model: Path, data: Path, out: Path, **recipe) -> ConnectorTrainer:
    defaults = dict(steps=3, batch=2, lr=1e-3, warmup=1, width=SIZE, height=SIZE, checkpoint_every=2)
    recipe = ConnectorRecipe.from_dict({"model": str(model), "data": str(data), **defaults, **recipe})
    return ConnectorTrainer(recipe, out, device="cpu", log=lambda text: None)


@pytest.fixture(scope="module")
def sana_mllm(base_folders, tmp_path_factory):
    """A SANA assembly on the MLLM text path: the context connector trains too."""
    return assemble(base_folders["qwen"], base_folders["sana"], tmp_path_factory.mktemp("sana") / "mllm", text_path="mllm")


@pytest.fixture(scope="module")
def captions(tmp_path_factory):
    return caption_folder(tmp_path_factory.mktemp("data") / "captions")


# -- the data --------------------------------------------------------------------------------------------------
def test_a_folder_of_captioned_images_reads_as_pairs_cropped_and_resized_to_the_training_size(captions):
    records = read_records(captions)
    assert [r.kind for r in records] == ["image"] * 4
    assert [r.target.name for r in records] == ["img0.png", "img1.png", "img2.png", "img3.png"]
    assert records[0].text == "a red circle left of a blue star 0" and records[3].where == "more/img3.txt"
    data = UserData(records, 32, 16)
    item = data.item(2)
    assert item["target"].shape == (1, 16, 32, 3) and item["target"].dtype == np.uint8 and item["source"] is None


def test_jsonl_records_of_each_kind_read_with_paths_beside_the_file(tmp_path):
    _image(tmp_path / "a.png", 0)
    _image(tmp_path / "b.png", 1)
    clip(tmp_path / "c.mp4")
    kinds = {"image": {"image": "a.png", "caption": "a cat"},
             "edit": {"source": "a.png", "instruction": "make it red", "target": str(tmp_path / "b.png")},
             "video": {"video": "c.mp4", "caption": "a ball rolls"}}
    for kind, record in kinds.items():
        path = tmp_path / f"{kind}.jsonl"
        path.write_text(json.dumps(record) + "\n\n")
        [read] = read_records(path)
        assert read.kind == kind and read.where == f"line 1 of {kind}.jsonl"
        item = UserData([read], SIZE, SIZE, frames=5 if kind == "video" else 1).item(0)
        assert item["target"].shape == ((5 if kind == "video" else 1), SIZE, SIZE, 3)
        assert (item["source"] is not None) == (kind == "edit")


@pytest.mark.parametrize("case, message", [
    ("no caption", r"img1.png in .* has no caption"),
    ("empty caption", r"The caption .*img0.txt is empty"),
    ("missing file", r"line 2 of d.jsonl: 'gone.png' was not found"),
    ("bad json", r"line 1 of d.jsonl is not valid JSON"),
    ("unknown keys", r"line 1 of d.jsonl has the keys \['picture', 'text'\]; a record is one of"),
    ("mixed kinds", r"mixes record kinds \(1 image, 1 edit\)"),
    ("not an image", r"line 1 of d.jsonl: 'fake.png' is .*not an image"),
    ("short clip", r"line 1 of d.jsonl: 'c.mp4' has 9 frames; this run trains on clips of 17"),
    ("no data", r"does not exist: give a folder"),
])
def test_bad_data_is_refused_naming_the_file_or_line(tmp_path, case, message):
    _image(tmp_path / "a.png", 0)
    jsonl = tmp_path / "d.jsonl"
    target = jsonl
    if case in ("no caption", "empty caption"):
        target = tmp_path / "folder"
        target.mkdir()
        for i in range(1 if case == "empty caption" else 2):
            _image(target / f"img{i}.png", i)
        (target / "img0.txt").write_text(" \n" if case == "empty caption" else "a cat")
    elif case == "missing file":
        jsonl.write_text('{"image": "a.png", "caption": "x"}\n{"image": "gone.png", "caption": "x"}\n')
    elif case == "bad json":
        jsonl.write_text('{"image": "a.png", "caption": }\n')
    elif case == "unknown keys":
        jsonl.write_text('{"picture": "a.png", "text": "x"}\n')
    elif case == "mixed kinds":
        jsonl.write_text('{"image": "a.png", "caption": "x"}\n{"source": "a.png", "instruction": "x", "target": "a.png"}\n')
    elif case == "not an image":
        (tmp_path / "fake.png").write_text("this is text, not a picture\n" * 4)
        jsonl.write_text('{"image": "fake.png", "caption": "x"}\n')
    elif case == "short clip":
        clip(tmp_path / "c.mp4", frames=9)
        jsonl.write_text('{"video": "c.mp4", "caption": "x"}\n')
    else:
        target = tmp_path / "nothing"
    with pytest.raises(UserDataError, match=message):
        UserData(read_records(target), SIZE, SIZE, frames=17)


def test_the_example_recipe_loads_with_its_paths_beside_it():
    path = REPO / "app" / "train" / "recipes" / "connectors-example.json"
    recipe = ConnectorRecipe.load(path)
    assert Path(recipe.model).parent == path.parent and recipe.lora.config() is None


# -- training ----------------------------------------------------------------------------------------------------
def test_the_loss_falls_on_a_fixed_batch(sana_mllm, captions, tmp_path):
    run = trainer(sana_mllm, captions, tmp_path / "run", lr=3e-3, cfg_dropout=0.0)
    names = [name for name, _ in run.trained]
    assert any(n.startswith("adapter.context_connector.") for n in names)  # the MLLM text path trains it
    assert not any(n.startswith(("adapter.transformer.", "planner.model.")) for n in names)
    batch = run.micro_batch(0, 0)
    losses = []
    for _ in range(30):
        loss = run.loss(batch)
        run.accelerator.backward(loss)
        run.optimizer.step()
        run.optimizer.zero_grad()
        losses.append(loss.item())
    assert np.mean(losses[-5:]) < 0.5 * losses[0], losses


def test_a_run_stopped_and_resumed_ends_exactly_where_an_uninterrupted_one_does(sana_mllm, captions, tmp_path):
    # Accumulation, CFG dropout and more steps than records exercise every draw a resumed run must repeat.
    recipe = dict(steps=5, grad_accumulation=2, cfg_dropout=0.5, batch=3)
    trainer(sana_mllm, captions, tmp_path / "whole", **recipe).run()
    trainer(sana_mllm, captions, tmp_path / "parts", **{**recipe, "steps": 2}).run()
    resumed = trainer(sana_mllm, captions, tmp_path / "parts", **recipe)
    assert resumed.progress["step"] == 2
    resumed.run()
    for name in ("trained.safetensors", "optimizer.safetensors"):
        whole, parts = (load_file(str(tmp_path / run / "checkpoint" / name)) for run in ("whole", "parts"))
        assert whole.keys() == parts.keys() and all(torch.equal(whole[k], parts[k]) for k in whole), name
    progress = [json.loads((tmp_path / run / "checkpoint" / "progress.json").read_text()) for run in ("whole", "parts")]
    assert progress[0]["losses"] == progress[1]["losses"] and len(progress[0]["losses"]) == 5
    assert (tmp_path / "parts" / "loss.csv").read_text().count("\n") == 6 and (tmp_path / "parts" / "loss.png").exists()
    with pytest.raises(ValueError, match="begun with another recipe .*differs in lr"):
        trainer(sana_mllm, captions, tmp_path / "parts", **{**recipe, "lr": 1e-2})


def test_a_lora_trains_alone_with_the_connectors_and_leaves_the_mllm_and_the_prompt_states_unchanged(
        sana_mllm, captions, tmp_path):
    run = trainer(sana_mllm, captions, tmp_path / "run", lora={"rank": 4})
    base = {k: v.clone() for k, v in run.pipe.planner.mllm.state_dict().items()}
    trained = {name: p.detach().clone() for name, p in run.trained}
    assert {n.split(".")[0] for n in trained} == {"planner", "adapter"}
    assert all(".lora_" in n or n.startswith(("planner.canvas_tokens.", "adapter."))
               for n in trained)
    assert sum(".lora_" in n for n in trained) == 8  # q, k, v, o of the one layer, A and B each
    connectors = run.run()
    after = run.pipe.planner.mllm.state_dict()
    for key, value in base.items():
        if ".lora_" not in key:
            assert torch.equal(after[key], value), key
    lora_b = [p for n, p in run.trained if ".lora_B." in n]
    assert all(p.abs().sum() > 0 for p in lora_b)  # zero at the start, trained now

    # The exported LoRA, loaded onto a fresh planner, gives the trained plan; the prompt's states stay the base's.
    fresh = load_model(sana_mllm)
    spec = run.spec
    with torch.no_grad():
        untouched = fresh.planner(["a red circle"], spec)
        fresh.planner.canvas_tokens.load_state_dict(load_file(str(connectors / "canvas_tokens" / "model.safetensors")))
        load_canvas_lora(fresh.planner, connectors / "planner_lora")
        run.pipe.planner.eval()
        ours, theirs = run.pipe.planner(["a red circle"], spec), fresh.planner(["a red circle"], spec)
    assert torch.allclose(ours.canvas, theirs.canvas, atol=1e-5)
    assert torch.equal(theirs.context, untouched.context)
    assert not torch.allclose(theirs.canvas, untouched.canvas)
    # The run's model folder carries the LoRA, and loading it gives the trained plan.
    model = load_model(tmp_path / "run" / "model")
    assert (tmp_path / "run" / "model" / "planner_lora").is_dir()
    with torch.no_grad():
        assert torch.allclose(model.planner(["a red circle"], spec).canvas, ours.canvas, atol=1e-5)


@pytest.mark.parametrize("ablation", ["no_dit_block", "queries_1d"])
def test_a_recipes_ablation_trains_fresh_connectors_that_load_with_it(sana_mllm, captions, tmp_path, ablation):
    run = trainer(sana_mllm, captions, tmp_path / "run", ablations=[ablation])
    assert run.pipe.adapter.config["ablations"] == [ablation]
    assert (run.pipe.adapter.canvas_connector is None) == (ablation == "queries_1d")
    run.run()
    model = load_model(tmp_path / "run" / "model")
    assert model.adapter.config["ablations"] == [ablation]
    expected = "sequence" if ablation == "queries_1d" else "grid"
    assert model.planner.canvas_tokens.positions == expected
    request = GenerationRequest(Task.TEXT_TO_IMAGE, "a red circle", width=SIZE, height=SIZE, steps=2, seed=3)
    assert not np.array_equal(model(request).frames, load_model(sana_mllm)(request).frames)


def test_edit_triplets_train_flux_kontext_and_captioned_clips_train_wan(base_folders, tmp_path):
    _image(tmp_path / "s.png", 0)
    _image(tmp_path / "t.png", 1)
    (tmp_path / "edits.jsonl").write_text(json.dumps({"source": "s.png", "instruction": "make it red", "target": "t.png"}))
    (tmp_path / "clips").mkdir()
    clip(tmp_path / "clips" / "ball.mp4")
    (tmp_path / "clips" / "ball.txt").write_text("a ball rolls to the right")
    for family, data, extra in (("flux", tmp_path / "edits.jsonl", {}), ("wan", tmp_path / "clips", {"frames": 5})):
        model = assemble(base_folders["qwen"], base_folders[family], tmp_path / family)
        run = trainer(model, data, tmp_path / f"run-{family}", steps=2, **extra)
        assert run.task is {"flux": Task.IMAGE_EDIT, "wan": Task.TEXT_TO_VIDEO}[family]
        connectors = run.run()
        assert all(np.isfinite(loss) for _, loss, _ in run.progress["losses"])
        assert sorted(p.name for p in connectors.iterdir()) == [
            "adapter", "canvas_connector", "canvas_tokens", "context_connector", "training.json"]
    with pytest.raises(ValueError, match="holds text to video records.*does text to image"):
        trainer(assemble(base_folders["qwen"], base_folders["sana"], tmp_path / "sana"), tmp_path / "clips",
                tmp_path / "refused", frames=5)


# -- the command line and the assembly ----------------------------------------------------------------------------
def _cli(*args, cwd: Path):
    env = dict(os.environ, HF_HUB_OFFLINE="1", OMP_NUM_THREADS="1", METACANVAS_CONFIG_DIR=str(cwd / "config"))
    return subprocess.run([sys.executable, str(REPO / "main.py"), *args], capture_output=True, text=True, timeout=300,
                          env=env, cwd=cwd)


def test_connectors_trained_by_the_train_command_load_through_models_assemble_and_change_the_output(
        base_folders, tmp_path):
    model = assemble(base_folders["qwen"], base_folders["sana"], tmp_path / "my-sana")  # the native text path
    caption_folder(tmp_path / "my-captions")
    (tmp_path / "R.json").write_text(json.dumps({"model": "my-sana", "data": "my-captions", "steps": 3, "batch": 2,
                                                 "lr": 1e-3, "warmup": 1, "checkpoint_every": 2}))
    r = _cli("train", "--recipe", "R.json", "--out", "run", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "connectors:" in r.stdout and (tmp_path / "run" / "loss.png").exists()
    record = json.loads((tmp_path / "run" / "connectors" / "training.json").read_text())
    assert record["steps"] == 3 and record["task"] == "text_to_image"

    trained = assemble(base_folders["qwen"], base_folders["sana"], tmp_path / "trained",
                       connectors_dir=tmp_path / "run" / "connectors")
    request = GenerationRequest(Task.TEXT_TO_IMAGE, "a red circle left of a blue star", width=SIZE, height=SIZE,
                                steps=2, seed=3)
    fresh_frames = load_model(model)(request).frames
    trained_frames = load_model(trained)(request).frames
    assert not np.array_equal(trained_frames, fresh_frames)
    assert np.array_equal(load_model(tmp_path / "run" / "model")(request).frames, trained_frames)


@pytest.mark.slow
def test_two_processes_train_one_run_as_accelerate_launch_starts_them(sana_mllm, captions, tmp_path):
    """`accelerate launch` on many GPUs starts the processes with torch.distributed.run; here two CPU processes
    (gloo) train one run: each takes its own items, gradients are averaged, one process writes."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    recipe = tmp_path / "R.json"
    recipe.write_text(json.dumps({"model": str(sana_mllm), "data": str(captions), "steps": 2, "batch": 2, "lr": 1e-3,
                                  "warmup": 1, "width": SIZE, "height": SIZE}))
    env = dict(os.environ, HF_HUB_OFFLINE="1", OMP_NUM_THREADS="1")
    r = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port",
                        str(port), str(REPO / "main.py"), "train", "--recipe", str(recipe), "--out", str(tmp_path / "run")],
                       capture_output=True, text=True, timeout=300, env=env, cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    assert r.stdout.count("loss curve:") == 1 and r.stdout.count("training 0.") == 1  # the main process speaks
    assert len(json.loads((tmp_path / "run" / "checkpoint" / "progress.json").read_text())["losses"]) == 2
    assert (tmp_path / "run" / "connectors" / "canvas_connector" / "model.safetensors").exists()


def test_the_train_command_refuses_the_shapes_trainers_flags_for_a_connector_recipe(tmp_path, capsys):
    from app.cli import main

    (tmp_path / "R.json").write_text(json.dumps({"model": "m", "data": "d"}))
    assert main(["train", "--recipe", str(tmp_path / "R.json"), "--no-canvas", "--teach-only"]) == 2
    assert "--no-canvas, --teach-only steer the shapes-world trainer" in capsys.readouterr().err
