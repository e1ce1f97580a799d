"""Memory options: the weights' precision, CPU offload, VAE tiling and slicing, the planner off the GPU after planning.

A MetaCanvas model is a few large parts (the MLLM of the planner, the diffusion transformer, the VAE and, on the
native text path, the backbone's text encoders) around small ones of its own (canvas tokens, drafters,
connectors: megabytes). The options say where the large parts rest and when they come to the GPU. The small parts
always stay on the device the work runs on (the execution device), so the pipeline makes its tensors there as before.

- offload "none": every part on the GPU. With `planner_offload` the planner's MLLM goes back to the CPU after each
  planning, and the denoiser has the room it held.
- offload "model": each large part rests on the CPU and comes to the GPU whole when it runs, sending the one there
  back (the planner while planning, the transformer while denoising, the VAE while encoding or decoding).
- offload "sequential": accelerate's `cpu_offload`: the weights stay on the CPU and visit the GPU one layer at a
  time (the least memory, the slowest). The native text path's encoders visit whole instead (see `install`).

The movements are accelerate hooks, so they follow every call into a part, in any order: a live plan between two
denoising steps brings the planner back and the next step the transformer. Why not `cpu_offload_with_hook` for
model offload: it sends back only the one part before it in a fixed chain, and a request here is no chain (plan,
encode, denoise with a preview decode per step, a live plan in between); and its hook would sit on the part it
moves, while the planner and the adapter are entered through their own modules, whose small parts must not move.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass, fields, replace
from typing import Any

import torch

# accelerate is imported where a placement uses it, not here: the studio reads MemoryOptions on the GUI thread as
# it starts loading, and importing accelerate there (~0.2 s) froze the window; on the CPU nothing needs it.

DTYPES = ("bf16", "fp16", "fp32")
OFFLOADS = ("none", "model", "sequential")
# The settings and the older CLI spell precisions as torch does.
_DTYPE_SPELLINGS = {"bf16": "bf16", "bfloat16": "bf16", "fp16": "fp16", "float16": "fp16", "fp32": "fp32",
                    "float32": "fp32"}
_TORCH_NAMES = {"bf16": "bfloat16", "fp16": "float16", "fp32": "float32"}

GB = 10**9  # as GPU makers count: a "40 GB" card reports about 42.5e9 bytes
# Defaults by the GPU's memory when the model's size is not known. The largest parts a MetaCanvas model takes, in
# bfloat16: the Qwen2.5-VL-7B planner 16.6 GB, the FLUX.1-Kontext transformer 23.8 GB, Wan2.2-TI2V-5B 10 GB,
# SANA-1.6B 3.2 GB, VAEs 0.2-1.4 GB; denoising at 1 MP adds 1-3 GB of activations.
ALL_ON_GPU_BYTES = 48 * GB  # planner + FLUX transformer + VAE + activations: about 44 GB
PLANNER_LEAVES_BYTES = 40 * GB  # all of it fits while planning; the denoiser's activations need the planner gone
SEQUENTIAL_BELOW_BYTES = 12 * GB  # below, the 7B planner (16.6 GB) or a 10 GB transformer cannot come whole
VAE_TILING_BELOW_BYTES = 24 * GB  # decoding a whole clip or a 4 MP image at once takes several GB of activations
# When the parts' sizes are known (apply_memory_options), a set of parts "fits" when this much more than their
# weights is free: activations grow with the size asked for, and the CUDA context and allocator take their share.
ACTIVATION_HEADROOM = 1.2
RESERVED_BYTES = 2 * GB


def dtype_name(name: str) -> str:
    """The short name (bf16, fp16, fp32) of a precision as the CLI or the settings spell it ("bfloat16", "fp16")."""
    try:
        return _DTYPE_SPELLINGS[str(name).lower()]
    except KeyError:
        raise ValueError(f"unknown dtype {name!r}: use one of {', '.join(DTYPES)}") from None


@dataclass(frozen=True)
class MemoryOptions:
    """How a model uses memory. A field left None is "auto": picked from the GPU's memory when the model is placed
    (`resolved`, default_memory_options)."""

    dtype: str | None = None  # "bf16" | "fp16" | "fp32"
    offload: str | None = None  # "none" | "model" | "sequential"
    vae_tiling: bool | None = None  # decode (and encode) in overlapping tiles: large images and clips
    vae_slicing: bool | None = None  # decode a batch one item at a time
    planner_offload: bool | None = None  # the planner's MLLM back to the CPU after each planning

    def __post_init__(self):
        if self.dtype is not None:
            object.__setattr__(self, "dtype", dtype_name(self.dtype))
        if self.offload is not None and self.offload not in OFFLOADS:
            raise ValueError(f"unknown offload {self.offload!r}: use one of {', '.join(OFFLOADS)}")
        for name in ("vae_tiling", "vae_slicing", "planner_offload"):
            if getattr(self, name) not in (None, True, False):
                raise ValueError(f"{name} must be true, false or unset (auto), not {getattr(self, name)!r}")

    @property
    def torch_dtype(self):

        if self.dtype is None:
            raise ValueError("resolve the options first: the dtype is auto")
        return getattr(torch, _TORCH_NAMES[self.dtype])

    def resolved(self, device, part_bytes: dict[str, int] | None = None) -> "MemoryOptions":
        """Every auto field filled in for `device` (and, when known, the sizes of the model's large parts)."""
        total, bf16 = gpu_memory(device)
        auto = default_memory_options(total, bf16_supported=bf16, part_bytes=part_bytes)
        chosen = {f.name: getattr(self, f.name) for f in fields(self) if getattr(self, f.name) is not None}
        return replace(auto, **chosen)

    def describe(self) -> str:
        """E.g. "bf16, model offload, VAE tiling"."""
        words = [self.dtype or "auto precision", f"{self.offload or 'auto'} offload"]
        words += [label for label, on in (("VAE tiling", self.vae_tiling), ("VAE slicing", self.vae_slicing),
                                          ("planner off the GPU after planning", self.planner_offload)) if on]
        return ", ".join(words)


def default_memory_options(total_gpu_bytes: int | None, bf16_supported: bool = True,
                           part_bytes: dict[str, int] | None = None) -> MemoryOptions:
    """The options for a device with `total_gpu_bytes` of memory (None: the CPU).

    On the CPU: float32 (bfloat16 matmuls are slow on most CPUs, and offloading to the CPU from it means nothing).
    On a GPU: bfloat16 (float16 where the GPU lacks it: before Ampere, and MPS). With `part_bytes` ({"planner": n,
    "transformer": n, ...}, the model's large parts in that precision) the offload is what those sizes need;
    without, the thresholds above (written for the largest checkpoints MetaCanvas assembles)."""
    if not total_gpu_bytes:
        return MemoryOptions("fp32", "none", vae_tiling=False, vae_slicing=False, planner_offload=False)
    total = int(total_gpu_bytes)
    if part_bytes:
        offload, planner_offload = _offload_for(total, part_bytes)
    else:
        offload = ("none" if total >= PLANNER_LEAVES_BYTES else
                   "model" if total >= SEQUENTIAL_BELOW_BYTES else "sequential")
        planner_offload = PLANNER_LEAVES_BYTES <= total < ALL_ON_GPU_BYTES
    return MemoryOptions("bf16" if bf16_supported else "fp16", offload, vae_tiling=total < VAE_TILING_BELOW_BYTES,
                         vae_slicing=offload == "sequential", planner_offload=planner_offload)


def _offload_for(total: int, part_bytes: dict[str, int]) -> tuple[str, bool]:
    def fits(n: int) -> bool:
        return n * ACTIVATION_HEADROOM + RESERVED_BYTES <= total

    everything = sum(part_bytes.values())
    if fits(everything):
        return "none", False
    # Planning needs every part on the GPU at once (planning's activations are small); denoising then has the
    # planner's room.
    if everything + RESERVED_BYTES <= total and fits(everything - part_bytes.get("planner", 0)):
        return "none", True
    if fits(max(part_bytes.values())):
        return "model", False
    return "sequential", False


def gpu_memory(device) -> tuple[int | None, bool]:
    """(total bytes, whether it computes in bfloat16) of `device`; (None, False) for the CPU."""
    device = torch.device(device)
    if device.type == "cuda":
        index = device.index if device.index is not None else torch.cuda.current_device()
        return int(torch.cuda.get_device_properties(index).total_memory), bool(torch.cuda.is_bf16_supported())
    if device.type == "mps":
        return int(torch.mps.recommended_max_memory()), False
    return None, False


def offload_can_help(device) -> bool:
    """Whether more offload can get a run that ran out of memory through: not on the CPU, where it is the
    host's memory that ran out."""
    return torch.device(device).type != "cpu"


def more_frugal(options: MemoryOptions) -> MemoryOptions | None:
    """The next step down in GPU memory after running out: model offload, then sequential offload, then VAE tiling
    and slicing; None when no step is left. `options` are resolved ones."""
    if options.offload == "none":
        return replace(options, offload="model")
    if options.offload == "model":
        return replace(options, offload="sequential")
    if not (options.vae_tiling and options.vae_slicing):
        return replace(options, vae_tiling=True, vae_slicing=True)
    return None


def step_words(old: MemoryOptions, new: MemoryOptions) -> str:
    """What `more_frugal` changed, in words for a message: "model offload"."""
    if new.offload != old.offload:
        return f"{new.offload} offload"
    return "VAE tiling and slicing"


def step_flags(old: MemoryOptions, new: MemoryOptions) -> str:
    """What `more_frugal` changed, as the command line's flags: "--offload model"."""
    if new.offload != old.offload:
        return f"--offload {new.offload}"
    return "--vae-tiling --vae-slicing"


# ---------------------------------------------------------------------------------------------- placement
def large_parts(pipe) -> list[tuple[str, Any, Any]]:
    """(name, entry module, large module) of each large part: the entry is what the pipeline calls (the Planner,
    the adapter), the large module what moves (its MLLM, its transformer); for the text encoders and the VAE they
    are one."""
    parts = [("planner", pipe.planner, pipe.planner.model), ("transformer", pipe.adapter, pipe.adapter.transformer)]
    native_text = getattr(pipe, "native_text", None)
    if native_text is not None:
        parts += [(f"text encoder {i + 1}", m, m) for i, m in enumerate(native_text.modules())]
    vae = getattr(pipe.codec, "vae", None)
    if vae is not None:
        parts.append(("vae", vae, vae))
    return parts


def part_bytes(pipe, dtype) -> dict[str, int]:
    """The large parts' sizes in `dtype` (their weights and buffers)."""
    size = torch.empty((), dtype=dtype).element_size()
    return {name: sum(t.numel() for t in [*large.parameters(), *large.buffers()]) * size
            for name, _, large in large_parts(pipe)}


def apply_memory_options(pipe, options: MemoryOptions, device=None) -> "MemoryPlacement":
    """Place `pipe`'s parts as `options` say (auto fields resolved for `device`: by default the device it runs on
    now) and keep the placement as `pipe.memory`, which the pipeline asks for its execution device. Applying again
    (more offload after running out of memory) first undoes the previous placement. Returns the placement; its
    `options` are the resolved ones."""
    device = torch.device(device) if device is not None else pipe.device
    old = getattr(pipe, "memory", None)
    if old is not None:
        old.remove()
    dtype = options.resolved(device).torch_dtype
    options = options.resolved(device, part_bytes(pipe, dtype))
    if pipe.dtype != dtype:
        pipe.to(dtype=dtype)
    vae = getattr(pipe.codec, "vae", None)
    if vae is not None:
        vae.enable_tiling() if options.vae_tiling else vae.disable_tiling()
        vae.enable_slicing() if options.vae_slicing else vae.disable_slicing()
    placement = MemoryPlacement(pipe, options, device)
    placement.install()
    pipe.memory = placement
    return placement


def load_with_memory_options(loader, path, device, options: MemoryOptions):
    """`loader(path, device=..., dtype=...)`'s pipeline (checkpoints.load_model's signature), loaded on the CPU in
    the options' precision and then placed on `device` as they say: a model larger than the GPU never has to fit on
    it whole."""
    pipe = loader(path, device="cpu", dtype=options.resolved(device).torch_dtype)
    apply_memory_options(pipe, options, device)
    return pipe


class MemoryPlacement:
    """Where a pipeline's large parts are, and the accelerate hooks that move them (see the module docstring)."""

    def __init__(self, pipe, options: MemoryOptions, device):
        self.pipe, self.options, self.execution_device = pipe, options, device
        self.parts = large_parts(pipe)
        self._on_device: list = []  # the large modules on the execution device (model offload: at most one)

    @property
    def step_previews(self) -> bool:
        """Whether a preview decode at each denoising step is cheap: not when it brings the VAE to the GPU and sends
        the transformer away (model offload) or streams the VAE's weights (sequential) at every step."""
        return self.options.offload == "none" or getattr(self.pipe.codec, "vae", None) is None

    @property
    def on_device(self) -> list[str]:
        """The names of the large parts on the execution device now (model offload and planner offload)."""
        return [name for name, _, large in self.parts if any(large is m for m in self._on_device)]

    def install(self) -> None:
        from accelerate import cpu_offload
        from accelerate.hooks import add_hook_to_module

        offload, device = self.options.offload, self.execution_device
        if offload == "none":
            self.pipe.to(device=device)
            self._on_device = [large for _, _, large in self.parts]
            if self.options.planner_offload:
                _, planner, mllm = self.parts[0]
                self.send_back(mllm)
                add_hook_to_module(planner, visit_while_running(self, mllm, leaves_after=True))
            return
        for _, entry, large in self.parts:
            large.to("cpu")  # first, so that the GPU never holds two large parts at once
            if entry is not large:
                _move_all_but(entry, large, device)
        for name, entry, large in self.parts:
            # The native text encoders visit whole even under sequential offload: NativeTextEncoder makes its
            # inputs on its weights' device, which streamed weights leave on "meta".
            if offload == "sequential" and not name.startswith("text encoder"):
                cpu_offload(large, execution_device=device)
            else:
                leaves = offload == "sequential" or (name == "planner" and bool(self.options.planner_offload))
                add_hook_to_module(entry, visit_while_running(self, large, leaves_after=leaves))

    def remove(self) -> None:
        """Take the hooks off; streamed weights come back to the CPU, the parts stay where they are."""
        from accelerate.hooks import remove_hook_from_module

        for _, entry, large in self.parts:
            remove_hook_from_module(entry)
            if self.options.offload == "sequential":
                remove_hook_from_module(large, recurse=True)
        if getattr(self.pipe, "memory", None) is self:
            self.pipe.memory = None

    def bring(self, large) -> None:
        """`large` to the execution device; under model offload, the large part there before goes to the CPU."""
        if any(large is m for m in self._on_device):
            return
        if self.options.offload == "model":
            for other in list(self._on_device):
                self.send_back(other)
        large.to(self.execution_device)
        self._on_device.append(large)

    def send_back(self, large) -> None:
        from accelerate.utils.memory import clear_device_cache

        large.to("cpu")
        self._on_device = [m for m in self._on_device if m is not large]
        clear_device_cache()


def _move_all_but(root, large, device) -> None:
    """Everything of `root` but its child `large` to `device`: the small parts of the planner and the adapter."""
    for child in root.children():
        if child is not large:
            child.to(device)
    for param in root.parameters(recurse=False):
        param.data = param.data.to(device)
    for name, buffer in list(root.named_buffers(recurse=False)):
        setattr(root, name, buffer.to(device))


def visit_while_running(placement: MemoryPlacement, large, leaves_after: bool):
    """The hook for the entry module of a large part: brings the part to the execution device before the entry
    runs (its inputs too: a part resting on the CPU makes them there), and with `leaves_after` sends it back
    afterwards. An accelerate ModelHook, its class made on first use (accelerate is imported lazily)."""
    return _visit_hook_class()(placement, large, leaves_after)


@functools.lru_cache(maxsize=1)
def _visit_hook_class():
    from accelerate.hooks import ModelHook
    from accelerate.utils import send_to_device

    class VisitWhileRunning(ModelHook):
        def __init__(self, placement: MemoryPlacement, large, leaves_after: bool):
            self.placement, self.large, self.leaves_after = placement, large, leaves_after

        def pre_forward(self, module, *args, **kwargs):
            self.placement.bring(self.large)
            device = self.placement.execution_device
            return send_to_device(args, device), send_to_device(kwargs, device)

        def post_forward(self, module, output):
            if self.leaves_after:
                self.placement.send_back(self.large)
            return output

    return VisitWhileRunning
