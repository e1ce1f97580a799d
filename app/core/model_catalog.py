"""What a folder on disk is, without loading it: a MetaCanvas model, a planner (a transformers Qwen2.5-VL
folder) or a backbone (a diffusers SANA, FLUX.1-Kontext or Wan2.2 pipeline folder), what it can do, and
what it lacks.

Only files are read: JSON configs and the headers of safetensors files (for the dtype). Nothing is
imported from a folder, nothing reaches a hub, no weights are loaded, so listing a folder of 60 GB of
checkpoints is instant. Pickled weights (.bin, .pt, .ckpt) are refused, as checkpoints.py refuses them,
because a pickle can run code when it is opened.

The layouts recognised are the ones the hub ships:
- Qwen2.5-VL (transformers): config.json with model_type "qwen2_5_vl", model.safetensors or shards listed
  in model.safetensors.index.json, tokenizer files, preprocessor_config.json, a chat template.
- diffusers pipelines: model_index.json whose _class_name is one of PIPELINES, with one subfolder per
  component it names (transformer/, vae/, text_encoder/, tokenizer/, scheduler/, ...).
"""
from __future__ import annotations

import json
import os
import struct
from dataclasses import dataclass, field
from pathlib import Path

from .checkpoints import (INDEX, PICKLE_SUFFIXES, ModelFolderError, component_path, refuse_custom_code,
                          validate_model_folder)

METACANVAS = "MetaCanvas model"
PLANNER = "planner"
BACKBONE = "backbone pipeline"
PLANNER_FAMILY = "qwen2.5-vl"

IMAGE_TASKS = ("text_to_image", "image_edit")
VIDEO_TASKS = ("text_to_video", "image_to_video", "video_edit", "reference_to_video")


@dataclass(frozen=True)
class PipelineKind:
    family: str
    transformer_class: str
    parts: tuple[str, ...]  # components a MetaCanvas assembly of it needs (the text parts: the native text path)
    tasks: tuple[str, ...]  # what an assembly of it does


PIPELINES = {
    # SANA makes images from text; editing is not something a pretrained SANA knows.
    "SanaPipeline": PipelineKind("sana", "SanaTransformer2DModel",
                                 ("transformer", "vae", "text_encoder", "tokenizer", "scheduler"), ("text_to_image",)),
    "FluxKontextPipeline": PipelineKind("flux", "FluxTransformer2DModel",
                                        ("transformer", "vae", "text_encoder", "tokenizer", "text_encoder_2",
                                         "tokenizer_2", "scheduler"), IMAGE_TASKS),
    # Wan2.2-TI2V-5B is a WanPipeline; the adapter gives image-to-video its clean first frame the TI2V way.
    "WanPipeline": PipelineKind("wan", "WanTransformer3DModel",
                                ("transformer", "vae", "text_encoder", "tokenizer", "scheduler"), VIDEO_TASKS),
    "WanImageToVideoPipeline": PipelineKind("wan", "WanTransformer3DModel",
                                            ("transformer", "vae", "text_encoder", "tokenizer", "scheduler"),
                                            VIDEO_TASKS),
}
# Components that hold weights (the rest are tokenizers, schedulers, processors).
_WEIGHTED_PARTS = ("transformer", "transformer_2", "vae", "text_encoder", "text_encoder_2", "image_encoder")
_TOKENIZER_FILES = ("tokenizer.json", "vocab.json", "spiece.model", "tokenizer.model", "vocab.txt")

TASK_SHORT = {"text_to_image": "t2i", "image_edit": "edit", "text_to_video": "t2v", "image_to_video": "i2v",
              "video_edit": "v-edit", "reference_to_video": "ref-video"}

_DTYPES = {"F64": "float64", "F32": "float32", "F16": "float16", "BF16": "bfloat16", "F8_E4M3": "float8_e4m3",
           "F8_E5M2": "float8_e5m2", "I64": "int64", "I32": "int32", "I16": "int16", "I8": "int8", "U8": "uint8",
           "BOOL": "bool"}


