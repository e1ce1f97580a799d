"""Assembly: a MetaCanvas model folder made from a user's Qwen2.5-VL folder and diffusers pipeline folder.

The folder POINTS at the base checkpoints (absolute {"path": ...} entries in model_index.json, which
checkpoints.load_model reads) and holds only what MetaCanvas adds: the canvas tokens, the canvas
connector, the context connector and the adapter's own parameters. Those are fresh (the connectors'
outputs zero-initialised, so the canvas adds nothing until they are trained) or taken from a folder of
trained ones (`connectors`: a MetaCanvas model folder, or a folder with canvas_tokens/, canvas_connector/,
context_connector/ and adapter/ subfolders), checked against the base models' widths.

Nothing of the base checkpoints is copied or loaded: their configs are read, and the backbone's
transformer is built on the meta device (no memory) only to give the connectors their sizes.

The text path (app/core/native_text.py): "native" keeps the backbone's own text encoder, and the canvas
is added on top (SANA's "text + canvas" in the paper; for FLUX.1-Kontext and Wan2.2 it makes an assembly
useful before its connectors are trained); "mllm" feeds the MLLM's states through the context connector,
as the method does for FLUX and Wan. Default: native with fresh connectors, else the given connectors'
own. The base pipeline's scheduler is used as it is, fed its own timesteps, so that with fresh connectors
a native assembly draws what the bare diffusers pipeline draws.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

from .checkpoints import (INDEX, ModelFolderError, _load_state_checked, _read_config, _strict_load,
                          canvas_tokens_config, defaults_to_dict, replace_folder, save_module)
from .model_catalog import BACKBONE, METACANVAS, PLANNER, PIPELINES, inspect_folder
from .native_text import TEXT_PARTS, TEXT_PATHS

# How each family is sampled by default (its own pipeline's settings, where ours has them). The solver and
# shift are used only when the backbone folder has no scheduler of its own; an assembly runs the one it has.
_FAMILY_DEFAULTS = {
    # SANA 1.x: DPM-Solver++ on flow sigmas, 20 steps, guidance 4.5.
    "sana": dict(steps=20, guidance=4.5, solver="dpm++2m", shift=3.0),
    # FLUX.1-Kontext-dev is guidance-distilled: the guidance value (2.5, as BFL's Kontext examples use) goes
    # into its embedding and no classifier-free guidance runs (MetaCanvasPipeline.classifier_free). Its
    # scheduler shifts with the image size (mu 1.15 at 1024 px, a shift of about 3).
    "flux": dict(steps=28, guidance=2.5, solver="euler", shift=3.0, width=1024, height=1024),
    # Wan2.2-TI2V-5B: 1280 x 704, 121 frames; Wan2.1 and other Wan pipelines: 832 x 480, 81 frames.
    "wan": dict(steps=50, guidance=5.0, solver="euler", shift=5.0, keyframes=3),
}
CONNECTOR_PARTS = ("canvas_tokens", "canvas_connector", "context_connector", "adapter", "planner_lora")


def _vae_spatial_factor(vae_dir: Path, class_name: str) -> int:
    """Pixels per latent a side, as the loader's codec will see it: the autoencoder built from its config on
    the meta device (so a config that leaves a setting to the class's default gets that default)."""
    import diffusers
    import torch

    from .latents import DiffusersVAECodec

    cls = getattr(diffusers, class_name, None)
    if cls is None or not class_name.startswith("Autoencoder"):
        raise ModelFolderError(f"{vae_dir} holds a {class_name!r}, not a diffusers autoencoder.")
    try:
        with torch.device("meta"):
            vae = cls.from_config(cls.load_config(str(vae_dir), local_files_only=True))
        return int(DiffusersVAECodec(vae).spatial_factor)
    except Exception as exc:  # noqa: BLE001 - any failure here is the folder's config
        raise ModelFolderError(f"The autoencoder config in {vae_dir} cannot be used: {exc}") from None


def _scheduler_shift(folder: Path, fallback: float) -> float:
    try:
        cfg = json.loads((folder / "scheduler" / "scheduler_config.json").read_text())
    except (OSError, ValueError):
        return fallback
    for key in ("flow_shift", "shift"):
        value = cfg.get(key)
        if isinstance(value, (int, float)) and value > 0 and not (key == "shift" and cfg.get("use_dynamic_shifting")):
            return float(value)
    return fallback


def _snapshot(folder: Path) -> Path:
    """A hub cache folder (models--Org--Name) read as its snapshot, as the catalogue lists it."""
    from .model_catalog import hub_cache_snapshot

    return hub_cache_snapshot(folder) or folder


# What `assemble` writes into its folder: the only names an earlier assembly that --overwrite replaces may hold.
ASSEMBLY_PARTS = frozenset({INDEX, "adapter", "canvas_tokens", "canvas_connector", "context_connector", "planner_lora"})


def _check_output(out_dir: Path, overwrite: bool, inputs: list[Path]) -> None:
    """Refuse an output that would harm the user's folders: one that is, or holds, an input folder (replacing
    it would delete the base checkpoints), or, with overwrite, an existing folder that is not a MetaCanvas
    model (only an earlier assembly is ever replaced)."""
    out = out_dir.resolve()
    for given in inputs:
        if out == given or out in given.parents:
            raise ModelFolderError(f"{out_dir} is or holds the input folder {given}; write the assembly elsewhere.")
    if not out_dir.exists():
        return
    if not overwrite:
        raise ModelFolderError(f"{out_dir} exists; choose another folder (or --overwrite to replace it).")
    if inspect_folder(out_dir).kind != METACANVAS:
        raise ModelFolderError(f"{out_dir} exists and is not a MetaCanvas model folder: it is not replaced, even "
                               f"with --overwrite; choose another folder.")
    # A trained model (models/metacanvas-shapes, a copy of it, a run's export) is a MetaCanvas folder too, and
    # replacing it would delete its own weights: only what an assembly writes, and nothing else, is replaced.
    try:
        earlier = json.loads((out_dir / INDEX).read_text(encoding="utf-8")).get("assembled_from") is not None
        foreign = sorted(p.name for p in out_dir.iterdir() if p.name not in ASSEMBLY_PARTS)
    except (OSError, ValueError, AttributeError):
        earlier, foreign = False, []
    if not earlier or foreign:
        held = f" (it holds {', '.join(foreign[:4])}{', ...' if len(foreign) > 4 else ''})" if foreign else ""
        raise ModelFolderError(f"{out_dir} is a MetaCanvas model, not an earlier assembly{held}: it is not "
                               f"replaced, even with --overwrite; choose another folder.")


def _scheduler_entry(backbone_dir: Path, index: dict) -> dict:
    """{"scheduler": {...}} naming the base pipeline's own scheduler, or nothing when it has none we can use."""
    entry = index.get("scheduler")
    if (isinstance(entry, list) and len(entry) == 2 and str(entry[1]).endswith("Scheduler")
            and (backbone_dir / "scheduler" / "scheduler_config.json").is_file()):
        return {"scheduler": {"path": str(backbone_dir / "scheduler"), "class": entry[1]}}
    return {}


def _meta_transformer(family: str, transformer_dir: Path):
    """The backbone's transformer class built from its config on the meta device: every size right, no memory."""
    import torch

    from .checkpoints import _transformer_class

    cls = _transformer_class(family)
    try:
        config = cls.load_config(str(transformer_dir), local_files_only=True)
        with torch.device("meta"):
            return cls.from_config(config)
    except Exception as exc:  # noqa: BLE001 - any failure here is the folder's config
        raise ModelFolderError(f"The {family} transformer config in {transformer_dir} cannot be used: {exc}") from None


def _planner_width(planner_dir: Path) -> int:
    from transformers import Qwen2_5_VLConfig

    try:
        return int(Qwen2_5_VLConfig.from_pretrained(str(planner_dir), local_files_only=True).text_config.hidden_size)
    except Exception as exc:  # noqa: BLE001
        raise ModelFolderError(f"Cannot read the planner config in {planner_dir}: {exc}") from None


def _connector_dirs(folder: Path) -> dict[str, Path]:
    """Where trained connectors are: a MetaCanvas model folder's components, or subfolders by name."""
    entry = inspect_folder(folder)
    if entry.kind == METACANVAS:
        from .checkpoints import component_path

        index = json.loads((folder / INDEX).read_text())
        found = {name: component_path(folder, index, name) for name in CONNECTOR_PARTS}
        return {name: path for name, path in found.items() if path is not None}
    if not folder.is_dir():
        raise ModelFolderError(f"The connectors folder {folder} does not exist.")
    return {name: folder / name for name in CONNECTOR_PARTS if (folder / name).is_dir()}


def plan_defaults(family: str, backbone_dir: Path, index: dict, adapter, factor: int):
    """PipelineDefaults for an assembly: the family's sampler, the base model's native size."""
    from .pipeline import PipelineDefaults

    d = dict(_FAMILY_DEFAULTS[family])
    d["shift"] = _scheduler_shift(backbone_dir, d["shift"])
    _, ph, pw = adapter.patch_size
    if family == "sana":
        side = int(adapter.transformer.config.sample_size) * factor * int(ph)
        d.update(width=side, height=side)
    elif family == "wan":
        ti2v = bool(index.get("expand_timesteps", False))
        # Wan2.2's TI2V-5B makes 24 fps clips, the 14B models (as Wan2.1) 16 fps: their model cards.
        d.update(width=1280 if ti2v else 832, height=704 if ti2v else 480, frames=121 if ti2v else 81,
                 fps=24.0 if ti2v else 16.0)
    d["tasks"] = PIPELINES[index["_class_name"]].tasks
    d["timestep_from"] = "scheduler"
    return PipelineDefaults(**d)


def canvas_spec_for(adapter, defaults, vae_factor: int, video: bool):
    """The learnable canvas grid: the token grid at the model's native size, capped at max_canvas_side a
    side as MetaCanvasPipeline.canvas_spec caps it (other sizes interpolate this grid)."""
    from .canvas import CanvasSpec

    _, ph, pw = adapter.patch_size
    rows, cols = defaults.height // (vae_factor * int(ph)), defaults.width // (vae_factor * int(pw))
    scale = min(1.0, defaults.max_canvas_side / max(rows, cols, 1))
    return CanvasSpec(defaults.keyframes if video else 1, max(1, round(rows * scale)), max(1, round(cols * scale)))


def assemble(planner_dir: str | Path, backbone_dir: str | Path, out_dir: str | Path, *,
             connectors_dir: str | Path | None = None, name: str | None = None, overwrite: bool = False,
             seed: int = 0, text_path: str | None = None) -> Path:
    """Write a MetaCanvas model folder at `out_dir` that points at `planner_dir` (Qwen2.5-VL) and the
    transformer, autoencoder and scheduler (and, on the native text path, the text encoders) of
    `backbone_dir` (a SANA, FLUX.1-Kontext or Wan pipeline folder)."""
    import torch

    from .backbones import build_adapter
    from .canvas import CanvasTokens
    from .checkpoints import _load_canvas_tokens

    planner_dir, backbone_dir = (_snapshot(Path(p).expanduser().resolve()) for p in (planner_dir, backbone_dir))
    out_dir = Path(out_dir).expanduser()
    inspect_folder(planner_dir).require(PLANNER)
    backbone = inspect_folder(backbone_dir).require(BACKBONE)
    _check_output(out_dir, overwrite, [planner_dir, backbone_dir] +
                  ([Path(connectors_dir).expanduser().resolve()] if connectors_dir is not None else []))
    family = backbone.family
    index = json.loads((backbone_dir / INDEX).read_text())
    width = _planner_width(planner_dir)
    transformer = _meta_transformer(family, backbone_dir / "transformer")
    vae_cfg = _read_config(backbone_dir / "vae", "vae")
    vae_class = str(vae_cfg.get("_class_name") or index["vae"][1])
    factor = _vae_spatial_factor(backbone_dir / "vae", vae_class)

    given = _connector_dirs(Path(connectors_dir).expanduser()) if connectors_dir is not None else {}
    if connectors_dir is not None and "canvas_connector" not in given and "context_connector" not in given:
        raise ModelFolderError(f"{connectors_dir} holds no canvas_connector/ or context_connector/: give a folder of "
                               f"trained connectors (or a MetaCanvas model folder).")

    # The adapter: its trained config when given (an ablation's switches travel with its weights), else fresh.
    adapter_cfg = {"family": family, "mllm_dim": width}
    if "adapter" in given:
        adapter_cfg = dict(_read_config(given["adapter"], "adapter"))
        if adapter_cfg.get("family") != family or adapter_cfg.get("mllm_dim") != width:
            raise ModelFolderError(f"The connectors in {connectors_dir} were trained for a {adapter_cfg.get('family')} "
                                   f"backbone and a planner of width {adapter_cfg.get('mllm_dim')}; these base "
                                   f"checkpoints are {family} and {width}.")
    adapter_cfg["canvas"] = True
    if text_path is not None and text_path not in TEXT_PATHS:
        raise ModelFolderError(f"The text path must be one of {', '.join(TEXT_PATHS)}, not {text_path!r}.")
    adapter_cfg["text_path"] = text_path or ("native" if not given else adapter_cfg.get("text_path", "mllm"))
    text_entries = {}
    if adapter_cfg["text_path"] == "native":
        for part in TEXT_PARTS[family]:
            entry = index.get(part)
            if not (isinstance(entry, list) and len(entry) == 2 and entry[1]) or not (backbone_dir / part).is_dir():
                raise ModelFolderError(f"{backbone_dir} has no {part}/: the native text path needs the backbone's "
                                       f"own {part.replace('_', ' ')} (or assemble with --text mllm).")
            text_entries[part] = {"path": str(backbone_dir / part), "class": entry[1]}
    torch.manual_seed(seed)
    try:
        adapter = build_adapter(adapter_cfg, transformer)
    except (TypeError, ValueError) as exc:
        raise ModelFolderError(f"The adapter config in {connectors_dir} does not fit this backbone: {exc}") from None
    defaults = plan_defaults(family, backbone_dir, index, adapter, factor)
    if "canvas_tokens" in given:
        canvas_tokens, temporal_stride = _load_canvas_tokens(given["canvas_tokens"], width)
    else:
        spec = canvas_spec_for(adapter, defaults, factor, video=family == "wan")
        canvas_tokens, temporal_stride = CanvasTokens(spec, width), 1
    for part, module in (("canvas_connector", adapter.canvas_connector), ("context_connector", adapter.context_connector)):
        if part in given and module is not None:
            _strict_load(module, _load_state_checked(given[part], part.replace("_", " ")), part.replace("_", " "),
                         given[part])
    if "adapter" in given:
        extra = {k: v for k, v in _load_state_checked(given["adapter"], "adapter").items() if k != "_empty"}
        _, unexpected = adapter.load_state_dict(extra, strict=False)
        if unexpected:
            raise ModelFolderError(f"The adapter weights in {given['adapter']} hold parts this adapter does not "
                                   f"have: {unexpected[:3]}.")

    # Written beside and swapped in when complete, as checkpoints.save_model does.
    tmp = out_dir.with_name(out_dir.name + ".saving")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    save_module(canvas_tokens, tmp / "canvas_tokens", canvas_tokens_config(canvas_tokens, temporal_stride))
    if adapter.canvas_connector is not None:  # none for MetaQuery-style queries (ablation queries_1d)
        save_module(adapter.canvas_connector, tmp / "canvas_connector", adapter.canvas_connector.config)
    save_module(adapter.context_connector, tmp / "context_connector", {"mllm_dim": width})
    from safetensors.torch import save_file

    own = {k: v.detach().contiguous().cpu() for k, v in adapter.state_dict().items()
           if not k.startswith(("transformer.", "canvas_connector.", "context_connector."))}
    (tmp / "adapter").mkdir()
    (tmp / "adapter" / "config.json").write_text(json.dumps(adapter.config, indent=2))
    save_file(own or {"_empty": torch.zeros(0)}, str(tmp / "adapter" / "model.safetensors"))
    model_index = {
        "_class_name": "MetaCanvasPipeline", "_format_version": 1, "name": name or out_dir.name, "family": family,
        "planner": {"path": str(planner_dir)},
        "transformer": {"path": str(backbone_dir / "transformer")},
        "vae": {"path": str(backbone_dir / "vae"), "class": vae_class},
        **text_entries,
        **_scheduler_entry(backbone_dir, index),
        "canvas_tokens": "canvas_tokens", "adapter": "adapter", "context_connector": "context_connector",
        **({"canvas_connector": "canvas_connector"} if adapter.canvas_connector is not None else {}),
        "defaults": defaults_to_dict(defaults),
        "assembled_from": {"planner": str(planner_dir), "backbone": str(backbone_dir),
                           "backbone_class": index["_class_name"],
                           "connectors": str(Path(connectors_dir).expanduser().resolve()) if connectors_dir else "fresh"},
    }
    if "planner_lora" in given:  # trained with the connectors: the planner's canvas-gated LoRA travels with them
        shutil.copytree(given["planner_lora"], tmp / "planner_lora")
        model_index["planner_lora"] = "planner_lora"
    (tmp / INDEX).write_text(json.dumps(model_index, indent=2))
    replace_folder(tmp, out_dir)
    return out_dir
