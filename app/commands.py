"""The headless commands behind `python main.py COMMAND` (the parser lives in app/cli.py)."""
from __future__ import annotations

import math
import os
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
DEFAULT_MODEL = REPO / "models" / "metacanvas-shapes"


MAX_STEPS = 1000
SEED_LIMIT = 2**31 - 1  # a drawn seed fits the studio's seed box


def _settings():
    """The user's settings, or None: a broken or unreadable settings file must not stop the command
    line (the defaults then apply: the embedded model, device auto, float32)."""
    try:
        from app.settings import load_settings

        settings = load_settings()
    except Exception:  # noqa: BLE001
        return None
    if settings.warning:
        print(f"warning: {settings.warning}", file=sys.stderr)
    return settings


def resolve_model_path(arg: str | None, settings=None) -> Path:
    if arg:
        return Path(arg).expanduser()  # "~/models/x" quoted, or from a script: as `models` reads it
    active = getattr(settings if settings is not None else _settings(), "active_model", None)
    return Path(active).expanduser() if active else DEFAULT_MODEL


MEMORY_FLAGS = ("dtype", "offload", "vae_tiling", "vae_slicing", "planner_offload")  # MemoryOptions' fields


def resolve_memory_options(args, settings=None):
    """The memory options of --dtype, --offload, --vae-tiling, --vae-slicing and --planner-offload, each else the
    settings' (auto by default: picked from the GPU's memory when the model is placed)."""
    from dataclasses import replace

    from app.core.memory import MemoryOptions

    options = settings.memory_options() if settings is not None else MemoryOptions()
    flags = {name: getattr(args, name, None) for name in MEMORY_FLAGS}
    flags["dtype"] = None if flags["dtype"] == "auto" else flags["dtype"]
    return replace(options, **{name: value for name, value in flags.items() if value is not None})


def load_pipeline(args, video: bool = False, words: tuple[str, ...] = (), task=None):
    """The model of --model, else the settings' (the video model's for the `video` command), placed with the
    memory options (app/core/memory.py); `args.memory_in_use` keeps the placement, for an out-of-memory message.
    `words` (instructions, prompts for `task`) are checked against the folder's planner vocabulary first: an unknown
    word is said before seconds of loading, not after (app/core/words.py)."""
    from app.core.checkpoints import load_model
    from app.core.memory import load_with_memory_options
    from app.core.words import check_words_in_folder
    from app.settings import DEFAULT_VIDEO_MODEL, resolve_device

    settings = _settings()
    if video and not args.model:
        args.model = getattr(settings, "video_model", None) or str(DEFAULT_VIDEO_MODEL)
    asked = args.device or getattr(settings, "device", None) or "auto"
    device = resolve_device(asked, warn=False)
    if asked not in ("auto", device):
        print(f"note: {asked} is not available on this machine; running on the {device}", file=sys.stderr)
    args.model_folder = resolve_model_path(args.model, settings)
    for text in words:
        check_words_in_folder(args.model_folder, text, getattr(task, "value", None))
    pipe = load_with_memory_options(load_model, args.model_folder, device, resolve_memory_options(args, settings))
    args.memory_in_use = pipe.memory
    return pipe


def check_args(args) -> None:
    """Refuse, in one line (ValueError -> `error: ...`, exit 2), numbers a run cannot use, rather than
    quietly putting the model's defaults in their place."""
    steps, guidance = getattr(args, "steps", None), getattr(args, "guidance", None)
    if steps is not None and not 1 <= steps <= MAX_STEPS:
        raise ValueError(f"--steps must be between 1 and {MAX_STEPS}, not {steps}")
    if guidance is not None and not (math.isfinite(guidance) and guidance >= 0):
        raise ValueError(f"--guidance must be a number >= 0 (1 or less turns guidance off), not {guidance}")
    for name in ("n", "batch", "frames"):
        value = getattr(args, name, None)
        if value is not None and value < 1:
            raise ValueError(f"--{name} must be at least 1, not {value}")
    fps = getattr(args, "fps", None)
    if fps is not None and not (math.isfinite(fps) and fps > 0):
        raise ValueError(f"--fps must be a number > 0, not {fps}")
    for name in ("width", "height"):
        value = getattr(args, name, None)
        if value is not None and value < 1:
            raise ValueError(f"--{name} must be a positive number of pixels, not {value}")
    if getattr(args, "no_canvas", False) and getattr(args, "plan", None):
        # The plan picture draws what the canvas adds; a run without the canvas would be shown one it ignored.
        raise ValueError("--plan draws the canvas's plan, and --no-canvas runs without it: leave one out")