@dataclass
class CatalogEntry:
    """One folder as the catalogue sees it. `missing` names absent parts; `problems` are refusals (pickled
    weights, an unreadable config, an unsupported class); `notes` are facts worth knowing."""

    path: Path
    kind: str | None = None  # METACANVAS, PLANNER, BACKBONE, or None (not a model folder this version reads)
    family: str | None = None  # sana, flux, wan, qwen2.5-vl
    tasks: tuple[str, ...] = ()
    size_bytes: int = 0
    dtype: str | None = None
    missing: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    pipeline_class: str | None = None

    @property
    def name(self) -> str:
        # A hub cache snapshot (models--Qwen--Qwen2.5-VL-7B-Instruct/snapshots/<hash>) is named as on the hub.
        if self.path.parent.name == "snapshots" and self.path.parent.parent.name.startswith("models--"):
            return self.path.parent.parent.name.removeprefix("models--").replace("--", "/")
        return self.path.name

    @property
    def usable(self) -> bool:
        return self.kind is not None and not self.missing and not self.problems

    def why_not(self) -> str:
        """One line saying why this folder cannot be used ("" when it can)."""
        if self.usable:
            return ""
        if self.problems:
            return self.problems[0]
        if self.missing:
            return f"{self.path} lacks {', '.join(self.missing)}."
        return f"{self.path} is not a model folder this version reads."

    def require(self, kind: str) -> "CatalogEntry":
        """This entry when it is a usable folder of `kind`; else ModelFolderError naming what is wrong."""
        if self.kind is not None and self.kind != kind:
            raise ModelFolderError(f"{self.path} is a {self.kind}{f' ({self.family})' if self.family else ''}, "
                                   f"not a {kind}.")
        if self.kind is None:
            detail = self.problems[0] if self.problems else f"{self.path} is not a model folder this version reads."
            raise ModelFolderError(f"{detail} A {kind} is expected: {_EXPECTED[kind]}")
        if not self.usable:
            raise ModelFolderError(self.why_not())
        return self


_EXPECTED = {
    PLANNER: "a transformers Qwen2.5-VL folder (config.json with model_type qwen2_5_vl, *.safetensors, tokenizer "
             "files, preprocessor_config.json).",
    BACKBONE: "a diffusers pipeline folder (model_index.json of a " + ", ".join(PIPELINES) + ").",
    METACANVAS: "a MetaCanvas model folder (model_index.json of a MetaCanvasPipeline).",
}


# ---------------------------------------------------------------------------------------------------
# Files

def folder_size(folder: Path) -> int:
    """Bytes of the files under `folder`. A file that is a link counts (the hub's cache keeps every file of a
    snapshot as a link to a blob); linked folders are not entered, and a MetaCanvas model's {"path": ...}
    parts are not its own."""
    total = 0
    for root, _, files in os.walk(folder, followlinks=False):
        for name in files:
            try:
                total += os.stat(os.path.join(root, name)).st_size
            except OSError:
                pass
    return total


def hub_cache_snapshot(folder: Path) -> Path | None:
    """The snapshot a hub cache entry (models--ORG--NAME/) holds: the one refs/main names, else the only one."""
    snapshots = folder / "snapshots"
    if not folder.name.startswith("models--") or not snapshots.is_dir():
        return None
    try:
        ref = (folder / "refs" / "main").read_text().strip()
        if ref and (snapshots / ref).is_dir():
            return snapshots / ref
    except OSError:
        pass
    found = sorted(p for p in snapshots.iterdir() if p.is_dir())
    return found[0] if len(found) == 1 else None


