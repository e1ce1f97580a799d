"""What made a picture, written into the PNG itself and read back on import.

Like AUTOMATIC1111 and ComfyUI, a generated PNG carries its recipe in text chunks, so the picture
alone is enough to make it again:

- `metacanvas`: JSON {"format": 1, "app": ..., "model": name, "dtype": "float32", "device": "cpu",
  "sampler": "dpm++2m", "request": GenerationRequest.to_dict()} (media appear as their shapes);
- `parameters`: the same for people and other tools, A1111's layout: the prompt on the first line,
  then "Steps: 12, Sampler: DPM++ 2M, CFG scale: 2.0, Seed: 1, Size: 64x64, Model: ..., ...".

PIL writes a tEXt chunk when the text is Latin-1 and an iTXt (UTF-8) chunk otherwise; both are
read the same way. Reading is for untrusted files: only chunks before the pixel data are looked at
(no decoding), the text is capped at MAX_TEXT characters, a JSON error or a wrong type means "no
recipe", and only known request fields of the right types are kept. JSON only, never pickle.
"""
from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

import numpy as np

from . import atomic
from .schema import TASKS  # the one list of the task names a file this app writes may hold

KEY = "metacanvas"
PARAMETERS_KEY = "parameters"
FORMAT = 1
MAX_TEXT = 64 * 1024  # characters: a request is a few hundred; anything far larger is not ours
MAX_INSTRUCTION = 4000
_SAMPLERS = {"euler": "Euler", "dpm++2m": "DPM++ 2M"}


def generation_info(request, *, model: str, dtype: str, device: str | None = None,
                    sampler: str | None = None) -> dict[str, Any]:
    """The JSON stored under KEY for a result of `request` (a GenerationRequest)."""
    info = {"format": FORMAT, "app": "MetaCanvas Studio", "model": str(model), "dtype": str(dtype),
            "request": request.to_dict()}
    if device:
        info["device"] = str(device)
    if sampler:
        info["sampler"] = str(sampler)
    return info


def pipeline_info(pipe, request) -> dict[str, Any]:
    """generation_info for a result `pipe` (a loaded MetaCanvasPipeline) made of `request`: what the CLI and the
    studio write into a generated PNG."""
    return generation_info(request, model=pipe.name, dtype=str(pipe.dtype).removeprefix("torch."),
                           device=pipe.device.type, sampler=pipe.defaults.solver)


def parameters_text(info: dict[str, Any]) -> str:
    """A1111's human-readable layout of `info`: prompt, newline, 'Key: value' pairs."""
    r = info["request"]
    pairs = [("Steps", r["steps"])]
    if info.get("sampler"):
        pairs.append(("Sampler", _SAMPLERS.get(info["sampler"], info["sampler"])))
    pairs += [("CFG scale", r["guidance"]), ("Seed", r["seed"]), ("Size", f"{r['width']}x{r['height']}"),
              ("Model", info["model"]), ("Dtype", info["dtype"]), ("Task", r["task"].replace("_", " "))]
    if not r.get("use_canvas", True):
        pairs.append(("Canvas", "off"))
    return f"{r['instruction']}\n" + ", ".join(f"{k}: {v}" for k, v in pairs)


def write_png(image: np.ndarray, path: str | os.PathLike, info: dict[str, Any] | None = None,
              overwrite: bool = True) -> Path:
    """Write uint8 [H, W, 3] `image` as a PNG at `path`, with `info` in its text chunks, atomically:
    a hidden temporary file beside it is moved into place only once complete, so a full disk or a
    read-only folder never leaves a 0-byte or truncated PNG, and an existing file stays as it was
    unless the write succeeds (then it is replaced, as `-o` asks; never with `overwrite=False`). An OSError becomes an
    ExportError saying why, in one line."""
    from PIL import Image
    from PIL.PngImagePlugin import PngInfo

    from .export import write_failed

    path = Path(path)
    if path.is_dir():
        from .errors import ExportError

        raise ExportError(f"'{path}' is a folder; give a file name such as {path / 'out.png'}")
    meta = None
    if info is not None:
        # A recipe read back (read_generation_info keeps only what it checked) is written whole again: an exported
        # copy of a generated still carries it as the still does.
        info = {"format": FORMAT, "app": "MetaCanvas Studio", **info}
        meta = PngInfo()
        meta.add_text(KEY, json.dumps(info, ensure_ascii=False))
        meta.add_text(PARAMETERS_KEY, parameters_text(info))
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = atomic.temp_path_for(path, ".png")
        with open(tmp, "xb") as f:
            Image.fromarray(np.ascontiguousarray(image), "RGB").save(f, format="PNG", pnginfo=meta)
            f.flush()
            os.fsync(f.fileno())
        atomic.commit_temp(tmp, path, overwrite=overwrite)
    except OSError as e:
        if tmp is not None:
            atomic.remove_quietly(tmp)
        raise write_failed(path, e) from None
    except BaseException:
        if tmp is not None:
            atomic.remove_quietly(tmp)
        raise
    return path


def read_generation_info(path: str | os.PathLike) -> dict[str, Any] | None:
    """The checked recipe stored in a PNG by `write_png`: {"request": {...}, "model": ..., "dtype": ...},
    or None when the file has none, or none that can be trusted. Never raises for a bad file."""
    from PIL import Image

    from .files import stat_regular

    try:
        stat_regular(path)  # a named pipe or device would block the open
        with Image.open(path) as im:
            if im.format != "PNG":
                return None
            text = im.info.get(KEY)  # chunks before the pixel data; nothing is decoded
    except Exception:  # noqa: BLE001 - an unreadable file simply has no recipe
        return None
    if not isinstance(text, str) or len(text) > MAX_TEXT:
        return None
    try:
        data = json.loads(text)
    except (ValueError, RecursionError):
        return None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        return None
    request = clean_request(data.get("request"))
    if request is None:
        return None
    out: dict[str, Any] = {"request": request}
    for key in ("model", "dtype", "device", "sampler"):
        if isinstance(data.get(key), str) and len(data[key]) <= 200:
            out[key] = data[key]
    return out


def clean_request(d: Any) -> dict[str, Any] | None:
    """The request fields a stored recipe may set, type-checked (None if the core is missing or wrong).
    Media shapes and plan edits are left out: the file itself is the result, not its inputs."""
    if not isinstance(d, dict):
        return None
    task, instruction = d.get("task"), d.get("instruction")
    if task not in TASKS or not isinstance(instruction, str) or len(instruction) > MAX_INSTRUCTION:
        return None
    out: dict[str, Any] = {"task": task, "instruction": instruction}
    for key, lo, hi in (("width", 1, 1 << 16), ("height", 1, 1 << 16), ("frames", 1, 1 << 16),
                        ("steps", 1, 10_000), ("seed", 0, (1 << 63) - 1)):
        v = d.get(key)
        if isinstance(v, int) and not isinstance(v, bool) and lo <= v <= hi:
            out[key] = v
    g = d.get("guidance")
    if isinstance(g, (int, float)) and not isinstance(g, bool) and math.isfinite(g) and 0 <= g <= 100:
        out["guidance"] = float(g)
    if isinstance(d.get("use_canvas"), bool):
        out["use_canvas"] = d["use_canvas"]
    return out
