"""A recipe that trains an assembled model's connectors on the user's data (app/train/connector_training.py).

It is told from a shapes-world recipe (app/train/recipe.py) by its "data" field; `python main.py train --recipe
R.json` dispatches on that. Relative paths in "model" and "data" are read from the recipe file's folder, so a
recipe can travel with its data. Example: app/train/recipes/connectors-example.json.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from app.core.canvas_lora import ATTENTION_PROJECTIONS, CanvasLoraConfig

PRECISIONS = ("auto", "float32", "bfloat16")


@dataclass
class LoraRecipe:
    """The optional LoRA on the planner's language model, active at canvas positions only (app/core/canvas_lora.py).
    rank 0 = none (the paper's 0.86 GenEval has one of rank 32-64; it adds about 0.01)."""

    rank: int = 0
    alpha: float | None = None
    dropout: float = 0.0
    targets: tuple[str, ...] = ATTENTION_PROJECTIONS

    def config(self) -> CanvasLoraConfig | None:
        return CanvasLoraConfig(self.rank, self.alpha, self.dropout, tuple(self.targets)) if self.rank else None


@dataclass
class ConnectorRecipe:
    model: str  # the MetaCanvas model folder to train (an assembly: `python main.py models assemble`)
    data: str  # a folder of media with same-name .txt captions, or a .jsonl file (app/train/user_data.py)
    name: str = "connectors"
    seed: int = 0
    steps: int = 1000  # optimizer steps
    batch: int = 4  # items a micro-batch, per process
    grad_accumulation: int = 1  # micro-batches an optimizer step
    lr: float = 1e-4  # METHOD.md: 1e-4 for text-to-image, 1e-6 editing, 1e-3 the video connector alignment stage
    warmup: int = 100
    weight_decay: float = 0.0
    grad_clip: float = 1.0
    cfg_dropout: float = 0.1  # share of items trained with an empty instruction (the unconditional branch)
    logit_normal_std: float = 1.0
    timestep_shift: float | None = None  # None: the model's sampling shift (PipelineDefaults.shift)
    width: int | None = None  # training size in pixels; None: the model's default size
    height: int | None = None
    frames: int | None = None  # clip length for video data; None: the model's default
    train_canvas_tokens: bool = True  # the paper's canvas tokens are learnable with the diffusion loss
    lora: LoraRecipe = field(default_factory=LoraRecipe)
    # "auto": bfloat16 on a GPU that has it, else float32. With bfloat16 the frozen base weights are held in it and
    # the trained parts stay float32 under autocast; under FSDP or DeepSpeed everything is float32 and their
    # mixed precision setting decides the compute.
    precision: str = "auto"
    checkpoint_every: int = 100
    # The method's ablation switches (app/core/ablations.py): the run starts the connectors fresh with them.
    ablations: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        for key in ("steps", "batch", "grad_accumulation", "checkpoint_every"):
            value = getattr(self, key)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"recipe {key} must be a whole number >= 1, not {value!r}")
        if not 0.0 <= self.cfg_dropout <= 1.0:
            raise ValueError(f"recipe cfg_dropout is {self.cfg_dropout}: a share between 0 and 1")
        if self.precision not in PRECISIONS:
            raise ValueError(f"recipe precision {self.precision!r}: one of {', '.join(PRECISIONS)}")
        if self.lr <= 0 or self.warmup < 0:
            raise ValueError(f"recipe lr must be > 0 and warmup >= 0, not {self.lr} and {self.warmup}")
        self.lora.config()  # a bad rank or dropout is refused now, not after the model has loaded
        from app.core.ablations import check_ablations

        check_ablations(self.ablations)

    @classmethod
    def load(cls, path: str | Path) -> "ConnectorRecipe":
        path = Path(path)
        data = json.loads(path.read_text())
        for key in ("model", "data"):  # relative to the recipe's folder
            if isinstance(data.get(key), str):
                data[key] = str((path.parent / Path(data[key]).expanduser()).resolve())
        return cls.from_dict(data)

    @classmethod
    def from_dict(cls, data: dict) -> "ConnectorRecipe":
        data = dict(data)
        known = {f.name for f in fields(cls)}
        if unknown := set(data) - known:
            raise ValueError(f"unknown recipe keys: {sorted(unknown)}; known: {sorted(known)}")
        if missing := [k for k in ("model", "data") if k not in data]:
            raise ValueError(f"the recipe names no {' and no '.join(missing)}: \"model\" is the assembled model folder "
                             f"to train, \"data\" the folder or .jsonl of training records")
        lora = data.get("lora", {})
        known = {f.name for f in fields(LoraRecipe)}
        if not isinstance(lora, dict) or set(lora) - known:
            raise ValueError(f"recipe lora must be an object with keys among {sorted(known)}, not {lora!r}")
        data["lora"] = LoraRecipe(**{**lora, **({"targets": tuple(lora["targets"])} if "targets" in lora else {})})
        return cls(**data)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["lora"]["targets"] = list(self.lora.targets)
        return d


def is_connector_recipe(path: str | Path) -> bool:
    """A recipe that names user data ("data") trains connectors; the shapes-world recipes have no such field."""
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return False  # the shapes recipe loader reports it
    return isinstance(data, dict) and "data" in data
