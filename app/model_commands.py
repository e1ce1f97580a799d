"""`python main.py models`: list model folders, or assemble one from base checkpoints (the parser is in
app/cli.py; the work is app/core/model_catalog.py and app/core/assembly.py)."""
from __future__ import annotations

import json
import os
import shlex
import subprocess
from pathlib import Path

def run(args, settings=None) -> int:
    from app.core.model_catalog import catalog_folders, format_table, scan

    words = list(args.folders or [])
    if words and words[0] == "assemble":
        return _assemble(args, words[1:])
    wrong = [flag for flag, value in (("--planner", args.planner), ("--backbone", args.backbone),
                                      ("--connectors", args.connectors), ("-o", args.output)) if value]
    if wrong:
        raise ValueError(f"{', '.join(wrong)} belong to `models assemble` (python main.py models assemble --planner "
                         f"QWEN_DIR --backbone PIPELINE_DIR -o OUT_DIR)")
    missing = [w for w in words if not Path(w).expanduser().exists()]
    if missing:
        raise FileNotFoundError(f"no such folder: {missing[0]}")
    print(format_table(scan(catalog_folders(settings, words))))
    return 0


def _assemble(args, extra: list[str]) -> int:
    from app.core.assembly import assemble
    from app.core.model_catalog import inspect_folder

    if extra:
        raise ValueError(f"`models assemble` takes its folders as --planner, --backbone and -o, not {extra[0]!r}")
    absent = [flag for flag, value in (("--planner", args.planner), ("--backbone", args.backbone),
                                       ("-o", args.output)) if not value]
    if absent:
        raise ValueError(f"`models assemble` needs {', '.join(absent)}: python main.py models assemble --planner "
                         f"QWEN_DIR --backbone PIPELINE_DIR [--connectors DIR] -o OUT_DIR")
    out = assemble(args.planner, args.backbone, args.output, connectors_dir=args.connectors, name=args.name,
                   overwrite=args.overwrite, text_path=getattr(args, "text", None))
    text_path = json.loads((out / "adapter" / "config.json").read_text()).get("text_path", "mllm")
    entry = inspect_folder(out)
    d = json.loads((out / "model_index.json").read_text())["defaults"]
    connectors = ("trained, from " + str(args.connectors)) if args.connectors else (
        "fresh: their outputs start at zero, so the canvas adds nothing until they are trained")
    text = ("the backbone's own text encoder (native), the canvas added on top" if text_path == "native" else
            "the planner's states through the context connector (mllm)"
            + ("" if args.connectors else ": untrained, so train the connectors before use"))
    print(f"wrote {out}: a MetaCanvas model ({entry.family}) that points at {Path(args.planner).resolve()} and "
          f"{Path(args.backbone).resolve()} (no weights copied; {entry.size_bytes / 1e6:.1f} MB of its own).")
    print(f"connectors: {connectors}.")
    print(f"text: {text}.")
    print(f"tasks: {', '.join(t.replace('_', ' ') for t in entry.tasks)}; native size {d['width']}x{d['height']}"
          + (f", {d['frames']} frames" if d.get("frames", 1) > 1 else ""))
    # Quoted for the shell it is pasted into (a folder "my models/x" split into two arguments).
    model = shlex.quote(str(out)) if os.name == "posix" else subprocess.list2cmdline([str(out)])
    print(f'run it: python main.py {"video" if entry.family == "wan" else "generate"} "..." -o OUT --model {model}')
    return 0
