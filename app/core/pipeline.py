"""MetaCanvasPipeline: request -> plan (once) -> flow-matching denoising with guidance -> frames.

Reads like a diffusers pipeline: `__call__` goes top to bottom in numbered steps. The MLLM planner
runs once per request; the canvas connector's first block runs once on the plan; only the backbone
and the connector's timestep-modulated block run per denoising step.

Why about 790 lines: the checks a request gets (size, frames, words) sit beside the steps that need them, and a
video edit's keeping of its source (threshold, draft bound, why it came back unchanged) beside its decoding;
the batched sampling at the end (`sample`) is next to move out, beside app/eval, which is its main user.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import torch
from diffusers import DPMSolverMultistepScheduler, FlowMatchEulerDiscreteScheduler

from .canvas import CanvasSpec
from .frame_detector import (checks_still_edits, drafts_edits, drafts_from_media, edit_shortfall, named_but_absent,
                             named_but_missing, named_rows, plan_off_words, source_tracks, still_edit_shortfall,
                             still_labels)
from .keep_source import changed_nothing, drafted_region, source_as_made, with_source_kept
from .latents import PixelCodec
from .native_text import TextConditioning
from .plan import Plan
from .reference_stills import named_objects_only, reference_drafts
from .request import GenerationRequest, Task
from .words import check_words


class GenerationCancelled(RuntimeError):
    """Raised when the step callback asks to stop; `step` is the last step that ran."""

    def __init__(self, step: int, total: int):
        super().__init__(f"Cancelled after step {step} of {total}.")
        self.step = step
        self.total = total


class UnsupportedTaskError(ValueError):
    pass


log = logging.getLogger(__name__)


@dataclass
class StepInfo:
    step: int  # 1-based: the number of denoising steps done
    total: int
    latents: torch.Tensor  # the current noisy latents (first item, conditional branch)
    preview: np.ndarray | None  # uint8 [F, H, W, 3]: the clean frames predicted at this step


# GenerationResult.unchanged_why (NOT_IN_CLIP is followed by the object's name: "not in clip: star").
NOTHING_PLANNED, PUT_BACK, NOT_IN_CLIP = "nothing planned", "put back", "not in clip:"


@dataclass
class GenerationResult:
    frames: np.ndarray  # uint8 [F, H, W, 3]
    plan: Plan
    request: GenerationRequest
    seconds: float
    timings: dict[str, float] = field(default_factory=dict)
    # A video edit whose frames are its source again, pixel for pixel (the edit was not made): said to the
    # user. Found here, on the engine's thread, not where the result is shown.
    unchanged: bool = False
    # Why, for a drafted edit: NOT_IN_CLIP and a name (the words name an object the source's tracks do not
    # hold), NOTHING_PLANNED (its draft changes no track of the source) or PUT_BACK (the model changed only
    # places its draft leaves alone, and those went back to the source); "" otherwise.
    unchanged_why: str = ""
    # A drafted video edit checked against its draft (frame_detector.edit_shortfall): the drafted tracks the
    # clip does not show and its tracks no drafted one accounts for (track rows); an image edit the same with
    # object rows (label, x, y, size: still_edit_shortfall); None when not checked.
    shortfall: tuple[list, list] | None = None
    # Image-to-video and reference video drafted from their inputs: the objects the words name as given ("the
    # star moves left") that the input does not hold, as the frame detector sees it (frame_detector.named_but_missing).
    missing: tuple[str, ...] = ()
    # A drafted motion edit whose draft does not head the way its words say: what the draft has the object do
    # ("the circle staying put"; frame_detector.plan_off_words); "" otherwise.
    plan_off: str = ""
    # What made it, as a generated PNG carries it (app/media/generation_info.pipeline_info): set by the engine, so
    # the studio's stored stills can be made again from the file alone, as the CLI's can.
    recipe: dict | None = None


StepCallback = Callable[[StepInfo], "bool | None"]


@dataclass
class PipelineDefaults:
    """What a model folder says about how it likes to be sampled."""

    width: int = 64
    height: int = 64
    steps: int = 20
    guidance: float = 3.0
    # The noise levels (sigma, 1 = pure noise) at which guidance applies; outside them only the
    # conditional branch runs. Kynkaenniemi et al. 2024 ("Applying Guidance in a Limited Interval
    # Improves Sample and Distribution Quality in Diffusion Models"): at high noise, guidance pushes
    # every sample toward the conditional mean and drops modes. The shapes model shows it plainly:
    # "a photo of a star" has fewer foreground pixels on average than the unconditional scene, so
    # guidance at the first steps steers toward an empty image (research/LOG.md). (0, 1) = everywhere.
    guidance_interval: tuple[float, float] = (0.0, 1.0)
    frames: int = 1  # a clip's length in frames when a request does not say (a video model's own)
    # The frame rate a video model's clips are made to play at (its training clips' motion per frame);
    # 0: the model does not say (the studio then uses the project's rate, the CLI 24, a new project's).
    fps: float = 0.0
    # Frames of an input clip the planner's vision tower sees, evenly spaced: a clip read whole would
    # give the planner thousands of tokens; Qwen2.5-VL samples clips at about 2 fps for the same reason.
    planner_frames: int = 8
    keyframes: int = 3  # canvas keyframes for video (METHOD.md: 1 flickers, 3 is the paper's choice)
    shift: float = 1.0  # flow-matching timestep shift (SD3-style); 1.0 = uniform
    solver: str = "euler"  # "euler" (first order, SD3's) or "dpm++2m" (second order: fewer steps); see make_scheduler
    max_canvas_side: int = 32  # the canvas grid follows the token grid up to this many cells a side
    # The time the denoiser is given: "sigma" (the noise level, 0..1: what the embedded models were trained
    # on) or "scheduler" (the scheduler's own timesteps / 1000: what a base checkpoint's diffusers pipeline
    # feeds its transformer; DPM-Solver rounds them to whole numbers, and an assembly must match the bare
    # pipeline exactly).
    timestep_from: str = "sigma"
    tasks: tuple[str, ...] = ("text_to_image", "image_edit")
    # A video edit keeps the source's own pixels wherever the model's frames differ from it by less than
    # this many grey levels, or only in specks and thin rims (app/core/keep_source.py); 0 = off, the
    # frames as the model drew them (a request can ask for those: keep_source=False).
    keep_source_threshold: int = 0
    # The model makes its own width x height alone (it was trained at that size and no other): asked for
    # another, the embedded video model drew a blank clip after the first frame (its card), so it refuses.
    own_size_only: bool = False
    # The words its training text used (a word-level planner's model): a word its tokenizer holds but this
    # model never trained on is refused like an unknown one (the video model's planner holds the stills' words,
    # "two squares", which no clip caption used: it drew one square, moving the wrong way). Empty: every word
    # the tokenizer holds.
    trained_words: tuple[str, ...] = ()

    def __post_init__(self):
        self.trained_words = tuple(str(w) for w in self.trained_words)
        try:
            lo, hi = (float(v) for v in self.guidance_interval)
        except (TypeError, ValueError):
            raise ValueError(f"guidance_interval must be two numbers (low, high sigma), not {self.guidance_interval!r}") from None
        if not 0.0 <= lo <= hi:
            raise ValueError(f"guidance_interval must be (low, high) sigmas with 0 <= low <= high, not {self.guidance_interval}")
        self.guidance_interval = (lo, hi)
        t = self.keep_source_threshold
        if isinstance(t, float) and t.is_integer():  # 48.0 in a hand-edited model_index.json
            t = self.keep_source_threshold = int(t)
        if isinstance(t, bool) or not isinstance(t, int) or not 0 <= t < 255:
            raise ValueError(f"keep_source_threshold must be a whole number of grey levels from 0 (off) to 254, "
                             f"not {t!r}")
        if self.timestep_from not in ("sigma", "scheduler"):
            raise ValueError(f"timestep_from must be 'sigma' or 'scheduler', not {self.timestep_from!r}")
        from app.media.schema import MAX_FPS

        try:
            self.fps = float(self.fps)
        except (TypeError, ValueError):
            raise ValueError(f"fps must be a number of frames per second, not {self.fps!r}") from None
        if not (self.fps == 0 or 0 < self.fps <= MAX_FPS):  # nan too
            raise ValueError(f"fps must be 0 (not stated) or above 0 and at most {MAX_FPS:g}, not {self.fps:g}")

    def guided(self, sigma: float) -> bool:
        lo, hi = self.guidance_interval
        return lo <= sigma <= hi


SOLVERS = ("euler", "dpm++2m")


def make_scheduler(defaults: PipelineDefaults):
    """The sampler a model folder asks for, both diffusers schedulers over the same flow-matching
    sigmas (shifted by `shift`). DPM-Solver++(2M) reuses the previous step's prediction to take
    second-order steps at no extra model calls, so it needs fewer steps than Euler for the same
    quality; it reads our velocity output as diffusers' "flow_prediction"."""
    if defaults.solver == "euler":
        return FlowMatchEulerDiscreteScheduler(num_train_timesteps=1000, shift=defaults.shift)
    if defaults.solver == "dpm++2m":
        return DPMSolverMultistepScheduler(num_train_timesteps=1000, solver_order=2, prediction_type="flow_prediction",
                                           use_flow_sigmas=True, flow_shift=defaults.shift)
    raise ValueError(f"unknown solver {defaults.solver!r}; known: {', '.join(SOLVERS)}")


