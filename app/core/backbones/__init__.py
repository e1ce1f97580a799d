"""Backbone families: one file each; every adapter hooks the canvas in after patch embedding.

`build_adapter(adapter.config, transformer)` rebuilds an adapter (fresh connectors) around a
transformer loaded with diffusers' `from_pretrained`; load the connector weights after it.
"""
from __future__ import annotations

from typing import Any

from torch import nn

from .base import BackboneAdapter


def adapter_class(family: str) -> type[BackboneAdapter]:
    # Imported lazily so that using one family does not import the others' diffusers models.
    if family == "sana":
        from .sana import SanaAdapter
        return SanaAdapter
    if family == "flux":
        from .flux import FluxAdapter
        return FluxAdapter
    if family == "wan":
        from .wan import WanAdapter
        return WanAdapter
    raise ValueError(f"unknown backbone family {family!r}: expected 'sana', 'flux' or 'wan'")


# Options of rejected experiments, removed (research/LOG.md): adapter configs saved while they existed
# name them with their "off" value, which loads as before.
RETIRED_OPTIONS = {"pooled_context": False}


def build_adapter(config: dict[str, Any], transformer: nn.Module) -> BackboneAdapter:
    """Rebuild an adapter from its `config` dict (as stored next to a checkpoint)."""
    kwargs = dict(config)
    cls = adapter_class(kwargs.pop("family"))
    for key, off in RETIRED_OPTIONS.items():
        if key in kwargs:
            if kwargs[key] != off:
                raise ValueError(f"{key}={kwargs[key]!r} belongs to a rejected experiment this version no longer runs")
            del kwargs[key]
    return cls(transformer, **kwargs)


__all__ = ["BackboneAdapter", "adapter_class", "build_adapter"]
