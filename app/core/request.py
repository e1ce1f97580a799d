"""What the user asked for: the one dataclass that holds every input that shapes a result.

Everything that changes the pixels of a result lives in `GenerationRequest`, so a result can be
reproduced from the request stored beside it in the project (krita-ai-diffusion's rule).
Media are held as uint8 numpy arrays (H, W, 3) / (F, H, W, 3); `to_dict` leaves them out and
records their shapes, and the project stores the media files next to the request.
"""
from __future__ import annotations

import enum
from dataclasses import asdict, dataclass, field, fields
from typing import Any, Iterable

import numpy as np


class Task(str, enum.Enum):
    TEXT_TO_IMAGE = "text_to_image"
    IMAGE_EDIT = "image_edit"
    TEXT_TO_VIDEO = "text_to_video"
    IMAGE_TO_VIDEO = "image_to_video"
    VIDEO_EDIT = "video_edit"
    REFERENCE_TO_VIDEO = "reference_to_video"

    @property
    def makes_video(self) -> bool:
        return self in (Task.TEXT_TO_VIDEO, Task.IMAGE_TO_VIDEO, Task.VIDEO_EDIT, Task.REFERENCE_TO_VIDEO)

    @property
    def needs_image(self) -> bool:
        """Tasks that take one or more still images as input."""
        return self in (Task.IMAGE_EDIT, Task.IMAGE_TO_VIDEO, Task.REFERENCE_TO_VIDEO)

    @property
    def needs_video(self) -> bool:
        return self is Task.VIDEO_EDIT

    @property
    def label(self) -> str:
        return self.value.replace("_", " ").capitalize()


CELL_EDITS = ("scale", "move")
OBJECT_EDITS = ("move_object", "resize_object", "delete_object", "add_object")


@dataclass
class PlanEdit:
    """A user's change to the plan before generation.

    Cell edits change the canvas inside `box`:
      "scale" multiplies the canvas strength inside `box` by `factor` (0 erases it, above 1 paints it);
      "move" shifts the canvas content inside `box` by (dx, dy) in fractions of the frame, by whole cells.
    Object edits change the drafted layout (a drafting model's plans only; Plan.edited re-plans it):
      "move_object" moves object `number` by (dx, dy); "resize_object" gives it the diameter `size`;
      "delete_object" removes it; "add_object" adds one of `label` whose disc fills the square `box`.
    `number` counts from 1 in the draft's order (the plan picture's numbers) as the draft stands after
    the object edits before it; an added object comes last. Sizes are fractions of the frame's width.
    box: (left, top, right, bottom) in fractions 0..1 of the frame.
    keyframe: which keyframe a cell edit applies to; None means all (a draft is one layout for all).
    """

    kind: str
    box: tuple[float, float, float, float] = (0.0, 0.0, 1.0, 1.0)
    factor: float = 0.0
    dx: float = 0.0
    dy: float = 0.0
    keyframe: int | None = None
    number: int = 0
    label: int = 0
    size: float = 0.0

    def __post_init__(self) -> None:
        if self.kind not in CELL_EDITS + OBJECT_EDITS:
            raise ValueError(f"unknown plan edit {self.kind!r}: use one of {', '.join(CELL_EDITS + OBJECT_EDITS)}")
        self.box = tuple(float(v) for v in self.box)  # type: ignore[assignment]
        if self.kind in OBJECT_EDITS[:3] and self.number < 1:
            raise ValueError(f"plan edit {self.kind!r} needs the object's number (1 or more), not {self.number}")
        if self.kind == "add_object" and self.label < 1:
            raise ValueError(f"plan edit 'add_object' needs a label (1 or more), not {self.label}")
        if self.kind == "resize_object" and not self.size > 0:
            raise ValueError(f"plan edit 'resize_object' needs a size above 0, not {self.size}")

    @property
    def edits_objects(self) -> bool:
        return self.kind in OBJECT_EDITS


# Every task needs words: an edit with no instruction would still change the picture (the model
# redraws it), which users read as the studio doing something they did not ask for.
_EMPTY_INSTRUCTION = {
    Task.TEXT_TO_IMAGE: "Type an instruction first: describe the image to make.",
    Task.TEXT_TO_VIDEO: "Type an instruction first: describe the clip to make.",
    Task.IMAGE_EDIT: "Type an instruction first: say how to change the image.",
    Task.IMAGE_TO_VIDEO: "Type an instruction first: say how the image should move.",
    Task.VIDEO_EDIT: "Type an instruction first: say how to change the clip.",
    Task.REFERENCE_TO_VIDEO: "Type an instruction first: describe the clip to make from the references.",
}


