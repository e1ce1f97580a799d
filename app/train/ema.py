"""Exponential moving average of weights: what the committed model ships (smoother samples)."""
from __future__ import annotations

import torch


class EMA:
    def __init__(self, module: torch.nn.Module, decay: float):
        self.decay = decay
        self.shadow = {k: v.detach().clone().float() for k, v in module.state_dict().items()
                       if v.dtype.is_floating_point}

    @torch.no_grad()
    def update(self, module: torch.nn.Module, step: int) -> None:
        # Warm-up so early EMA weights don't stay stuck near the random initialisation.
        d = min(self.decay, (1 + step) / (10 + step))
        for k, v in module.state_dict().items():
            if k in self.shadow:
                self.shadow[k].mul_(d).add_(v.detach().float(), alpha=1 - d)

    @torch.no_grad()
    def copy_to(self, module: torch.nn.Module) -> None:
        state = module.state_dict()
        for k, v in self.shadow.items():
            state[k].copy_(v.to(state[k].dtype))

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {f"ema.{k}": v for k, v in self.shadow.items()}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        for k in self.shadow:
            if f"ema.{k}" in state:
                self.shadow[k].copy_(state[f"ema.{k}"])
