"""Evaluate a video model on the shapes world in motion: the four video tasks on held-out prompts, fixed seeds.

- text-to-video: GenEval-style records (app/shapes/video_prompts.py, seed `seed`), scored by score_clip:
  clips right (per tag, overall the mean of the tags), motion followed, objects right per frame (the
  mean fraction of frames), identity kept, flicker of what should stand still (grey levels, mean over
  clips: motion_measure.flicker over the pixels no track moves through; a clip with no such pixel, noise
  say, is left out of the mean rather than counted as steady).
- image-to-video: records of another seed; the first frame is a ground-truth render of the record, the
  model is asked for the record's motion from it. First-frame PSNR (dB, output frame 0 against the given
  image, capped at PSNR_CAP) and motion followed (score_clip on the record).
- video edits: (source, instruction, target) triples, the five kinds taking turns. Fully right is
  motion_measure.edit_success (the target's objects, motion and events, and 99.5 % of the pixels outside
  the edited objects kept); PSNR outside the edit region (dB, against the target clip, which equals the
  source there).
- reference video: one or two stills and an instruction naming objects from them (the counts taking
  turns). Scored from the words alone (parse_reference_instruction): each named object, in the class and
  colour its reference shows (found by the detector on the still), moves the named way; in at least
  OBJECTS_RIGHT_FRACTION of the frames exactly the named objects are on screen; identity kept.

Sampling is batched (`sample_clips`: one planner call and one denoising loop per batch, as
MetaCanvasPipeline.sample does for stills); a batch's items share a task and, for reference video, a
number of stills (the condition frames are concatenated along time). A clip made alone by the
pipeline with the same seed is the same clip, up to the planner's padding in a batch.

    python main.py bench video_quality [--model M] [--twin M2] [--text-only] [--n 100] [--seed 7]
"""
from __future__ import annotations

import json
import os
import re
import time
from pathlib import Path

import numpy as np
import torch

from app.eval.drafts import track_drafts_motion_followed
from app.eval.edits import psnr_outside
from app.shapes.detect import detect
from app.shapes.motion import Clause, render_clip
from app.shapes.motion_measure import (OBJECTS_RIGHT_FRACTION, clause_holds, edit_scores, flicker,
                                       identity_kept, judged_edit_region, objects_right, static_mask_from_tracks, tracks)
from app.shapes.video_edits import (VIDEO_EDIT_KINDS, parse_reference_instruction, random_reference_video,
                                    sample_video_edit, video_edit_kind)
from app.shapes.video_prompts import (make_video_metadata, scene_for_video_metadata, score_clip, summarize_clips)

VIDEO_EVAL_TASKS: tuple[str, ...] = ("text_to_video", "image_to_video", "video_edit", "reference_to_video")
PSNR_CAP = 99.0  # dB: identical pixels give inf; a cap keeps means and JSON finite (as model_eval does)
# Each task's held-out set draws from its own seed, so the four sets differ for one --seed.
_TASK_SEED_OFFSET = {"text_to_video": 0, "image_to_video": 1, "video_edit": 2, "reference_to_video": 3}


def psnr(a, b, mask: np.ndarray | None = None) -> float:
    """PSNR (dB, peak 255) of a against b over the pixels where `mask` ([..., H, W], bool) is False
    (everywhere when None), capped at PSNR_CAP."""
    a = np.asarray(a)
    mask = np.zeros(a.shape[:-1], bool) if mask is None else mask
    return min(psnr_outside(a, np.asarray(b), mask), PSNR_CAP)


# ----------------------------------------------------------------------------------------- sampling