def resolve_seed(arg) -> int:
    """--seed: a whole number >= 0, or "random" (drawn here, printed as `seed: N`)."""
    text = str(arg).strip()
    if text.lower() == "random":
        import random

        seed = random.randrange(0, SEED_LIMIT)
        print(f"seed: {seed}")
        return seed
    try:
        seed = int(text)
    except ValueError:
        raise ValueError(f"--seed must be a whole number >= 0 or 'random', not {text!r}") from None
    if seed < 0 or seed >= 2**63:
        raise ValueError(f"--seed must be a whole number from 0 to {2**63 - 1}, or 'random', not {seed}")
    return seed


def numbered(path: str | Path, n: int) -> list[Path]:
    """`out.png` for one image; `out-1.png ... out-N.png` for N."""
    path = Path(path)
    return [path] if n == 1 else [path.with_name(f"{path.stem}-{i}{path.suffix}") for i in range(1, n + 1)]


IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")


def _check_image_path(path: str | Path, flag: str) -> None:
    if Path(path).suffix.lower() not in IMAGE_SUFFIXES:
        raise ValueError(f"{flag} must name a .png file (or .jpg, which cannot carry the recipe), not {path}")


def _check_outputs(args, n: int = 1, source: str | None = None, source_named: str = "--image") -> None:
    """Before the model loads: every file the command would write (-o, --plan, --plan-out; numbered for --n)
    has the right kind of name, can be written, and replaces nothing unless --overwrite; no two of them are
    one file (the second would replace the first unasked), and none is the `source` image the command reads (given
    as `source_named` on its command line)."""
    from app.media.files import file_key, refuse_unwritable_output

    written: dict[object, str] = {}
    if source is not None:
        written[file_key(source)] = f"the source image ({source_named})"
    for flag, value, picture in (("-o", args.output, True), ("--plan", getattr(args, "plan", None), True),
                                 ("--plan-out", getattr(args, "plan_out", None), False)):
        if value is None:
            continue
        if picture:
            _check_image_path(value, flag)
        for path in numbered(value, n):
            earlier = written.setdefault(file_key(path), f"{flag} ({path})")
            if earlier != f"{flag} ({path})":
                raise ValueError(f"{flag} {path} is also {earlier}: one file would replace the other; "
                                 f"choose another {flag}")
            refuse_unwritable_output(path, flag, args.overwrite)


def _info(pipe, request) -> dict:
    from app.media.generation_info import pipeline_info

    return pipeline_info(pipe, request)


def _save_png(image: np.ndarray, path: str | Path, info: dict | None = None, overwrite: bool = False) -> None:
    """Write a picture atomically (an existing file is replaced only by a complete one, and only with `overwrite`:
    the command's check before the model loaded found no file there, and one that appeared since, minutes later on
    a long run, is the user's); a PNG carries `info` (the recipe) in its text chunks."""
    from app.media.export import export_image
    from app.media.generation_info import write_png

    if Path(path).suffix.lower() == ".png":
        write_png(image, path, info, overwrite=overwrite)
    else:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        export_image(image, path, overwrite=overwrite)


