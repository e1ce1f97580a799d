"""The video side of the command line (app/commands.py dispatches here): `video`, the plan as a clip,
and `generate --prompts` / `eval` on GenEval-layout folders of clips.

    python main.py video "a red circle moves to the right" -o out.mp4 [--image first.png]
        [--video source.mp4] [--reference a.png [b.png]] [--frames N] [--seed N] [--plan plan.mp4]

The task follows from the inputs: none = text-to-video, --image = image-to-video (the still is the
first frame), --reference = reference-image video (one or two stills), --video = video edit.
Length: --frames, else the model's clip length; a video edit's default is the source's length snapped
down to a length the model makes (1 + 4k frames for Wan's packing) and capped at the model's clip length,
so a long source is edited over its first frames, at the length the model was made for; --frames asks
for more (up to the source's length). Output: H.264 MP4, written atomically; an existing file is left
alone unless --overwrite (the rule of `render` and of app/media's exports); the source is never replaced.
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

VIDEO_SUFFIXES = (".mp4",)
MAX_REFERENCES = 2


# The share of an edited clip's pixels the model changed from which its note says it redrew the whole clip.
WHOLE_CLIP_CHANGED = 0.95


def load_video_pipeline(args, words: tuple[str, ...] = (), task=None):
    """--model, else the settings' video model (models/metacanvas-shapes-video by default); `words` as
    load_pipeline checks them, before the model loads."""
    from app.commands import _settings, load_pipeline

    if not args.model:
        from app.settings import DEFAULT_VIDEO_MODEL

        folder = Path(getattr(_settings(), "video_model", None) or DEFAULT_VIDEO_MODEL)
        if not folder.exists():
            raise ValueError(f"the video model {folder} is not there; give a video model folder with --model")
        args.model = str(folder)
    return load_pipeline(args, video=True, words=words, task=task)


def _check_task(pipe, task) -> None:
    if task.value not in pipe.tasks:
        raise ValueError(f"the model '{pipe.name}' does not do {task.value.replace('_', ' ')}; it does: "
                         f"{', '.join(t.replace('_', ' ') for t in pipe.tasks)}")


# ----------------------------------------------------------------------------------------- the plan as a clip

def latent_frame_of(frame: int, temporal_factor: int) -> int:
    """The latent frame a clip frame is packed into: frame 0 alone in latent frame 0, then frames
    4j-3 .. 4j in latent frame j (temporal_factor 4)."""
    return 0 if frame == 0 else (frame - 1) // temporal_factor + 1


def keyframe_weights(keyframes: int, latent_frames: int) -> np.ndarray:
    """[latent_frames, keyframes] linear weights: keyframe 0 on latent frame 0, the last on the last
    latent frame, linear between (as CanvasConnector.resize spreads the plan); one keyframe broadcasts."""
    w = np.zeros((latent_frames, keyframes))
    if keyframes == 1:
        w[:, 0] = 1.0
        return w
    pos = np.linspace(0, keyframes - 1, latent_frames)
    lo = np.minimum(np.floor(pos).astype(int), keyframes - 2)
    frac = pos - lo
    w[np.arange(latent_frames), lo] = 1 - frac
    w[np.arange(latent_frames), lo + 1] += frac
    return w


def _nearest(cells: np.ndarray, height: int, width: int) -> np.ndarray:
    from PIL import Image

    mode = "RGB" if cells.ndim == 3 else "L"
    return np.asarray(Image.fromarray(cells, mode).resize((width, height), Image.NEAREST))


def plan_video_frames(plan, frames: np.ndarray, temporal_factor: int, item: int = 0,
                      scale: int = 4, named: bool = True) -> list[np.ndarray]:
    """Per clip frame: [frame | drafted layout over it (drafted plans only) | canvas effect over it | PCA
    colours], each `scale` times the frame and named in its corner, the plan's keyframe maps interpolated to
    that frame's latent frame as the model spreads them."""
    import cv2

    from app.core.plan_view import heat_colours

    k = plan.keyframes
    n = len(frames)
    latent = (n - 1) // temporal_factor + 1
    w = keyframe_weights(k, latent)
    effect = np.stack([plan.canvas_effect(item=item, keyframe=i) for i in range(k)])  # [K, h, w]
    draft = plan.draft_map(item=item, keyframe=0) is not None
    drafts = np.stack([plan.draft_map(item=item, keyframe=i) for i in range(k)]) if draft else None
    pca = np.stack([plan.pca_rgb(item=item, keyframe=i) for i in range(k)]).astype(np.float64)
    h, wd = frames.shape[1] * scale, frames.shape[2] * scale
    gap = np.full((h, 4, 3), 255, np.uint8)

    def over(picture: np.ndarray, heat: np.ndarray, opacity: float = 0.6) -> np.ndarray:
        colours = _nearest(heat_colours(heat), h, wd).astype(np.float32)
        return (picture.astype(np.float32) * (1 - opacity) + colours * opacity).round().astype(np.uint8)

    out = []
    for f in range(n):
        mix = w[latent_frame_of(f, temporal_factor)]
        picture = _nearest(np.ascontiguousarray(frames[f][..., :3]), h, wd)
        panels = [picture]
        if drafts is not None:
            d = np.tensordot(mix, drafts, axes=1)
            panels.append(over(picture, d / max(float(drafts.max()), 1e-6)))
        panels.append(over(picture, np.tensordot(mix, effect, axes=1)))
        panels.append(_nearest(np.tensordot(mix, pca, axes=1).round().clip(0, 255).astype(np.uint8), h, wd))
        names = ["result"] + (["drafted layout"] if drafts is not None else []) + ["canvas effect", "canvas PCA"]
        row = []
        for name, p in zip(names, panels):
            if named and wd >= 96:  # a panel too small for words stays as it is
                p = np.array(p, copy=True)  # its own pixels: the result's are under the other panels too
                # White, outlined in black so it reads on any background: the outline is the same thin text moved a
                # pixel each way (drawn thicker, cv2 spaces the letters wider, and the two texts did not line up).
                for dx, dy in ((-1, -1), (0, -1), (1, -1), (-1, 0), (1, 0), (-1, 1), (0, 1), (1, 1)):
                    cv2.putText(p, name, (4 + dx, 14 + dy), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (0, 0, 0), 1, cv2.LINE_AA)
                cv2.putText(p, name, (4, 14), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (255, 255, 255), 1, cv2.LINE_AA)
            row += ([gap] if row else []) + [p]
        out.append(np.concatenate(row, axis=1))
    return out