@torch.no_grad()
def sample_clips(pipe, task: str, instructions: list[str], seeds: list[int], *, images=None, videos=None,
                 frames: int | None = None, steps: int | None = None, guidance: float | None = None,
                 use_canvas: bool = True, drafts_out: list | None = None,
                 drafts: torch.Tensor | None = None, keep_source: bool = True) -> list[np.ndarray]:
    """Many clips of one task at once, at the model's size: `images` one list of stills per item
    (image-to-video: [first frame]; reference video: its 1 or 2 stills, the same count for all items),
    `videos` one source clip per item (video edit). Returns uint8 [F, H, W, 3] per item; each item's
    draft rows go onto `drafts_out` when given and the model drafted them. `drafts` ([B, length, 6] track
    rows, a drafting model's only) plans each item from the given tracks instead of the model's own drafts
    (research: what a draft would do for a task the drafter does not draft). Video edits keep their
    sources' pixels where unchanged as the pipeline does (the model's keep_source_threshold) unless
    `keep_source` is False."""
    from app.core.pipeline import initial_noise
    from app.core.request import GenerationRequest, Task

    task = Task(task)
    for text in instructions:
        pipe.check_instruction(text)
    d = pipe.defaults
    frames = frames or d.frames
    steps, guidance = steps or d.steps, d.guidance if guidance is None else guidance
    height, width = d.height, d.width
    pipe.check_frames(frames)
    if task.value not in pipe.tasks:
        raise ValueError(f"the model '{pipe.name}' does not do {task.value.replace('_', ' ')}")
    b = len(instructions)
    if task.needs_image and (images is None or len(images) != b or len({len(i) for i in images}) != 1):
        raise ValueError(f"{task.value} needs one list of stills per item, all of one length")
    if task.needs_video and (videos is None or len(videos) != b):
        raise ValueError("video_edit needs one source clip per item")
    device, dtype = pipe.device, pipe.dtype
    if task.needs_image:  # as the pipeline gives them (reference video's unnamed objects painted out)
        images = [pipe.given_stills(task, text, item, use_canvas) for text, item in zip(instructions, images)]
    spec = pipe.canvas_spec(GenerationRequest(task, "x", width=width, height=height, frames=frames))
    copies = 2 if guidance > 1.0 else 1  # the unconditional rows (empty instruction, same media) follow
    texts = list(instructions) + [""] * b * (copies - 1)
    planner_images = [list(i) for i in images] * copies if task.needs_image else None
    planner_videos = [pipe.planner_clip(v) for v in videos] * copies if task.needs_video else None
    if drafts is not None:  # the unconditional rows are never drafted
        from app.core.draft import no_drafts
        drafts = torch.cat([torch.as_tensor(drafts).long()] + [no_drafts(b, pipe.planner.drafter.config)] * (copies - 1))
    else:  # as the pipeline plans a request: a clip from an image or stills is drafted from its words, onto them
        # A video edit is drafted from the frames it edits, as the pipeline drafts it.
        drafts = pipe.media_drafts(task, texts, planner_images, list(seeds) * copies,
                                   [np.asarray(v)[:frames] for v in videos] * copies if task.needs_video else None)
    plan = pipe.planner(texts, spec, images=planner_images, videos=planner_videos,
                        seeds=list(seeds) * copies, drafts=drafts).to(device)
    if drafts_out is not None and plan.draft is not None and use_canvas:
        drafts_out.extend(plan.draft[:b])

    def encode(x):
        return pipe.codec.encode(np.asarray(x)[..., :3], height, width, device, dtype)

    if task is Task.IMAGE_TO_VIDEO:
        per_item = [encode(i[0]) for i in images]
    elif task is Task.REFERENCE_TO_VIDEO:  # each still a latent frame of its own, as the pipeline lays them
        per_item = [torch.cat([encode(im) for im in item], dim=2) for item in images]
    elif task is Task.VIDEO_EDIT:
        per_item = [encode(np.asarray(v)[:frames]) for v in videos]
    else:
        per_item = None
    reference = torch.cat(per_item * copies) if per_item is not None else None
    reference, _ = pipe.adapter.condition(reference, task)
    latents = initial_noise(list(seeds), pipe.codec.latent_shape(height, width, frames)).to(device=device, dtype=dtype)
    if task is Task.IMAGE_TO_VIDEO:  # the given frame stays clean (the adapter returns zero velocity there)
        latents[:, :, :1] = torch.cat(per_item)[:, :, :1]
    latents = pipe._denoise(latents, plan.context.to(dtype), plan.context_mask,
                            pipe._plan_tokens(plan, b * copies, use_canvas), reference, steps, guidance)
    clips = [pipe.codec.decode(latents[i:i + 1]) for i in range(b)]
    drafted = plan.draft[:b].cpu() if plan.draft is not None and use_canvas else [None] * b
    if task is Task.VIDEO_EDIT and keep_source:  # as the pipeline keeps them: bounded by the drafts' places
        clips = [pipe.keep_source(v, c, pipe.drafted_edit_region(np.asarray(v)[:frames], r, c.shape[:3]))
                 for v, c, r in zip(videos, clips, drafted)]
    if task is Task.IMAGE_TO_VIDEO and keep_source:  # as the pipeline keeps what the words leave alone
        clips = [pipe.keep_first_frame(text, item[0], c, r) for text, item, c, r in zip(instructions, images, clips,
                                                                                          drafted)]
    return clips