def safetensors_dtypes(files: list[Path]) -> dict[str, int]:
    """Bytes per dtype over the tensors of these safetensors files, read from their headers only."""
    out: dict[str, int] = {}
    for f in files:
        try:
            with open(f, "rb") as fh:
                (n,) = struct.unpack("<Q", fh.read(8))
                if n > 100_000_000:  # not a safetensors header: a damaged file
                    continue
                header = json.loads(fh.read(n))
        except (OSError, ValueError, struct.error):
            continue
        for key, info in header.items():
            if key == "__metadata__" or not isinstance(info, dict):
                continue
            try:
                start, end = (int(v) for v in info.get("data_offsets", (0, 0)))
            except (TypeError, ValueError):  # a damaged header: damaged_safetensors says so
                continue
            dtype = _DTYPES.get(str(info.get("dtype")), str(info.get("dtype")).lower())
            out[dtype] = out.get(dtype, 0) + end - start
    return out


def damaged_safetensors(files: list[Path], what: str = "") -> list[str]:
    """One line for each safetensors file shorter than its own header says (a copy or download cut short) or
    whose header cannot be read. Only the headers are read: a folder of 30 GB checks in milliseconds, where a
    load would fail minutes later with "Unable to load weights". `what` names the part ("the transformer's")."""
    said = []
    what = f"{what} weights file " if what else ""
    for f in files:
        try:
            size = f.stat().st_size
            with open(f, "rb") as fh:
                (n,) = struct.unpack("<Q", fh.read(8))
                header = json.loads(fh.read(n)) if 8 + n <= size and n <= 100_000_000 else None
        except (OSError, ValueError, struct.error):
            header = None
        try:
            ends = [int(info["data_offsets"][1]) for key, info in header.items()
                    if key != "__metadata__" and isinstance(info, dict) and len(info.get("data_offsets", ())) == 2]
        except (TypeError, ValueError, AttributeError):  # offsets that are not numbers: a damaged header
            header = None
        if not isinstance(header, dict):
            said.append(f"{what}{f} is damaged or not a safetensors file (its header cannot be read): copy it again.")
            continue
        want = 8 + n + max(ends, default=0)
        if size < want:
            said.append(f"{what}{f} is incomplete: {human_size(size)} of the {human_size(want)} its header names (a copy "
                        f"cut short?): copy it again.")
    return said


def main_dtype(files: list[Path]) -> str | None:
    """The dtype that holds most of the bytes of these files (None when there are none)."""
    counts = safetensors_dtypes(files)
    return max(counts, key=counts.get) if counts else None


def _pickles(folder: Path) -> list[Path]:
    try:
        return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in PICKLE_SUFFIXES)
    except OSError:
        return []


def _pickle_refusal(folder: Path, what: str, pickled: list[Path]) -> str:
    names = ", ".join(p.name for p in pickled[:3])
    return (f"The {what} folder {folder} holds pickled weights only ({names}): refused, because a pickle can run "
            f"code when it is opened. Convert them once in a trusted environment (save_pretrained(..., "
            f"safe_serialization=True)) and list the converted folder.")


def _read_json(path: Path) -> dict | None:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


# ---------------------------------------------------------------------------------------------------
# The three kinds

def _inspect_planner(folder: Path, config: dict, entry: CatalogEntry) -> None:
    entry.kind, entry.family = PLANNER, PLANNER_FAMILY
    entry.tasks = IMAGE_TASKS + VIDEO_TASKS  # the planner plans every task; the backbone decides which run
    safe = sorted(folder.glob("*.safetensors"))
    index = folder / "model.safetensors.index.json"
    if index.is_file():
        shards = _read_json(index)
        if shards is None or not isinstance(shards.get("weight_map"), dict):
            entry.problems.append(f"{index} cannot be read: the list of weight shards is damaged.")
        else:
            wanted = sorted(set(shards["weight_map"].values()))
            absent = [name for name in wanted if not (folder / name).is_file()]
            if absent:
                entry.missing.append(f"weight shard {absent[0]}" + (f" and {len(absent) - 1} more" if len(absent) > 1 else ""))
    elif not safe:
        pickled = _pickles(folder)
        if pickled:
            entry.problems.append(_pickle_refusal(folder, "planner", pickled))
        else:
            entry.missing.append("model.safetensors")
    if not (folder / "tokenizer_config.json").is_file():
        entry.missing.append("tokenizer_config.json")
    if not ((folder / "tokenizer.json").is_file() or
            ((folder / "vocab.json").is_file() and (folder / "merges.txt").is_file())):
        entry.missing.append("tokenizer.json")
    if not (folder / "preprocessor_config.json").is_file():
        entry.missing.append("preprocessor_config.json")
    tok_cfg = _read_json(folder / "tokenizer_config.json") or {}
    if not ((folder / "chat_template.json").is_file() or (folder / "chat_template.jinja").is_file()
            or tok_cfg.get("chat_template")):
        entry.missing.append("chat_template.json")
    entry.dtype = main_dtype(safe) or config.get("torch_dtype") or config.get("dtype")
    entry.problems += damaged_safetensors(safe)