# ----------------------------------------------------------------------------------------- `video`

def _check_output(path: Path, flag: str, overwrite: bool) -> None:
    from app.media.files import refuse_unwritable_output

    if path.suffix.lower() not in VIDEO_SUFFIXES:
        raise ValueError(f"{flag} must name an .mp4 file (H.264), not {path}")
    # Before the model loads and the clip is made, not after: a run that cannot write loses nothing.
    folder = path.resolve().parent
    if not folder.is_dir():
        what = "is a file, not a folder" if folder.exists() else "does not exist"
        raise ValueError(f"the folder of {flag}, '{folder}', {what}; create it or choose another {flag}")
    refuse_unwritable_output(path, flag, overwrite)



def read_source_clip(pipe, path: str, frames: int | None) -> tuple[np.ndarray, float]:
    """The source clip of a video edit: (frames uint8 [F, H, W, 3], its frame rate). F is --frames or the
    default length (the module docstring); decoded only that far and at a few times the model's size."""
    from app.core.request import Task
    from app.media.probe import probe_video, read_video_frames

    info = probe_video(path)  # missing, broken, huge, no video stream: one MediaError line
    d = pipe.defaults
    if frames is not None:  # a length the model cannot make is said as such, not as a source too short
        pipe.check_frames(frames, Task.VIDEO_EDIT, at_most=info.frames)
        if frames < (shortest := 1 + int(getattr(pipe.codec, "temporal_factor", 1) or 1)):
            raise ValueError(f"--frames {frames} is too few for a video edit: it changes a clip over time, at least "
                             f"{shortest} frames")
    if frames is not None and frames > info.frames:
        raise ValueError(f"--frames {frames} is more than the source's {info.frames} frames")
    want = frames or pipe.clip_length(min(info.frames, d.frames or info.frames, pipe.max_frames(Task.VIDEO_EDIT)))
    _check_edit_length(pipe, path, info.frames, want)
    pipe.check_frames(want, Task.VIDEO_EDIT)
    clip = read_video_frames(path, count=want, max_side=4 * max(d.width, d.height))
    if len(clip) < want:  # the header promised more frames than the file holds
        if frames is not None:
            raise ValueError(f"'{Path(path).name}' holds only {len(clip)} readable frames, fewer than "
                             f"--frames {frames}")
        clip = clip[:pipe.clip_length(len(clip))]
        _check_edit_length(pipe, path, len(clip), len(clip))
    return clip, info.fps