def _chunks(n: int, batch: int):
    for start in range(0, n, batch):
        yield range(start, min(n, start + batch))


# ----------------------------------------------------------------------------------------- scoring

def clip_flicker(frames) -> float | None:
    """motion_measure.flicker over the pixels no track moves through (static_mask_from_tracks); None when
    there are none (a clip of noise has tracks everywhere): such a clip says nothing about flicker, and
    score_clip's 0.0 for it would read as perfectly steady."""
    frames = np.asarray(frames)
    static = static_mask_from_tracks(tracks(frames), len(frames), frames.shape[2])
    return flicker(frames, static) if static.any() else None


def _score(frames, metadata: dict) -> dict:
    out = score_clip(frames, metadata)
    out["flicker"] = clip_flicker(frames)
    return out


def score_text_to_video(frames, metadata: dict) -> dict:
    """score_clip: objects_right (fraction of frames), motion_followed, events_followed, identity_kept,
    correct; flicker (clip_flicker: None when no pixel should stand still)."""
    return _score(frames, metadata)


def score_image_to_video(frames, first_frame, metadata: dict) -> dict:
    """score_text_to_video on the record, and the PSNR of the output's first frame against the given one."""
    out = _score(frames, metadata)
    out["first_frame_psnr"] = psnr(np.asarray(frames)[0], np.asarray(first_frame)[..., :3])
    return out


def score_video_edit(source_frames, output_frames, source, target) -> dict:
    """edit_scores, `fully_right` (motion_measure.edit_success: done and nothing else changed) and the
    PSNR outside the edit region against the target clip (None when the region is the whole clip)."""
    output_frames = np.asarray(output_frames)
    n, size = output_frames.shape[0], output_frames.shape[2]
    out = edit_scores(source_frames, output_frames, source, target)
    out["fully_right"] = bool(out["success"] and out["kept"])
    region = judged_edit_region(output_frames, source, target)
    out["psnr_outside"] = None if region.all() else psnr(output_frames, render_clip(target, n, size), region)
    return out


def reference_clauses(instruction: str, references: list[np.ndarray]) -> list[Clause]:
    """What a reference instruction asks, from its words: each named object moves the named way, in the
    class and colour its still shows (the detector's colour of the named object there; the words'
    colour when the still does not show it)."""
    clauses = []
    for part in parse_reference_instruction(instruction):
        still = references[part.image] if part.image < len(references) else None
        found = [] if still is None else [d for d in detect(np.asarray(still)[..., :3])
                                          if d.cls == part.cls and (part.color is None or d.color == part.color)]
        color = found[0].color if found else part.color
        clauses.append(Clause(part.cls, color, "moves", part.direction))
    return clauses


def score_reference_video(frames, instruction: str, references: list[np.ndarray]) -> dict:
    """motion_followed (every named object moves the named way, looking like its reference), objects_right
    (fraction of frames showing exactly the named objects), identity_kept, and `right`: all three (objects
    in OBJECTS_RIGHT_FRACTION of the frames)."""
    frames = np.asarray(frames)
    clauses = reference_clauses(instruction, references)
    found = tracks(frames)
    out = {"motion_followed": all(clause_holds(c, found, len(frames)) for c in clauses),
           "objects_right": objects_right(frames, clauses),
           "identity_kept": identity_kept(frames, clauses, found)}
    out["right"] = bool(out["motion_followed"] and out["objects_right"] >= OBJECTS_RIGHT_FRACTION
                        and out["identity_kept"])
    return out


def _mean(values) -> float | None:
    """The mean of the values that are not None; None when there are none (JSON has no NaN)."""
    values = [float(v) for v in values if v is not None]
    return float(np.mean(values)) if values else None


# ----------------------------------------------------------------------------------------- the tasks

def text_to_video_set(n: int, seed: int, frames: int) -> list[dict]:
    return make_video_metadata(n, seed=seed + _TASK_SEED_OFFSET["text_to_video"], frames=frames)


def image_to_video_set(n: int, seed: int, frames: int, size: int) -> list[tuple[dict, np.ndarray]]:
    """(record, its ground-truth clip) pairs: the clip's first frame is the given image."""
    metas = make_video_metadata(n, seed=seed + _TASK_SEED_OFFSET["image_to_video"], frames=frames)
    rng = np.random.default_rng(seed + 100)
    return [(m, render_clip(scene_for_video_metadata(m, rng), frames, size)) for m in metas]