def _free(path: str | Path | None, overwrite: bool, moved: list[str], taken: set[Path]) -> Path | None:
    """Where an output goes: its own name, or, when a file appeared there during the run (the check before the
    model loaded found none) and --overwrite was not given, a free name beside it ("out-new.png") that no other
    output of the run (`taken`, resolved paths) names, so that neither the user's file nor the made picture is
    lost. Each move is added to `moved`, to be said, and the name chosen to `taken`."""
    if path is None:
        return None
    path = Path(path)
    if overwrite or not os.path.lexists(path):
        return path
    k, free = 1, path.with_name(f"{path.stem}-new{path.suffix}")
    while os.path.lexists(free) or free.resolve() in taken:
        k += 1
        free = path.with_name(f"{path.stem}-new{k}{path.suffix}")
    taken.add(free.resolve())
    moved.append(f"{path.name} appeared during the run and is kept: wrote {free.name} instead")
    return free


def _write_outputs(pipe, request, result, args, out, plan_out, plan_file, taken: set[Path]) -> tuple[Path, str]:
    """A still's picture (-o), its plan picture (--plan) and its plan file (--plan-out), each where `_free` says
    (`taken`: every path the run writes): (where the picture went, "; ..." naming any output written beside a file
    that appeared during the run)."""
    from app.commands_plan import save_plan

    moved: list[str] = []
    out, plan_out, plan_file = (_free(p, args.overwrite, moved, taken) for p in (out, plan_out, plan_file))
    _save_png(result.frames[0], out, _info(pipe, request), args.overwrite)
    if plan_out is not None:
        _save_png(plan_picture(result.plan, result.frames[0]), plan_out, overwrite=args.overwrite)
    if plan_file is not None:
        save_plan(result.plan, plan_file, pipe.name, args.overwrite)
    return out, "".join(f"; {m}" for m in moved)


def plan_picture(plan, result: np.ndarray | None = None, scale: int = 4) -> np.ndarray:
    """[result |] heatmap over the frame | PCA colours of the canvas states, side by side."""
    from app.core.plan_view import plan_strip

    return plan_strip(plan, result, scale=scale)


def _request(pipe, task, instruction, args, images=None, video=None, frames=1, seed=None):
    from app.core.request import GenerationRequest

    d = pipe.defaults
    width, height = getattr(args, "width", None) or d.width, getattr(args, "height", None) or d.height
    pipe.check_size(width, height)
    return GenerationRequest(task=task, instruction=instruction, images=images or [], video=video,
                             width=width, height=height, frames=frames,
                             steps=d.steps if args.steps is None else args.steps,
                             guidance=d.guidance if args.guidance is None else args.guidance,
                             seed=args.seed if seed is None else seed, use_canvas=not args.no_canvas,
                             keep_source=not getattr(args, "as_drawn", False))


def _check_words(pipe, text: str) -> None:
    pipe.check_instruction(text)


class _Progress:
    """A tqdm bar on stderr driven by the pipeline's step callback (no preview decode is asked for).
    It appears with the first denoising step, so a run refused before that leaves no empty bar."""

    def __init__(self, total: int, desc: str):
        self.total, self.desc, self.bar = total, desc, None

    def __call__(self, info) -> None:
        if self.bar is None:
            from tqdm import tqdm

            self.bar = tqdm(total=self.total, desc=self.desc, unit="step", file=sys.stderr, dynamic_ncols=True)
        self.bar.update(1)

    def write(self, text: str) -> None:
        if self.bar is None:
            print(text)
        else:
            self.bar.write(text, file=sys.stdout)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _run(pipe, request, progress: _Progress, plan=None):
    return pipe(request, plan=plan, callback=progress, preview=False)