def edit_at_source_size(pipe, path: str, given: np.ndarray, frames: np.ndarray):
    """An edit the model made at its size (from `given`, the source as the model was given it) as frames at
    its source's size, made one at a time as they are written (app/core/keep_source.at_source_size), and
    that size; the frames as they are, and None, when the source is that size already."""
    from app.core.keep_source import EDIT_MAX_SIDE, at_source_size
    from app.media.probe import iter_video_frames, probe_video

    info = probe_video(path)
    scale = min(1.0, EDIT_MAX_SIDE / max(info.width, info.height))
    size = (max(1, round(info.width * scale)), max(1, round(info.height * scale)))
    if size == (frames.shape[2], frames.shape[1]):
        return frames, None
    footage = iter_video_frames(path, range(len(frames)), max_side=EDIT_MAX_SIDE)
    return at_source_size(given, frames, footage, pipe.defaults.keep_source_threshold), size


def _check_edit_length(pipe, path: str, have: int, length: int) -> None:
    """A video edit changes a clip over time: a source shorter than one frame group after the first (5
    frames for the embedded model) is refused, as the studio refuses it, rather than edited as a still."""
    shortest = 1 + int(getattr(pipe.codec, "temporal_factor", 1) or 1)
    if length < shortest:
        raise ValueError(f"'{Path(path).name}' is too short to edit: {have} frame{'s' if have != 1 else ''}; "
                         f"a video edit needs at least {shortest}")