def _inspect_pipeline(folder: Path, index: dict, entry: CatalogEntry) -> None:
    cls = str(index.get("_class_name"))
    entry.pipeline_class = cls
    kind = PIPELINES.get(cls)
    if kind is None:
        entry.problems.append(f"{folder / INDEX} describes a {cls!r}; the backbones this version reads are "
                              f"{', '.join(PIPELINES)}.")
        return
    entry.kind, entry.family, entry.tasks = BACKBONE, kind.family, kind.tasks
    named = [name for name, value in index.items() if not name.startswith("_") and isinstance(value, list)
             and len(value) == 2 and value[0] is not None]
    for part in kind.parts:
        if part not in named:
            entry.missing.append(f"{part}/")
    for part in named:
        sub = folder / part
        if not sub.is_dir():
            entry.missing.append(f"{part}/")
            continue
        if part in _WEIGHTED_PARTS:
            if not (sub / "config.json").is_file():
                entry.missing.append(f"{part}/config.json")
            if not sorted(sub.glob("*.safetensors")):
                pickled = _pickles(sub)
                if pickled:
                    entry.problems.append(_pickle_refusal(sub, part.replace("_", " "), pickled))
                else:
                    entry.missing.append(f"{part}/*.safetensors")
            else:
                shard_index = next(iter(sub.glob("*.safetensors.index.json")), None)
                wmap = (_read_json(shard_index) or {}).get("weight_map") if shard_index else None
                if isinstance(wmap, dict):
                    absent = sorted({n for n in wmap.values() if not (sub / n).is_file()})
                    if absent:
                        entry.missing.append(f"{part}/{absent[0]}")
        elif part.startswith("tokenizer"):
            if not any((sub / f).is_file() for f in _TOKENIZER_FILES):
                entry.missing.append(f"{part}/tokenizer.json")
        elif part == "scheduler" and not (sub / "scheduler_config.json").is_file():
            entry.missing.append("scheduler/scheduler_config.json")
    entry.problems += damaged_safetensors([f for part in named if part in _WEIGHTED_PARTS and (folder / part).is_dir()
                                           for f in sorted((folder / part).glob("*.safetensors"))])
    if "transformer" in named and (folder / "transformer").is_dir():
        tcfg = _read_json(folder / "transformer" / "config.json") or {}
        if tcfg and tcfg.get("_class_name") not in (None, kind.transformer_class):
            entry.problems.append(f"{folder / 'transformer'} holds a {tcfg.get('_class_name')}, not the "
                                  f"{kind.transformer_class} a {cls} has.")
        entry.dtype = main_dtype(sorted((folder / "transformer").glob("*.safetensors")))
        vcfg = _read_json(folder / "vae" / "config.json") or {}
        latent = vcfg.get("latent_channels") or vcfg.get("z_dim")
        takes = tcfg.get("in_channels")
        per_token = 4 if kind.family == "flux" else 1  # FLUX packs 2 x 2 latents into a token
        if isinstance(latent, int) and isinstance(takes, int) and takes != latent * per_token:
            # Wan2.1's image-to-video transformer takes 36 channels: the 16 latents plus a mask and the image
            # as extra channels, a conditioning this version does not build (Wan2.2-TI2V gives frames clean).
            entry.problems.append(f"{folder / 'transformer'} takes {takes} input channels where the autoencoder gives "
                                  f"{latent}{' (x 4 packed)' if per_token == 4 else ''}: its conditioning adds "
                                  f"channels this version does not build (Wan2.1 image-to-video does); use "
                                  f"Wan2.2-TI2V-5B or a text-to-video pipeline.")
    if "transformer_2" in named:
        entry.problems.append(f"{folder} is a two-expert Wan2.2 model (transformer_2, as the A14B models): not "
                              f"supported yet; use Wan2.2-TI2V-5B (one transformer).")
    if kind.family == "wan" and not index.get("expand_timesteps", False):
        entry.notes.append("first frames are given the Wan2.2-TI2V way (clean, timestep 0): train the connectors "
                           "for image-to-video")