def cmd_generate(args) -> int:
    from app.core.request import Task

    from app.commands_plan import apply_plan_args, check_plan_args

    check_args(args)
    check_plan_args(args)
    if args.prompts:
        return _generate_geneval(args)
    if args.prompt is None or not args.output:
        print("error: give a prompt and -o OUTPUT.png, or --prompts META.jsonl --out DIR", file=sys.stderr)
        return 2
    # An empty prompt ("") is a blank one: said as "   " is (GenerationRequest.validate), not as a missing argument.
    n = args.n or 1
    _check_outputs(args, n)
    seed = resolve_seed(args.seed)
    pipe = load_pipeline(args, words=(args.prompt,), task=Task.TEXT_TO_IMAGE)
    _check_words(pipe, args.prompt)
    requests = [_request(pipe, Task.TEXT_TO_IMAGE, args.prompt, args, seed=seed + i) for i in range(n)]
    plan_in = apply_plan_args(pipe, args, requests)
    outputs, plans = numbered(args.output, n), numbered(args.plan, n) if args.plan else [None] * n
    plan_files = numbered(args.plan_out, n) if args.plan_out else [None] * n
    progress = _Progress(n * requests[0].steps, "generate")
    taken = {Path(p).resolve() for p in [*outputs, *plans, *plan_files] if p is not None}
    try:
        for request, out, plan_out, plan_file in zip(requests, outputs, plans, plan_files):
            result = _run(pipe, request, progress, plan_in)
            out, moved = _write_outputs(pipe, request, result, args, out, plan_out, plan_file, taken)
            progress.write(f"wrote {out} (seed {request.seed}, {result.seconds:.2f} s){moved}")
    finally:
        progress.close()
    return 0


def plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def _generate_geneval(args) -> int:
    from tqdm import tqdm

    from app.prompt_runs import (prompt_folder, read_prompt_records, refuse_earlier_run, start_prompt_run,
                                 weights_fingerprint)

    from app.core.request import GenerationRequest, Task
    from app.eval.video_eval import is_video_record

    if not args.out:
        print("error: --prompts needs --out DIR", file=sys.stderr)
        return 2
    metas = read_prompt_records(args.prompts)
    refuse_earlier_run(Path(args.out), args.overwrite, args.resume)
    kinds = [is_video_record(m) for m in metas]
    if any(kinds) and not all(kinds):  # one model makes a run's samples; eval scores one kind a folder
        raise ValueError(f"{args.prompts} mixes video records (record {kinds.index(True) + 1}) and image records (record "
                         f"{kinds.index(False) + 1}): a prompts file is for stills or for clips; split it in two")
    if any(kinds):  # video_prompts' records: clips, made by a video model
        from app.commands_video import generate_video_geneval

        return generate_video_geneval(args, metas)
    n = args.n or 4
    seed = resolve_seed(args.seed)
    pipe = load_pipeline(args, words=tuple(meta["prompt"] for meta in metas), task=Task.TEXT_TO_IMAGE)
    d = pipe.defaults
    width, height = args.width or d.width, args.height or d.height
    pipe.check_size(width, height)
    steps, guidance = args.steps or d.steps, d.guidance if args.guidance is None else args.guidance
    out = Path(args.out)
    for meta in metas:
        _check_words(pipe, meta["prompt"])
    settings = dict(seed=seed, n=n, model=pipe.name, weights=weights_fingerprint(args.model_folder), width=width,
                    height=height, steps=steps, guidance=guidance, use_canvas=not args.no_canvas)
    seed, done = start_prompt_run(out, metas, settings, args.resume, ".png")
    jobs = [(i, j) for i in range(len(metas)) for j in range(n) if (i, j) not in done]
    with tqdm(total=len(jobs), desc="generate", unit="image", file=sys.stderr) as bar:
        for start in range(0, len(jobs), args.batch):
            chunk = jobs[start:start + args.batch]
            seeds = [seed + 1000 * i + j for i, j in chunk]
            images = pipe.sample([metas[i]["prompt"] for i, _ in chunk], seeds, steps=steps, guidance=guidance,
                                 use_canvas=not args.no_canvas, width=width, height=height)
            for (i, j), s, im in zip(chunk, seeds, images):
                folder = prompt_folder(out, i, metas[i])
                request = GenerationRequest(Task.TEXT_TO_IMAGE, metas[i]["prompt"], width=width, height=height,
                                            steps=steps, guidance=guidance, seed=s, use_canvas=not args.no_canvas)
                # The run's own folder: a sample there is one an interrupted run wrote (--resume skips those kept).
                _save_png(im, folder / "samples" / f"{j:04d}.png", _info(pipe, request), overwrite=True)
            bar.update(len(chunk))
    kept = f" ({len(done)} from the earlier run kept)" if done else ""
    print(f"wrote {plural(len(jobs), 'image')} for {plural(len(metas), 'prompt')} to {out}{kept}")
    return 0


