"""The models the pipeline serves (``--model``): CMRAN, AVEL, AVEL-DMRN and PSP, by name.

Every model takes ``(visual, audio)``, returns a named tuple of tensors, and has ``loss(output,
segment_labels, video_labels)`` and ``predict(output) -> (B, T)``; its config is a validated frozen
dataclass with ``to_dict``/``from_dict``. A config dict names its model under ``"model"`` (CMRAN's,
written before there were other models, has no such entry).
"""

from __future__ import annotations

import torch.nn as nn

from .avel import AVEL, AVELConfig
from .config import ConfigError, ModelConfig
from .model import CMRAN, count_parameters
from .model import describe as describe_cmran
from .psp import PSP, PSPConfig

MODELS = ("cmran", "avel", "avel-dmrn", "psp")
_CONFIGS = {"cmran": ModelConfig, "avel": AVELConfig, "avel-dmrn": AVELConfig, "psp": PSPConfig}
_CLASSES = {ModelConfig: CMRAN, AVELConfig: AVEL, PSPConfig: PSP}

AnyConfig = ModelConfig | AVELConfig | PSPConfig


def model_name(cfg: AnyConfig) -> str:
    return getattr(cfg, "model", "cmran")


def config_from_dict(d: dict) -> AnyConfig:
    """The config a checkpoint's or config.json's ``model`` dict describes."""
    if not isinstance(d, dict):
        raise ConfigError(f"model config must be a dict, got {type(d).__name__}")
    name = d.get("model", "cmran")
    if name not in _CONFIGS:
        raise ConfigError(f"model config names the model {name!r}, expected one of {MODELS}")
    return _CONFIGS[name].from_dict(d)


def build_model(cfg: AnyConfig, *, device=None, dtype=None) -> nn.Module:
    if type(cfg) not in _CLASSES:
        raise TypeError(f"config must be one of {[c.__name__ for c in _CLASSES]}, got {type(cfg).__name__}")
    return _CLASSES[type(cfg)](cfg, device=device, dtype=dtype)


def describe(model: nn.Module) -> str:
    """One line: the architecture and its parameter count."""
    if isinstance(model, CMRAN):
        return describe_cmran(model)
    c, n = model.config, count_parameters(model)
    parts = [f"{k}={v}" for k, v in c.to_dict().items() if k != "model" and v is not None]
    return f"{c.model.upper()}({', '.join(parts)}): {n:,} parameters ({n / 1e6:.2f} M)"


__all__ = ["MODELS", "build_model", "config_from_dict", "describe", "model_name"]
