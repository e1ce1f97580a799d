"""The command line: `python main.py` opens the studio; `python main.py COMMAND ...` runs a command.

Heavy imports (torch, Qt) happen inside each command, so `--help` answers at once.
"""
from __future__ import annotations

import argparse
import signal
import sys
import threading
from pathlib import Path

from app.media.schema import MAX_FPS  # light: no NumPy, no PyAV

REPO = Path(__file__).resolve().parent.parent
DEFAULT_MODEL = REPO / "models" / "metacanvas-shapes"


# bf16/fp16/fp32, and the names torch gives them (the settings' spelling).
DTYPES = ("auto", "bf16", "fp16", "fp32", "bfloat16", "float16", "float32")
OFFLOADS = ("none", "model", "sequential")  # app.core.memory.OFFLOADS (not imported: --help stays instant)


def _add_model_args(p: argparse.ArgumentParser, default: str = "the setting, else models/metacanvas-shapes") -> None:
    p.add_argument("--model", default=None, help=f"model folder (default: {default})")
    p.add_argument("--device", default=None, help="auto, cpu, cuda or mps (default: the setting, else auto)")
    p.add_argument("--dtype", default=None, choices=DTYPES, metavar="{auto,bf16,fp16,fp32}",
                   help="weights' precision (default: the setting, else auto: bf16 on a GPU, fp16 on one without it, "
                        "fp32 on the CPU); bfloat16, float16, float32 are read too")
    p.add_argument("--steps", type=int, default=None, help="denoising steps, 1 to 1000 (default: the model's)")
    p.add_argument("--guidance", type=float, default=None,
                   help="classifier-free guidance scale, >= 0; 1 or less turns it off (default: the model's)")
    p.add_argument("--seed", default="0", help="a whole number >= 0, or 'random' (printed; a PNG result keeps it too, a clip does not)")
    p.add_argument("--no-canvas", action="store_true", help="run the model text-only (the canvas branch off)")
    memory = p.add_argument_group("memory (default: the settings, else picked from the GPU's memory)")
    memory.add_argument("--offload", default=None, choices=OFFLOADS,
                        help="none: every part on the GPU; model: each large part (planner, transformer, VAE) on the "
                             "GPU only while it runs; sequential: the weights visit the GPU layer by layer (the least "
                             "memory, the slowest)")
    on_off = argparse.BooleanOptionalAction
    memory.add_argument("--vae-tiling", action=on_off, default=None,
                        help="encode and decode in tiles: large images and clips in less memory")
    memory.add_argument("--vae-slicing", action=on_off, default=None, help="decode a batch one item at a time")
    memory.add_argument("--planner-offload", action=on_off, default=None,
                        help="move the planner to the CPU after planning (the denoiser gets its room)")


def _frame_rate(text: str) -> float:
    """--fps: a number above 0 and at most MAX_FPS (what a project file accepts), said in one line."""
    try:
        fps = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"a frame rate is a number, not '{text}'") from None
    if not 0 < fps <= MAX_FPS:  # also refuses nan
        raise argparse.ArgumentTypeError(f"a frame rate is above 0 and at most {MAX_FPS:g}, not {text}")
    return fps


def _add_size_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--width", type=int, default=None,
                   help="pixels; a multiple of the model's token patch, at most 4096 (default: the model's)")
    p.add_argument("--height", type=int, default=None, help="pixels, as --width (default: the model's)")


