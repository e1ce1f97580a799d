"""Model folders: save, load and validate, in the diffusers layout, from safetensors only, offline.

A MetaCanvas model folder:
    model_index.json          {"_class_name": "MetaCanvasPipeline", "family": ..., components, defaults}
    planner/                  transformers Qwen2.5-VL: config.json, *.safetensors, tokenizer + processor files
    transformer/              the diffusers backbone: config.json, *.safetensors
    canvas_tokens/            config.json + model.safetensors
    layout_drafter/           optional: config.json + model.safetensors (app/core/draft.py)
    edit_drafter/             optional, with layout_drafter: the drafter of edits (same files): of image
                              edits, or of video edits from the source clip's tracks (a track drafter's)
    frame_detector/           optional, with a track drafter: finds an image's objects to draft a clip
                              from it (app/core/frame_detector.py; config.json + model.safetensors)
    canvas_connector/         config.json + model.safetensors (absent in a text-only model)
    context_connector/        config.json + model.safetensors
    vae/                      optional diffusers autoencoder (absent: the model works in pixel space)
A component entry may instead name a folder elsewhere ({"path": "/models/Qwen2.5-VL-7B-Instruct"}), so a
user's own base checkpoints are used in place; such paths come from the user, never from a hub.

Why one file of about 720 lines: saving and loading each component sit side by side, with the checks
that refuse a folder load_model could not take back (pickles, code of its own, missing tokenizer files), so a
component added to one side is seen missing from the other.
"""
from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl", ".pickle")
INDEX = "model_index.json"


class ModelFolderError(ValueError):
    """A model folder that cannot be used; the message says what is wrong and what to do."""