def video_edit_set(n: int, seed: int):
    rng = np.random.default_rng(seed + _TASK_SEED_OFFSET["video_edit"])
    return [sample_video_edit(rng, VIDEO_EDIT_KINDS[i % len(VIDEO_EDIT_KINDS)]) for i in range(n)]


def reference_video_set(n: int, seed: int):
    rng = np.random.default_rng(seed + _TASK_SEED_OFFSET["reference_to_video"])
    return [random_reference_video(rng, 1 + i % 2) for i in range(n)]


def evaluate_text_to_video(pipe, n: int, *, seed: int = 7, batch: int = 16, progress=None, **sampling) -> dict:
    frames = pipe.defaults.frames
    metas = text_to_video_set(n, seed, frames)
    pairs, drafts = [], []
    for idx in _chunks(n, batch):
        clips = sample_clips(pipe, "text_to_video", [metas[i]["prompt"] for i in idx], [seed + i for i in idx],
                             frames=frames, drafts_out=drafts, **sampling)
        pairs += [(metas[i], score_text_to_video(c, metas[i])) for i, c in zip(idx, clips)]
        if progress:
            progress(len(idx))
    summary = summarize_clips(pairs)
    scores = [s for _, s in pairs]
    drafted = {}
    drafter = getattr(pipe.planner, "drafter", None)
    if drafts and drafter is not None and drafter.config.track:  # the drafter's own figure, apart from the clips'
        drafted["t2v_drafts_motion_followed"] = track_drafts_motion_followed(drafts, metas, drafter.config, frames,
                                                                             pipe.defaults.width)
    return {**drafted, "t2v_correct": summary["overall"], "t2v_motion_followed": _mean(s["motion_followed"] for s in scores),
            "t2v_objects_right": _mean(s["objects_right"] for s in scores),
            "t2v_events_followed": _mean(s["events_followed"] for s in scores),
            "t2v_identity_kept": _mean(s["identity_kept"] for s in scores),
            "t2v_flicker": _mean(s["flicker"] for s in scores),
            "t2v_flicker_clips": sum(s["flicker"] is not None for s in scores),
            **{f"t2v_{tag}": v for tag, v in summary["tags"].items()}, "t2v_clips": len(pairs)}


def evaluate_image_to_video(pipe, n: int, *, seed: int = 7, batch: int = 16, progress=None, **sampling) -> dict:
    d = pipe.defaults
    items = image_to_video_set(n, seed, d.frames, d.width)
    scores = []
    for idx in _chunks(n, batch):
        clips = sample_clips(pipe, "image_to_video", [items[i][0]["prompt"] for i in idx], [seed + i for i in idx],
                             images=[[items[i][1][0]] for i in idx], frames=d.frames, **sampling)
        scores += [score_image_to_video(c, items[i][1][0], items[i][0]) for i, c in zip(idx, clips)]
        if progress:
            progress(len(idx))
    return {"i2v_first_frame_psnr": _mean(s["first_frame_psnr"] for s in scores),
            "i2v_motion_followed": _mean(s["motion_followed"] for s in scores),
            "i2v_correct": _mean(s["correct"] for s in scores), "i2v_flicker": _mean(s["flicker"] for s in scores),
            "i2v_clips": len(scores)}


