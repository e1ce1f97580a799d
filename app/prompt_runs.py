"""A `generate --prompts` run's folder (GenEval's layout: OUT/NNNNN/metadata.jsonl + samples/): the prompt file's
records, the earlier run's prompt folders (refused, replaced with --overwrite, or gone on with --resume), each
prompt's folder made with its first sample, and OUT/run.json, what --resume holds the run to (its records,
options, seed and model weights). Stills (app/commands.py) and clips (app/commands_video.py) share it."""
from __future__ import annotations

import json
import re
from pathlib import Path


def read_prompt_records(path: str | Path) -> list[dict]:
    """The records of a GenEval-layout prompt file (one JSON object a line); a line that is not one, or a video
    record that is not of video_prompts' layout, is refused naming the file and the line."""
    from app.eval.video_eval import is_video_record
    from app.media.files import read_regular
    from app.shapes.video_prompts import check_video_record

    try:
        text = read_regular(path).decode("utf-8-sig")  # a byte-order mark, as some editors write, is not JSON
    except OSError as e:
        from app.media.files import describe_os_error

        raise ValueError(f"--prompts {path}: {describe_os_error(e)}") from None
    except UnicodeDecodeError:
        raise ValueError(f"--prompts {path} is not a text file of JSON lines") from None
    records = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
            if not isinstance(record, dict) or not isinstance(record.get("prompt"), str):
                raise ValueError('each line is a JSON object with a "prompt"')
            if is_video_record(record):
                check_video_record(record)
        except json.JSONDecodeError as e:
            raise ValueError(f"{path} line {number} is not JSON ({e.msg}, column {e.colno})") from None
        except ValueError as e:
            raise ValueError(f"{path} line {number}: {e}") from None
        except (TypeError, AttributeError):  # "include": null, [1], ...: not the layout
            raise ValueError(f'{path} line {number}: its "include" must list the prompt\'s objects as JSON objects') \
                from None
        records.append(record)
    if not records:
        raise ValueError(f"{path} holds no prompts (one JSON object a line)")
    return records


def earlier_prompt_folders(out: Path) -> list[Path]:
    """The prompt folders (NNNNN/ holding metadata.jsonl or samples/) an earlier `--prompts` run left in `out`."""
    if not out.is_dir():
        return []
    return sorted(p for p in out.iterdir() if p.is_dir() and re.fullmatch(r"\d{5}", p.name)
                  and ((p / "metadata.jsonl").exists() or (p / "samples").is_dir()))


def refuse_earlier_run(out: Path, overwrite: bool, resume: bool = False) -> None:
    """--prompts writes OUT/NNNNN/: an earlier run's prompt folders there would be scored with the new ones, so
    they are refused before anything runs, or with --overwrite removed (clear_earlier_run) once the model is
    loaded and the records checked, just before the first write; --resume goes on with them (start_prompt_run)."""
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {out} is a file; give a folder")
    if resume and overwrite:
        raise ValueError("--resume goes on with the earlier run in --out, --overwrite replaces it: give one")
    if resume:
        if not (out / RUN_FILE).is_file():
            raise ValueError(f"--out {out} holds no run to resume (no {RUN_FILE}): start one without --resume")
        return
    earlier = earlier_prompt_folders(out)
    if earlier and not overwrite:
        raise ValueError(f"--out {out} already holds {len(earlier)} prompt folders of an earlier run; choose another "
                         f"--out, add --resume to go on with it, or --overwrite to replace it")


RUN_FILE = "run.json"  # a --prompts run's settings, beside its prompt folders: what --resume goes on with


def prompt_folder(out: Path, i: int, meta: dict) -> Path:
    """OUT/NNNNN for prompt `i`, made with its metadata.jsonl as its first sample is written: a run stopped part
    way leaves no folder without samples (eval would count its prompt)."""
    from app.media.atomic import write_bytes_atomic

    folder = out / f"{i:05d}"
    if not (folder / "metadata.jsonl").exists():
        (folder / "samples").mkdir(parents=True, exist_ok=True)
        write_bytes_atomic(folder / "metadata.jsonl", (json.dumps(meta) + "\n").encode())
    return folder


def start_prompt_run(out: Path, metas: list[dict], settings: dict, resume: bool, suffix: str) -> tuple[int, set]:
    """Before a --prompts run's first sample: a new run clears the earlier one's prompt folders (refused before
    the model loaded unless --overwrite) and writes OUT/run.json; a resumed one checks that the records and
    settings are the earlier run's and takes its seed. Returns (the seed, the (prompt, sample) pairs already
    written, each a samples/NNNN`suffix` file)."""
    import hashlib

    from app.media.atomic import write_bytes_atomic

    records = hashlib.sha1(json.dumps(metas, sort_keys=True).encode()).hexdigest()
    if not resume:
        clear_earlier_run(out)
        out.mkdir(parents=True, exist_ok=True)
        write_bytes_atomic(out / RUN_FILE, json.dumps({"records": records, **settings}, indent=1).encode())
        return settings["seed"], set()
    try:
        earlier = json.loads((out / RUN_FILE).read_text())
    except (OSError, ValueError) as e:
        raise ValueError(f"{out / RUN_FILE} cannot be read ({e}): start the run again with --overwrite") from None
    if earlier.get("records") != records:
        raise ValueError(f"--out {out} holds a run of other prompts: resume it with the prompts file it was made from")
    if earlier.get("weights") != settings.get("weights"):
        raise ValueError(f"--out {out} holds a run of other weights (the model was trained on, or another folder "
                         f"given): resume it with the model it was made with, or start again with --overwrite")
    differ = [k for k, v in settings.items() if k not in ("seed", "weights") and earlier.get(k) != v]
    if differ:
        raise ValueError(f"--resume with other options than the earlier run's ({', '.join(differ)}: "
                         f"{', '.join(f'{earlier.get(k)!r}' for k in differ)}): give the same")
    done = {(i, j) for i in range(len(metas)) for j in range(settings["n"])
            if (out / f"{i:05d}" / "samples" / f"{j:04d}{suffix}").is_file()}
    return int(earlier["seed"]), done


def clear_earlier_run(out: Path) -> None:
    """Those folders alone: anything else in OUT stays."""
    import shutil

    for folder in earlier_prompt_folders(out):
        shutil.rmtree(folder)


def weights_fingerprint(folder) -> str:
    """Which weights a model folder holds, cheaply: each .safetensors file's path, size and its first and last
    64 KiB, and the folder's model_index.json (a retrained checkpoint of the same name differs; a multi-GB base
    checkpoint is not read whole). What `--resume` holds a run's model to."""
    import hashlib

    root, digest = Path(folder), hashlib.sha1()
    for f in sorted(list(root.rglob("*.safetensors")) + list(root.glob("model_index.json"))):
        size = f.stat().st_size
        digest.update(f"{f.relative_to(root)}:{size}".encode())
        with open(f, "rb") as handle:
            digest.update(handle.read(65536))
            if size > 65536:
                handle.seek(max(65536, size - 65536))
                digest.update(handle.read(65536))
    return digest.hexdigest()
