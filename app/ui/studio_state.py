"""The studio model's value types and rules: model and job states, a job, the generation settings,
what a user typed for one target, which tasks a selection can run, and the two decodes the model runs
in the thread pool. No Qt here, so the rules can be read and tested on their own."""
from __future__ import annotations

import enum
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from app.core.request import GenerationRequest, Task

INPUT_MAX_SIDE = 512  # inputs are decoded at most this big; the model resizes to the request size anyway
NEW_TARGET = ""  # the inputs key of "nothing selected: a new generation"


class ModelState(enum.Enum):
    STARTING = "starting"
    LOADING = "loading"
    READY = "ready"
    FAILED = "failed"


class JobState(enum.Enum):
    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"


@dataclass
class Job:
    id: int
    request: GenerationRequest
    clip_id: str | None  # the clip whose new version this becomes; None: a new clip
    description: str
    state: JobState = JobState.QUEUED
    step: int = 0
    total: int = 0
    fps: float = 0.0  # a clip result's frame rate (a video edit keeps its source's); 0: the project's
    edited_version: str = ""  # a video edit: the id of the clip's version it edits (its frames go on past the edit)
    selection: tuple = ()  # the clips selected when it was queued: its result is selected only if they still are
    project: Any = None  # the project it was queued in: its result goes into no other (a New or Open between)
    written_to: str = ""  # the project path whose media folder its result was written into (a Save As may follow)
    model: str = ""  # the model folder its slot ran it on (ModelSlot.folder when queued): a retry runs on it alone
    footage: tuple | None = None  # a video edit: (media path, first frame) of what it edits, read at full size as it lands
    span: tuple | None = None  # a video edit: (first frame it read, its clip's duration) when queued


@dataclass
class Params:
    """The generation settings the panel shows; the model's defaults replace them when it loads."""
    seed: int = 0
    random_seed: bool = False
    steps: int = 20
    guidance: float = 3.0
    width: int = 32
    height: int = 32
    frames: int = 8


@dataclass
class ModelSlot:
    """One of the two models the studio keeps (the engine's slots): "image" for stills, "video" for clips.
    Each has its own state and its own generation settings, which its model's defaults replace when it
    loads: a clip model trained at 48 px and 17 frames is not asked for 64 px stills' settings."""
    kind: str  # "image" | "video"
    state: ModelState = ModelState.STARTING  # STARTING: not loaded yet (the video model: not asked for yet)
    text: str = ""  # what the status bar says about it
    error: str = ""  # why it failed, for the next Generate's message
    frame_step: int = 1  # its clips have 1 + a multiple of this many frames (Wan's codec: 4)
    max_frames: int = 0  # the longest clip it makes from words (0: it does not say)
    fps: float = 0.0  # the rate its new clips play at (the model's own; 0: the project's)
    # Its edits keep the clip's own pixels where it changed nothing, at the clip's size (its
    # keep_source_threshold; 0: its edits are stored as it drew them).
    keep_source: int = 0
    trained_frames: int = 0  # the one clip length it was trained on (own-size-only models); 0: any
    own_size_only: bool = False  # it makes pictures of its trained size alone (PipelineDefaults.own_size_only)
    params: Params = field(default_factory=Params)
    # Settings the user chose ("Use these settings again") before the model loaded: its defaults do not
    # replace these when it loads.
    kept: set = field(default_factory=set)
    # The model folder last asked for: what its next job runs on. A retry offered for a job of another folder
    # (the settings named a new model since) is refused rather than run on a model that did not make it.
    folder: str = ""
    # The folder that loaded before the settings named `folder` (None: nothing to go back to): a new folder
    # that fails to load gives the slot back its working model, in the studio and in the saved settings.
    fallback: str | None = None


def clip_length(frames: int, step: int) -> int:
    """The longest clip length a model with this frame step makes that is at most `frames` (at least 1)."""
    step = max(1, int(step))
    return 1 + (max(1, int(frames)) - 1) // step * step


def nearest_clip_length(frames: int, step: int) -> int:
    """The clip length a model with this frame step makes that is nearest to `frames` (the Frames box may
    hold any number; the request holds one the model makes): at least 1 + step, a clip and not a still (a
    clip of one frame would be stored as a picture, on the image track)."""
    step = max(1, int(step))
    return max(1 + step, 1 + round((max(1, int(frames)) - 1) / step) * step)


@dataclass
class TargetInputs:
    """What the user typed and chose for one target (a clip, a reference set, or a new generation)."""
    instruction: str = ""
    task: Task | None = None  # None: the default for the target (see default_task)


def allowed_tasks(kinds: list[str]) -> list[Task]:
    """The tasks a selection of clip kinds ("image"/"video") can run; the first is the default.
    One rule table, so the task the user sees and the request that is sent never disagree."""
    if "video" in kinds:
        return [Task.VIDEO_EDIT, Task.TEXT_TO_VIDEO]
    if len(kinds) >= 2:
        return [Task.REFERENCE_TO_VIDEO]
    if len(kinds) == 1:
        return [Task.IMAGE_EDIT, Task.TEXT_TO_IMAGE, Task.IMAGE_TO_VIDEO, Task.REFERENCE_TO_VIDEO]
    return [Task.TEXT_TO_IMAGE, Task.TEXT_TO_VIDEO]