def evaluate_video_edits(pipe, n: int, *, seed: int = 7, batch: int = 16, progress=None, **sampling) -> dict:
    d = pipe.defaults
    triples = video_edit_set(n, seed)
    scores, unbounded_scores, drawn_scores, kinds, bounded = [], [], [], [], []
    for idx in _chunks(n, batch):
        sources = [render_clip(triples[i].source, d.frames, d.width) for i in idx]
        drafts: list = []
        drawn = sample_clips(pipe, "video_edit", [triples[i].instruction for i in idx], [seed + i for i in idx],
                             videos=sources, frames=d.frames, keep_source=False, drafts_out=drafts, **sampling)
        for k, (i, src, c) in enumerate(zip(idx, sources, drawn)):
            region = pipe.drafted_edit_region(src, drafts[k] if drafts else None, c.shape[:3])
            scores.append(score_video_edit(src, pipe.keep_source(src, c, region), triples[i].source, triples[i].target))
            unbounded = pipe.keep_source(src, c)
            unbounded_scores.append(score_video_edit(src, unbounded, triples[i].source, triples[i].target))
            drawn_scores.append(score_video_edit(src, c, triples[i].source, triples[i].target))
            bounded.append(region is not None)
            kinds.append(video_edit_kind(triples[i].instruction))
        if progress:
            progress(len(idx))
    out = {"edit_fully_right": _mean(s["fully_right"] for s in scores),
           "edit_done": _mean(s["success"] for s in scores), "edit_kept": _mean(s["kept"] for s in scores),
           "edit_psnr_outside": _mean(s["psnr_outside"] for s in scores)}
    if any(bounded):  # the same clips kept by the threshold alone, not bounded by their drafts' places
        out |= {"edit_fully_right_unbounded": _mean(s["fully_right"] for s in unbounded_scores),
                "edit_done_unbounded": _mean(s["success"] for s in unbounded_scores),
                "edit_kept_unbounded": _mean(s["kept"] for s in unbounded_scores),
                "edit_bounded": _mean(bounded)}
    if d.keep_source_threshold:  # the same clips as the DiT drew them, before the source's pixels went back
        out |= {"edit_fully_right_drawn": _mean(s["fully_right"] for s in drawn_scores),
                "edit_done_drawn": _mean(s["success"] for s in drawn_scores),
                "edit_kept_drawn": _mean(s["kept"] for s in drawn_scores),
                "edit_psnr_outside_drawn": _mean(s["psnr_outside"] for s in drawn_scores)}
    for kind in VIDEO_EDIT_KINDS:
        mine = [s["fully_right"] for s, k in zip(scores, kinds) if k == kind]
        if mine:
            out[f"edit_{kind}"] = _mean(mine)
    out["edit_clips"] = len(scores)
    return out


def evaluate_reference_video(pipe, n: int, *, seed: int = 7, batch: int = 16, progress=None, **sampling) -> dict:
    d = pipe.defaults
    items = reference_video_set(n, seed)
    scores: dict[int, dict] = {}
    for count in (1, 2):  # a batch shares its number of stills (its condition frames)
        group = [i for i, r in enumerate(items) if len(r.references) == count]
        for idx in _chunks(len(group), batch):
            chosen = [group[k] for k in idx]
            stills = [items[i].images(d.width) for i in chosen]
            clips = sample_clips(pipe, "reference_to_video", [items[i].instruction for i in chosen],
                                 [seed + i for i in chosen], images=stills, frames=d.frames, **sampling)
            for i, refs, c in zip(chosen, stills, clips):
                scores[i] = score_reference_video(c, items[i].instruction, refs)
            if progress:
                progress(len(chosen))
    ordered = [scores[i] for i in range(n)]
    by_count = {c: [s["right"] for s, r in zip(ordered, items) if len(r.references) == c] for c in (1, 2)}
    return {"r2v_right": _mean(s["right"] for s in ordered),
            "r2v_motion_followed": _mean(s["motion_followed"] for s in ordered),
            "r2v_objects_right": _mean(s["objects_right"] for s in ordered),
            **{f"r2v_right_{c}_image{'s' if c > 1 else ''}": _mean(v) for c, v in by_count.items() if v},
            "r2v_clips": n}


_EVALUATORS = {"text_to_video": evaluate_text_to_video, "image_to_video": evaluate_image_to_video,
               "video_edit": evaluate_video_edits, "reference_to_video": evaluate_reference_video}


def evaluate_video_model(pipe, n: int = 100, *, seed: int = 7, tasks=VIDEO_EVAL_TASKS, use_canvas: bool = True,
                         steps: int | None = None, guidance: float | None = None, batch: int = 16,
                         progress=None) -> dict:
    """`n` clips per task (those of `tasks` the model does), seeds seed, seed + 1, ...; returns the flat
    scores and `<task>_seconds` (sampling and scoring)."""
    out: dict = {}
    for task in tasks:
        if task not in _EVALUATORS:
            raise ValueError(f"unknown video task {task!r}; known: {', '.join(VIDEO_EVAL_TASKS)}")
        if task not in pipe.tasks:
            continue
        t0 = time.perf_counter()
        out.update(_EVALUATORS[task](pipe, n, seed=seed, batch=batch, progress=progress, steps=steps,
                                     guidance=guidance, use_canvas=use_canvas))
        out[f"{task}_seconds"] = round(time.perf_counter() - t0, 1)
    return out


