"""The user's training data: image-caption pairs, edit triplets or captioned clips, from a folder or a JSONL file.

Two layouts are read:
- a folder (searched with its subfolders) of media files, each with a caption beside it under the same name:
  `cat.png` + `cat.txt` (image-caption pairs, kohya/diffusers style), or `walk.mp4` + `walk.txt` (clips);
- a JSONL file, one record a line, paths relative to the file's folder (or absolute):
    {"image": "a.png", "caption": "..."}                               text-to-image
    {"source": "a.png", "instruction": "...", "target": "b.png"}      image editing
    {"video": "a.mp4", "caption": "..."}                               text-to-video
One data set is one kind: a batch is then of one task (an edit's reference, a clip's frames), and a model is
asked one thing at a time. Mixed kinds are refused with the count of each.

Everything is checked before training starts: missing files, captions and JSON lines, and each medium's header
(PIL and PyAV through app/media, so a text file named .png, an empty file or a video too short for the run is
named with its record). A file damaged past its header is named when it is read.

Media are cropped to the frame's aspect at the centre and resized to the training size here (the codecs would
otherwise stretch them); clips give their first `frames` frames.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from app.core.request import Task
from app.media.errors import MediaError
from app.media.files import FileTooLarge, NotRegularFile, read_regular
from app.media.probe import IMAGE_EXTENSIONS, VIDEO_EXTENSIONS, image_size, load_image, probe_video, read_video_frames

KIND_TASKS = {"image": Task.TEXT_TO_IMAGE, "edit": Task.IMAGE_EDIT, "video": Task.TEXT_TO_VIDEO}
# The keys of each JSONL record kind (the text key second).
RECORD_KEYS = {"image": ("image", "caption"), "edit": ("source", "instruction", "target"), "video": ("video", "caption")}
MAX_CAPTION_BYTES = 64 * 1024  # a caption file larger than this is not a caption


class UserDataError(ValueError):
    """The data cannot be used as given; the message names the file or line and says what to do."""


@dataclass(frozen=True)
class Record:
    kind: str  # "image", "edit" or "video" (KIND_TASKS)
    text: str  # the caption, or the edit's instruction
    target: Path  # the image, the edit's target image, or the clip
    source: Path | None = None  # an edit's source image
    where: str = ""  # for messages: "line 3 of pairs.jsonl" or "cat.txt"


def read_records(path: str | Path) -> list[Record]:
    """The records of a data folder or JSONL file, checked (files present, captions non-empty, one kind)."""
    path = Path(path).expanduser()
    if not path.exists():
        raise UserDataError(f"The training data {path} does not exist: give a folder of images (or clips) with "
                            f"same-name .txt captions, or a .jsonl file of records.")
    records = _folder_records(path) if path.is_dir() else _jsonl_records(path)
    if not records:
        raise UserDataError(f"{path} holds no training records: a folder needs media files with same-name .txt "
                            f"captions; a .jsonl file one record a line.")
    kinds = {k: sum(r.kind == k for r in records) for k in KIND_TASKS}
    if len([n for n in kinds.values() if n]) > 1:
        counts = ", ".join(f"{n} {k}" for k, n in kinds.items() if n)
        raise UserDataError(f"{path} mixes record kinds ({counts}); a run trains one kind: give each kind its own "
                            f"data file and recipe.")
    return records


def _folder_records(folder: Path) -> list[Record]:
    media = sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_EXTENSIONS | VIDEO_EXTENSIONS
                   and p.is_file())
    uncaptioned = [p for p in media if not p.with_suffix(".txt").is_file()]
    if uncaptioned:
        names = ", ".join(str(p.relative_to(folder)) for p in uncaptioned[:3])
        more = f" and {len(uncaptioned) - 3} more" if len(uncaptioned) > 3 else ""
        raise UserDataError(f"{names}{more} in {folder} {'has' if len(uncaptioned) == 1 else 'have'} no caption: "
                            f"put the caption in a .txt file of the same name beside each image or clip.")
    records = []
    for p in media:
        caption = p.with_suffix(".txt")
        kind = "video" if p.suffix.lower() in VIDEO_EXTENSIONS else "image"
        records.append(Record(kind, _read_caption(caption), p, where=str(caption.relative_to(folder))))
    return records


def _read_caption(path: Path) -> str:
    try:
        text = read_regular(path, max_bytes=MAX_CAPTION_BYTES).decode("utf-8").strip()
    except UnicodeDecodeError:
        raise UserDataError(f"The caption {path} is not UTF-8 text.") from None
    except (FileTooLarge, NotRegularFile) as exc:
        raise UserDataError(f"The caption {path}: {exc}") from None
    except OSError as exc:
        raise UserDataError(f"The caption {path} cannot be read: {exc.strerror or exc}.") from None
    if not text:
        raise UserDataError(f"The caption {path} is empty: write what the image or clip shows.")
    return text


def _jsonl_records(path: Path) -> list[Record]:
    if path.suffix.lower() != ".jsonl":
        raise UserDataError(f"{path} is a file but not a .jsonl file: give a folder of captioned media or a JSONL "
                            f"file of records.")
    try:
        lines = read_regular(path).decode("utf-8").splitlines()
    except UnicodeDecodeError:
        raise UserDataError(f"{path} is not UTF-8 text.") from None
    except OSError as exc:
        raise UserDataError(f"{path} cannot be read: {exc}") from None
    records = []
    for number, line in enumerate(lines, start=1):
        if line.strip():
            records.append(_record(line, f"line {number} of {path.name}", path.parent))
    return records


def _record(line: str, where: str, base: Path) -> Record:
    try:
        data = json.loads(line)
    except json.JSONDecodeError as exc:
        raise UserDataError(f"{where} is not valid JSON ({exc.msg} at column {exc.colno}).") from None
    if not isinstance(data, dict):
        raise UserDataError(f"{where} is not a JSON object.")
    kind = next((k for k, keys in RECORD_KEYS.items() if set(keys) <= set(data)), None)
    if kind is None:
        shapes = "; ".join("{" + ", ".join(f'"{k}"' for k in keys) + "}" for keys in RECORD_KEYS.values())
        raise UserDataError(f"{where} has the keys {sorted(data)}; a record is one of {shapes}.")
    keys = RECORD_KEYS[kind]
    for key in keys:
        if not isinstance(data[key], str) or not data[key].strip():
            raise UserDataError(f"{where}: \"{key}\" must be a non-empty string.")
    paths = {key: _resolved(data[key], base, where) for key in keys if key not in ("caption", "instruction")}
    text = data[keys[1]].strip()
    if kind == "edit":
        return Record(kind, text, paths["target"], paths["source"], where)
    return Record(kind, text, paths[keys[0]], where=where)


def _resolved(name: str, base: Path, where: str) -> Path:
    path = Path(name).expanduser()
    path = path if path.is_absolute() else base / path
    if not path.is_file():
        raise UserDataError(f"{where}: {name!r} was not found (looked for {path}).")
    return path


class UserData:
    """The records at one training size: `item(i)` gives its text and uint8 media, cropped and resized."""

    def __init__(self, records: list[Record], width: int, height: int, frames: int = 1):
        self.records = records
        self.kind = records[0].kind
        self.task = KIND_TASKS[self.kind]
        self.width, self.height, self.frames = width, height, frames
        self._read_sides: dict[Path, int] = {}  # from the headers read by the checks, for decoding
        for record in records:
            self._check_media(record)

    def __len__(self) -> int:
        return len(self.records)

    def _check_media(self, record: Record) -> None:
        """The headers, read now: a run should not fail on its 5000th step for a file it could have named."""
        try:
            if record.kind == "video":
                info = probe_video(record.target)
                if info.frames < self.frames:
                    raise UserDataError(f"{record.where}: '{record.target.name}' has {info.frames} frames; this run "
                                        f"trains on clips of {self.frames}.")
                self._read_sides[record.target] = self._cover_side(info.width, info.height)
            else:
                for path in (record.target, record.source):
                    if path is not None:
                        self._read_sides[path] = self._cover_side(*image_size(path))
        except MediaError as exc:
            raise UserDataError(f"{record.where}: {exc}") from None

    def item(self, index: int) -> dict:
        """{"text", "target": uint8 [F, H, W, 3] (F = 1 for stills), "source": uint8 [H, W, 3] or None}."""
        record = self.records[index]
        try:
            if record.kind == "video":
                clip = read_video_frames(record.target, 0, self.frames, max_side=self._read_sides[record.target])
                if len(clip) < self.frames:
                    raise MediaError(f"'{record.target.name}' gave {len(clip)} of its first {self.frames} frames")
                target = np.stack([self._fitted(frame) for frame in clip])
            else:
                target = self._fitted(self._image(record.target))[None]
            source = self._fitted(self._image(record.source)) if record.source is not None else None
        except MediaError as exc:
            raise UserDataError(f"{record.where}: {exc}") from None
        return {"text": record.text, "target": target, "source": source}

    def _image(self, path: Path) -> np.ndarray:
        return load_image(path, max_side=self._read_sides[path])

    def _cover_side(self, w: int, h: int) -> int:
        """The longest side to decode a w x h medium at: enough for the crop to cover the training size, never
        more (a 50 MP photo then decodes at reduced scale)."""
        scale = max(self.width / w, self.height / h)
        return max(1, int(np.ceil(max(w, h) * scale)))

    def _fitted(self, frame: np.ndarray) -> np.ndarray:
        """Crop to the training aspect at the centre, then resize to width x height."""
        h, w = frame.shape[:2]
        aspect = self.width / self.height
        cw, ch = (round(h * aspect), h) if w / h > aspect else (w, round(w / aspect))
        left, top = (w - cw) // 2, (h - ch) // 2
        image = Image.fromarray(np.ascontiguousarray(frame[top:top + ch, left:left + cw, :3]))
        if image.size != (self.width, self.height):
            image = image.resize((self.width, self.height), Image.Resampling.BICUBIC)
        return np.asarray(image, dtype=np.uint8)
