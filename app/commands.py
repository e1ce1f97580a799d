"""The headless commands behind `python main.py COMMAND` (the parser lives in app/cli.py)."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
DEFAULT_MODEL = REPO / "models" / "metacanvas-shapes"


def resolve_model_path(arg: str | None) -> Path:
    if arg:
        return Path(arg)
    try:
        from app.settings import load_settings

        active = load_settings().active_model
        if active:
            return Path(active)
    except Exception:  # a broken settings file must not stop the command line
        pass
    return DEFAULT_MODEL


def load_pipeline(args):
    from app.core.checkpoints import load_model
    from app.settings import resolve_device

    asked = args.device or "auto"
    device = resolve_device(asked)
    if asked not in ("auto", device):
        print(f"note: {asked} is not available on this machine; running on the {device}", file=sys.stderr)
    return load_model(resolve_model_path(args.model), device=device)


def _save_png(image: np.ndarray, path: str | Path) -> None:
    from PIL import Image

    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(image).save(path)


def plan_picture(plan, result: np.ndarray | None = None, scale: int = 4) -> np.ndarray:
    """[result |] heatmap over the frame | PCA colours of the canvas states, side by side."""
    from app.core.plan_view import plan_strip

    return plan_strip(plan, result, scale=scale)


def _request(pipe, task, instruction, args, images=None, video=None, frames=1, width=None, height=None):
    from app.core.request import GenerationRequest

    d = pipe.defaults
    return GenerationRequest(task=task, instruction=instruction, images=images or [], video=video,
                             width=width or d.width, height=height or d.height, frames=frames,
                             steps=args.steps or d.steps, guidance=d.guidance if args.guidance is None else args.guidance,
                             seed=args.seed, use_canvas=not args.no_canvas)


def _check_words(pipe, text: str) -> None:
    pipe.check_instruction(text)


def cmd_generate(args) -> int:
    from app.core.request import Task

    if args.prompts:
        return _generate_geneval(args)
    if not args.prompt or not args.output:
        print("error: give a prompt and -o OUTPUT.png, or --prompts META.jsonl --out DIR", file=sys.stderr)
        return 2
    pipe = load_pipeline(args)
    _check_words(pipe, args.prompt)
    result = pipe(_request(pipe, Task.TEXT_TO_IMAGE, args.prompt, args))
    _save_png(result.frames[0], args.output)
    if args.plan:
        _save_png(plan_picture(result.plan, result.frames[0]), args.plan)
    print(f"wrote {args.output} ({result.seconds:.2f} s)")
    return 0


def _generate_geneval(args) -> int:
    from tqdm import tqdm

    if not args.out:
        print("error: --prompts needs --out DIR", file=sys.stderr)
        return 2
    pipe = load_pipeline(args)
    metas = [json.loads(line) for line in Path(args.prompts).read_text().splitlines() if line.strip()]
    out = Path(args.out)
    jobs = [(i, j) for i in range(len(metas)) for j in range(args.n)]
    for i, meta in enumerate(metas):
        _check_words(pipe, meta["prompt"])
        folder = out / f"{i:05d}" / "samples"
        folder.mkdir(parents=True, exist_ok=True)
        (out / f"{i:05d}" / "metadata.jsonl").write_text(json.dumps(meta) + "\n")
    for start in tqdm(range(0, len(jobs), args.batch), desc="generate"):
        chunk = jobs[start:start + args.batch]
        images = pipe.sample([metas[i]["prompt"] for i, _ in chunk], [args.seed + 1000 * i + j for i, j in chunk],
                             steps=args.steps, guidance=args.guidance, use_canvas=not args.no_canvas)
        for (i, j), im in zip(chunk, images):
            _save_png(im, out / f"{i:05d}" / "samples" / f"{j:04d}.png")
    print(f"wrote {len(jobs)} images for {len(metas)} prompts to {out}")
    return 0


def cmd_edit(args) -> int:
    from app.core.request import Task
    from app.media.probe import load_image

    pipe = load_pipeline(args)
    _check_words(pipe, args.instruction)
    source = load_image(args.image)
    out = Path(args.output)
    if out.resolve() == Path(args.image).resolve():
        print("error: the output would overwrite the source image; choose another -o", file=sys.stderr)
        return 2
    request = _request(pipe, Task.IMAGE_EDIT, args.instruction, args, images=[source])
    result = pipe(request)
    _save_png(result.frames[0], out)
    if args.plan:
        _save_png(plan_picture(result.plan, result.frames[0]), args.plan)
    print(f"wrote {out} ({result.seconds:.2f} s)")
    return 0


def cmd_plan(args) -> int:
    from app.core.request import Task
    from app.media.probe import load_image

    pipe = load_pipeline(args)
    _check_words(pipe, args.instruction)
    images = [load_image(args.image)] if args.image else []
    task = Task.IMAGE_EDIT if images else Task.TEXT_TO_IMAGE
    plan = pipe.plan(_request(pipe, task, args.instruction, args, images=images))
    _save_png(plan_picture(plan, images[0] if images else None), args.output)
    print(f"wrote {args.output}")
    return 0


def cmd_video(args) -> int:
    from app.core.request import Task
    from app.media.export import export_video
    from app.media.probe import load_image, read_video_frames

    pipe = load_pipeline(args)
    images = [load_image(p) for p in args.image]
    video = read_video_frames(args.video) if args.video else None
    task = (Task.VIDEO_EDIT if video is not None else Task.REFERENCE_TO_VIDEO if len(images) > 1
            else Task.IMAGE_TO_VIDEO if images else Task.TEXT_TO_VIDEO)
    request = _request(pipe, task, args.instruction, args, images=images, video=video, frames=args.frames,
                       width=args.width, height=args.height)
    result = pipe(request)
    export_video(list(result.frames), args.output, fps=args.fps)
    print(f"wrote {args.output}: {len(result.frames)} frames ({result.seconds:.1f} s)")
    return 0


def cmd_train(args) -> int:
    from app.train.loop import Trainer
    from app.train.recipe import Recipe

    recipe = Recipe.load(args.recipe)
    trainer = Trainer(recipe, args.out, use_canvas=not args.no_canvas, planner_from=args.planner_from,
                      init_from=args.init_from, planner_init=args.planner_init, device=args.device, workers=args.workers)
    folder = trainer.run(max_minutes=args.max_minutes, teach_only=args.teach_only,
                         teach_minutes=args.teach_minutes, cooldown_steps=args.cooldown_steps)
    print(f"model: {folder}; curves: {Path(args.out) / 'curves.png'}")
    return 0


def cmd_eval(args) -> int:
    from app.eval.geneval import score_folder, summarize, write_report

    summary = summarize(score_folder(args.folder))
    table = write_report(summary, args.out or args.folder)
    print(table)
    return 0


def cmd_render(args) -> int:
    from tqdm import tqdm

    from app.media.render import render_project

    bar = tqdm(total=1, desc="render", unit="frame")

    def progress(done: int, total: int) -> None:
        bar.total = total
        bar.n = done
        bar.refresh()

    out = render_project(args.project, args.output, progress=progress, overwrite=args.overwrite)
    bar.close()
    print(f"wrote {out}")
    return 0


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