def _why(exc: BaseException, limit: int = 240) -> str:
    """A library's error as one short line (some span many lines, or quote whole tensors)."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _weights_in(folder: Path) -> tuple[list[Path], list[Path]]:
    safe = sorted(folder.glob("*.safetensors"))
    pickled = sorted(p for p in folder.iterdir() if p.suffix.lower() in PICKLE_SUFFIXES and p.is_file())
    return safe, pickled


def check_component_folder(folder: Path, what: str, need_weights: bool = True) -> None:
    if not folder.is_dir():
        raise ModelFolderError(f"The {what} folder {folder} does not exist. Check the model folder in Settings.")
    refuse_custom_code(folder, what)
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


def check_planner_files(folder: Path) -> None:
    """The files the planner's processor reads besides its weights. Without its tokenizer files transformers builds
    an empty tokenizer and every prompt becomes no tokens (each job then fails deep in the planner); without a
    chat template a real Qwen2.5-VL would be prompted in a format it was never trained on."""
    def has(*names: str) -> bool:
        return all((folder / n).is_file() for n in names)

    try:
        meta = json.loads((folder / "planner_processor.json").read_text()) if has("planner_processor.json") else {}
    except (OSError, ValueError) as exc:
        raise ModelFolderError(f"{folder / 'planner_processor.json'} cannot be read: {_why(exc)}") from None
    missing = [] if has("tokenizer_config.json") else ["tokenizer_config.json"]
    if not (has("tokenizer.json") or has("vocab.json", "merges.txt")):
        missing.append("tokenizer.json")
    if not has("preprocessor_config.json"):
        missing.append("preprocessor_config.json")
    if isinstance(meta, dict) and meta.get("kind") != "word_level" and not (
            meta.get("chat_template") or has("chat_template.jinja") or has("chat_template.json")
            or _tokenizer_template(folder)):
        missing.append("chat_template.json")
    if missing:
        raise ModelFolderError(f"The planner folder {folder} lacks {', '.join(missing)}: the planner reads its prompts "
                               f"through them. Copy them from the Qwen2.5-VL folder the planner came from.")


def _tokenizer_template(folder: Path) -> bool:
    try:
        return bool(json.loads((folder / "tokenizer_config.json").read_text()).get("chat_template"))
    except (OSError, ValueError, AttributeError):
        return False


def refuse_custom_code(folder: Path, what: str) -> None:
    """A config that names its own code (transformers' `auto_map`: classes from .py files in the folder) is refused
    before anything reads it: transformers would ask on the terminal whether to run that code, and a "y" runs it.
    The studio runs the classes transformers and diffusers ship, never a folder's own code."""
    for file in sorted(folder.glob("*config.json")):  # config.json, tokenizer_config.json, preprocessor_config.json, ...
        try:  # (not tokenizer.json or vocab.json: megabytes of vocabulary, never read for code)
            data = json.loads(file.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue  # unreadable configs are said by the loader that needs them
        if isinstance(data, dict) and data.get("auto_map"):
            raise ModelFolderError(
                f"The {what} folder {folder} names its own code ({file.name} has an \"auto_map\"). MetaCanvas Studio "
                f"runs only the model classes of transformers and diffusers, never code that comes with a model "
                f"folder. Use a folder saved with the library's own classes (remove \"auto_map\" if the model is one "
                f"of them).")


def read_index(folder: str | Path) -> dict:
    folder = Path(folder).expanduser()
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
        raise ModelFolderError(f"{index_path} is not valid JSON ({_why(exc)}).") from exc
    if not isinstance(index, dict):
        raise ModelFolderError(f"{index_path} is not a JSON object.")
    if index.get("_class_name") != "MetaCanvasPipeline":
        raise ModelFolderError(f"{index_path} describes a {index.get('_class_name')!r}, not a MetaCanvasPipeline.")
    return index


# The parts a MetaCanvas model cannot run without, and the ones it may have.
REQUIRED_COMPONENTS = ("planner", "transformer", "canvas_tokens", "context_connector")
OPTIONAL_COMPONENTS = ("adapter", "canvas_connector", "layout_drafter", "edit_drafter", "frame_detector", "vae",
                       "planner_lora")
# An assembly on the backbone's native text path names its text parts; an assembly names its scheduler.
TEXT_COMPONENTS = ("text_encoder", "text_encoder_2")
CONFIG_ONLY_COMPONENTS = ("tokenizer", "tokenizer_2", "scheduler")


def component_path(folder: Path, index: dict, name: str) -> Path | None:
    """Where component `name` lives: its subfolder, or the folder a {"path": ...} entry names
    (absolute, or relative to the model folder). None when the index does not name it."""
    entry = index.get(name)
    if entry is None:
        return None
    if isinstance(entry, dict) and "path" in entry:
        raw = entry["path"]
        if not isinstance(raw, str) or not raw.strip():
            raise ModelFolderError(f"{folder / INDEX}: the {name} entry's \"path\" must be a folder path "
                                   f"(a string), not {raw!r}.")
        p = Path(raw).expanduser()
        return p if p.is_absolute() else (folder / p).resolve()
    if isinstance(entry, (str, list, dict)):  # "name", diffusers' ["library", "Class"], {"class": ...}
        return folder / name
    raise ModelFolderError(f"{folder / INDEX}: the {name} entry must be a folder name, a [library, class] "
                           f"pair or {{\"path\": FOLDER}}, not {entry!r}.")


def validate_model_folder(folder: str | Path) -> dict:
    """Check a folder can be loaded, without loading it. Returns its index."""
    folder = Path(folder).expanduser()
    index = read_index(folder)
    missing = [name for name in REQUIRED_COMPONENTS if index.get(name) is None]
    if missing:
        raise ModelFolderError(f"{folder / INDEX} names no {', '.join(missing)}: a MetaCanvas model needs "
                               f"{', '.join(REQUIRED_COMPONENTS)} (each a subfolder or {{\"path\": FOLDER}}).")
    if index.get("family") not in (None, "sana", "flux", "wan"):
        raise ModelFolderError(f"{folder / INDEX}: unknown family {index.get('family')!r}; "
                               f"known: sana, flux, wan.")
    for name in REQUIRED_COMPONENTS + OPTIONAL_COMPONENTS + TEXT_COMPONENTS:
        path = component_path(folder, index, name)
        if path is not None:
            check_component_folder(path, name.replace("_", " "))
    check_planner_files(component_path(folder, index, "planner"))
    from .model_catalog import damaged_safetensors  # headers only: a cut-short copy is said before any load

    for name in REQUIRED_COMPONENTS + OPTIONAL_COMPONENTS + TEXT_COMPONENTS:
        path = component_path(folder, index, name)
        if path is not None and path.is_dir() and \
                (damaged := damaged_safetensors(sorted(path.glob("*.safetensors")), f"The {name.replace('_', ' ')}'s")):
            raise ModelFolderError(damaged[0] + (f" ({len(damaged) - 1} more such files.)" if len(damaged) > 1 else ""))
    for name in CONFIG_ONLY_COMPONENTS:
        path = component_path(folder, index, name)
        if path is not None and not path.is_dir():
            raise ModelFolderError(f"The {name.replace('_', ' ')} folder {path} does not exist. "
                                   f"Check the model folder in Settings.")
        if path is not None:
            refuse_custom_code(path, name.replace("_", " "))
    return index


def replace_folder(tmp: Path, folder: Path) -> None:
    """Put the completely written folder `tmp` where `folder` is (model folders, training checkpoints). The
    old folder is moved aside first and removed only once the new one is in place, so a kill at any moment
    leaves a whole folder: the old one, the new one, or the old one under FOLDER.old beside a finished tmp."""
    import os
    import shutil

    tmp, folder = Path(tmp), Path(folder)
    if folder.exists():
        old = folder.with_name(folder.name + ".old")
        shutil.rmtree(old, ignore_errors=True)
        os.replace(folder, old)
        os.replace(tmp, folder)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(tmp, folder)


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
    import shutil

    import torch

    folder = Path(folder)
    if folder.exists() and not overwrite:
        raise ModelFolderError(f"{folder} exists; choose another folder")
    detector, drafter = getattr(pipe.planner, "frame_detector", None), getattr(pipe.planner, "drafter", None)
    if detector is not None:  # written only where load_model takes it back: beside a track drafter it fits
        from .frame_detector import check_matches

        if drafter is None or not drafter.config.track:
            raise ValueError("a frame detector moves a clip's track drafts: save it beside a track drafter")
        check_matches(detector.config, drafter.config)
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
    (tmp / "canvas_tokens").mkdir()
    (tmp / "canvas_tokens" / "config.json").write_text(json.dumps(
        canvas_tokens_config(planner.canvas_tokens, getattr(planner, "temporal_stride", 1))))
    save_file(cast(planner.canvas_tokens), str(tmp / "canvas_tokens" / "model.safetensors"))
    drafter = getattr(planner, "drafter", None)
    edit_drafter = getattr(planner, "edit_drafter", None)
    for name, module in (("layout_drafter", drafter), ("edit_drafter", edit_drafter)):
        if module is not None:
            save_module_cast(module, tmp / name, {"draft": module.config.to_dict(),
                                                  "context_dim": planner.hidden_size}, cast)
    frame_detector = getattr(planner, "frame_detector", None)
    if frame_detector is not None:
        save_module_cast(frame_detector, tmp / "frame_detector", {"draft": frame_detector.config.to_dict()}, cast)

    # Backbone: diffusers' own layout; connectors and adapter-level parameters beside it.
    transformer = adapter.transformer
    transformer.save_config(str(tmp / "transformer"))
    save_file(cast(transformer), str(tmp / "transformer" / "diffusion_pytorch_model.safetensors"), metadata={"format": "pt"})
    extra = {k: v for k, v in cast(adapter).items() if not k.startswith(_ADAPTER_PARTS)}
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
    if frame_detector is not None:
        index["frame_detector"] = "frame_detector"
    if vae is not None:
        index["vae"] = {"class": type(vae).__name__}
    codec_config = pipe.codec.config() if hasattr(pipe.codec, "config") else None
    if codec_config is not None:
        index["codec"] = codec_config
    (tmp / INDEX).write_text(json.dumps(index, indent=2))
    replace_folder(tmp, folder)
    return folder


def save_module_cast(module, folder: Path, config: dict, cast) -> None:
    from safetensors.torch import save_file

    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(json.dumps(config, indent=2))
    save_file(cast(module), str(folder / "model.safetensors"))


# What an adapter's state holds besides its own parameters (saved apart: the transformer, the two connectors).
_ADAPTER_PARTS = ("transformer.", "canvas_connector.", "context_connector.")


def _strict_load(module, state, what: str, folder: Path) -> None:
    try:
        missing, unexpected = module.load_state_dict(state, strict=False)
    except RuntimeError as exc:  # a tensor of the wrong shape: the config and the weights disagree
        raise ModelFolderError(f"The {what} weights in {folder} do not fit its config: "
                               f"{_why(exc)}") from None
    if missing or unexpected:
        raise ModelFolderError(f"The {what} weights in {folder} do not match its config "
                               f"(missing {list(missing)[:3]}, unexpected {list(unexpected)[:3]}).")


def _refuse_partial_load(info: dict, what: str, path: Path, allowed_unexpected: tuple[str, ...] = ()) -> None:
    """diffusers and transformers only warn when a checkpoint's tensors do not match the config (a
    `num_layers` edited 8 -> 4 loads half the blocks and runs wrong); here that refuses the load."""
    missing = list(info.get("missing_keys", []))
    unexpected = [k for k in info.get("unexpected_keys", []) if not k.startswith(allowed_unexpected)]
    mismatched = list(info.get("mismatched_keys", []))
    if missing or unexpected or mismatched:
        parts = [f"{label} {keys[:3]}" for label, keys in (("missing", missing), ("unexpected", unexpected),
                                                           ("of another shape", mismatched)) if keys]
        raise ModelFolderError(f"The {what} weights in {path} do not match its config.json "
                               f"({'; '.join(parts)}). Was the config edited, or the download incomplete?")


def _read_config(path: Path, what: str) -> dict:
    try:
        cfg = json.loads((path / "config.json").read_text())
    except (OSError, ValueError) as exc:
        raise ModelFolderError(f"The {what} config {path / 'config.json'} cannot be read: {_why(exc)}") from None
    if not isinstance(cfg, dict):
        raise ModelFolderError(f"The {what} config {path / 'config.json'} is not a JSON object.")
    return cfg


def _load_state_checked(path: Path, what: str) -> dict:
    """A component's safetensors, with a damaged file (truncated, bit-flipped header) named plainly."""
    try:
        return load_state(path)
    except Exception as exc:  # noqa: BLE001 - safetensors raises its own error types for a bad file
        raise ModelFolderError(f"The {what} weights in {path} are damaged or incomplete ({_why(exc)}). "
                               f"Copy the model folder again.") from None


def _load_drafter(folder: Path, index: dict, name: str, context_dim: int):
    """A layout drafter component (layout_drafter/ or edit_drafter/), or None where the folder has none."""
    path = component_path(folder, index, name)
    if path is None:
        return None
    from .draft import DraftConfig, LayoutDrafter

    what = name.replace("_", " ")
    cfg = _read_config(path, what)
    try:
        dim = int(cfg["context_dim"])
        if dim != context_dim:
            raise ValueError(f"context_dim {dim} does not match the planner's width {context_dim}")
        drafter = LayoutDrafter(DraftConfig.from_dict(cfg["draft"]), dim)
    except (KeyError, TypeError, ValueError) as exc:
        raise ModelFolderError(f"The {what} config in {path} is not valid: {_why(exc)}") from None
    _strict_load(drafter, _load_state_checked(path, what), what, folder)
    return drafter


def load_edit_drafter(folder: str | Path):
    """A model folder's edit drafter alone (None where it has none): what app/train/frame_detector.py
    takes a frame detector from, without loading the whole model."""
    folder = Path(folder)
    index = read_index(folder)
    path = component_path(folder, index, "edit_drafter")
    if path is None:
        return None
    return _load_drafter(folder, index, "edit_drafter", int(_read_config(path, "edit drafter").get("context_dim", 0)))


def _load_frame_detector(folder: Path, index: dict, drafter):
    """The frame detector component (frame_detector/), or None where the folder has none. Its rows go
    into the track drafter's drafts, so it needs one that drafts with the same labels and bins."""
    path = component_path(folder, index, "frame_detector")
    if path is None:
        return None
    from .draft import DraftConfig
    from .frame_detector import FrameDetector, check_matches

    cfg = _read_config(path, "frame detector")
    try:
        config = DraftConfig.from_dict(cfg["draft"])
        if drafter is None or not drafter.config.track:
            raise ValueError("it drafts clips from images with a track drafter, and this folder has none")
        check_matches(config, drafter.config)
        detector = FrameDetector(config)
    except (KeyError, TypeError, ValueError) as exc:
        raise ModelFolderError(f"The frame detector in {path} is not valid: {_why(exc)}") from None
    _strict_load(detector, _load_state_checked(path, "frame detector"), "frame detector", folder)
    return detector


# Bounds on a canvas's config: a hand-edited or damaged one (rows 1e9) must be refused before it allocates.
MAX_CANVAS_SIDE = 256
MAX_CANVAS_KEYFRAMES = 64


def _load_canvas_tokens(path: Path, planner_width: int):
    from .canvas import CanvasSpec, CanvasTokens

    cfg = _read_config(path, "canvas tokens")
    try:
        k, rows, cols, dim = (cfg[key] for key in ("keyframes", "rows", "cols", "dim"))
        for key, value, hi in (("keyframes", k, MAX_CANVAS_KEYFRAMES), ("rows", rows, MAX_CANVAS_SIDE),
                               ("cols", cols, MAX_CANVAS_SIDE)):
            if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= hi:
                raise ValueError(f"{key} must be a whole number from 1 to {hi}, not {value!r}")
        if dim != planner_width:
            raise ValueError(f"dim {dim!r} does not match the planner's width {planner_width}")
        # Layout codes were a rejected experiment (research/LOG.md); folders saved then say "layouts": 0.
        if cfg.get("layouts", 0) != 0:
            raise ValueError(f"it has {cfg['layouts']!r} layout codes, which this version no longer plans with")
        labels = int(cfg.get("draft_labels", 0))
        if not 0 <= labels <= 4096:
            raise ValueError(f"draft_labels {labels} out of range")
    except KeyError as exc:
        raise ModelFolderError(f"The canvas tokens config {path / 'config.json'} has no {exc.args[0]!r}.") from None
    except (TypeError, ValueError) as exc:
        raise ModelFolderError(f"The canvas tokens config {path / 'config.json'} is not valid: {_why(exc)}.") from None
    state = _load_state_checked(path, "canvas token")
    try:
        tokens = CanvasTokens(CanvasSpec(k, rows, cols), dim, draft_labels=labels,
                              positions=cfg.get("positions", "grid"))
    except ValueError as exc:
        raise ModelFolderError(f"The canvas tokens config {path / 'config.json'} is not valid: {_why(exc)}.") from None
    _strict_load(tokens, state, "canvas token", path)
    return tokens, int(cfg.get("temporal_stride", 1))


def canvas_tokens_config(canvas_tokens, temporal_stride: int = 1) -> dict:
    """What canvas_tokens/config.json holds (read back by _load_canvas_tokens)."""
    spec = canvas_tokens.spec
    return {"keyframes": spec.keyframes, "rows": spec.rows, "cols": spec.cols, "dim": canvas_tokens.dim,
            "temporal_stride": int(temporal_stride), "draft_labels": canvas_tokens.draft_labels,
            "positions": canvas_tokens.positions}


def _vae_dtype(vae_cls, folder: Path, dtype):
    """Autoencoders whose config says `force_upcast` (SD-style VAEs overflow in float16) stay in
    float32 when the model runs in float16, as diffusers' own pipelines keep them; bfloat16 has the
    range and is used as asked."""
    import torch

    if dtype is torch.float16:
        try:
            if json.loads((folder / "config.json").read_text()).get("force_upcast", False):
                return torch.float32
        except (OSError, ValueError):
            pass
    return dtype


def processor_chat_template(folder: Path) -> str | None:
    """The chat template a Qwen2.5-VL folder keeps beside its processor (chat_template.jinja, or
    chat_template.json as the hub's Qwen2.5-VL folders have it). The planner reads such a folder through
    its tokenizer and image processor (Qwen2_5_VLProcessor needs torchvision for its video processor),
    and a tokenizer loaded alone does not read the processor's template. None when there is none."""
    jinja = folder / "chat_template.jinja"
    try:
        if jinja.is_file():
            return jinja.read_text()
        path = folder / "chat_template.json"
        if path.is_file():
            template = json.loads(path.read_text()).get("chat_template")
            return template if isinstance(template, str) and template.strip() else None
    except (OSError, ValueError, AttributeError) as exc:
        raise ModelFolderError(f"The planner's chat template in {folder} cannot be read: {_why(exc)}") from None
    return None


def _pixel_codec(index: dict, folder: Path):
    """The pixel-space codec a model folder names ("codec": {"kind": "pixel", "temporal_factor": 4} for a
    video model; absent: the still-image codec)."""
    from .latents import PixelCodec

    entry = index.get("codec")
    if entry is None:
        return PixelCodec()
    if not isinstance(entry, dict) or entry.get("kind") != "pixel":
        raise ModelFolderError(f"{folder / INDEX}: unknown codec {entry!r}; this version reads "
                               f'{{"kind": "pixel", "temporal_factor": N}} or a "vae" folder')
    try:
        return PixelCodec(temporal_factor=int(entry.get("temporal_factor", 1)))
    except (TypeError, ValueError) as exc:
        raise ModelFolderError(f"{folder / INDEX}: the codec entry is not valid: {_why(exc)}") from None


def load_model(folder: str | Path, device: str = "cpu", dtype=None):
    """Load a MetaCanvas model folder (safetensors only, no network) -> MetaCanvasPipeline on `device`.

    dtype: None keeps float32 on the CPU and uses bfloat16 on a GPU that supports it. The large
    parts (planner, transformer, VAE) are read straight into that dtype, never through float32
    (a FLUX-size model would need twice its size in host memory).
    """
    import torch
    from transformers import Qwen2_5_VLConfig, Qwen2_5_VLModel

    from .backbones import build_adapter
    from .latents import DiffusersVAECodec
    from .pipeline import MetaCanvasPipeline, PipelineDefaults
    from .planner import Planner, PlannerProcessor

    folder = Path(folder).expanduser()
    index = validate_model_folder(folder)
    if dtype is None:
        dtype = torch.bfloat16 if str(device).startswith("cuda") and torch.cuda.is_bf16_supported() else torch.float32

    # 1. Planner: the MLLM, its processor, the canvas tokens and the drafters.
    planner_dir = component_path(folder, index, "planner")
    try:
        config = Qwen2_5_VLConfig.from_pretrained(str(planner_dir), local_files_only=True)
    except Exception as exc:  # noqa: BLE001 - any parse failure is the folder's fault
        raise ModelFolderError(f"Cannot read the planner config in {planner_dir}: {_why(exc)}") from None
    from transformers.utils import logging as hf_logging

    verbosity, bar = hf_logging.get_verbosity(), hf_logging.is_progress_bar_enabled()
    try:
        # transformers maps a full Qwen2.5-VL checkpoint (ForConditionalGeneration keys) onto the bare
        # model and drops the LM head, which the planner never uses. Its load report would call that head
        # "UNEXPECTED" at every load of a real Qwen folder: quiet here, and _refuse_partial_load judges.
        hf_logging.set_verbosity_error()
        hf_logging.disable_progress_bar()  # a "Loading weights" bar per load: the CLI and studio say what loads
        mllm, info = Qwen2_5_VLModel.from_pretrained(str(planner_dir), config=config, local_files_only=True,
                                                     use_safetensors=True, dtype=dtype, output_loading_info=True)
    except Exception as exc:  # noqa: BLE001
        raise ModelFolderError(f"Cannot load the planner weights in {planner_dir}: {_why(exc)}") from None
    finally:
        hf_logging.set_verbosity(verbosity)
        if bar:
            hf_logging.enable_progress_bar()
    _refuse_partial_load(info, "planner", planner_dir, allowed_unexpected=("lm_head.",))
    try:
        processor = PlannerProcessor.from_pretrained(planner_dir)
    except Exception as exc:  # noqa: BLE001 - a damaged tokenizer or processor file is the folder's fault
        raise ModelFolderError(f"Cannot read the planner's tokenizer or image processor in {planner_dir}: "
                               f"{_why(exc)}") from None
    if processor._template() is None:
        processor.chat_template = processor_chat_template(planner_dir)
    known = len(processor.tokenizer)
    for name in ("image_token_id", "video_token_id"):
        token = getattr(config, name, None)
        if isinstance(token, int) and token >= known:
            raise ModelFolderError(f"The planner's tokenizer in {planner_dir} has {known} tokens, but its config's "
                                   f"{name} is {token}: the tokenizer is not this planner's.")
    width = config.text_config.hidden_size
    canvas_tokens, temporal_stride = _load_canvas_tokens(component_path(folder, index, "canvas_tokens"), width)
    drafter = _load_drafter(folder, index, "layout_drafter", width)
    edit_drafter = _load_drafter(folder, index, "edit_drafter", width)
    frame_detector = _load_frame_detector(folder, index, drafter)
    try:
        planner = Planner(mllm, processor, canvas_tokens, temporal_stride=temporal_stride,
                          drafter=drafter, edit_drafter=edit_drafter, frame_detector=frame_detector)
    except ValueError as exc:
        raise ModelFolderError(f"The planner parts in {folder} do not fit together: {_why(exc)}") from None
    lora_dir = component_path(folder, index, "planner_lora")
    if lora_dir is not None:  # a LoRA on the MLLM, active at the canvas positions only (app/core/canvas_lora.py)
        from .canvas_lora import load_canvas_lora

        try:
            load_canvas_lora(planner, lora_dir)
        except Exception as exc:  # noqa: BLE001 - shapes, a damaged file (safetensors has its own error type)
            raise ModelFolderError(f"The planner LoRA in {lora_dir} cannot be used: {_why(exc)}") from None

    # 2. Backbone + connectors.
    adapter_dir = component_path(folder, index, "adapter")
    adapter_cfg = (_read_config(adapter_dir, "adapter") if adapter_dir is not None
                   else {"family": index.get("family"), "mllm_dim": width})
    family = adapter_cfg.get("family", index.get("family"))
    if family not in ("sana", "flux", "wan"):
        raise ModelFolderError(f"{folder}: the backbone family must be sana, flux or wan, not {family!r}.")
    tdir = component_path(folder, index, "transformer")
    try:
        transformer, info = _transformer_class(family).from_pretrained(
            str(tdir), local_files_only=True, use_safetensors=True, torch_dtype=dtype, output_loading_info=True)
    except Exception as exc:  # noqa: BLE001
        raise ModelFolderError(f"Cannot load the {family} transformer in {tdir}: {_why(exc)}") from None
    _refuse_partial_load(info, f"{family} transformer", tdir)
    adapter_cfg = dict(adapter_cfg)
    # A canvas model has a canvas connector, or (the queries_1d ablation) joins its canvas to the context.
    adapter_cfg["canvas"] = "canvas_connector" in index or "queries_1d" in adapter_cfg.get("ablations", ())
    try:
        adapter = build_adapter(adapter_cfg, transformer)
    except (TypeError, ValueError) as exc:  # an unknown or damaged key in adapter/config.json
        raise ModelFolderError(f"The adapter config of {folder} does not fit its transformer: {_why(exc)}") from None
    if adapter_dir is not None:
        extra = {k: v for k, v in _load_state_checked(adapter_dir, "adapter").items() if k != "_empty"}
        own = [k for k in adapter.state_dict() if not k.startswith(_ADAPTER_PARTS)]
        lacking = [k for k in own if k not in extra]
        if lacking:  # left at their zero start, a trained model would run as an untrained one, without a word
            raise ModelFolderError(f"The adapter weights in {adapter_dir} lack {len(lacking)} of its parameters "
                                   f"(e.g. {lacking[0]}): the file is damaged or from another model.")
        if extra:
            try:
                _, unexpected = adapter.load_state_dict(extra, strict=False)
            except RuntimeError as exc:  # a tensor of the wrong shape
                raise ModelFolderError(f"The adapter weights in {adapter_dir} do not fit its config: "
                                       f"{_why(exc)}") from None
            if unexpected:
                raise ModelFolderError(f"The adapter weights in {adapter_dir} hold parts this adapter does not "
                                       f"have: {unexpected[:3]}.")
    cdir = component_path(folder, index, "context_connector")
    _strict_load(adapter.context_connector, _load_state_checked(cdir, "context connector"), "context connector", folder)
    if adapter.canvas_connector is not None:
        kdir = component_path(folder, index, "canvas_connector")
        _strict_load(adapter.canvas_connector, _load_state_checked(kdir, "canvas connector"), "canvas connector", folder)

    # 3. The autoencoder (absent: the model works in pixel space).
    codec = _pixel_codec(index, folder)
    vae_dir = component_path(folder, index, "vae")
    if vae_dir is not None:
        import diffusers

        entry = index["vae"]
        cls_name = entry.get("class", "AutoencoderKL") if isinstance(entry, dict) else (
            entry[1] if isinstance(entry, list) and len(entry) == 2 else "AutoencoderKL")
        vae_cls = getattr(diffusers, str(cls_name), None)
        if vae_cls is None or not str(cls_name).startswith("Autoencoder"):
            raise ModelFolderError(f"{folder / INDEX}: the vae class {cls_name!r} is not a diffusers autoencoder.")
        try:
            vae, info = vae_cls.from_pretrained(str(vae_dir), local_files_only=True, use_safetensors=True,
                                                torch_dtype=_vae_dtype(vae_cls, vae_dir, dtype), output_loading_info=True)
        except Exception as exc:  # noqa: BLE001
            raise ModelFolderError(f"Cannot load the {cls_name} in {vae_dir}: {_why(exc)}") from None
        _refuse_partial_load(info, "vae", vae_dir)
        codec = DiffusersVAECodec(vae)

    # 4. The backbone's own text encoder (the native text path) and scheduler (an assembly's).
    native_text = None
    if adapter.text_path == "native":
        from .native_text import load_native_text

        native_text = load_native_text(folder, index, family, dtype)
    scheduler = _load_scheduler(folder, index)

    d = dict(index.get("defaults", {}))
    d["tasks"] = tuple(d.get("tasks", PipelineDefaults().tasks))
    try:
        pipe = MetaCanvasPipeline(planner, adapter, codec, PipelineDefaults(**d), name=index.get("name", folder.name),
                                  native_text=native_text, scheduler=scheduler)
    except (TypeError, ValueError) as exc:  # a hand-edited "defaults" block: an unknown key or sampler
        raise ModelFolderError(f"The defaults in {folder / INDEX} are not valid: {_why(exc)}") from None
    pipe.to(device=device, dtype=dtype)
    return pipe.eval()


def _entry_class(index: dict, name: str) -> str | None:
    entry = index.get(name)
    if isinstance(entry, dict):
        return entry.get("class")
    return entry[1] if isinstance(entry, list) and len(entry) == 2 else None


def _load_scheduler(folder: Path, index: dict):
    """The scheduler a model folder names (an assembly: its base pipeline's own), or None (the defaults' one)."""
    import diffusers

    path = component_path(folder, index, "scheduler")
    if path is None:
        return None
    cls_name = str(_entry_class(index, "scheduler") or "")
    cls = getattr(diffusers, cls_name, None)
    if cls is None or not cls_name.endswith("Scheduler"):
        raise ModelFolderError(f"{folder / INDEX}: the scheduler class {cls_name!r} is not a diffusers scheduler.")
    try:
        return cls.from_config(cls.load_config(str(path), local_files_only=True))
    except Exception as exc:  # noqa: BLE001
        raise ModelFolderError(f"Cannot read the scheduler config in {path}: {_why(exc)}") from None
