"""A generation that ran out of memory is kept, not lost: its request, its plan when one was made, and the memory
options to run it again with (more offload), with the one message that says what to change."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass
class OutOfMemory:
    request: Any  # the GenerationRequest, as submitted
    plan: Any  # its plan, on the CPU (the retry reuses it, edits not yet applied); None when planning ran out
    slot: str  # the engine's model slot it ran on
    options: Any  # the resolved MemoryOptions it ran with; None for a pipeline placed without them
    retry_options: Any  # the same with more offload; None when no step is left, or on the CPU
    message: str

    @property
    def retry_words(self) -> str:
        """What the retry changes, for a button: "model offload"."""
        from app.core.memory import step_words

        return step_words(self.options, self.retry_options) if self.retry_options is not None else ""


def out_of_memory_failure(request: Any, plan: Any, pipe: Any, slot: str, step: int | None,
                          total: int | None) -> OutOfMemory:
    """What is kept of a run of `pipe` that ran out of memory after `step` (None: before the first) of `total`."""
    placement = getattr(pipe, "memory", None)
    options = getattr(placement, "options", None)
    retry = None
    if options is not None:
        from app.core.memory import more_frugal, offload_can_help

        retry = more_frugal(options) if offload_can_help(placement.execution_device) else None
    if step is None:
        where = "before denoising started"
    elif total is not None and step >= total:
        where = f"while decoding, after step {step} of {total}"
    else:
        where = f"at step {step + 1} of {total}"
    if retry is None:
        message = f"Out of memory {where}: try a smaller size, fewer frames, or the CPU."
    else:
        from app.core.memory import step_words

        kept = "The request and its plan are kept" if plan is not None else "The request is kept"
        message = (f"Out of memory {where}. {kept}: retry with {step_words(options, retry)}, or try a smaller size "
                   f"or fewer frames.")
    return OutOfMemory(request, plan, slot, options, retry, message)