def cmd_video(args) -> int:
    from app.commands import _Progress, _request, check_args, resolve_seed
    from app.core.request import Task, stretch_note
    from app.media.export import export_video
    from app.media.probe import load_image

    if args.instruction is None:
        swallowed = [r for r in args.reference or [] if not Path(r).exists()]
        if swallowed:
            raise ValueError(f"no instruction: '{swallowed[-1]}' was read as a --reference image; put the "
                             f"instruction before --reference")
        raise ValueError("no instruction: say what the clip shows, e.g. 'a red circle moves to the right'")
    if not args.instruction.strip():
        raise ValueError("no instruction: say what the clip shows, e.g. 'a red circle moves to the right'")
    check_args(args)
    out = Path(args.output)
    plan_out = Path(args.plan) if args.plan else None
    # Before "already exists": --overwrite, the advice for that, would not be allowed to replace the source.
    from app.media.files import file_key

    if args.video and file_key(args.video) in (file_key(out), file_key(plan_out) if plan_out else None):
        raise ValueError("the output would overwrite the source clip (--video and -o / --plan name one file); choose "
                         "another -o / --plan")
    _check_output(out, "-o", args.overwrite)
    if plan_out is not None:
        _check_output(plan_out, "--plan", args.overwrite)
        if file_key(plan_out) == file_key(out):
            raise ValueError("--plan and -o name the same file; choose two names")
    given = [flag for flag, v in (("--image", args.image), ("--video", args.video), ("--reference", args.reference))
             if v]
    if len(given) > 1:
        raise ValueError(f"give one of --image (image-to-video), --video (video edit) or --reference "
                         f"(reference video), not {' and '.join(given)}")
    if args.reference and len(args.reference) > MAX_REFERENCES:
        raise ValueError(f"--reference takes one or two still images, not {len(args.reference)}")
    task = (Task.VIDEO_EDIT if args.video else Task.IMAGE_TO_VIDEO if args.image
            else Task.REFERENCE_TO_VIDEO if args.reference else Task.TEXT_TO_VIDEO)
    if args.as_drawn and task not in (Task.VIDEO_EDIT, Task.IMAGE_TO_VIDEO):
        raise ValueError("--as-drawn is for video edits (--video SOURCE) and clips from an image (--image): other "
                         "clips have no source to keep")
    source_info = None
    if task is Task.VIDEO_EDIT:  # a broken, cut-short or too short source is said before the model loads
        from app.media.probe import check_complete

        # check_complete, not probe_video: a copy that did not finish keeps a whole header over missing
        # pictures, and only decoding found that out, after the model had loaded (demuxing: ~0.1 s).
        source_info = check_complete(args.video)
        if source_info.frames < 2:  # one frame is a still, for every video model: said before it loads
            raise ValueError(f"'{Path(args.video).name}' is too short to edit: 1 frame; a video edit changes a "
                             f"clip over time (edit a still with `edit`)")
        if args.frames is not None and args.frames > source_info.frames:
            raise ValueError(f"--frames {args.frames} is more than the source's {source_info.frames} frames")
    # Stills are read before the model loads too: a missing or wrong file is said at once.
    images = [load_image(p) for p in ([args.image] if args.image else args.reference or [])]
    seed = resolve_seed(args.seed)
    pipe = load_video_pipeline(args, words=(args.instruction,), task=task)
    _check_task(pipe, task)
    pipe.check_instruction(args.instruction, task)
    video, fps = None, args.fps
    if task is Task.VIDEO_EDIT:
        video, source_fps = read_source_clip(pipe, args.video, args.frames)
        frames = len(video)
        fps = fps or source_fps
    else:
        frames = args.frames or pipe.defaults.frames
        pipe.check_frames(frames, task, len(args.reference or []))
    request = _request(pipe, task, args.instruction, args, images=images, video=video, frames=frames, seed=seed)
    progress = _Progress(request.steps, task.value.replace("_", " "))
    try:
        result = pipe(request, callback=progress, preview=False)
    finally:
        progress.close()
    from app.plan_edit_text import names_what_the_clip_lacks, unchanged_words

    if names_what_the_clip_lacks(result):
        # Not attempted: a copy of the source at -o would be clutter (the studio makes no version either),
        # and a script must be able to tell from the exit status that no edit was made.
        seen = source_info.width > request.width or source_info.height > request.height  # read shrunk
        print(f"error: nothing written, the edit was not made{unchanged_words(result, '--seed')}; "
              f"name an object the clip shows" + (f" (it reads the clip at {request.width}x{request.height} px, "
                                                  f"the source's {source_info.width}x{source_info.height} shrunk "
                                                  f"to that: an object much smaller than the frame can be lost)"
                                                  if seen else ""), file=sys.stderr)
        return 1
    # The model's own rate for a new clip (the studio's too); a model that does not say: the project's 24.
    from app.media.project import ProjectSettings

    fps = fps or pipe.defaults.fps or ProjectSettings().fps
    # An edited clip keeps its source's sound (cut to its length), as the studio's clip export does; only at
    # the source's own rate: --fps retimes the pictures, and the sound would no longer match them.
    sound = task is Task.VIDEO_EDIT and abs(fps - source_fps) < 1e-6
    def pictures():  # made again for a second try: at the source's size they are made as they are written
        if task is Task.VIDEO_EDIT and request.keep_source and pipe.defaults.keep_source_threshold:
            return edit_at_source_size(pipe, args.video, video, result.frames)
        return result.frames, None

    from app.media.errors import SoundError

    unheard = ""
    try:
        frames_out, full_size = pictures()
        export_video(frames_out, out, fps=fps, overwrite=args.overwrite, audio_source=args.video if sound else None,
                     total=len(result.frames))
    except SoundError as e:  # the made clip is not thrown away for its source's damaged sound
        frames_out, full_size = pictures()
        export_video(frames_out, out, fps=fps, overwrite=args.overwrite, total=len(result.frames))
        unheard = f"; without sound: {str(e)[0].lower()}{str(e)[1:].rstrip('.')}"
    n = len(result.frames)
    note = f"wrote {out}: {n} frame{'s' if n != 1 else ''} at {fps:g} fps, {task.value.replace('_', ' ')}, " \
           f"seed {seed} ({result.seconds:.1f} s)" + unheard
    if full_size is not None:
        from app.core.keep_source import EDIT_MAX_SIDE, changed_region, source_as_made

        changed = float(changed_region(source_as_made(video, result.frames), result.frames,
                                       pipe.defaults.keep_source_threshold).mean())
        source_size = (source_info.width, source_info.height)
        if full_size == source_size:
            at = f"at the source's {full_size[0]}x{full_size[1]}"
        else:  # a source past EDIT_MAX_SIDE: every pixel of it is scaled, its own included
            at = (f"at {full_size[0]}x{full_size[1]}, the source's {source_size[0]}x{source_size[1]} scaled down to "
                  f"{EDIT_MAX_SIDE} px a side (the longest edit the command line writes)")
        if full_size[0] % 2 or full_size[1] % 2:
            at += (f", written {full_size[0] + full_size[0] % 2}x{full_size[1] + full_size[1] % 2} (H.264 takes even "
                   f"sizes: the edge row or column repeated)")
        own = "the source's own" if full_size == source_size else "the source's own, scaled"
        if changed >= WHOLE_CLIP_CHANGED:  # "every other pixel the source's own" would be an empty promise
            note += f"; {at}: the model redrew the whole clip at {request.width}x{request.height}, scaled up"
        else:
            note += (f"; {at}: the model's change ({changed:.0%} of the clip) drawn at {request.width}x"
                     f"{request.height} and scaled up, every other pixel {own}")
    if task is Task.VIDEO_EDIT and not sound and source_info.has_audio:
        note += f"; without the source's sound (--fps {fps:g} retimes its {source_fps:g} fps pictures)"
    if result.unchanged:
        from app.core.pipeline import PUT_BACK

        why = unchanged_words(result, "--seed")
        if result.unchanged_why == PUT_BACK:
            why = why[:-1] + "; --as-drawn gives the clip as the model drew it)"
        note += "; the model changed nothing" + (why or ": the clip is its source again (the edit was not made; "
                                                        "another --seed or wording may make it)")
    note += shortfall_note(result)
    trained = pipe.defaults.frames if pipe.defaults.own_size_only else 0
    if trained and n != trained:  # its size is refused outright; other lengths run, and come out worse
        note += (f"; {n} frame{'s' if n != 1 else ''}: this model was trained on {trained}-frame clips alone, other "
                 f"lengths come out worse")
    if task is Task.VIDEO_EDIT and source_info.frames > n:
        longest = pipe.clip_length(min(source_info.frames, pipe.max_frames(Task.VIDEO_EDIT)))
        more = f" (--frames up to {longest} edits more)" if longest > n else ""
        note += f"; it edits the source's first {n} of {source_info.frames} frames, the rest is not in it{more}"
    edited_small = task is Task.VIDEO_EDIT and full_size is None  # an edit written at the model's size
    given = ([("the source", (source_info.width, source_info.height))] if edited_small else
             [] if task is Task.VIDEO_EDIT else
             [(f"the image {Path(p).name}", (im.shape[1], im.shape[0]))
              for p, im in zip([args.image] if args.image else args.reference or [], images)])
    note += "".join(stretch_note(what, size, request.width, request.height, own_size_only=pipe.defaults.own_size_only)
                    for what, size in given)
    from app.core.frame_detector import drafts_edits

    drafted_task = task in (Task.IMAGE_TO_VIDEO, Task.REFERENCE_TO_VIDEO) or (
        task is Task.VIDEO_EDIT and drafts_edits(pipe.planner))
    if drafted_task and getattr(pipe.planner, "frame_detector", None) is not None and not result.plan.has_draft(0):
        where = {Task.IMAGE_TO_VIDEO: "the image", Task.REFERENCE_TO_VIDEO: "the reference stills"}.get(task, "the source clip")
        note += (f"; its detector found no object of its world in {where} (read at {request.width}x{request.height} "
                 f"px; it misses objects much smaller or larger than its world's, or drawn otherwise), so the clip "
                 "was planned without a drafted track" + (", and an edit of footage outside its world redraws it"
                                                          if task is Task.VIDEO_EDIT else ""))
    if result.missing:  # named as given, and the input lacks it: drawn where the words' draft put it
        where = "the image" if task is Task.IMAGE_TO_VIDEO else "the reference stills"
        note += (f"; {where} show{'s' if task is Task.IMAGE_TO_VIDEO else ''} no {' and no '.join(result.missing)} "
                 f"as the model's detector sees {'it' if task is Task.IMAGE_TO_VIDEO else 'them'}: the words' "
                 f"{'object is' if len(result.missing) == 1 else 'objects are'} drawn where the draft put "
                 f"{'it' if len(result.missing) == 1 else 'them'}, not taken from {where}")
    if plan_out is not None:
        from app.media.errors import ExportError

        tf = int(getattr(pipe.codec, "temporal_factor", 1) or 1)
        try:
            export_video(plan_video_frames(result.plan, result.frames, tf), plan_out, fps=fps, overwrite=args.overwrite)
        except ExportError as e:  # checked before the run; a disk that fills up in between still says what is there
            # The clip is there: "Nothing was written" of the plan's file would read as of both.
            why = str(e).removesuffix(" Nothing was written.")
            raise ValueError(f"{note}; the plan was not written: {why}") from None
        except KeyboardInterrupt:  # the clip is whole at -o: said, or a rerun's "already exists" would puzzle
            print(f"{note}; interrupted before the plan {plan_out} was written", file=sys.stderr)
            raise
        note += f"; plan: {plan_out}"
    print(note)
    return 0


