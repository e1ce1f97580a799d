"""Model folders: save, load and validate, in the diffusers layout, from safetensors only, offline.

A MetaCanvas model folder:
    model_index.json          {"_class_name": "MetaCanvasPipeline", "family": ..., components, defaults}
    planner/                  transformers Qwen2.5-VL: config.json, *.safetensors, tokenizer + processor files
    transformer/              the diffusers backbone: config.json, *.safetensors
    canvas_tokens/            config.json + model.safetensors
    layout_drafter/           optional: config.json + model.safetensors (app/core/draft.py)
    edit_drafter/             optional, with layout_drafter: the drafter of image edits (same files)
    canvas_connector/         config.json + model.safetensors (absent in a text-only model)
    context_connector/        config.json + model.safetensors
    vae/                      optional diffusers autoencoder (absent: the model works in pixel space)
A component entry may instead name a folder elsewhere ({"path": "/models/Qwen2.5-VL-7B-Instruct"}), so a
user's own base checkpoints are used in place; such paths come from the user, never from a hub.
"""
from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl", ".pickle")
INDEX = "model_index.json"


class ModelFolderError(ValueError):
    """A model folder that cannot be used; the message says what is wrong and what to do."""


def _weights_in(folder: Path) -> tuple[list[Path], list[Path]]:
    safe = sorted(folder.glob("*.safetensors"))
    pickled = sorted(p for p in folder.iterdir() if p.suffix.lower() in PICKLE_SUFFIXES and p.is_file())
    return safe, pickled


def check_component_folder(folder: Path, what: str, need_weights: bool = True) -> None:
    if not folder.is_dir():
        raise ModelFolderError(f"The {what} folder {folder} does not exist. Check the model folder in Settings.")
    safe, pickled = _weights_in(folder)
    if not (folder / "config.json").is_file() and not (folder / "scheduler_config.json").is_file() and not pickled:
        raise ModelFolderError(f"The {what} folder {folder} has no config.json: it is not a model folder "
                               f"(expected the diffusers/transformers layout: config.json + *.safetensors).")
    if not need_weights:
        return
    if not safe and pickled:
        names = ", ".join(p.name for p in pickled[:3])
        raise ModelFolderError(
            f"The {what} folder {folder} holds pickled weights ({names}). MetaCanvas Studio loads safetensors "
            f"only, because a pickle can run code when it is opened. Convert them once in a trusted environment "
            f"(for example `model.save_pretrained(folder, safe_serialization=True)`), then point the studio at "
            f"the converted folder.")
    if not safe:
        raise ModelFolderError(f"The {what} folder {folder} has no *.safetensors weights.")