# What the issue asks of each figure (None: reported, no bar), in the order of the table.
TARGETS: dict[str, tuple[str, str | None]] = {
    "t2v_correct": ("text-to-video: clips right (mean of the tags)", None),
    "t2v_motion_followed": ("text-to-video: motion followed", ">= 0.85"),
    "t2v_drafts_motion_followed": ("text-to-video: the track drafts alone, drawn: motion followed", None),
    "t2v_objects_right": ("text-to-video: objects right (fraction of frames)", None),
    "t2v_identity_kept": ("text-to-video: identity kept", None),
    "t2v_flicker": ("text-to-video: flicker (grey levels; lower is steadier)", None),
    "i2v_first_frame_psnr": ("image-to-video: first frame PSNR (dB)", ">= 35"),
    "i2v_motion_followed": ("image-to-video: motion followed", ">= 0.85"),
    "edit_fully_right": ("video edit: fully right", ">= 0.85"),
    "edit_psnr_outside": ("video edit: PSNR outside the edit (dB)", ">= 28"),
    "edit_done": ("video edit: done (the named change made)", None),
    "edit_kept": ("video edit: kept (nothing else changed)", None),
    "edit_fully_right_unbounded": ("video edit, not bounded by its draft's places (the threshold alone): fully right",
                                   None),
    "edit_fully_right_drawn": ("video edit, as drawn (before the source's unchanged pixels went back): fully right", None),
    "edit_psnr_outside_drawn": ("video edit, as drawn: PSNR outside the edit (dB)", None),
    "r2v_right": ("reference video: right", ">= 0.7"),
}


def format_markdown(rows: list[dict]) -> str:
    """One column per evaluated row (model, or model run text-only), one line per figure."""
    names = [r.get("label") or r.get("model", "?") for r in rows]
    lines = ["| | " + " | ".join(names) + " | issue's bar |", "|---|" + "---|" * (len(rows) + 1)]

    def cell(v):
        if v is None or (isinstance(v, float) and np.isnan(v)):
            return "-"
        return f"{v:.1f}" if isinstance(v, float) and abs(v) > 1.5 else (f"{v:.3f}" if isinstance(v, float) else str(v))

    for key, (label, bar) in TARGETS.items():
        if any(key in r for r in rows):
            lines.append(f"| {label} | " + " | ".join(cell(r.get(key)) for r in rows) + f" | {bar or ''} |")
    lines.append("| clips per task | " + " | ".join(str(r.get("n", "-")) for r in rows) + " | |")
    lines.append("| seconds (all tasks) | " + " | ".join(cell(r.get("seconds")) for r in rows) + " | |")
    return "\n".join(lines)


# ----------------------------------------------------------------------------------------- folders

def is_video_record(metadata: dict) -> bool:
    """A record of video_prompts' layout (its include clauses say what each object does)."""
    return any("action" in r for r in metadata.get("include", []))


_SAMPLE = re.compile(r"\d+\.mp4")


def is_video_folder(folder) -> bool:
    """Whether a GenEval-layout folder holds clips (samples/NNNN.mp4) rather than pictures (NNNN.png). One that
    holds both is refused (ValueError): scored as either, the other kind's samples would be silently left out."""
    root = Path(folder)
    clips, pictures = [], []
    for sub in sorted(os.listdir(root)):
        samples = root / sub / "samples"
        if sub.isdigit() and samples.is_dir():
            names = os.listdir(samples)
            if any(_SAMPLE.fullmatch(name) for name in names):
                clips.append(sub)
            if any(re.fullmatch(r"\d+\.png", name) for name in names):
                pictures.append(sub)
    if clips and pictures:
        raise ValueError(f"{folder} holds clips ({clips[0]}/samples/) and pictures ({pictures[0]}/samples/): eval "
                         f"scores one kind a folder; generate image and video prompts into folders of their own")
    return bool(clips)