def cmd_edit(args) -> int:
    from app.commands_plan import apply_plan_args, check_plan_args
    from app.commands_video import shortfall_note
    from app.core.request import Task, stretch_note
    from app.media.probe import load_image

    check_args(args)
    check_plan_args(args)
    out = Path(args.output)
    from app.media.files import file_key

    if file_key(out) == file_key(args.image):
        print("error: the output would overwrite the source image; choose another -o", file=sys.stderr)
        return 2
    _check_outputs(args, source=args.image, source_named="IMAGE")
    seed = resolve_seed(args.seed)
    pipe = load_pipeline(args, words=(args.instruction,), task=Task.IMAGE_EDIT)
    _check_words(pipe, args.instruction)
    source = load_image(args.image)
    request = _request(pipe, Task.IMAGE_EDIT, args.instruction, args, images=[source], seed=seed)
    # Said as the studio and `video` say it: the picture is resized to the result's shape, not cropped.
    stretched = stretch_note(f"the image {Path(args.image).name}", (source.shape[1], source.shape[0]), request.width,
                             request.height, own_size_only=pipe.defaults.own_size_only)
    plan_in = apply_plan_args(pipe, args, [request])
    progress = _Progress(request.steps, "edit")
    try:
        result = _run(pipe, request, progress, plan_in)
        taken = {Path(p).resolve() for p in (out, args.plan, args.plan_out) if p is not None}
        out, moved = _write_outputs(pipe, request, result, args, out, args.plan, args.plan_out, taken)
        progress.write(f"wrote {out} (seed {request.seed}, {result.seconds:.2f} s){stretched}{shortfall_note(result)}"
                       f"{moved}")
    finally:
        progress.close()
    return 0


def cmd_plan(args) -> int:
    from app.core.request import Task
    from app.media.probe import load_image

    check_args(args)
    _check_outputs(args, source=args.image)
    seed = resolve_seed(args.seed)
    pipe = load_pipeline(args, words=(args.instruction,),
                         task=Task.IMAGE_EDIT if args.image else Task.TEXT_TO_IMAGE)
    _check_words(pipe, args.instruction)
    images = [load_image(args.image)] if args.image else []
    task = Task.IMAGE_EDIT if images else Task.TEXT_TO_IMAGE
    plan = pipe.plan(_request(pipe, task, args.instruction, args, images=images, seed=seed))
    moved: list[str] = []
    out = _free(args.output, args.overwrite, moved, {Path(args.output).resolve()})
    _save_png(plan_picture(plan, images[0] if images else None), out, overwrite=args.overwrite)
    print(f"wrote {out}" + "".join(f"; {m}" for m in moved))
    return 0


def cmd_video(args) -> int:
    """The four video tasks (app/commands_video.py)."""
    from app.commands_video import cmd_video as run_video

    return run_video(args)


def cmd_train(args) -> int:
    from app.train.connector_recipe import is_connector_recipe

    if is_connector_recipe(args.recipe):  # names user data: an assembly's connectors (app/train/connector_training.py)
        from app.train.connector_training import train_from_command_line

        return train_from_command_line(args)
    from app.train.loop import Trainer
    from app.train.recipe import Recipe
    from app.train.run_start import RunStart

    _refuse_old_start_flags(args)
    start = RunStart.parse(args.start, args.planner)
    recipe = Recipe.load(args.recipe)
    trainer = Trainer(recipe, args.out, start=start, use_canvas=not args.no_canvas, device=args.device,
                      workers=args.workers)
    folder = trainer.run(max_minutes=args.max_minutes, teach_only=args.teach_only,
                         teach_minutes=args.teach_minutes, cooldown_steps=args.cooldown_steps)
    print(f"model: {folder}; curves: {Path(args.out) / 'curves.png'}")
    return 0


