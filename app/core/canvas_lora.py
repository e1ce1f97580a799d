"""A LoRA on the planner's language model that acts at the canvas positions only (METHOD.md: "a LoRA on the
MLLM that is active only at canvas positions"; the paper gives rank 32-64 and +0.01 GenEval).

peft injects the LoRA layers (`inject_adapter_in_model`, into `planner.mllm.language_model` only: the vision
tower is left alone). peft adds `lora_B(lora_A(x)) * scaling` to a projection's output for every token; here a
forward hook on each `lora_B` multiplies that addition by a 0/1 gate over the sequence, so:
- the gate is 1 on the last N positions of each language-model call made inside `Planner.forward`, where
  N is the canvas's token count (prompts are left-padded, so the canvas block is always the last N positions);
- it is 0 everywhere else, and on every call outside `Planner.forward` (`Planner.context_states`).
The prompt's tokens therefore see the base weights exactly, and since attention is causal (the prompt comes
before the canvas) the plan's context states are bit for bit the base MLLM's; only the canvas states change.
A planner's pre/post hooks set and clear N, so nothing in the planner or the pipeline has to know.

Never merge the LoRA into the base weights: merged, it would reach every token. Planners that draft layouts
(the embedded shapes models) run a prompt-only pass inside `Planner.forward`; the gate would be wrong there,
so they are refused.

Saved as a model folder component, `planner_lora/`: config.json ({"rank", "alpha", "dropout", "targets"}) and
model.safetensors (the LoRA tensors, keys relative to the language model). peft is imported only here, and
only when a LoRA is asked for.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch import nn

ADAPTER_NAME = "default"
ATTENTION_PROJECTIONS = ("q_proj", "k_proj", "v_proj", "o_proj")


@dataclass
class CanvasLoraConfig:
    rank: int = 32
    alpha: float | None = None  # None: equal to the rank (a scaling of 1)
    dropout: float = 0.0
    targets: tuple[str, ...] = ATTENTION_PROJECTIONS  # module names in the language model's layers

    def __post_init__(self) -> None:
        if not isinstance(self.rank, int) or isinstance(self.rank, bool) or self.rank < 1:
            raise ValueError(f"LoRA rank must be a positive whole number, not {self.rank!r}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"LoRA dropout must be in [0, 1), not {self.dropout!r}")
        self.targets = tuple(self.targets)
        if not self.targets:
            raise ValueError("LoRA targets: name at least one projection, e.g. q_proj")

    def to_dict(self) -> dict:
        d = asdict(self)
        d["targets"] = list(self.targets)
        return d


class _CanvasGate:
    """How many trailing positions of the current language-model call are canvas (None: no planner call)."""

    def __init__(self) -> None:
        self.canvas_tokens: int | None = None

    def before_planner(self, module, args, kwargs) -> None:
        spec = kwargs.get("spec", args[1] if len(args) > 1 else None)
        self.canvas_tokens = None if spec is None else int(spec.num_tokens)

    def after_planner(self, module, args, kwargs, output) -> None:
        self.canvas_tokens = None

    def on_lora_output(self, module, inputs, output: torch.Tensor) -> torch.Tensor:
        n = self.canvas_tokens
        if n is None or output.dim() < 3:
            return output * 0
        length = output.shape[1]
        keep = torch.arange(length, device=output.device) >= length - n
        return output * keep.view(1, length, *([1] * (output.dim() - 2))).to(output.dtype)


def add_canvas_lora(planner: nn.Module, config: CanvasLoraConfig) -> list[nn.Parameter]:
    """Inject a fresh, gated LoRA (lora_B zero: no change until trained) into `planner`'s language model.
    Returns the LoRA parameters (requires_grad set); everything else keeps its requires_grad."""
    from peft import LoraConfig, inject_adapter_in_model

    if getattr(planner, "canvas_lora", None) is not None:
        raise ValueError("this planner already has a canvas LoRA")
    if getattr(planner, "drafter", None) is not None:
        raise ValueError("a LoRA gated to the canvas cannot be added to a planner that drafts layouts "
                         "(its prompt-only pass inside the planner would be gated wrongly)")
    language_model = planner.mllm.language_model
    present = {name.rsplit(".", 1)[-1] for name, _ in language_model.named_modules()}
    if missing := [t for t in config.targets if t not in present]:
        raise ValueError(f"LoRA targets {missing} are not modules of the planner's language model "
                         f"(its attention projections are {', '.join(ATTENTION_PROJECTIONS)})")
    frozen = {name: p.requires_grad for name, p in language_model.named_parameters()}
    lora = LoraConfig(r=config.rank, lora_alpha=config.alpha or config.rank, lora_dropout=config.dropout,
                      target_modules=list(config.targets), bias="none")
    inject_adapter_in_model(lora, language_model, adapter_name=ADAPTER_NAME)
    gate = _CanvasGate()
    planner.register_forward_pre_hook(gate.before_planner, with_kwargs=True)
    planner.register_forward_hook(gate.after_planner, with_kwargs=True, always_call=True)
    params = []
    for name, module in language_model.named_modules():
        if name.endswith(f"lora_B.{ADAPTER_NAME}"):
            module.register_forward_hook(gate.on_lora_output)
    for name, p in language_model.named_parameters():
        if "lora_" in name:
            # LoRA weights train in float32 even beside a bfloat16 base (autocast runs the matmuls).
            p.data = p.data.float()
            p.requires_grad_(True)
            params.append(p)
        else:  # peft freezes the base model it injects into; keep what the caller had set
            p.requires_grad_(frozen.get(name.replace(".base_layer.", "."), p.requires_grad))
    planner.canvas_lora = config
    return params


def canvas_lora_state(planner: nn.Module) -> dict[str, torch.Tensor]:
    """The LoRA tensors, keys relative to the language model (as planner_lora/model.safetensors holds them)."""
    return {k: v.detach().contiguous().cpu() for k, v in planner.mllm.language_model.state_dict().items()
            if ".lora_" in k}


def save_canvas_lora(planner: nn.Module, folder: Path, state: dict[str, torch.Tensor] | None = None) -> None:
    """Write planner_lora/: config.json + model.safetensors (`state`: the tensors, when gathered elsewhere)."""
    from safetensors.torch import save_file

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(json.dumps(planner.canvas_lora.to_dict(), indent=2))
    save_file(state if state is not None else canvas_lora_state(planner), str(folder / "model.safetensors"))


def load_canvas_lora(planner: nn.Module, folder: Path) -> None:
    """Add the LoRA a planner_lora/ folder holds (what a model loader calls when a folder has one)."""
    from safetensors.torch import load_file

    folder = Path(folder)
    try:
        raw = json.loads((folder / "config.json").read_text())
        config = CanvasLoraConfig(**{**raw, "targets": tuple(raw.get("targets", ATTENTION_PROJECTIONS))})
    except (OSError, ValueError, TypeError) as exc:
        raise ValueError(f"the planner LoRA config in {folder} cannot be used: {exc}") from None
    add_canvas_lora(planner, config)
    state = load_file(str(folder / "model.safetensors"))
    expected = set(canvas_lora_state(planner))
    if set(state) != expected:
        raise ValueError(f"the planner LoRA in {folder} does not fit this planner (missing "
                         f"{sorted(expected - set(state))[:3]}, unexpected {sorted(set(state) - expected)[:3]})")
    planner.mllm.language_model.load_state_dict(state, strict=False)
    for p in planner.mllm.language_model.parameters():
        p.requires_grad_(False)