@dataclass
class GenerationRequest:
    task: Task
    instruction: str
    images: list[np.ndarray] = field(default_factory=list)  # source image (edit, i2v) or reference images (r2v)
    video: np.ndarray | None = None  # (F, H, W, 3) uint8 source clip for video edit
    width: int = 64
    height: int = 64
    frames: int = 1
    steps: int = 20
    guidance: float = 3.0
    seed: int = 0
    use_canvas: bool = True  # False runs the same model text-only (the canvas branch off)
    # A video edit: the source's own pixels where the model did not change the clip, if the model keeps
    # them (its keep_source_threshold); False gives the frames as the model drew them.
    keep_source: bool = True
    plan_edits: list[PlanEdit] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.task = Task(self.task)
        self.plan_edits = [e if isinstance(e, PlanEdit) else PlanEdit(**e) for e in self.plan_edits]

    def validate(self, supported_tasks: Iterable[str] | None = None) -> None:
        """Raise ValueError with a message a user can act on. The one check of a request: the CLI, the
        studio and the engine all call it; `supported_tasks` (the loaded model's task names) adds the
        check that the model can do the task at all."""
        if not self.instruction.strip():
            raise ValueError(_EMPTY_INSTRUCTION[self.task])
        if supported_tasks is not None and self.task.value not in supported_tasks:
            raise ValueError(f"The loaded model does not do {self.task.label.lower()}; it does: "
                             f"{', '.join(t.replace('_', ' ') for t in supported_tasks)}. Load a model that "
                             f"does (File ▸ Settings ▸ model folder).")
        if self.task.needs_image and not self.images:
            raise ValueError(f"{self.task.value} needs an input image: select an image clip first.")
        if self.task.needs_video and self.video is None:
            raise ValueError("video_edit needs an input clip: select a video clip first.")
        if self.task.needs_video and len(self.video) < self.frames:
            # The source clip's frames sit beside the new ones frame for frame: a shorter source has none
            # for the last ones to be edited from.
            raise ValueError(f"the source clip has {len(self.video)} frames and the edit asks for {self.frames}: "
                             f"ask for at most {len(self.video)} frames.")
        if self.width <= 0 or self.height <= 0:
            raise ValueError(f"size must be positive, got {self.width}x{self.height}")
        if self.frames < 1:
            raise ValueError("frames must be at least 1")
        if self.steps < 1:
            raise ValueError("steps must be at least 1")
        if not self.task.makes_video and self.frames != 1:
            raise ValueError(f"{self.task.value} makes a still: frames must be 1")
        if self.task is Task.REFERENCE_TO_VIDEO:
            words = self.instruction.lower().split()
            for k, ordinal in enumerate(("first", "second", "third", "fourth")):
                if k >= len(self.images) and any(a == ordinal and b.strip(".,;") in ("image", "still", "picture")
                                                 for a, b in zip(words, words[1:])):
                    raise ValueError(f"the words name a {ordinal} image, and {len(self.images)} reference "
                                     f"still{'s are' if len(self.images) != 1 else ' is'} given: give one for "
                                     f"each image the words name.")
            # "from the image" of two stills says not which: the model would guess (the first, or any).
            if len(self.images) > 1 and any(a == "the" and b.strip(".,;") in ("image", "still", "picture")
                                            for a, b in zip(words, words[1:])):
                raise ValueError(f"{len(self.images)} reference stills are given and the words say \"the image\": "
                                 f"say which, \"the first image\" or \"the second image\".")

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe description; media are replaced by their shapes (the project stores the files)."""
        d = asdict(self)
        d["task"] = self.task.value
        d["images"] = [list(im.shape) for im in self.images]
        d["video"] = list(self.video.shape) if self.video is not None else None
        d["plan_edits"] = [{**e, "box": list(e["box"])} for e in d["plan_edits"]]  # as JSON reads it back
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any], images: list[np.ndarray] | None = None,
                  video: np.ndarray | None = None) -> "GenerationRequest":
        # A stored version's request may carry what the studio keeps beside it (a video edit's
        # `edited_version`): only the request's own fields are read.
        known = {f.name for f in fields(cls)}
        d = {k: v for k, v in d.items() if k in known}
        d["images"] = images or []
        d["video"] = video
        return cls(**d)


def stretch_note(what: str, size: tuple[int, int], width: int, height: int, hint: str = "--width / --height",
                 own_size_only: bool | None = False) -> str:
    """'; the source's 96x48 was stretched to 48x48 (...)' when an input picture's aspect differs from the
    result's by more than 2 %: the model makes pictures of the size asked for, so an input of another shape
    is resized to it, not cropped (nothing of it is lost, its shapes are stretched); '' when it fits. Said by
    the CLI and the studio alike. `own_size_only`: None when not known yet (a job queued while its model loads):
    no way out is said."""
    w, h = size
    if abs((w / h) / (width / height) - 1) <= 0.02:
        return ""
    # The way out is said only as far as it goes: a model trained at its own size alone (the embedded video model;
    # asked for 96x48 it drew blank frames after the first) has none; the embedded image model makes sizes near its
    # own (README: 0.77 of prompts fully right at 128x64 against 0.96 at 64).
    way = "this model makes its own size only" if own_size_only else \
        f"{hint} of its shape, in multiples of the model's patch, keeps it"
    return f"; {what}'s {w}x{h} was stretched to {width}x{height}" + (f" ({way})" if own_size_only is not None else "")
