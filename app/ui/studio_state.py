"""The studio model's value types and rules: model and job states, a job, the generation settings,
what a user typed for one target, which tasks a selection can run, and the two decodes the model runs
in the thread pool. No Qt here, so the rules can be read and tested on their own."""
from __future__ import annotations

import enum
from dataclasses import dataclass
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
        return [Task.IMAGE_EDIT, Task.TEXT_TO_IMAGE, Task.IMAGE_TO_VIDEO]
    return [Task.TEXT_TO_IMAGE, Task.TEXT_TO_VIDEO]


TASK_NAMES = {  # what the task is called for the selection it applies to
    Task.TEXT_TO_IMAGE: "New image", Task.TEXT_TO_VIDEO: "New video", Task.IMAGE_EDIT: "Edit image",
    Task.IMAGE_TO_VIDEO: "Animate image", Task.VIDEO_EDIT: "Edit video",
    Task.REFERENCE_TO_VIDEO: "Video from references",
}


class InputsPending(Exception):
    """The request's input frames are still decoding; the caller is called back when they are in."""


# ==================================================================== worker functions (no Qt)
def decode_input(key: tuple) -> np.ndarray:
    from app.media.probe import load_preview, read_video_frames

    path, kind, index, frames = key
    if kind == "clip":
        return read_video_frames(path, index, frames, max_side=INPUT_MAX_SIDE)
    return load_preview(path, max_side=INPUT_MAX_SIDE, frame=index)


def load_plan(path: Path) -> Any:
    from app.core.plan import Plan

    return Plan.load(path)