# The words an edit of what is shown starts with ("make the circle blue", "remove the star"), or "instead" ("the
# circle moves down instead"); a description of something new starts otherwise ("a red circle moves right").
EDIT_VERBS = frozenset({"make", "remove", "delete", "erase", "add", "put", "replace", "swap", "change", "turn",
                        "recolour", "recolor", "colour", "color", "move", "shift", "let", "have"})


# Words people put before the verb of a request ("please make…", "now remove…", "can you add…").
REQUEST_OPENERS = frozenset({"please", "pls", "now", "then", "and", "also", "just", "ok", "okay", "can", "could",
                             "would", "will", "you", "kindly"})


def reads_as_edit(instruction: str) -> bool:
    """Whether `instruction` reads as an edit of the selected clip rather than words for a new one."""
    words = re.findall(r"[a-z]+", instruction.lower())
    verb = next((w for w in words if w not in REQUEST_OPENERS), "")
    return verb in EDIT_VERBS or "instead" in words


TASK_NAMES = {  # what the task is called for the selection it applies to
    Task.TEXT_TO_IMAGE: "New image", Task.TEXT_TO_VIDEO: "New video", Task.IMAGE_EDIT: "Edit image",
    Task.IMAGE_TO_VIDEO: "Animate image", Task.VIDEO_EDIT: "Edit video",
    Task.REFERENCE_TO_VIDEO: "Video from references",
}

MAX_REFERENCES = 2  # reference-to-video takes one or two stills


class InputsPending(Exception):
    """The request's input frames are still decoding; the caller is called back when they are in."""


# ==================================================================== worker functions (no Qt)
def decode_input(key: tuple) -> np.ndarray:
    from app.media.probe import load_preview, read_video_frames

    path, kind, index, frames = key
    if kind == "clip":
        return read_video_frames(path, index, frames, max_side=INPUT_MAX_SIDE)
    return load_preview(path, max_side=INPUT_MAX_SIDE, frame=index)


def write_edit_result(work: Path, frames: np.ndarray, source: np.ndarray, footage: tuple[str, int] | None,
                      threshold: int, fps: float, plan) -> dict:
    """A video edit's result written as a version at its clip's own size (up to EDIT_MAX_SIDE, as the CLI writes
    it): the model's change scaled up where it changed the clip (against `source`, the clip as the model was given
    it) and the clip's own pixels elsewhere (app/core/keep_source.at_source_size), read from `footage` ((media
    path, first frame)) and encoded one frame at a time. In a worker thread: the scaling is not the GUI's."""
    from app.core.keep_source import EDIT_MAX_SIDE, at_source_size
    from app.media import project_file as pf
    from app.media.probe import iter_video_frames, probe_video

    if source is None or len(source) < len(frames):
        return pf.write_result(work, frames, fps, plan)
    if footage is not None:
        from app.media.errors import MediaError

        path, first = footage
        unreadable: list[MediaError] = []

        def shown():  # the clip's own frames at full size; a read that fails is told apart from a write that does
            try:
                yield from iter_video_frames(path, range(first, first + len(frames)), max_side=EDIT_MAX_SIDE)
            except MediaError as e:
                unreadable.append(e)
                raise

        try:
            info = probe_video(path)
        except MediaError as e:
            unreadable.append(e)
        else:
            scale = min(1.0, EDIT_MAX_SIDE / max(info.width, info.height))
            if (round(info.width * scale), round(info.height * scale)) == (frames.shape[2], frames.shape[1]):
                return pf.write_result(work, frames, fps, plan)
            try:
                return pf.write_result(work, at_source_size(source, frames, shown(), threshold), fps, plan,
                                       count=len(frames))
            except Exception:
                if not unreadable:
                    raise  # a full disk and the like: said as they are
        # The clip's file became unreadable since its frames were decoded for the model: the made edit is kept,
        # at the decoded input's size, rather than lost.
    if source.shape[1:3] != frames.shape[1:3]:  # no file to read: the decoded input's size (at most 512 px)
        frames = np.stack(list(at_source_size(source, frames, source, threshold)))
    return pf.write_result(work, frames, fps, plan)


def load_plan(path: Path) -> Any:
    from app.core.plan import Plan

    return Plan.load(path)


def shortened(text: str, limit: int = 40) -> str:
    """`text` cut to about `limit` characters at a word's end, with an ellipsis when cut (a job's name in the
    queue and its messages)."""
    text = " ".join(text.split())
    if len(text) <= limit:
        return text
    cut = text[:limit + 1].rsplit(" ", 1)[0] if " " in text[:limit + 1] else text[:limit]
    return cut.rstrip(" ,") + "…"