def _first(reference, m: int):
    """The first `m` rows of an adapter reference (latents, or Wan's first-frame/frames holder)."""
    if reference is None or isinstance(reference, torch.Tensor):
        return None if reference is None else reference[:m]
    from dataclasses import fields, replace as dc_replace

    return dc_replace(reference, **{f.name: getattr(reference, f.name)[:m] for f in fields(reference)
                                    if isinstance(getattr(reference, f.name), torch.Tensor)})


def initial_noise(seeds: list[int], latent_shape: tuple[int, ...]) -> torch.Tensor:
    """[B, *latent_shape] noise, each item drawn on the CPU from its own seed, so a seed gives the same
    result on every device and in every batch."""
    return torch.stack([torch.randn(latent_shape, generator=torch.Generator("cpu").manual_seed(int(s))) for s in seeds])


def set_timesteps(scheduler, steps: int, image_tokens: int, device) -> None:
    """`scheduler.set_timesteps`, as the base pipelines call it: a scheduler with dynamic shifting (FLUX's)
    needs `mu` from the image's token count and the sigmas FluxPipeline passes (diffusers' own helpers)."""
    if getattr(scheduler.config, "use_dynamic_shifting", False):
        from diffusers.pipelines.flux.pipeline_flux import calculate_shift

        cfg = scheduler.config
        mu = calculate_shift(image_tokens, cfg.get("base_image_seq_len", 256), cfg.get("max_image_seq_len", 4096),
                             cfg.get("base_shift", 0.5), cfg.get("max_shift", 1.15))
        scheduler.set_timesteps(sigmas=np.linspace(1.0, 1 / steps, steps), device=device, mu=mu)
    else:
        scheduler.set_timesteps(steps, device=device)
    # Past about 500 steps of 1000 training timesteps, rounded timesteps repeat, the first one too; a scheduler
    # that finds its first step by looking its timestep up then starts at the repeat's second place and runs off
    # its sigmas at the last step (IndexError after the whole run). The loop always starts at the first.
    if hasattr(scheduler, "set_begin_index"):
        scheduler.set_begin_index(0)


