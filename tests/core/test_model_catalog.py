"""The model catalogue (app/core/model_catalog.py, `python main.py models`): tiny random checkpoints saved by
transformers' and diffusers' own save_pretrained in the layouts users download are recognised as planner or
backbone, with family, tasks, size and dtype; a folder missing a part names it; pickled weights are refused."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from app.core.checkpoints import ModelFolderError
from app.core.model_catalog import (BACKBONE, METACANVAS, PLANNER, format_table, inspect_folder, main_dtype,
                                    scan)
from tests.core.checkpoint_folders import base_folders  # noqa: F401 - a fixture

REPO = Path(__file__).resolve().parents[2]


def _copy(folder: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(folder, tmp_path / folder.name))


@pytest.mark.parametrize("which, kind, family, tasks", [
    ("qwen", PLANNER, "qwen2.5-vl", None),
    ("sana", BACKBONE, "sana", ("text_to_image",)),
    ("flux", BACKBONE, "flux", ("text_to_image", "image_edit")),
    ("wan", BACKBONE, "wan", ("text_to_video", "image_to_video", "video_edit", "reference_to_video")),
    ("wan_i2v", BACKBONE, "wan", ("text_to_video", "image_to_video", "video_edit", "reference_to_video")),
])
def test_standard_layouts_are_recognised_with_kind_family_tasks_size_and_dtype(base_folders, which, kind, family, tasks):
    entry = inspect_folder(base_folders[which])
    assert (entry.kind, entry.family) == (kind, family)
    assert entry.usable, entry.why_not()
    if tasks is not None:
        assert entry.tasks == tasks
    assert entry.dtype == "float32"
    assert entry.size_bytes == sum(p.stat().st_size for p in base_folders[which].rglob("*") if p.is_file())


def test_the_embedded_models_are_listed_as_metacanvas_models():
    entries = {e.name: e for e in scan([REPO / "models"])}
    still, video = entries["metacanvas-shapes"], entries["metacanvas-shapes-video"]
    assert (still.kind, still.family, still.tasks) == (METACANVAS, "sana", ("text_to_image", "image_edit"))
    assert (video.kind, video.family) == (METACANVAS, "wan") and "text_to_video" in video.tasks
    assert still.usable and video.usable and still.dtype == "float16"


def test_a_folder_of_checkpoints_lists_each_and_the_table_names_them(base_folders):
    root = base_folders["qwen"].parent
    entries = scan([root, base_folders["sana"]])  # the SANA folder comes once, not twice
    assert sorted(e.name for e in entries) == sorted(p.name for p in base_folders.values())
    table = format_table(entries)
    row = next(line for line in table.splitlines() if line.startswith("Sana-tiny"))
    assert "backbone pipeline" in row and " sana " in row and "t2i" in row and "float32" in row
    assert "planner" in next(line for line in table.splitlines() if line.startswith("Qwen2.5-VL-tiny"))


def test_a_hub_cache_entry_is_read_through_its_snapshot_of_links(base_folders, tmp_path):
    """~/.cache/huggingface/hub keeps models--ORG--NAME/snapshots/<hash>/ whose files link to blobs/."""
    entry_dir = tmp_path / "hub" / "models--Org--Tiny-Qwen"
    snapshot = entry_dir / "snapshots" / "abc123"
    (entry_dir / "blobs").mkdir(parents=True)
    snapshot.mkdir(parents=True)
    (entry_dir / "refs").mkdir()
    (entry_dir / "refs" / "main").write_text("abc123")
    for i, f in enumerate(sorted(base_folders["qwen"].iterdir())):
        blob = entry_dir / "blobs" / f"blob{i}"
        shutil.copy(f, blob)
        (snapshot / f.name).symlink_to(blob)
    [entry] = scan([tmp_path / "hub"])
    assert (entry.name, entry.kind, entry.path) == ("Org/Tiny-Qwen", PLANNER, snapshot)
    assert entry.usable and entry.size_bytes == inspect_folder(base_folders["qwen"]).size_bytes


def test_the_dtype_is_read_from_the_safetensors_headers(tmp_path):
    from safetensors.torch import save_file

    save_file({"big": torch.zeros(64, dtype=torch.bfloat16), "small": torch.zeros(4)}, str(tmp_path / "a.safetensors"))
    assert main_dtype([tmp_path / "a.safetensors"]) == "bfloat16"


def test_a_weights_file_cut_short_is_said_before_any_load(base_folders, tmp_path):
    """A copy cut short (a full disk, an interrupted download) was listed and checked as ready; the load then
    failed with "Unable to load weights from checkpoint file" naming the path twice."""
    from app.core.checkpoints import validate_model_folder

    model = shutil.copytree(REPO / "models" / "metacanvas-shapes", tmp_path / "half")
    weights = model / "transformer" / "diffusion_pytorch_model.safetensors"
    os.truncate(weights, weights.stat().st_size // 2)
    entry = inspect_folder(model)
    assert not entry.usable and "is incomplete" in entry.why_not() and "copy it again" in entry.why_not()
    assert "half" in format_table([entry]) and "refused" in format_table([entry])
    with pytest.raises(ModelFolderError, match="diffusion_pytorch_model.safetensors is incomplete"):
        validate_model_folder(model)
    # A base checkpoint too, and a file that is not safetensors at all under that name.
    qwen = shutil.copytree(base_folders["qwen"], tmp_path / "qwen")
    (shard,) = sorted(qwen.glob("*.safetensors"))[:1]
    shard.write_bytes(b"not weights")
    assert "cannot be read" in inspect_folder(qwen).why_not()
    import struct  # a header that parses but names offsets that are not numbers: said, never raised

    header = json.dumps({"w": {"dtype": "F32", "shape": [2], "data_offsets": ["0", "eight"]}}).encode()
    shard.write_bytes(struct.pack("<Q", len(header)) + header + bytes(8))
    assert "cannot be read" in inspect_folder(qwen).why_not()
    assert inspect_folder(REPO / "models" / "metacanvas-shapes").usable  # whole files pass


@pytest.mark.parametrize("which, remove, named", [
    ("sana", "vae", "vae/"),
    ("sana", "text_encoder", "text_encoder/"),
    ("sana", "scheduler/scheduler_config.json", "scheduler/scheduler_config.json"),
    ("flux", "text_encoder_2", "text_encoder_2/"),
    ("flux", "tokenizer_2/tokenizer.json", "tokenizer_2/tokenizer.json"),
    ("wan", "transformer/diffusion_pytorch_model.safetensors", "transformer/*.safetensors"),
    ("qwen", "preprocessor_config.json", "preprocessor_config.json"),
    ("qwen", "tokenizer.json", "tokenizer.json"),
    ("qwen", "chat_template.json", "chat_template.json"),
    ("qwen", "model-00002-of-00003.safetensors", "weight shard model-00002-of-00003.safetensors"),
])
def test_a_folder_missing_a_part_names_it(base_folders, tmp_path, which, remove, named):
    folder = _copy(base_folders[which], tmp_path)
    target = folder / remove
    shutil.rmtree(target) if target.is_dir() else target.unlink()
    entry = inspect_folder(folder)
    assert not entry.usable and named in entry.missing
    with pytest.raises(ModelFolderError, match=named.replace("*", r"\*")) as err:
        entry.require(entry.kind)
    assert "\n" not in str(err.value)
    assert named in format_table([entry])


def test_a_part_missing_from_model_index_is_named(base_folders, tmp_path):
    folder = _copy(base_folders["sana"], tmp_path)
    index = json.loads((folder / "model_index.json").read_text())
    del index["vae"]
    (folder / "model_index.json").write_text(json.dumps(index))
    assert "vae/" in inspect_folder(folder).missing


def _pickle_only(folder: Path, weights: list[Path], name: str) -> None:
    from safetensors.torch import load_file

    state = {}
    for f in weights:
        state.update(load_file(str(f)))
        f.unlink()
    torch.save(state, str(folder / name))


def test_pickled_weights_are_refused_in_planners_and_pipelines(base_folders, tmp_path):
    qwen = _copy(base_folders["qwen"], tmp_path)
    (qwen / "model.safetensors.index.json").unlink()
    _pickle_only(qwen, sorted(qwen.glob("*.safetensors")), "pytorch_model.bin")
    entry = inspect_folder(qwen)
    assert entry.kind == PLANNER and not entry.usable
    assert "pickled" in entry.why_not() and "pytorch_model.bin" in entry.why_not()

    wan = _copy(base_folders["wan"], tmp_path)
    _pickle_only(wan / "transformer", sorted((wan / "transformer").glob("*.safetensors")), "diffusion_pytorch_model.bin")
    entry = inspect_folder(wan)
    assert not entry.usable and "pickled" in entry.why_not()
    with pytest.raises(ModelFolderError, match="pickled weights only"):
        entry.require(BACKBONE)

    loose = tmp_path / "loose"
    loose.mkdir()
    torch.save({"w": torch.zeros(2)}, str(loose / "model.ckpt"))
    assert "pickled" in inspect_folder(loose).why_not()


@pytest.mark.parametrize("edit, message", [
    (lambda f: _set_index(f, _class_name="StableDiffusionPipeline"), "SanaPipeline, FluxKontextPipeline"),
    (lambda f: _set_index(f, transformer_2=["diffusers", "WanTransformer3DModel"]), "two-expert"),
    (lambda f: (f / "model_index.json").write_text("{not json"), "not valid JSON"),
])
def test_what_this_version_cannot_run_is_said_plainly(base_folders, tmp_path, edit, message):
    folder = _copy(base_folders["wan"], tmp_path)
    edit(folder)
    entry = inspect_folder(folder)
    assert not entry.usable and message in entry.why_not()


def _set_index(folder: Path, **entries) -> None:
    index = json.loads((folder / "model_index.json").read_text())
    index.update(entries)
    (folder / "model_index.json").write_text(json.dumps(index))


def test_other_transformers_models_and_plain_folders_are_not_taken_for_models(tmp_path):
    other = tmp_path / "bert"
    other.mkdir()
    (other / "config.json").write_text(json.dumps({"model_type": "bert"}))
    assert "qwen2_5_vl" in inspect_folder(other).why_not()
    empty = tmp_path / "empty"
    empty.mkdir()
    entry = inspect_folder(empty)
    assert entry.kind is None and "neither a model_index.json" in entry.why_not()
    with pytest.raises(ModelFolderError, match="A planner is expected"):
        entry.require(PLANNER)


def test_the_models_command_lists_models_and_the_given_folders(base_folders, tmp_path):
    env = dict(os.environ, METACANVAS_CONFIG_DIR=str(tmp_path / "config"), HF_HUB_OFFLINE="1", OMP_NUM_THREADS="1")
    out = subprocess.run([sys.executable, str(REPO / "main.py"), "models", str(base_folders["qwen"].parent)],
                         capture_output=True, text=True, timeout=300, env=env, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0].split()[:4] == ["NAME", "KIND", "FAMILY", "TASKS"]
    for name, words in (("metacanvas-shapes", "MetaCanvas model"), ("Qwen2.5-VL-tiny", "planner"),
                        ("FLUX.1-Kontext-tiny", "backbone pipeline"), ("Wan2.2-TI2V-tiny", "backbone pipeline")):
        assert any(line.startswith(name + " ") and words in line for line in lines), name
    bad = subprocess.run([sys.executable, str(REPO / "main.py"), "models", str(tmp_path / "nowhere")],
                         capture_output=True, text=True, timeout=300, env=env, cwd=tmp_path)
    assert bad.returncode == 2 and "no such folder" in bad.stderr and "Traceback" not in bad.stderr


def test_a_transformer_that_takes_other_channels_than_its_autoencoder_gives_is_refused(base_folders, tmp_path):
    """Wan2.1 image-to-video: 36 input channels (latents + mask + image), 16 from the VAE."""
    folder = Path(shutil.copytree(base_folders["wan"], tmp_path / "Wan2.1-I2V-tiny"))
    cfg_path = folder / "transformer" / "config.json"
    cfg = json.loads(cfg_path.read_text())
    cfg["in_channels"] = 36
    cfg_path.write_text(json.dumps(cfg))
    entry = inspect_folder(folder)
    assert not entry.usable and "takes 36 input channels" in entry.why_not()


@pytest.mark.parametrize("which, part", [("qwen", "."), ("sana", "tokenizer"), ("sana", "text_encoder")])
def test_a_folder_that_names_its_own_code_is_refused_and_its_code_never_runs(base_folders, tmp_path, monkeypatch,
                                                                             which, part):
    """A config with an "auto_map" names classes from .py files in the folder; transformers asks on the terminal
    whether to run them, and a "y" ran them when the CLI loaded such a model. Refused before anything reads it,
    in the catalogue, at assembly and at load, with the terminal answering "y" and the hub not switched off."""
    import io

    from app.core.assembly import assemble
    from app.core.checkpoints import load_model

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(sys, "stdin", io.StringIO("y\n" * 10))
    folder = _copy(base_folders[which], tmp_path)
    marker = tmp_path / "ran"
    where = folder / part
    config = where / ("tokenizer_config.json" if part in (".", "tokenizer") else "config.json")
    data = json.loads(config.read_text())
    data["auto_map"] = {"AutoTokenizer": [None, "own.OwnTokenizer"], "AutoModel": "own.OwnModel"}
    config.write_text(json.dumps(data))
    (where / "own.py").write_text(f"import pathlib\npathlib.Path({str(marker)!r}).write_text('ran')\n")
    entry = inspect_folder(folder)
    assert not entry.usable and "names its own code" in entry.why_not() and config.name in entry.why_not()
    planner, backbone = (folder, base_folders["sana"]) if which == "qwen" else (base_folders["qwen"], folder)
    with pytest.raises(ModelFolderError, match="never code that comes with a model folder"):
        assemble(planner, backbone, tmp_path / "assembled", text_path="native")
    # An assembly made before the code was put in the folder it points at is refused as it loads.
    config.write_text(json.dumps({k: v for k, v in data.items() if k != "auto_map"}))
    made = assemble(planner, backbone, tmp_path / "assembled", text_path="native")
    config.write_text(json.dumps(data))
    with pytest.raises(ModelFolderError, match="names its own code"):
        load_model(made)
    assert not marker.exists()


def test_a_planner_without_its_tokenizer_files_is_refused_as_it_loads(base_folders, tmp_path):
    """Without tokenizer.json and tokenizer_config.json transformers builds an empty tokenizer: the model loaded and
    every job failed deep in the planner ("expected a non-empty list of Tensors"). Refused at load, naming them."""
    from app.core.assembly import assemble
    from app.core.checkpoints import load_model

    planner = _copy(base_folders["qwen"], tmp_path)
    made = assemble(planner, base_folders["sana"], tmp_path / "assembled")
    for name in ("tokenizer.json", "tokenizer_config.json"):
        (planner / name).unlink()
    with pytest.raises(ModelFolderError, match="lacks tokenizer_config.json, tokenizer.json"):
        load_model(made)
    assert "lacks tokenizer_config.json" in inspect_folder(made).why_not()