# ----------------------------------------------------------------------------------------- GenEval-layout folders

def generate_video_geneval(args, metas: list[dict]) -> int:
    """`generate --prompts` for video records: OUT/00000/metadata.jsonl + samples/0000.mp4 ..., n clips per
    record (seeds SEED + 1000 i + j, as for stills), the model's clip length, batched."""
    from tqdm import tqdm

    from app.commands import plural, resolve_seed
    from app.prompt_runs import prompt_folder, start_prompt_run, weights_fingerprint
    from app.core.request import Task
    from app.eval.video_eval import sample_clips, write_sample_clip

    n = args.n or 4
    seed = resolve_seed(args.seed)
    pipe = load_video_pipeline(args, words=tuple(meta["prompt"] for meta in metas), task=Task.TEXT_TO_VIDEO)
    _check_task(pipe, Task.TEXT_TO_VIDEO)
    if (args.width and args.width != pipe.defaults.width) or (args.height and args.height != pipe.defaults.height):
        raise ValueError(f"video prompts are made at the model's size ({pipe.defaults.width}x{pipe.defaults.height})")
    for meta in metas:
        pipe.check_instruction(meta["prompt"])
    out = Path(args.out)
    from app.media.project import ProjectSettings

    clip_fps = pipe.defaults.fps or ProjectSettings().fps  # as `video` writes a new clip
    asked = sorted({int(m["frames"]) for m in metas if isinstance(m.get("frames"), (int, float))} - {pipe.defaults.frames})
    if asked:  # a record's "frames" is what its world was drawn at; the model makes its own length
        print(f"note: records ask for {', '.join(map(str, asked))} frames; every clip is made at the model's "
              f"{pipe.defaults.frames}, the length it makes", file=sys.stderr)
    settings = dict(seed=seed, n=n, model=pipe.name, weights=weights_fingerprint(args.model_folder), steps=args.steps,
                    guidance=args.guidance, use_canvas=not args.no_canvas)
    seed, done = start_prompt_run(out, metas, settings, args.resume, ".mp4")
    jobs = [(i, j) for i in range(len(metas)) for j in range(n) if (i, j) not in done]
    with tqdm(total=len(jobs), desc="generate", unit="clip", file=sys.stderr) as bar:
        for start in range(0, len(jobs), args.batch):
            chunk = jobs[start:start + args.batch]
            clips = sample_clips(pipe, "text_to_video", [metas[i]["prompt"] for i, _ in chunk],
                                 [seed + 1000 * i + j for i, j in chunk], steps=args.steps, guidance=args.guidance,
                                 use_canvas=not args.no_canvas)
            for (i, j), clip in zip(chunk, clips):
                write_sample_clip(clip, prompt_folder(out, i, metas[i]) / "samples" / f"{j:04d}.mp4", fps=clip_fps)
            bar.update(len(chunk))
    kept = f" ({len(done)} from the earlier run kept)" if done else ""
    print(f"wrote {plural(len(jobs), 'clip')} for {plural(len(metas), 'prompt')} to {out}{kept}")
    return 0