def _refuse_old_start_flags(args) -> None:
    """The flags a run once started with, refused with the words that say the same now."""
    init, given, teach_from = args.init_from, args.planner_from, args.planner_init
    if init is None and given is None and teach_from is None:
        return
    words = [f"--start {init}" if init else "--start new"]
    if given or teach_from:
        words.append(f"--planner {given}" if given else f"--planner teach:{teach_from}")
    raise ValueError(f"--init-from, --planner-from and --planner-init are gone: a run's start is said with "
                     f"--start and --planner; here: {' '.join(words)} (app/train/run_start.py)")


def cmd_eval(args) -> int:
    from app.eval.geneval import score_folder, summarize, write_report
    from app.eval.video_eval import is_video_folder

    if not Path(args.folder).is_dir():
        raise ValueError(f"{args.folder} is not a folder: eval scores the folder `generate --prompts ... --out` wrote")
    if is_video_folder(args.folder):  # samples/NNNN.mp4: clips of video records
        from app.commands_video import eval_video_folder

        return eval_video_folder(args.folder, args.out)

    summary = summarize(score_folder(args.folder))
    table = write_report(summary, args.out or args.folder)
    print(table)
    return 0


def cmd_render(args) -> int:
    from tqdm import tqdm

    from app.media.export import export_timeline, left_out_of_track
    from app.media.project_file import media_dir, open_project, project_file

    out = Path(args.output)
    if out.suffix.lower() != ".mp4":  # an MP4 under a .gif name would lie about what it is
        raise ValueError(f"-o must name an .mp4 file (H.264), not {out}")
    args.project = str(project_file(args.project))  # a folder holding one project: its media folder is beside that
    if media_dir(args.project).resolve() in out.resolve().parents:
        # As the studio's exports: the files there are the clips' own footage and versions (beyond undo).
        raise ValueError(f"-o would write into the project's media folder ({media_dir(args.project).name}), which "
                         f"holds its clips' own footage and versions; choose a place outside it")
    if out.exists() and not out.is_dir() and not args.overwrite:  # said before any bar is drawn
        raise ValueError(f"{out} already exists; choose another -o or add --overwrite to replace it")
    project = open_project(args.project)  # a project that cannot be opened is said before any bar too
    bar = tqdm(total=1, desc="render", unit="frame")

    def progress(done: int, total: int) -> None:
        bar.total = total
        bar.n = done
        bar.refresh()

    try:
        out = export_timeline(project, args.project, args.output, progress=progress, overwrite=args.overwrite)
    finally:
        bar.close()
    images, with_sound = left_out_of_track(project, args.project)
    note = f" ({images} clip(s) on the image track are not in it: the video track is what plays)" if images else ""
    if with_sound:
        note += (f"; it has no sound: the track render does not carry sound yet ({with_sound} clip(s) on it have "
                 f"some); the studio's Export clip keeps a clip's sound")
    fps = float(project.settings.fps)
    frames = int(round(project.duration("video") * fps))
    from app.media.probe import probe_video

    info = probe_video(out)  # the size the track was rendered at (the project's, else its first clip's)
    print(f"wrote {out}: {frames} frames of {info.width}x{info.height} (every clip fitted to that) at {fps:g} fps "
          f"(the project's rate){note}")
    return 0


def cmd_models(args) -> int:
    """List model folders, or assemble one (app/model_commands.py)."""
    from app.model_commands import run

    return run(args, _settings())


def cmd_bench(args) -> int:
    import runpy

    script = REPO / "bench" / f"bench_{args.name}.py"
    if not script.exists():
        names = sorted(p.stem.removeprefix("bench_") for p in (REPO / "bench").glob("bench_*.py"))
        print(f"error: no benchmark {args.name!r}; there are: {', '.join(names)}", file=sys.stderr)
        return 2
    sys.argv = [str(script), *args.args]
    runpy.run_path(str(script), run_name="__main__")
    return 0