def _inspect_metacanvas(folder: Path, entry: CatalogEntry) -> None:
    entry.kind = METACANVAS
    try:
        index = validate_model_folder(folder)
    except ModelFolderError as exc:
        entry.problems.append(str(exc))
        index = _read_json(folder / INDEX) or {}
    entry.family = index.get("family") or "sana"
    defaults = index.get("defaults") if isinstance(index.get("defaults"), dict) else {}
    entry.tasks = tuple(defaults.get("tasks", IMAGE_TASKS))
    files = []
    for name in ("planner", "transformer", "canvas_connector"):
        try:
            where = component_path(folder, index, name)
        except ModelFolderError:
            where = None
        if where is not None and where.is_dir():
            files += sorted(where.glob("*.safetensors"))
            if not _is_inside(where, folder):
                entry.notes.append(f"{name} at {where}")
    entry.dtype = main_dtype(files)
    own = sorted(f for f in folder.rglob("*.safetensors") if f.is_file())  # its connectors, drafters, weights
    entry.problems += damaged_safetensors(sorted(set(files) | set(own)))
    adapter_cfg = _read_json(folder / "adapter" / "config.json") or {}
    if adapter_cfg.get("text_path") == "native":
        entry.notes.append("text: the backbone's own encoder, the canvas on top (native)")
    elif entry.family in ("flux", "wan") and index.get("assembled_from"):
        entry.notes.append("text: the MLLM through the context connector (train it first)")
    if "canvas_connector" not in index:
        entry.notes.append("text-only (no canvas)")
    elif (index.get("assembled_from") or {}).get("connectors") == "fresh":
        entry.notes.append("connectors untrained (canvas adds nothing yet)")


def _is_inside(path: Path, folder: Path) -> bool:
    try:
        path.resolve().relative_to(folder.resolve())
        return True
    except ValueError:
        return False


def _refuse_custom_code(entry: CatalogEntry, folders: list[Path]) -> None:
    """checkpoints.refuse_custom_code on each folder that is there, said as the entry's problem."""
    for sub in folders:
        if sub.is_dir():
            try:
                refuse_custom_code(sub, sub.name.replace("_", " ") if sub != entry.path else "model")
            except ModelFolderError as exc:
                entry.problems.append(str(exc))
                return


def inspect_folder(folder: str | Path) -> CatalogEntry:
    """What `folder` is; never raises for what is (or is not) in it."""
    folder = Path(folder).expanduser()
    entry = CatalogEntry(path=folder)
    if not folder.is_dir():
        entry.problems.append(f"{folder} does not exist." if not folder.exists() else f"{folder} is a file, not a folder.")
        return entry
    if _looks_like_model(folder):  # a folder that is none is not walked (it may hold a whole disk's files)
        entry.size_bytes = folder_size(folder)
    index_path = folder / INDEX
    if index_path.is_file():
        index = _read_json(index_path)
        if index is None:
            entry.problems.append(f"{index_path} is not valid JSON (or not an object).")
        elif index.get("_class_name") == "MetaCanvasPipeline":
            _inspect_metacanvas(folder, entry)
        else:
            _inspect_pipeline(folder, index, entry)
            _refuse_custom_code(entry, [folder / name for name, value in index.items()
                                        if not name.startswith("_") and isinstance(value, list)])
        return entry
    config_path = folder / "config.json"
    if config_path.is_file():
        config = _read_json(config_path)
        if config is None:
            entry.problems.append(f"{config_path} is not valid JSON (or not an object).")
        elif config.get("model_type") == "qwen2_5_vl":
            _inspect_planner(folder, config, entry)
            _refuse_custom_code(entry, [folder])
        else:
            entry.problems.append(f"{folder} is a transformers folder of model_type {config.get('model_type')!r}; "
                                  f"the planner must be a Qwen2.5-VL (model_type qwen2_5_vl).")
        return entry
    pickled = _pickles(folder)
    if pickled:
        entry.problems.append(_pickle_refusal(folder, "model", pickled))
    else:
        entry.problems.append(f"{folder} has neither a model_index.json (a diffusers pipeline or a MetaCanvas model) "
                              f"nor a config.json (a transformers model).")
    return entry