def eval_video_folder(folder, out_dir) -> int:
    from app.eval.video_eval import score_video_folder, summarize_video_results, write_video_report

    skipped: list[str] = []
    results = score_video_folder(folder, skipped)
    for why in skipped:
        print(f"warning: left out {why}", file=sys.stderr)
    if not results:
        raise ValueError(f"no clip in {folder} could be read" if skipped else
                         f"{folder} holds no clips to score (numbered folders with samples/NNNN.mp4)")
    print(write_video_report(summarize_video_results(results), results, out_dir or folder))
    if skipped:
        print(f"{len(skipped)} clip(s) could not be read and are not in these figures (named above).")
    return 0


def shortfall_note(result) -> str:
    """The CLI's words for a drafted image or video edit or reference clip the model did not draw as planned (""
    when it did)."""
    from app.core.request import Task
    from app.plan_edit_text import shortfall_words

    said = shortfall_words(result)
    what = "the edit" if getattr(getattr(result, "request", None), "task", None) in (Task.VIDEO_EDIT, Task.IMAGE_EDIT) \
        else "the clip"
    note = f"; {what} was not made as planned: {said} (another --seed or wording may make it)" if said else ""
    missing = tuple(getattr(result, "missing", ()) or ())
    if missing and getattr(getattr(result, "request", None), "task", None) is Task.IMAGE_EDIT:
        # The plan's objects above are what the drafter read in the picture, which lacks what the words name.
        note += (f"; the image shows no {' and no '.join(missing)} as the model's detector sees it (it knows the flat "
                 f"shapes of its own world): the edit was planned from what it reads there")
    off = getattr(result, "plan_off", "")
    if off:  # the clip may match its plan, and the plan not the words
        note += f"; its plan did not follow the words: it has {off} (another --seed drafts it again)"
    return note