def _add_plan_edit_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--plan-in", metavar="PLAN.safetensors",
                   help="use this saved plan (from --plan-out) instead of planning: the same size and model it was made by")
    p.add_argument("--plan-edit", action="append", default=[], metavar="EDIT",
                   help="edit the plan before generating (repeatable, in order): 'move 1 to 0.7,0.5', 'move 1 by "
                        "0.1,0', 'resize 1 to 0.25', 'delete 2', 'add red circle at 0.3,0.4 [size 0.2]', 'erase "
                        "L,T,R,B', 'paint L,T,R,B [by 1.5]', 'move L,T,R,B by DX,DY'. Objects are numbered as the "
                        "--plan picture numbers them; places are fractions of the frame")
    p.add_argument("--plan-out", metavar="PLAN.safetensors", help="also write the plan, as edited, to a file --plan-in reads")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python main.py", description=(
        "MetaCanvas Studio. With no command, opens the studio. Commands run headless."))
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser("studio", help="open the studio window (the default)")
    p.add_argument("--model", default=None)
    p.add_argument("project", nargs="?", help="a .mcproj project to open")

    p = sub.add_parser("generate", help="text-to-image: one prompt, or a GenEval metadata file with --prompts")
    p.add_argument("prompt", nargs="?", help="what to draw, e.g. 'a red circle left of a blue star'")
    p.add_argument("-o", "--output", help="output PNG (single prompt); with --n N > 1, NAME-1.png ... NAME-N.png")
    p.add_argument("--plan", help="also write the plan beside the result: the drafted layout (drafted models), the "
                   "canvas effect and PCA colours")
    p.add_argument("--prompts", help="GenEval evaluation_metadata.jsonl: writes GenEval's folder layout to --out; "
                   "a file of video records (app/shapes/video_prompts.py) gives clips, samples/NNNN.mp4, made by the "
                   "video model (the settings' video model by default)")
    p.add_argument("--out", help="output folder for --prompts")
    p.add_argument("--n", type=int, default=None,
                   help="images (clips) per prompt, seeds SEED, SEED+1, ... (default: 1; 4 with --prompts)")
    p.add_argument("--batch", type=int, default=32, help="images (clips) sampled at once with --prompts")
    p.add_argument("--overwrite", action="store_true", help="replace existing output files (with --prompts: the "
                   "prompt folders of an earlier run in --out)")
    p.add_argument("--resume", action="store_true", help="with --prompts: go on with a run stopped part way in "
                   "--out (the same prompts file and options; its seed is kept): only the samples it lacks are made")
    _add_plan_edit_args(p)
    _add_size_args(p)
    _add_model_args(p)

    p = sub.add_parser("edit", help="image editing: python main.py edit in.png 'make the circle green' -o out.png")
    p.add_argument("image")
    p.add_argument("instruction")
    p.add_argument("-o", "--output", required=True, help="output PNG; an existing file is kept unless --overwrite")
    p.add_argument("--plan", help="also write the plan beside the result")
    p.add_argument("--overwrite", action="store_true", help="replace existing -o / --plan / --plan-out files")
    _add_plan_edit_args(p)
    _add_size_args(p)
    _add_model_args(p)

    p = sub.add_parser("video", help="the video tasks: text-to-video; image-to-video (--image); video edit (--video); "
                       "reference video (--reference). Default model: the settings' video model, models/metacanvas-shapes-video")
    # Optional for argparse alone: `--reference a.png b.png "the circle moves right"` swallows the words into
    # --reference, and cmd_video then says so instead of argparse's bare "instruction is required".
    p.add_argument("instruction", nargs="?", help="e.g. 'a red circle moves to the right' or, with --video, "
                   "'remove the star' (required; before --reference, which takes every word after it)")
    p.add_argument("-o", "--output", required=True, help="output .mp4 (H.264); an existing file is kept unless --overwrite")
    inputs = p.add_argument_group("inputs (at most one kind; none = text-to-video)")
    inputs.add_argument("--image", help="image-to-video: the clip's first frame (a still image)")
    inputs.add_argument("--video", help="video edit: the source clip")
    inputs.add_argument("--reference", nargs="+", metavar="STILL",
                        help="reference video: one or two still images the instruction names objects from "
                             "('the circle from the first image moves right ...')")
    p.add_argument("--frames", type=int, default=None,
                   help="clip length, 1 + a multiple of the model's packing (4 for Wan): 5, 9, 13, 17, ... (default: "
                        "the model's; for --video the source's length snapped to one the model makes, at most the "
                        "model's, so a long source is edited over its first frames)")
    p.add_argument("--plan", help="also write the plan as a clip (.mp4): per frame the result, the drafted layout "
                   "(drafted models), the canvas effect and PCA colours, interpolated between the keyframes as the "
                   "model spreads them")
    p.add_argument("--as-drawn", action="store_true", help="with --video: the edited clip as the model drew it, "
                   "every pixel, at the model's size (by default, for a model that says so, the embedded one, the "
                   "clip comes back at the source's size with the source's own pixels wherever the model did not "
                   "change it, and outside the places its drafted edit changes); with --image: the clip as drawn, "
                   "not the image's own pixels where the words name no object")
    p.add_argument("--fps", type=_frame_rate, default=None, help="frame rate of the written clips, up to "
                   f"{MAX_FPS:g} (default: the source's with --video, else the model's: 8 for the embedded one)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing -o / --plan file")
    _add_size_args(p)
    _add_model_args(p, default="the settings' video model, else models/metacanvas-shapes-video")

    p = sub.add_parser("plan", help="run the planner alone and write the plan picture")
    p.add_argument("instruction")
    p.add_argument("-o", "--output", required=True, help="output PNG (drafted layout, canvas effect, PCA colours)")
    p.add_argument("--image", help="source image, for an edit instruction")
    p.add_argument("--overwrite", action="store_true", help="replace an existing -o file")
    _add_model_args(p)

    p = sub.add_parser("train", help="train a MetaCanvas model on the shapes world from a recipe, or an assembled "
                       "model's connectors on your data (a recipe with \"data\", app/train/recipes/connectors-example.json)")
    p.add_argument("--recipe", required=True, help="recipe JSON (e.g. app/train/recipes/shapes-64-p8-cpu.json, or one "
                   "naming \"model\" and \"data\": a folder of captioned media or a .jsonl of records)")
    p.add_argument("--out", default="runs/train", help="run folder: checkpoints, curves, model/ (resumes if present)")
    p.add_argument("--no-canvas", action="store_true", help="train the text-only baseline (no canvas branch)")
    p.add_argument("--start", default=None, metavar="new|resume|MODEL_FOLDER",
                   help="where the run starts: new (a fresh backbone), resume (the run folder's checkpoint) or an "
                        "exported model folder (its DiT and connectors). Default: resume a begun run folder, else new; "
                        "running the same command again resumes (app/train/run_start.py)")
    p.add_argument("--planner", default=None, metavar="teach|teach:FOLDER|FOLDER",
                   help="the run's planner: teach (a fresh one, taught in stage 1; the default with --start new), "
                        "teach:FOLDER (taught on from FOLDER's; another canvas grid is resampled) or FOLDER (a taught "
                        "planner used as it is, e.g. a twin's RUN/planner_taught; the default with --start MODEL_FOLDER: "
                        "the model's own)")
    for old in ("--planner-from", "--init-from", "--planner-init"):  # refused with the new words (cmd_train)
        p.add_argument(old, dest=old[2:].replace("-", "_"), default=None, help=argparse.SUPPRESS)
    p.add_argument("--device", default=None)
    p.add_argument("--workers", type=int, default=0, help="data-generating worker processes")
    p.add_argument("--max-minutes", type=float, default=None, help="stop (resumably) after this many minutes")
    p.add_argument("--cooldown-steps", type=int, default=None,
                   help="end the run: this many more steps with the LR falling linearly to zero, then export")
    p.add_argument("--teach-only", action="store_true", help="only stage 1 (teach the planner), then stop")
    p.add_argument("--teach-minutes", type=float, default=None, help="stop teaching the planner after this many minutes")

    p = sub.add_parser("eval", help="score a GenEval-layout folder with the shapes detector (images; or clips of "
                                    "video records: video_summary.json)")
    p.add_argument("folder", help="what `generate --prompts FILE.jsonl --out FOLDER` wrote: FOLDER/00000/metadata.jsonl "
                   "and FOLDER/00000/samples/0000.png (or .mp4 for video records, scored per frame and over time), "
                   "one numbered folder per prompt")
    p.add_argument("--out", help="where to write summary JSON and bar chart (default: the folder)")

    p = sub.add_parser("render", help="export a project's video track to H.264 MP4")
    p.add_argument("project")
    p.add_argument("-o", "--output", required=True)
    p.add_argument("--overwrite", action="store_true")

    p = sub.add_parser("bench", help="run a benchmark from bench/ (see docs/BENCHMARKS.md)")
    p.add_argument("name", help="canvas_overhead, speed, gui, quality, video_speed, video_quality or plan_edit")
    p.add_argument("args", nargs=argparse.REMAINDER)
    p = sub.add_parser("models", help="list the model folders (models/, the settings' and FOLDERs), or assemble one "
                                      "from your checkpoints: models assemble --planner QWEN_DIR --backbone PIPELINE_DIR "
                                      "-o OUT_DIR")
    p.add_argument("folders", nargs="*", metavar="FOLDER",
                   help="more folders to list: a model folder, or a folder of them (or the word 'assemble')")
    p.add_argument("--planner", help="assemble: a Qwen2.5-VL folder (transformers layout)")
    p.add_argument("--backbone", help="assemble: a SANA, FLUX.1-Kontext or Wan2.2 diffusers pipeline folder")
    p.add_argument("--connectors", help="assemble: trained connectors (a MetaCanvas model folder, or one with "
                                        "canvas_tokens/, canvas_connector/, context_connector/); default: fresh ones")
    p.add_argument("-o", "--output", help="assemble: the MetaCanvas model folder to write")
    p.add_argument("--name", help="assemble: the model's name (default: the output folder's)")
    p.add_argument("--text", choices=("native", "mllm"), default=None,
                   help="assemble: the text the backbone is conditioned on: native = its own text encoder, with the "
                        "canvas on top (images as the base model makes them from the first minute); mllm = the "
                        "planner's states through the context connector (the method's way for FLUX and Wan: train "
                        "the connectors first). Default: native with fresh connectors, else the connectors' own")
    p.add_argument("--overwrite", action="store_true", help="assemble: replace an existing output folder")
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0].endswith(".mcproj"):
        argv.insert(0, "studio")  # `python main.py project.mcproj` opens it, as a double-click would
    parser = build_parser()
    args = parser.parse_args(argv)
    command = args.command or "studio"
    # SIGTERM (kill, a closing terminal, a job scheduler) ends a command as Ctrl-C does: through the writers'
    # cleanup, so no hidden half-written ".part" file is left beside an output. (`train` sets its own, to save
    # a checkpoint first.)
    terminated = []
    previous = None
    if command != "studio" and threading.current_thread() is threading.main_thread():
        def stop(signum, frame):
            terminated.append(signum)
            raise KeyboardInterrupt
        previous = signal.signal(signal.SIGTERM, stop)
    try:
        if command == "studio":
            from app.ui.studio import run_studio

            project = getattr(args, "project", None)
            return run_studio([sys.argv[0]] + ([project] if project else []), model_path=getattr(args, "model", None))
        from app import commands

        return getattr(commands, f"cmd_{command}")(args)
    except KeyboardInterrupt:
        print("terminated" if terminated else "interrupted", file=sys.stderr)
        return 143 if terminated else 130
    except Exception as exc:  # every failure a user can cause ends as one clear line, not a traceback
        from app.errors import user_message

        # The memory placement the command ran with: an out of memory then names the flag to try.
        msg = user_message(exc, memory=getattr(args, "memory_in_use", None))
        if msg is None:
            raise
        print(f"error: {msg}", file=sys.stderr)
        return 2
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