def catalog_folders(settings=None, given=()) -> list[str]:
    """Where the catalogue looks: models/ (beside the embedded defaults), the settings' model folders (still
    and video), then the folders given."""
    from app.settings import DEFAULT_MODEL

    folders = [str(DEFAULT_MODEL.parent)]
    for key in ("model_folders", "video_model_folders"):
        folders += [str(f) for f in (getattr(settings, key, None) or [])]
    return folders + [str(f) for f in given]


def _looks_like_model(folder: Path) -> bool:
    return (folder / INDEX).is_file() or (folder / "config.json").is_file() or bool(_pickles(folder))


def scan(folders: list[str | Path]) -> list[CatalogEntry]:
    """Entries for each folder: a model folder itself, else the model folders directly inside it (a folder of
    checkpoints); one entry saying what is wrong when it is neither. Each folder is listed once."""
    seen: set[str] = set()
    out: list[CatalogEntry] = []

    def add(path: Path) -> None:
        key = os.path.realpath(path)
        if key not in seen:
            seen.add(key)
            out.append(inspect_folder(path))

    for raw in folders:
        folder = Path(raw).expanduser()
        folder = hub_cache_snapshot(folder) or folder
        if not folder.is_dir() or _looks_like_model(folder):
            add(folder)
            continue
        candidates = [hub_cache_snapshot(p) or p for p in sorted(folder.iterdir()) if p.is_dir()
                      and not p.name.startswith(".") and not p.name.endswith((".saving", ".old"))]
        inside = [p for p in candidates if _looks_like_model(p)]
        if inside:
            for p in inside:
                add(p)
        else:
            add(folder)
    return out


# ---------------------------------------------------------------------------------------------------
# The table

def human_size(n: int) -> str:
    size = float(n)
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if size < 1000 or unit == "TB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    return f"{n} B"


def format_table(entries: list[CatalogEntry]) -> str:
    """The entries as an aligned text table, then one line per entry that cannot be used saying why."""
    head = ("NAME", "KIND", "FAMILY", "TASKS", "SIZE", "DTYPE", "MISSING")
    rows = []
    for e in entries:
        missing = ", ".join(e.missing) if e.missing else ("refused" if e.problems else "-")
        tasks = "all six" if set(e.tasks) == set(IMAGE_TASKS + VIDEO_TASKS) else " ".join(TASK_SHORT.get(t, t) for t in e.tasks)
        rows.append((e.name, e.kind or "?", e.family or "-", tasks or "-",
                     human_size(e.size_bytes), e.dtype or "-", missing))
    widths = [max(len(r[i]) for r in [head] + rows) for i in range(len(head) - 1)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r[:-1], widths)) + "  " + r[-1] for r in [head] + rows]
    details = []
    for e in entries:
        if e.problems:
            details += [f"{e.name}: {p}" for p in e.problems]
        if e.missing and e.kind is not None:
            details.append(f"{e.name}: {e.path} lacks {', '.join(e.missing)}.")
        if e.notes:
            details.append(f"{e.name}: " + "; ".join(e.notes))
    return "\n".join(lines + ([""] + details if details else []))