def read_index(folder: str | Path) -> dict:
    folder = Path(folder)
    if not folder.exists():
        raise ModelFolderError(f"Model folder {folder} does not exist. Choose a model folder in Settings "
                               f"(the embedded default is models/metacanvas-shapes).")
    if not folder.is_dir():
        raise ModelFolderError(f"{folder} is a file, not a model folder.")
    index_path = folder / INDEX
    if not index_path.is_file():
        _, pickled = _weights_in(folder)
        if pickled:
            check_component_folder(folder, "model")
        raise ModelFolderError(f"{folder} has no {INDEX}: it is not a MetaCanvas model folder.")
    try:
        index = json.loads(index_path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ModelFolderError(f"{index_path} is not valid JSON ({exc}).") from exc
    if index.get("_class_name") != "MetaCanvasPipeline":
        raise ModelFolderError(f"{index_path} describes a {index.get('_class_name')!r}, not a MetaCanvasPipeline.")
    return index


def component_path(folder: Path, index: dict, name: str) -> Path | None:
    entry = index.get(name)
    if entry is None:
        return None
    if isinstance(entry, dict) and "path" in entry:
        p = Path(entry["path"]).expanduser()
        return p if p.is_absolute() else (folder / p).resolve()
    return folder / name


def validate_model_folder(folder: str | Path) -> dict:
    """Check a folder can be loaded, without loading it. Returns its index."""
    folder = Path(folder)
    index = read_index(folder)
    for name, need in (("planner", True), ("transformer", True), ("canvas_tokens", True), ("layout_drafter", True),
                       ("edit_drafter", True), ("context_connector", True), ("canvas_connector", True), ("vae", True)):
        path = component_path(folder, index, name)
        if path is not None:
            check_component_folder(path, name, need)
    return index


def save_module(module, folder: Path, config: dict) -> None:
    """A plain torch module as config.json + model.safetensors."""
    from safetensors.torch import save_file

    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(json.dumps(config, indent=2))
    state = {k: v.detach().contiguous().cpu() for k, v in module.state_dict().items()}
    save_file(state, str(folder / "model.safetensors"))


def load_state(folder: Path) -> dict:
    from safetensors.torch import load_file

    state = {}
    for f in sorted(folder.glob("*.safetensors")):
        state.update(load_file(str(f)))
    return state


def defaults_to_dict(defaults) -> dict:
    d = asdict(defaults)
    d["tasks"] = list(d["tasks"])
    return d


# ---------------------------------------------------------------------------------------------------
# Whole models

def _transformer_class(family: str):
    import diffusers

    return {"sana": diffusers.SanaTransformer2DModel, "flux": diffusers.FluxTransformer2DModel,
            "wan": diffusers.WanTransformer3DModel}[family]


def save_model(pipe, folder: str | Path, *, dtype=None, overwrite: bool = True) -> Path:
    """Write a MetaCanvas model folder. `dtype` (e.g. torch.float16) shrinks the files; loading casts
    back to the device's precision. The folder is written beside and swapped in when complete, so a
    crash mid-save leaves the previous model intact."""
    import os
    import shutil

    import torch

    folder = Path(folder)
    if folder.exists() and not overwrite:
        raise ModelFolderError(f"{folder} exists; choose another folder")
    tmp = folder.with_name(folder.name + ".saving")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    planner, adapter = pipe.planner, pipe.adapter

    def cast(module):
        return {k: (v.to(dtype) if dtype is not None and v.is_floating_point() else v).detach().contiguous().cpu()
                for k, v in module.state_dict().items()}

    from safetensors.torch import save_file

    # Planner: the transformers model's own config + weights, and its processor files.
    planner.mllm.config.save_pretrained(str(tmp / "planner"))
    save_file(cast(planner.mllm), str(tmp / "planner" / "model.safetensors"), metadata={"format": "pt"})
    planner.processor.save_pretrained(tmp / "planner")
    spec = planner.canvas_tokens.spec
    (tmp / "canvas_tokens").mkdir()
    (tmp / "canvas_tokens" / "config.json").write_text(json.dumps(
        {"keyframes": spec.keyframes, "rows": spec.rows, "cols": spec.cols, "dim": planner.canvas_tokens.dim,
         "temporal_stride": getattr(planner, "temporal_stride", 1), "layouts": planner.canvas_tokens.layouts,
         "draft_labels": planner.canvas_tokens.draft_labels}))
    save_file(cast(planner.canvas_tokens), str(tmp / "canvas_tokens" / "model.safetensors"))
    drafter = getattr(planner, "drafter", None)
    edit_drafter = getattr(planner, "edit_drafter", None)
    for name, module in (("layout_drafter", drafter), ("edit_drafter", edit_drafter)):
        if module is not None:
            save_module_cast(module, tmp / name, {"draft": module.config.to_dict(),
                                                  "context_dim": planner.hidden_size}, cast)

    # Backbone: diffusers' own layout; connectors and adapter-level parameters beside it.
    transformer = adapter.transformer
    transformer.save_config(str(tmp / "transformer"))
    save_file(cast(transformer), str(tmp / "transformer" / "diffusion_pytorch_model.safetensors"), metadata={"format": "pt"})
    extra = {k: v for k, v in cast(adapter).items()
             if not k.startswith(("transformer.", "canvas_connector.", "context_connector."))}
    (tmp / "adapter").mkdir()
    (tmp / "adapter" / "config.json").write_text(json.dumps(adapter.config, indent=2))
    save_file(extra or {"_empty": torch.zeros(0)}, str(tmp / "adapter" / "model.safetensors"))
    if adapter.canvas_connector is not None:
        save_module_cast(adapter.canvas_connector, tmp / "canvas_connector", adapter.canvas_connector.config, cast)
    save_module_cast(adapter.context_connector, tmp / "context_connector",
                     {"mllm_dim": adapter.config["mllm_dim"]}, cast)
    vae = getattr(pipe.codec, "vae", None)
    if vae is not None:
        vae.save_pretrained(str(tmp / "vae"), safe_serialization=True)
    index = {"_class_name": "MetaCanvasPipeline", "_format_version": 1, "name": pipe.name,
             "family": adapter.family, "planner": "planner", "canvas_tokens": "canvas_tokens",
             "transformer": "transformer", "adapter": "adapter", "context_connector": "context_connector",
             "defaults": defaults_to_dict(pipe.defaults)}
    if adapter.canvas_connector is not None:
        index["canvas_connector"] = "canvas_connector"
    if drafter is not None:
        index["layout_drafter"] = "layout_drafter"
    if edit_drafter is not None:
        index["edit_drafter"] = "edit_drafter"
    if vae is not None:
        index["vae"] = {"class": type(vae).__name__}
    (tmp / INDEX).write_text(json.dumps(index, indent=2))
    if folder.exists():
        old = folder.with_name(folder.name + ".old")
        shutil.rmtree(old, ignore_errors=True)
        os.replace(folder, old)
        os.replace(tmp, folder)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(tmp, folder)
    return folder


def save_module_cast(module, folder: Path, config: dict, cast) -> None:
    from safetensors.torch import save_file

    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(json.dumps(config, indent=2))
    save_file(cast(module), str(folder / "model.safetensors"))


def _vae_folder(folder: Path, index: dict) -> Path | None:
    entry = index.get("vae")
    if entry is None:
        return None
    if isinstance(entry, dict) and "path" in entry:
        return component_path(folder, index, "vae")
    return folder / "vae"


def _strict_load(module, state, what: str, folder: Path) -> None:
    missing, unexpected = module.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise ModelFolderError(f"The {what} weights in {folder} do not match its config "
                               f"(missing {list(missing)[:3]}, unexpected {list(unexpected)[:3]}).")


def _load_drafter(folder: Path, index: dict, name: str):
    """A layout drafter component (layout_drafter/ or edit_drafter/), or None where the folder has none."""
    path = component_path(folder, index, name)
    if path is None:
        return None
    from .draft import DraftConfig, LayoutDrafter

    what = name.replace("_", " ")
    try:
        cfg = json.loads((path / "config.json").read_text())
        drafter = LayoutDrafter(DraftConfig.from_dict(cfg["draft"]), int(cfg["context_dim"]))
    except (OSError, KeyError, TypeError, ValueError) as exc:
        raise ModelFolderError(f"The {what} config in {path} is not valid: {exc}") from exc
    _strict_load(drafter, load_state(path), what, folder)
    return drafter


def load_model(folder: str | Path, device: str = "cpu", dtype=None):
    """Load a MetaCanvas model folder (safetensors only, no network) -> MetaCanvasPipeline on `device`.

    dtype: None keeps float32 on the CPU and uses bfloat16 on a GPU that supports it.
    """
    import torch
    from transformers import Qwen2_5_VLConfig, Qwen2_5_VLModel

    from .backbones import build_adapter
    from .canvas import CanvasSpec, CanvasTokens
    from .latents import DiffusersVAECodec, PixelCodec
    from .pipeline import MetaCanvasPipeline, PipelineDefaults
    from .planner import Planner, PlannerProcessor

    folder = Path(folder)
    index = validate_model_folder(folder)
    if dtype is None:
        dtype = torch.bfloat16 if str(device).startswith("cuda") and torch.cuda.is_bf16_supported() else torch.float32

    def strict_load(module, state, what):
        _strict_load(module, state, what, folder)

    # Planner.
    planner_dir = component_path(folder, index, "planner")
    try:
        config = Qwen2_5_VLConfig.from_pretrained(str(planner_dir), local_files_only=True)
    except Exception as exc:  # noqa: BLE001 - any parse failure is the folder's fault
        raise ModelFolderError(f"Cannot read the planner config in {planner_dir}: {exc}") from exc
    try:
        # transformers maps a full Qwen2.5-VL checkpoint (ForConditionalGeneration keys) onto the bare
        # model and drops the LM head, which the planner never uses.
        mllm = Qwen2_5_VLModel.from_pretrained(str(planner_dir), config=config, local_files_only=True,
                                               use_safetensors=True, dtype=torch.float32)
    except Exception as exc:  # noqa: BLE001
        raise ModelFolderError(f"Cannot load the planner weights in {planner_dir}: {exc}") from exc
    processor = PlannerProcessor.from_pretrained(planner_dir)
    ct_dir = component_path(folder, index, "canvas_tokens")
    ct_cfg = json.loads((ct_dir / "config.json").read_text())
    canvas_tokens = CanvasTokens(CanvasSpec(ct_cfg["keyframes"], ct_cfg["rows"], ct_cfg["cols"]), ct_cfg["dim"],
                                 layouts=int(ct_cfg.get("layouts", 0)), draft_labels=int(ct_cfg.get("draft_labels", 0)))
    strict_load(canvas_tokens, CanvasTokens.complete_state(load_state(ct_dir), canvas_tokens.layouts, canvas_tokens.dim),
                "canvas token")
    drafter = _load_drafter(folder, index, "layout_drafter")
    edit_drafter = _load_drafter(folder, index, "edit_drafter")
    try:
        planner = Planner(mllm, processor, canvas_tokens, temporal_stride=ct_cfg.get("temporal_stride", 1),
                          drafter=drafter, edit_drafter=edit_drafter)
    except ValueError as exc:
        raise ModelFolderError(f"The planner parts in {folder} do not fit together: {exc}") from exc

    # Backbone + connectors.
    adapter_cfg = json.loads((folder / "adapter" / "config.json").read_text()) if (folder / "adapter").is_dir() else {
        "family": index["family"], "mllm_dim": config.text_config.hidden_size}
    family = adapter_cfg.get("family", index.get("family"))
    tdir = component_path(folder, index, "transformer")
    try:
        transformer = _transformer_class(family).from_pretrained(str(tdir), local_files_only=True, use_safetensors=True,
                                                                torch_dtype=torch.float32)
    except Exception as exc:  # noqa: BLE001
        raise ModelFolderError(f"Cannot load the {family} transformer in {tdir}: {exc}") from exc
    adapter_cfg = dict(adapter_cfg)
    adapter_cfg["canvas"] = "canvas_connector" in index
    adapter = build_adapter(adapter_cfg, transformer)
    if (folder / "adapter").is_dir():
        extra = {k: v for k, v in load_state(folder / "adapter").items() if k != "_empty"}
        if extra:
            adapter.load_state_dict(extra, strict=False)
    strict_load(adapter.context_connector, load_state(component_path(folder, index, "context_connector")), "context connector")
    if adapter.canvas_connector is not None:
        strict_load(adapter.canvas_connector, load_state(component_path(folder, index, "canvas_connector")), "canvas connector")

    codec = PixelCodec()
    vae_dir = _vae_folder(folder, index)
    if vae_dir is not None:
        import diffusers

        cls_name = index["vae"].get("class", "AutoencoderKL") if isinstance(index["vae"], dict) else "AutoencoderKL"
        vae = getattr(diffusers, cls_name).from_pretrained(str(vae_dir), local_files_only=True, use_safetensors=True)
        codec = DiffusersVAECodec(vae)
    d = dict(index.get("defaults", {}))
    d["tasks"] = tuple(d.get("tasks", PipelineDefaults().tasks))
    try:
        pipe = MetaCanvasPipeline(planner, adapter, codec, PipelineDefaults(**d), name=index.get("name", folder.name))
    except (TypeError, ValueError) as exc:  # a hand-edited "defaults" block: an unknown key or sampler
        raise ModelFolderError(f"The defaults in {folder / INDEX} are not valid: {exc}") from exc
    pipe.to(device=device, dtype=dtype)
    return pipe.eval()