class MetaCanvasPipeline:
    """planner (MLLM + canvas tokens), adapter (backbone + connectors), codec (pixels <-> latents).

    native_text: the backbone's own text encoder (app/core/native_text.py) when the adapter's text path is
    "native"; scheduler: a base checkpoint's own (an assembly), else the one the defaults name."""

    def __init__(self, planner, adapter, codec=None, defaults: PipelineDefaults | None = None, name: str = "model",
                 native_text=None, scheduler=None):
        self.planner = planner
        self.adapter = adapter
        self.codec = codec or PixelCodec()
        self.defaults = defaults or PipelineDefaults()
        self.name = name
        if getattr(adapter, "text_path", "mllm") == "native" and native_text is None:
            raise ValueError("the adapter takes the backbone's own text states: give the pipeline its native_text")
        self.native_text = native_text
        self.scheduler = scheduler or make_scheduler(self.defaults)
        self.memory = None  # a MemoryPlacement (app/core/memory.py) once memory options are applied

    # -- placement -------------------------------------------------------------------------------
    @property
    def device(self) -> torch.device:
        if self.memory is not None:  # offloaded weights rest on the CPU (or "meta"): the work runs where it says
            return self.memory.execution_device
        return next(self.adapter.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        return next(self.adapter.parameters()).dtype

    def to(self, device=None, dtype=None) -> "MetaCanvasPipeline":
        self.planner.to(device=device, dtype=dtype)
        self.adapter.to(device=device, dtype=dtype)
        if self.native_text is not None:
            self.native_text.to(device=device, dtype=dtype)
        if dtype is not None:
            # Module.to(dtype) casts every floating buffer, the rotary embeddings' frequencies too; transformers
            # keeps them float32 when it loads in a low precision (in bfloat16 a position of 1,000 is off by up
            # to 0.1 rad), and so does this.
            for part in (self.planner, self.native_text):
                for module in part.modules() if isinstance(part, torch.nn.Module) else ():
                    for name in ("inv_freq", "original_inv_freq"):
                        buffer = getattr(module, name, None)
                        if isinstance(buffer, torch.Tensor) and buffer.is_floating_point():
                            setattr(module, name, buffer.float())
        vae = getattr(self.codec, "vae", None)
        if vae is not None:
            keep = dtype is not None and self.codec.keeps_float32(dtype)
            vae.to(device=device, dtype=torch.float32 if keep else dtype)
        return self

    def eval(self) -> "MetaCanvasPipeline":
        self.planner.eval()
        self.adapter.eval()
        return self

    @property
    def tasks(self) -> tuple[str, ...]:
        return tuple(self.defaults.tasks)

    def canvas_spec_for(self, size: int) -> CanvasSpec:
        """The canvas of a square still of `size` pixels (training, batched sampling)."""
        return self.canvas_spec(GenerationRequest(Task.TEXT_TO_IMAGE, "x", width=size, height=size))

    def canvas_spec(self, request: GenerationRequest) -> CanvasSpec:
        frames, rows, cols = self.adapter.token_grid(self.codec.latent_shape(request.height, request.width, request.frames))
        # The canvas follows the token grid (1:1 at the embedded default's size) but is capped: the
        # connector interpolates it up to the token grid, as the paper does for larger outputs.
        scale = min(1.0, self.defaults.max_canvas_side / max(rows, cols))
        rows, cols = max(1, round(rows * scale)), max(1, round(cols * scale))
        keyframes = 1 if not request.task.makes_video else min(self.defaults.keyframes, frames)
        return CanvasSpec(keyframes, rows, cols)

    # -- the size ----------------------------------------------------------------------------------
    MAX_SIDE = 4096  # pixels a side: beyond it a typo (a width of 100000) would not fail, only hang
    MAX_PIXELS = 2048 * 2048  # pixels a frame (4.2 MP; FLUX.1 and SANA are made for up to about this)

    def size_step(self) -> tuple[int, int]:
        """(width, height) in pixels of one backbone token: the codec's downsampling times the
        transformer's patch. A frame's sides must be whole multiples of it."""
        _, ph, pw = self.adapter.patch_size
        f = int(getattr(self.codec, "spatial_factor", 1))
        return f * int(pw), f * int(ph)

    def check_size(self, width: int, height: int) -> None:
        """Raise ValueError, in one line a user can act on, unless this model can make width x height:
        positive, at most MAX_SIDE a side and MAX_PIXELS in all, a whole number of tokens each way."""
        sw, sh = self.size_step()
        if width <= 0 or height <= 0:
            raise ValueError(f"size must be positive, got {width}x{height}")
        if width > self.MAX_SIDE or height > self.MAX_SIDE or width * height > self.MAX_PIXELS:
            raise ValueError(f"{width}x{height} is too large: at most {self.MAX_SIDE} pixels a side and "
                             f"{self.MAX_PIXELS / 1e6:.1f} megapixels in all")
        positions = self.adapter.max_positions
        if positions is not None and (width > positions * sw or height > positions * sh):
            raise ValueError(f"{width}x{height} is too large for '{self.name}': it makes at most {positions * sw} "
                             f"pixels wide and {positions * sh} high")
        d = self.defaults
        if d.own_size_only and (width, height) != (d.width, d.height):
            raise ValueError(f"'{self.name}' makes {d.width}x{d.height} only (it was trained at that size alone), "
                             f"not {width}x{height}: ask for {d.width}x{d.height}")
        if width % sw or height % sh:
            near = f"{max(sw, round(width / sw) * sw)}x{max(sh, round(height / sh) * sh)}"
            raise ValueError(f"{width}x{height} is not a size '{self.name}' can make: the width must be a multiple "
                             f"of {sw} and the height of {sh} (its token patch); the nearest is {near}")

    MAX_FRAMES = 1025  # a clip's frames: beyond it a typo would not fail, only hang

    def check_frames(self, frames: int, task: Task | None = None, references: int = 0,
                     at_most: int | None = None) -> None:
        """Raise ValueError, in one line, unless this model can make a clip of `frames` frames for `task`
        (with `references` stills): a video codec packs frames after the first in groups (Wan's VAE and the
        embedded video model: 4), so a clip is 1 + a multiple of that, and no longer than max_frames. The
        length suggested instead is at most `at_most` (a video edit's source frames) where given."""
        tf = int(getattr(self.codec, "temporal_factor", 1))
        if frames < 1 or frames > self.MAX_FRAMES:
            raise ValueError(f"a clip has 1 to {self.MAX_FRAMES} frames, not {frames}")
        # Too long is said first: "the nearest is 1001" of a model that makes at most 253 sent the user to a
        # length refused next.
        limit = self.max_frames(task, references)
        if frames > limit:
            what = {Task.VIDEO_EDIT: " for a video edit (the source clip's frames sit beside the new ones)",
                    Task.REFERENCE_TO_VIDEO: f" from {references} reference still(s)"}.get(task, "")
            were = "was" if frames == 1 else "were"
            raise ValueError(f"'{self.name}' makes at most {limit} frames{what}; {frames} {were} asked for")
        # A clip from an image is the image (its own latent frame) and at least one latent frame made after it.
        least = 1 + tf if task is Task.IMAGE_TO_VIDEO else 1
        if (frames - 1) % tf:
            near = max(least, 1 + round((frames - 1) / tf) * tf)
            if at_most is not None and near > at_most >= least:
                near = 1 + (at_most - 1) // tf * tf
            raise ValueError(f"{frames} frames is not a length '{self.name}' makes: a clip is 1 + a multiple of "
                             f"{tf} frames; the nearest is {near}")
        if frames < least:
            raise ValueError(f"a clip made from an image has at least {least} frames: the image, then {tf} made "
                             f"after it; {frames} {'was' if frames == 1 else 'were'} asked for")

    def max_frames(self, task: Task | None = None, references: int = 0) -> int:
        """The longest clip this model makes for `task`: the backbone places at most max_positions latent
        frames, the condition frames included (a video edit's source clip, one per reference still)."""
        positions = self.adapter.max_positions
        if positions is None:
            return self.MAX_FRAMES
        tf = int(getattr(self.codec, "temporal_factor", 1))
        latent = positions // 2 if task is Task.VIDEO_EDIT else \
            positions - max(1, references) if task is Task.REFERENCE_TO_VIDEO else positions
        return max(1, min(self.MAX_FRAMES, 1 + (latent - 1) * tf))

    def clip_length(self, frames: int) -> int:
        """The longest length this model makes that is at most `frames` (at least 1): what a source
        clip of `frames` frames is edited as."""
        tf = int(getattr(self.codec, "temporal_factor", 1))
        return 1 + (max(1, min(frames, self.MAX_FRAMES)) - 1) // tf * tf

    # -- the instruction ---------------------------------------------------------------------------
    def check_instruction(self, text: str, task: Task | None = None) -> None:
        """Raise UnknownWordsError when a word-level planner would read a word as <unk>: never a
        silent unknown. A real Qwen2.5-VL tokenizer reads any text, so nothing is checked then. With `task`, a
        video edit joining two changes with "and" is refused by a model that says the words it was trained on
        (the embedded one): it was taught one change an edit, and made neither of two."""
        processor = self.planner.processor
        tokenizer = processor.tokenizer
        backend = getattr(tokenizer, "backend_tokenizer", None)
        if getattr(processor, "processor", None) is not None or backend is None:
            return
        if type(backend.model).__name__ != "WordLevel":
            return
        check_words(backend, tokenizer.get_vocab(), set(tokenizer.all_special_tokens), self.defaults.trained_words,
                    text, video_edit=task is Task.VIDEO_EDIT)

    # -- the plan ----------------------------------------------------------------------------------
    def _planner_media(self, request: GenerationRequest, n: int):
        images = [self.given_stills(request.task, request.instruction, request.images, request.use_canvas)] * n \
            if request.images else None
        videos = [self.planner_clip(request.video)] * n if request.video is not None else None
        return images, videos

    def given_stills(self, task: Task, instruction: str, stills, use_canvas: bool = True) -> list[np.ndarray]:
        """A request's stills as the planner and the DiT are given them: reference video's with the objects its
        words do not name painted out (app/core/reference_stills.py), for a model that drafts
        clips from their media and a request with the canvas on (what its drafts are part of); the user's own
        otherwise. The request keeps the user's stills."""
        if task is Task.REFERENCE_TO_VIDEO and use_canvas and drafts_from_media(self.planner):
            return named_objects_only(self.planner, instruction, list(stills))
        return list(stills)

    def planner_clip(self, video: np.ndarray) -> np.ndarray:
        """The frames of an input clip the planner sees: `planner_frames` evenly spaced (an even count,
        as the vision tower's temporal patch of 2 takes them in pairs)."""
        video = np.asarray(video)
        n = max(2, self.defaults.planner_frames - self.defaults.planner_frames % 2)
        if len(video) <= n:
            return video
        return video[np.linspace(0, len(video) - 1, n).round().astype(int)]

    @torch.no_grad()
    def plan(self, request: GenerationRequest, *, with_unconditional: bool = False) -> Plan:
        """Run the MLLM planner alone (the live plan while the user types). With
        `with_unconditional`, item 1 is the plan for an empty instruction (for guidance)."""
        plan = self._run_planner(request, with_unconditional)
        if request.use_canvas and self.adapter.canvas_connector is not None:
            plan.strength = self.adapter.prepare_plan(plan.canvas.to(self.device, self.dtype)).float().norm(dim=-1).to(plan.canvas.device)
        return plan

    def _run_planner(self, request: GenerationRequest, with_unconditional: bool) -> Plan:
        self.check_instruction(request.instruction)
        spec = self.canvas_spec(request)
        texts = [request.instruction] + ([""] if with_unconditional else [])
        images, videos = self._planner_media(request, len(texts))
        # A drafting planner draws its draft with the seed: a new seed, a new plan. The unconditional
        # row (an empty instruction) is never drafted.
        drafts = self.media_drafts(request.task, texts, images, [request.seed] * len(texts),
                                   None if request.video is None else [request.video[: request.frames]] * len(texts))
        return self.planner(texts, spec, images=images, videos=videos, seeds=[request.seed] * len(texts),
                            drafts=drafts)

    def media_drafts(self, task: Task, texts: list[str], images, seeds: list[int],
                     videos: list[np.ndarray] | None = None) -> torch.Tensor | None:
        """The track drafts of a clip made from an image (moved onto its first frame), from reference
        stills (moved onto their objects) or from a source clip (its tracks, with the edit),
        app/core/frame_detector.py, for a planner that drafts them; None otherwise (the planner then
        drafts, or not, as it does)."""
        if getattr(self.planner, "frame_detector", None) is None:
            return None
        from .frame_detector import edit_drafts, first_frame_drafts

        if task is Task.VIDEO_EDIT and videos is not None:  # one source clip per item
            return edit_drafts(self.planner, texts, videos, seeds)
        if not images:
            return None

        if task is Task.IMAGE_TO_VIDEO:
            return first_frame_drafts(self.planner, texts, [item[0] for item in images], seeds)
        if task is Task.REFERENCE_TO_VIDEO:
            return reference_drafts(self.planner, texts, [list(item) for item in images], seeds)
        return None

    # -- generation --------------------------------------------------------------------------------
    @torch.no_grad()
    def __call__(self, request: GenerationRequest, plan: Plan | None = None,
                 callback: StepCallback | None = None, preview: bool = True,
                 on_plan: Callable[[Plan], None] | None = None) -> GenerationResult:
        t_start = time.perf_counter()
        timings: dict[str, float] = {}
        device, dtype = self.device, self.dtype

        # 1. Check inputs.
        request.validate()
        self.check_size(request.width, request.height)
        if request.task.makes_video:
            self.check_frames(request.frames, request.task, len(request.images))
        if request.task.value not in self.tasks:
            raise UnsupportedTaskError(
                f"The loaded model '{self.name}' does not do {request.task.value.replace('_', ' ')}; "
                f"it does: {', '.join(t.replace('_', ' ') for t in self.tasks)}.")
        self.check_instruction(request.instruction, request.task)
        self._check_canvas_off(request.use_canvas)
        latent_shape = self.codec.latent_shape(request.height, request.width, request.frames)

        # 2. Plan: conditional and unconditional (empty instruction, same media) in one planner call.
        use_cfg = self.classifier_free(request.guidance)
        if plan is None or (use_cfg and plan.canvas.shape[0] < 2):
            # Not `self.plan`: that also runs the canvas connector's first block for `strength`, which
            # is set below from the same plan tokens the denoiser uses (once per request, not twice).
            plan = self._run_planner(request, with_unconditional=use_cfg)
        if on_plan is not None:  # the engine keeps it: a run that runs out of memory later is retried with it
            on_plan(plan)
        if request.plan_edits:
            plan = plan.edited(request.plan_edits)
        plan = plan.to(device)
        # A drafted edit whose words name an object its source does not hold (as the frame detector sees it:
        # "remove the star" of a clip without one) is not made: the drafter would pick some other object to
        # change, and no seed makes a missing star red. The source comes back, and the user is told why.
        # Only where the detector finds objects at all (footage outside the model's world is edited undrafted)
        # and the draft is the plan (not after the user's cell edits).
        cell_edited = any(e.kind in ("scale", "move") for e in request.plan_edits or ())
        source_rows, missing = None, ""
        if request.task is Task.VIDEO_EDIT and request.keep_source and request.use_canvas and not cell_edited \
                and self.defaults.keep_source_threshold and drafts_edits(self.planner) and plan.has_draft(0):
            source_rows = source_tracks(self.planner, [np.asarray(request.video[: request.frames])],
                                        self.planner.edit_drafter.config)[0]
            if bool((source_rows[:, 0] > 0).any()):
                missing = named_but_absent(request.instruction, source_rows)
        if missing:
            frames = source_as_made(request.video[: request.frames],
                                    np.empty((request.frames, request.height, request.width, 3), np.uint8))
            timings["plan"] = time.perf_counter() - t_start
            return GenerationResult(frames=frames, plan=plan.to("cpu"), request=request,
                                    seconds=time.perf_counter() - t_start, timings=timings, unchanged=True,
                                    unchanged_why=f"{NOT_IN_CLIP} {missing}")
        n = 2 if use_cfg else 1
        plan_tokens = self._plan_tokens(plan, n, request.use_canvas)
        if plan_tokens is not None and self.adapter.canvas_connector is not None:  # per cell: not for 1-D queries
            plan.strength = plan_tokens.float().norm(dim=-1).to(plan.canvas.device)
        timings["plan"] = time.perf_counter() - t_start

        # 3. Reference latents: the source image (edit), first frame (i2v), references (r2v), source clip,
        # in the form the backbone family takes them.
        reference = self._reference_latents(request, device, dtype)
        if reference is not None:
            reference = reference.expand(n, *reference.shape[1:])
        reference, first_frame = self.adapter.condition(reference, request.task)

        # 4. Initial noise.
        latents = initial_noise([request.seed], latent_shape).to(device=device, dtype=dtype)
        if first_frame is not None:  # the adapter returns zero velocity there, so it stays clean
            latents[:, :, :1] = first_frame

        # 5-6. Timesteps and the denoising loop.
        t_loop = time.perf_counter()
        text = self.text_conditioning(plan, [request.instruction], use_cfg)
        latents = self._denoise(latents, text.context, text.mask, plan_tokens, reference,
                                request.steps, request.guidance, callback, preview, pooled=text.pooled)
        timings["denoise"] = time.perf_counter() - t_loop

        # 7. Decode.
        t_dec = time.perf_counter()
        frames = self.codec.decode(latents)
        unchanged = False
        # Cell edits (cell_edited, above) change the canvas and not the draft: the draft is then no longer the
        # plan to check against, nor the place the edit may change.
        unchanged_why = ""
        if request.task is Task.VIDEO_EDIT:
            drawn, drafted, bounded = frames, False, False
            if request.keep_source:
                drafted = plan.has_draft(0) and request.use_canvas and not cell_edited and drafts_edits(self.planner)
                allowed = self.drafted_edit_region(request.video[: request.frames], plan.draft[0],
                                                   frames.shape[:3], source_rows) if drafted else None
                bounded = allowed is not None
                frames = self.keep_source(request.video, frames, allowed)
            # Only a model that keeps its source's pixels can give its source back exactly.
            unchanged = bool(self.defaults.keep_source_threshold) and changed_nothing(request.video, frames)
            if unchanged and drafted:  # why, for the user: the plan or the bound (a missing object is said above)
                if not bounded:
                    unchanged_why = NOTHING_PLANNED
                elif not changed_nothing(request.video, self.keep_source(request.video, drawn)):
                    unchanged_why = PUT_BACK
        if request.task is Task.IMAGE_TO_VIDEO and request.keep_source and request.use_canvas and plan.has_draft(0):
            frames = self.keep_first_frame(request.instruction, request.images[0], frames, plan.draft[0].cpu())
        timings["decode"] = time.perf_counter() - t_dec
        shortfall = None
        if request.task is Task.VIDEO_EDIT and not unchanged and not cell_edited and plan.has_draft(0) \
                and request.use_canvas and drafts_edits(self.planner):  # the canvas off, the DiT never saw the draft
            t_check = time.perf_counter()
            try:
                source = np.asarray(request.video[: request.frames])
                if source_rows is None:
                    source_rows = source_tracks(self.planner, [source], self.planner.edit_drafter.config)[0]
                shortfall = edit_shortfall(self.planner, plan.draft[0].cpu(), frames,
                                           source=source_as_made(source, frames), source_rows=source_rows,
                                           instruction=request.instruction)
            except Exception:  # noqa: BLE001  advisory: a check that fails must not cost the user the finished clip
                log.exception("the edit's check against its plan failed; the clip is kept unchecked")
            timings["check"] = time.perf_counter() - t_check
        elif request.task is Task.REFERENCE_TO_VIDEO and plan.has_draft(0) and request.use_canvas \
                and drafts_edits(self.planner):  # the same check: a named object lost or drawn elsewhere is said
            t_check = time.perf_counter()
            try:
                shortfall = edit_shortfall(self.planner, plan.draft[0].cpu(), frames, instruction=request.instruction)
            except Exception:  # noqa: BLE001  advisory, as above
                log.exception("the reference clip's check against its plan failed; the clip is kept unchecked")
            timings["check"] = time.perf_counter() - t_check
        elif request.task is Task.IMAGE_EDIT and not cell_edited and plan.has_draft(0) and request.use_canvas \
                and checks_still_edits(self.planner):  # a drafted still edit: the picture against its draft
            t_check = time.perf_counter()
            try:
                shortfall = still_edit_shortfall(self.planner, plan.draft[0].cpu(), frames[0],
                                                 source=np.asarray(request.images[0]), instruction=request.instruction)
            except Exception:  # noqa: BLE001  advisory, as above
                log.exception("the edit's check against its plan failed; the picture is kept unchecked")
            timings["check"] = time.perf_counter() - t_check
        plan_off = ""
        if request.task is Task.VIDEO_EDIT and not cell_edited and plan.has_draft(0) and request.use_canvas \
                and drafts_edits(self.planner):
            plan_off = plan_off_words(request.instruction, plan.draft[0].cpu())
        missing: list[str] = []
        if request.task in (Task.IMAGE_TO_VIDEO, Task.REFERENCE_TO_VIDEO) and request.use_canvas and \
                plan.has_draft(0) and drafts_from_media(self.planner):
            missing = named_but_missing(request.instruction, still_labels(self.planner, list(request.images)))
        elif request.task is Task.IMAGE_EDIT and request.use_canvas and plan.has_draft(0) and \
                checks_still_edits(self.planner):
            # "make the circle green" of a picture whose circle the detector does not read as one (a photo, a shape
            # drawn otherwise): the edit was drafted from what it does read, and its check names those objects.
            missing = named_but_missing(request.instruction, still_labels(self.planner, list(request.images[:1])))
        return GenerationResult(frames=frames, plan=plan.to("cpu"), request=request,
                                seconds=time.perf_counter() - t_start, timings=timings, unchanged=unchanged,
                                unchanged_why=unchanged_why, shortfall=shortfall, missing=tuple(missing),
                                plan_off=plan_off)

    def keep_source(self, source: np.ndarray, frames: np.ndarray, allowed: np.ndarray | None = None) -> np.ndarray:
        """An edited clip with its source's own pixels where the model did not change it (the model's
        `keep_source_threshold`; off when 0), and outside `allowed` (`drafted_edit_region`) when given. The
        source is resized as the codec was given it."""
        threshold = self.defaults.keep_source_threshold
        if not threshold:
            return frames
        given = source_as_made(source, frames)
        n = len(given)
        return np.concatenate([with_source_kept(given, frames[:n], threshold, allowed), frames[n:]])

    def keep_first_frame(self, instruction: str, image: np.ndarray, frames: np.ndarray, draft) -> np.ndarray:
        """Image-to-video: the given image's own pixels in every frame where the model changed nothing (the
        model's keep_source_threshold; off when 0) and in every change away from the drafted paths of the objects
        the words name: an object they leave alone stays as the image has it, the background too. Unchanged
        without a draft (`draft`, [length, 6] track rows) or when the words name no drafted object.

        Our addition, as the drafter is: the DiT repainted or dropped objects the words do not name (a new
        user's "the blue square moves right" of three shapes turned the red circle blue in 2 of 3 seeds)."""
        threshold = self.defaults.keep_source_threshold
        if not threshold or draft is None or not drafts_from_media(self.planner):
            return frames
        named = named_rows(instruction, draft)
        if not named:
            return frames
        config = self.planner.drafter.config
        count, height, width = np.asarray(frames).shape[:3]
        # A named object's whole path, in every frame: the image held still has the object at its start, so the
        # place it left is a change too, in frames where its drafted box has moved on (kept to the box of the
        # frame alone, the image's object came back there: a second square in "the blue square moves right").
        path = drafted_region([], named, config, count, height, width)
        allowed = np.broadcast_to(path.any(axis=0), path.shape)
        held = np.repeat(source_as_made(np.asarray(image)[None, ..., :3], frames)[:1], count, axis=0)
        return with_source_kept(held, frames, threshold, allowed)

    def drafted_edit_region(self, source: np.ndarray, draft, shape: tuple[int, int, int],
                            source_rows=None) -> np.ndarray | None:
        """bool `shape` ([F, H, W], the edited clip's): where a drafted video edit may change its `source` clip
        (the frames its draft was made from): the paths of the tracks its draft (`draft`, [length, 6] track
        rows) adds, drops or changes, found against the source's own tracks (app/core/keep_source.py's
        `drafted_region`; `source_rows`, the source's tracks when already found). None, the edit unbounded, for
        a model that does not draft edits, an undrafted edit, or a draft that changes no track.

        Our addition, as the drafter is. On the 64 held-out edits of the tuning seed (11), the 27,294-step DiT's
        clips kept to their drafts' places were fully right 0.50 of the time against 0.30 kept by the threshold
        alone: it also redraws objects the edit leaves alone a few pixels off their paths (changes the threshold
        keeps), and now and then recolours the wrong one. Held at the noised source during sampling instead
        (blended latents) it did no better (0.42 either way, before the judge's correction of adds), so the bound
        is applied to the decoded clip."""
        if draft is None or not self.defaults.keep_source_threshold or not drafts_edits(self.planner):
            return None
        config = self.planner.edit_drafter.config
        source = np.asarray(source)
        rows = source_tracks(self.planner, [source], config)[0] if source_rows is None else source_rows
        # The tracks are timed over the source's own frames: a shorter source feeds the first frames alone.
        frames, height, width = shape
        return drafted_region(rows, torch.as_tensor(draft).cpu(), config, min(frames, len(source)), height, width)

    def classifier_free(self, guidance: float) -> bool:
        """Whether `guidance` runs classifier-free guidance (an unconditional row beside each conditional one).
        Not for a guidance-distilled backbone (FLUX.1-Kontext-dev): there the value goes into its guidance
        embedding, one row a step, as its own pipeline does."""
        return guidance > 1.0 and not getattr(self.adapter, "guidance_embeds", False)

    def _check_canvas_off(self, use_canvas: bool) -> None:
        if not use_canvas and not getattr(self.adapter, "text_to_dit", True):
            raise ValueError(f"'{self.name}' gives its DiT the canvas and no text (the canvas-without-text "
                             f"ablation): with the canvas off it would draw from nothing; turn the canvas on")

    def _plan_tokens(self, plan: Plan, n: int, use_canvas: bool) -> torch.Tensor | None:
        """The first `n` plans through the canvas connector's first block (once per request); None for
        a text-only model or run."""
        if not use_canvas or not self.adapter.takes_plan:
            return None
        return self.adapter.prepare_plan(plan.canvas[:n].to(self.dtype))

    def text_conditioning(self, plan: Plan, instructions: list[str], unconditional: bool) -> TextConditioning:
        """What the denoiser is conditioned on for `instructions` (then as many empty instructions when
        `unconditional`): the plan's MLLM states, or the backbone's own text encoder's on the native path."""
        n = len(instructions) * (2 if unconditional else 1)
        if self.native_text is None:
            return TextConditioning(plan.context[:n].to(self.dtype), plan.context_mask[:n])
        negatives = [""] * len(instructions) if unconditional else None
        return self.native_text.encode(list(instructions), negatives).to(self.device, self.dtype)

    def _denoise(self, latents: torch.Tensor, context: torch.Tensor, context_mask: torch.Tensor,
                 plan_tokens: torch.Tensor | None, reference, steps: int, guidance: float,
                 callback: StepCallback | None = None, preview: bool = False,
                 pooled: torch.Tensor | None = None) -> torch.Tensor:
        """The denoising loop, for `latents` [B, ...] whose conditions (context, plan tokens, reference)
        hold B conditional rows, then, with guidance (> 1), B unconditional ones: conditional and
        unconditional run as ONE batch-2B forward. Outside the guidance interval only the conditional
        rows run.

        Everything that does not change from step to step was made by the caller, once; the per-step
        timesteps are made here in one go. inference_mode rather than no_grad: the loop is a few
        thousand small ops per image, and inference mode skips their version-counter and
        autograd-dispatch bookkeeping (a few percent on 2 CPU cores). Nothing made inside escapes to
        the caller as a tensor except the step callback's `latents`, which callers only read."""
        device = latents.device
        b = latents.shape[0]
        use_cfg = self.classifier_free(guidance)
        if getattr(self.adapter, "guidance_embeds", False):
            self.adapter.guidance_scale = float(guidance)  # read by the adapter at each step
        n = 2 * b if use_cfg else b
        set_timesteps(self.scheduler, steps, self._token_count(latents), device)
        sigmas = self.scheduler.sigmas
        times = sigmas[:-1] if self.defaults.timestep_from == "sigma" else self.scheduler.timesteps.float() / 1000
        # float32 whatever the model's dtype: bfloat16 would round 999 to 1000 and 749 to 752 (what the base
        # pipelines feed is the scheduler's own value; the timestep embedders compute in float32).
        step_times = times[:, None].expand(-1, n).to(device=device, dtype=torch.float32)
        with torch.inference_mode():
            for i, t in enumerate(self.scheduler.timesteps):
                m = n if use_cfg and self.defaults.guided(float(sigmas[i])) else b
                model_in = latents if m == b else torch.cat([latents, latents])
                velocity = self.adapter(model_in, step_times[i, :m], context[:m], context_mask[:m],
                                        plan_tokens=None if plan_tokens is None else plan_tokens[:m],
                                        reference=_first(reference, m), pooled=None if pooled is None else pooled[:m])
                if m != b:
                    cond, uncond = velocity.chunk(2)
                    velocity = uncond + guidance * (cond - uncond)
                latents = self.scheduler.step(velocity, t, latents, return_dict=False)[0]
                if callback is not None:
                    frames_preview = None
                    if preview:
                        x0 = latents - sigmas[i + 1] * velocity  # the clean estimate at this step
                        frames_preview = self.codec.decode(x0)
                    if callback(StepInfo(i + 1, steps, latents, frames_preview)) is False:
                        raise GenerationCancelled(i + 1, steps)
        return latents

    def _token_count(self, latents: torch.Tensor) -> int:
        frames, rows, cols = self.adapter.token_grid(tuple(latents.shape[1:]))
        return frames * rows * cols

    def _reference_latents(self, request: GenerationRequest, device, dtype) -> torch.Tensor | None:
        if request.task in (Task.IMAGE_EDIT, Task.IMAGE_TO_VIDEO):
            return self.codec.encode(request.images[0], request.height, request.width, device, dtype)
        if request.task is Task.REFERENCE_TO_VIDEO:
            # Each reference is a still of its own, encoded alone and laid one per latent frame: a causal
            # video VAE given them as one clip would fold them into shared latent frames (Wan packs 4
            # frames into 1) and lose all but the first.
            refs = [self.codec.encode(np.asarray(im)[..., :3], request.height, request.width, device, dtype)
                    for im in self.given_stills(request.task, request.instruction, request.images, request.use_canvas)]
            return torch.cat([r if r.ndim == 5 else r.unsqueeze(2) for r in refs], dim=2)
        if request.task is Task.VIDEO_EDIT:
            return self.codec.encode(request.video[: request.frames], request.height, request.width, device, dtype)
        return None

    # -- batched sampling (evaluation, the command line's --prompts) ---------------------------------
    @torch.no_grad()
    def sample(self, instructions: list[str], seeds: list[int], *, sources: list[np.ndarray] | None = None,
               steps: int | None = None, guidance: float | None = None, use_canvas: bool = True,
               height: int | None = None, width: int | None = None) -> np.ndarray:
        """Many stills at once with the same settings: text-to-image, or image edits when `sources`
        (one source image per instruction) are given. Returns uint8 [B, H, W, 3]."""
        for text in instructions:
            self.check_instruction(text)
        self._check_canvas_off(use_canvas)
        d = self.defaults
        steps, guidance = steps or d.steps, d.guidance if guidance is None else guidance
        height, width = height or d.height, width or d.width
        self.check_size(width, height)
        task = Task.IMAGE_EDIT if sources is not None else Task.TEXT_TO_IMAGE
        device, dtype = self.device, self.dtype
        b = len(instructions)
        spec = self.canvas_spec(GenerationRequest(task, "x", width=width, height=height, images=[np.zeros((1, 1, 3), np.uint8)]))
        copies = 2 if self.classifier_free(guidance) else 1  # the unconditional rows follow the conditional ones
        texts = list(instructions) + [""] * b * (copies - 1)
        images = [[s] for s in sources] * copies if sources is not None else None
        plan = self.planner(texts, spec, images=images, seeds=list(seeds) * copies).to(device)
        reference = None
        if sources is not None:
            reference = torch.cat([self.codec.encode(s, height, width, device, dtype) for s in sources] * copies)
        reference, _ = self.adapter.condition(reference, task)
        latents = initial_noise(seeds, self.codec.latent_shape(height, width, 1)).to(device=device, dtype=dtype)
        text = self.text_conditioning(plan, list(instructions), copies == 2)
        latents = self._denoise(latents, text.context, text.mask, self._plan_tokens(plan, b * copies, use_canvas),
                                reference, steps, guidance, pooled=text.pooled)
        return np.concatenate([self.codec.decode(latents[i:i + 1]) for i in range(b)])
