"""The learning-rate schedule the training stages share, and the cooldown that ends a run."""
from __future__ import annotations

from typing import Callable


def lr_lambda(warmup: int, cooldown: tuple[int, int] | None = None, warmup_from: int = 0):
    """LR factor at a step: linear warm-up from `warmup_from` (a run started from a model folder warms
    its fresh optimizer moments up again), then constant; inside `cooldown` = (first, end) it falls
    linearly to zero at `end`."""
    def factor(step: int) -> float:
        f = min(1.0, (step - warmup_from + 1) / max(1, warmup))
        if cooldown is not None and step >= cooldown[0]:
            f *= max(0.0, (cooldown[1] - step) / max(1, cooldown[1] - cooldown[0]))
        return f
    return factor


def cooldown_window(progress: dict, start: int, cooldown_steps: int | None,
                    log: Callable[[str], None]) -> tuple[int, int] | None:
    """The (first, end) steps of a run's cooldown, kept in `progress["cooldown"]`. A cooldown cut short
    (killed, out of time) continues on resume with or without the flag: the LR would otherwise jump
    back to full. Run again at its end, the flag trains nothing (a retried command); once the run has
    trained on at the full LR past it, a new `--cooldown-steps` starts another from the current step.
    With fresh optimizer moments (a run started from a model folder) the warm-up and the cooldown begin
    together and multiply: keep N well above the recipe's warm-up."""
    current = progress.get("cooldown")
    if current is not None and start == current[1] and cooldown_steps is not None:
        # The same command run again after its cooldown ended (a retried job, a relaunched line): a second
        # cooldown straight after the first would put the LR back to full. Nothing to train; train on at
        # the full LR first (the command without the flag) to cool down again later.
        log(f"the cooldown of steps {current[0]}-{current[1]} has ended at this step: nothing to train "
            f"(run without --cooldown-steps to train on at the full LR)")
        return current[0], current[1]
    if current is not None and start < current[1]:
        if cooldown_steps is not None and current[1] - current[0] != cooldown_steps:
            log(f"continuing the cooldown begun at step {current[0]} (to step {current[1]}); "
                f"--cooldown-steps {cooldown_steps} is ignored until it ends")
        return current[0], current[1]
    if cooldown_steps is None:
        return None
    progress["cooldown"] = [start, start + cooldown_steps]
    log(f"cooldown: LR falls linearly to zero over steps {start}-{start + cooldown_steps}")
    return start, start + cooldown_steps


def cooldown_record(progress: dict) -> dict:
    """What an exported model's training.json says of its run's cooldown: its (first, end) steps, whether
    the exported step reached its end (a run cut short mid-cooldown exports too, its LR not yet at zero),
    and how many steps were trained at the full LR after it."""
    if "cooldown" not in progress:
        return {}
    first, end = progress["cooldown"]
    step = int(progress["step"])
    record = {"cooldown": [first, end], "cooldown_finished": step >= end}
    if step > end:
        record["steps_after_cooldown"] = step - end
    return record
