"""The learning-rate schedule both stages share."""
from __future__ import annotations


def lr_lambda(warmup: int, cooldown: tuple[int, int] | None = None):
    """LR factor at a step: linear warm-up, then constant; inside `cooldown` = (first, end) it falls
    linearly to zero at `end`."""
    def factor(step: int) -> float:
        f = min(1.0, (step + 1) / max(1, warmup))
        if cooldown is not None and step >= cooldown[0]:
            f *= max(0.0, (cooldown[1] - step) / max(1, cooldown[1] - cooldown[0]))
        return f
    return factor
