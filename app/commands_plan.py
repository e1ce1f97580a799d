"""The plan side of `generate` and `edit` (app/commands.py calls these): a saved plan read back with
`--plan-in`, the `--plan-edit` edits in words, and the plan written with `--plan-out`.

    python main.py generate "a red circle" -o out.png --seed 3 --plan plan.png      # numbered objects
    python main.py generate "a red circle" -o moved.png --seed 3 --plan-edit "move 1 to 0.7,0.5"
    python main.py generate "a red circle" -o out.png --plan-in edited.safetensors --plan-edit "erase 0,0,0.5,0.5"

Without `--plan-in` the edits apply to the plan the model makes for the request (its seed draws the
draft, so the same seed numbers the same objects); the model plans an edited layout afresh. With it they
apply to the plan in the file, whose canvas is used as it is (an object's cells are moved there).
"""
from __future__ import annotations

from pathlib import Path

PLAN_SUFFIX = ".safetensors"


def load_plan_in(path: str | Path, pipe, request):
    """The plan in `path`, checked against the model and the request it is to make: the same canvas grid
    and state width, and an unconditional row where guidance needs one. ValueError, in one line, else."""
    from app.core.plan import Plan

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"--plan-in: no plan file at {path}")
    try:
        plan = Plan.load(path)
    except ValueError as e:
        raise ValueError(f"--plan-in: {e}") from None
    except Exception as e:  # noqa: BLE001  (safetensors' own error for a file that is not one)
        raise ValueError(f"--plan-in: {path} is not a plan file ({type(e).__name__}: {e})") from None
    if plan.made_by is not None and plan.made_by != pipe.name:
        raise ValueError(f"--plan-in: {path.name} was made by '{plan.made_by}', not '{pipe.name}': a plan's states "
                         f"mean something only to the model that made them (--model {plan.made_by}?)")
    spec = pipe.canvas_spec(request)
    grid = tuple(plan.canvas.shape[1:4])
    if grid != spec.shape:
        raise ValueError(f"--plan-in: {path.name} is a plan of {grid[0]} x {grid[1]} x {grid[2]} canvas cells "
                         f"(keyframes x rows x columns); '{pipe.name}' plans {spec.keyframes} x {spec.rows} x "
                         f"{spec.cols} at {request.width}x{request.height}: give the size the plan was made at")
    width = int(pipe.planner.hidden_size)
    if plan.canvas.shape[-1] != width or plan.context.shape[-1] != width:
        raise ValueError(f"--plan-in: {path.name} was made by another model: its states are "
                         f"{plan.canvas.shape[-1]} wide, the planner of '{pipe.name}' makes {width}")
    if request.guidance > 1.0 and plan.batch_size < 2:
        raise ValueError(f"--plan-in: {path.name} holds no plan for the empty instruction, which guidance needs: "
                         f"write it with --plan-out from generate or edit, or run with --guidance 1")
    return plan


def check_plan_args(args) -> None:
    """Refuse, before the model loads, plan flags a run cannot use."""
    plan_args = [f for f, v in (("--plan-in", args.plan_in), ("--plan-edit", args.plan_edit),
                                ("--plan-out", args.plan_out)) if v]
    if getattr(args, "prompts", None) and plan_args:
        raise ValueError(f"{plan_args[0]} edits the plan of one prompt; it does not go with --prompts")
    if args.plan_out is not None and not str(args.plan_out).endswith(PLAN_SUFFIX):
        raise ValueError(f"--plan-out must name a {PLAN_SUFFIX} file (what --plan-in reads), not {args.plan_out}")


def apply_plan_args(pipe, args, requests: list):
    """--plan-in and --plan-edit on the requests of one run: each request gets its edits (numbered on its
    own plan: another seed drafts other objects); returns the plan read with --plan-in, or None."""
    plan_in = load_plan_in(args.plan_in, pipe, requests[0]) if args.plan_in else None
    if plan_in is not None and _words(plan_words(plan_in)) != _words(requests[0].instruction):
        raise ValueError(f"--plan-in: the plan was made for {plan_words(plan_in)!r}, not {requests[0].instruction!r}: "
                         f"its words condition the image, so give the same instruction")
    for request in requests:
        request.plan_edits = plan_edits_for(pipe, request, args.plan_edit, plan_in)
    return plan_in


def plan_words(plan) -> str:
    """The instruction a plan was made for, as its words."""
    return " ".join(word for word, _ in (plan.words[0] if plan.words else []))


def _words(text: str) -> list[str]:
    import re

    return re.findall(r"\w+", text.lower())


def plan_edits_for(pipe, request, texts: list[str], plan_in=None) -> list:
    """The `--plan-edit` texts as PlanEdits on the plan they edit: `plan_in`, else the model's plan for the
    request (planned here only to number and place its objects)."""
    from app.plan_edit_text import parse_plan_edits

    if not texts:
        return []
    base = plan_in if plan_in is not None else pipe.plan(request)
    edits = parse_plan_edits(texts, base)
    if plan_in is not None:
        try:  # a file's plan is edited without the model (cheap): refuse here, not after the run began
            plan_in.edited(edits)
        except ValueError as e:
            raise ValueError(f"--plan-edit: {e}") from None
    return edits


def save_plan(plan, path: str | Path, made_by: str | None = None, overwrite: bool = False) -> None:
    """Write the plan atomically (app/media/atomic.py): a failed write leaves no half file, nor harms an older one;
    a file there is replaced only with `overwrite`."""
    from app.media.atomic import commit_temp, remove_quietly, temp_path_for

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_path_for(path)
    try:
        plan.save(tmp, made_by=made_by)
    except BaseException:
        remove_quietly(tmp)
        raise
    commit_temp(tmp, path, overwrite=overwrite)
