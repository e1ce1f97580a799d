"""Loading and dropping a model in the engine thread: the default loader, its imports run in one burst
without garbage-collector pauses (they froze the GUI), out-of-memory detection, and memory release."""
from __future__ import annotations

import contextlib
import gc
import sys
from pathlib import Path
from typing import Any


def default_loader(path: str | Path, device: str, dtype: Any = None) -> Any:
    """The real loader; imported late so the engine (and its tests) work before core is complete."""
    from app.core.checkpoints import load_model

    if dtype is None:
        return load_model(path, device=device)
    return load_model(path, device=device, dtype=dtype)


def load_placed(loader, path: str | Path, device: str, dtype: Any = None, memory: Any = None) -> Any:
    """The loader's pipeline on `device`: placed with `memory` (app.core.memory.MemoryOptions, whose precision
    then replaces `dtype`) when given; else `dtype` (a torch dtype or its name) goes to the loader when given."""
    if memory is None:
        if isinstance(dtype, str):
            import torch

            dtype = getattr(torch, dtype)
        return loader(path, device) if dtype is None else loader(path, device, dtype=dtype)
    from app.core.memory import load_with_memory_options

    return load_with_memory_options(loader, path, device, memory)


def _import_model_libraries(folder: str | Path | None = None) -> None:
    """Import what `load_model(folder)` will use, and build nothing: torch, the transformers planner
    classes, the diffusers backbone of the folder's family, the schedulers, the method's own modules.

    On a 2-core CPU these imports are about 90% of loading the embedded model (~2.5 s of ~2.8 s; the
    weights are 13 MB). The engine runs them as a separate step so that it can pause the cyclic
    garbage collector over them and then freeze what they created (app/engine/engine.py). An
    unreadable folder is ignored here: `load_model` reports it.
    """
    import torch  # noqa: F401
    from transformers import AutoTokenizer, PreTrainedTokenizerFast, Qwen2_5_VLConfig, Qwen2_5_VLModel  # noqa: F401
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil  # noqa: F401

    from app.core import latents, pipeline, planner  # noqa: F401
    from app.core.backbones import adapter_class
    from app.core.checkpoints import ModelFolderError, _transformer_class, read_index

    family = None
    if folder is not None:
        try:
            family = read_index(folder).get("family")
        except ModelFolderError:
            return
    if family in ("sana", "flux", "wan"):
        _transformer_class(family)
        adapter_class(family)


# A loader may carry `prepare(path)`: the imports it needs, run first with the garbage collector paused.
default_loader.prepare = _import_model_libraries  # type: ignore[attr-defined]


@contextlib.contextmanager
def imports_without_gc_pauses(freeze: bool = True):
    """Run a burst of imports (torch, transformers, diffusers: ~700k new objects) without the cyclic
    garbage collector, then freeze what exists, and restore the collector.

    Why: every 25% growth of the heap triggers a full collection, and each one walks every tracked
    object while holding the GIL. Importing the model libraries in the engine thread ran seven of them,
    the last ~170 ms: the GUI thread stood still for each. Frozen objects (gc.freeze) are never walked
    again, so the collections that follow (while generating, while the user works) stay cheap too.
    What gets frozen is module-level state that lives as long as the process, plus the few thousand
    cycles the imports left behind (~12k objects). Nothing a model builds is frozen: the caller builds
    it after this block, so release_memory() can still free a dropped model. With `freeze=False` (a
    model is already alive: the engine's other slot) only the pauses are saved.
    The engine freezes on its first load only (Engine._run_load): later, the user's work is alive too (an open
    project's decoded frames held in a reference cycle), and freezing would keep it from ever being collected.
    """
    was_enabled = gc.isenabled()
    modules = len(sys.modules)
    gc.disable()
    try:
        yield
    finally:
        if freeze and len(sys.modules) > modules:  # a second load of the same kind imports nothing: nothing to freeze
            gc.freeze()
        if was_enabled:
            gc.enable()


def is_out_of_memory(exc: BaseException) -> bool:
    """CUDA/MPS out-of-memory arrives as torch.OutOfMemoryError or a RuntimeError that says so."""
    if isinstance(exc, MemoryError):
        return True
    try:
        import torch

        oom_types = tuple(t for t in (getattr(torch, "OutOfMemoryError", None),
                                      getattr(torch.cuda, "OutOfMemoryError", None)) if t is not None)
        if oom_types and isinstance(exc, oom_types):
            return True
    except Exception:  # torch missing or half-initialised: fall back to the message
        pass
    return isinstance(exc, RuntimeError) and "out of memory" in str(exc).lower()


def release_memory() -> None:
    """Give dropped tensors back to the device before the next job or model needs them.

    A full gc.collect() is needed because an nn.Module with forward hooks is a reference cycle
    (the hook is a bound method of its owner), so a dropped model is not freed by refcounting.
    It holds the GIL for a fraction of a second with torch/diffusers imported, which stalls the
    GUI thread too, so it is called only where memory is the point: after an out-of-memory, and
    when a loaded model is being replaced.
    """
    gc.collect()
    try:
        import torch

        if torch.cuda.is_available():
            torch.cuda.empty_cache()
        mps = getattr(torch, "mps", None)
        if mps is not None and torch.backends.mps.is_available():
            mps.empty_cache()
    except Exception:
        pass