def score_video_folder(folder, skipped: list[str] | None = None) -> list[dict]:
    """Every samples/NNNN.mp4 of a GenEval-layout folder scored against its metadata.jsonl record. A clip that
    cannot be read is left out and named in `skipped` ("00002/samples/0000.mp4: why"); a folder whose record
    is not a video record is refused by name (ValueError)."""
    from app.media.errors import MediaError
    from app.media.probe import read_video_frames

    results = []
    root = Path(folder)
    for sub in sorted(os.listdir(root)):
        here = root / sub
        if not here.is_dir() or not sub.isdigit() or not (here / "samples").is_dir():
            continue
        metadata = json.loads((here / "metadata.jsonl").read_text().splitlines()[0])
        if not is_video_record(metadata):
            raise ValueError(f"{sub}/metadata.jsonl is not a video record (its include clauses say no object's "
                             f"action): its clips cannot be scored as clips")
        for name in sorted(os.listdir(here / "samples")):
            path = here / "samples" / name
            if not path.is_file() or not _SAMPLE.fullmatch(name):
                continue
            try:
                frames = read_video_frames(path)
            except MediaError as e:
                if skipped is None:
                    raise
                skipped.append(f"{sub}/samples/{name}: {e}")
                continue
            score = _score(frames, metadata)
            results.append({"filename": str(path), "tag": metadata["tag"], "prompt": metadata["prompt"],
                            "metadata": json.dumps(metadata), **score})
    return results


def summarize_video_results(results: list[dict]) -> dict:
    """summarize_clips (per tag, overall the mean of the tags) and the per-clip measures' means."""
    if not results:
        raise ValueError("no results to summarise: the folder held no clips (samples/NNNN.mp4)")
    summary = summarize_clips([({"tag": r["tag"]}, r) for r in results])
    for key in ("motion_followed", "objects_right", "events_followed", "identity_kept", "flicker"):
        summary[key] = _mean(r[key] for r in results)
    summary["total_prompts"] = len({r["metadata"] for r in results})
    return summary


def format_video_table(summary: dict) -> str:
    lines = [f"{'tag':<14} {'right':>7}"]
    lines += [f"{tag:<14} {v:>7.2%}" for tag, v in summary["tags"].items()]
    lines.append(f"{'overall':<14} {summary['overall']:>7.4f}   (mean over tags)")
    flick = "-" if summary["flicker"] is None else f"{summary['flicker']:.2f}"
    lines.append(f"clips right {summary['correct_clips']:.2%} of {summary['clips']} "
                 f"({summary['total_prompts']} prompts); "
                 f"motion followed {summary['motion_followed']:.3f}, objects right {summary['objects_right']:.3f}, "
                 f"identity kept {summary['identity_kept']:.3f}, flicker {flick} (grey levels)")
    return "\n".join(lines)


def write_sample_clip(frames, path, fps: float = 8.0) -> Path:
    """A sample of the GenEval layout as H.264 that keeps the pixels (4:4:4, qp 0: within one grey level),
    written atomically. The detector scores the decoded file, and at 48 px the 4:2:0 chroma of an ordinary
    export bleeds a pixel of colour off an object's edge that it can count as a sliver of another object
    (1 in 21 ground-truth clips failed that way at crf 12)."""
    from fractions import Fraction

    import av

    from app.media import atomic

    path = Path(path)
    frames = np.asarray(frames)[..., :3]
    h, w = frames.shape[1:3]
    if h % 2 or w % 2:
        frames = np.pad(frames, ((0, 0), (0, h % 2), (0, w % 2), (0, 0)), mode="edge")
    tmp = atomic.temp_path_for(path, ".mp4")
    try:
        with av.open(str(tmp), "w", format="mp4") as container:
            stream = container.add_stream("libx264", rate=Fraction(fps).limit_denominator(1001))
            stream.width, stream.height, stream.pix_fmt = frames.shape[2], frames.shape[1], "yuv444p"
            stream.options = {"qp": "0", "preset": "medium"}
            for k, frame in enumerate(frames):
                vf = av.VideoFrame.from_ndarray(np.ascontiguousarray(frame, dtype=np.uint8), format="rgb24")
                vf.pts = k
                for packet in stream.encode(vf):
                    container.mux(packet)
            for packet in stream.encode(None):
                container.mux(packet)
        atomic.commit_temp(tmp, path, overwrite=True)
    except BaseException:
        atomic.remove_quietly(tmp)
        raise
    return path


def write_video_report(summary: dict, results: list[dict], out_dir) -> str:
    """video_summary.json and video_results.jsonl (one line per clip) in out_dir; returns the table."""
    from app.media.atomic import write_bytes_atomic

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    write_bytes_atomic(out / "video_summary.json", json.dumps(summary, indent=2).encode())
    write_bytes_atomic(out / "video_results.jsonl", "".join(json.dumps(r) + "\n" for r in results).encode())
    return format_video_table(summary)
