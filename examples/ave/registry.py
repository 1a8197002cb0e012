"""The models the pipeline serves (``--model``), one folder each, found by name.

A model folder (``examples/cmran``, ``examples/avel``, ``examples/psp``) exposes ``FAMILY``, a
``ModelFamily``: its config class, its model class, its recipes, its CLI flags and, optionally, its
reference-checkpoint import, figure panels and sweep entries. Adding a model is one folder plus one line
in ``FAMILY_MODULES`` (or, from code, ``register(family)``).

Every model takes ``(visual, audio)``, returns a named tuple of tensors and has ``loss(output,
segment_labels, video_labels)``, ``predict(output) -> (B, T)`` labels and ``relevance(output) -> (B, T)``
scores in [0, 1]. Its config is a validated frozen dataclass with ``model``, ``setting`` and ``features``
fields, ``to_dict`` and ``from_dict``. A config dict names its model under ``"model"`` (CMRAN's, written
before there were other models, has none: it is ``DEFAULT_MODEL``).
"""

from __future__ import annotations

import argparse
import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import torch.nn as nn

from .checks import ConfigError

FAMILY_MODULES = (
    "examples.cmran",
    "examples.avel",
    "examples.psp",
)
DEFAULT_MODEL = "cmran"


@dataclass(frozen=True, eq=False)  # compared and hashed by identity
class ModelFamily:
    """One model folder's registration.

    names: the ``--model`` names it serves (e.g. ``("avel", "avel-dmrn")``).
    recipes: ``(name, setting) -> {"epochs", "batch_size", "lr", "lr_milestones", "lr_gamma", "lr_unit",
        "grad_clip"}``, the reference recipe ``train`` fills unset options with.
    add_arguments: adds the family's own ``train`` flags to an argument group; a flag of another family
        given with this one is refused.
    config_from_args: ``(args, name) -> config`` from the parsed ``train`` options.
    references: ``name -> ReferenceModel`` for ``import-reference`` (``examples.ave.import_reference``).
    figures: ``(config, weights, j, t_len) -> [Figure]``, the ``visualize`` panels of video ``j``.
    sweep: ``entry name -> (train options, (paper accuracy supervised, weak))`` for ``sweep``.
    """

    names: tuple[str, ...]
    config_class: type
    model_class: type[nn.Module]
    recipes: Mapping[tuple[str, str], dict]
    add_arguments: Callable[[argparse._ArgumentGroup], None] | None = None
    config_from_args: Callable[[argparse.Namespace, str], object] | None = None
    title: str = ""
    references: Mapping[str, object] = field(default_factory=dict)
    figures: Callable | None = None
    sweep: Mapping[str, tuple[list[str], tuple]] = field(default_factory=dict)
    describe: Callable[[nn.Module], str] | None = None


_FAMILIES: dict[str, ModelFamily] = {}
_loaded = False


def register(family: ModelFamily) -> None:
    """Serve ``family``'s models; a name another family serves already is refused."""
    taken = [n for n in family.names if n in _FAMILIES and _FAMILIES[n] is not family]
    if taken:
        raise ValueError(f"model names {taken} are registered already (by {_FAMILIES[taken[0]].title!r})")
    for name in family.names:
        _FAMILIES[name] = family


def unregister(family: ModelFamily) -> None:
    for name in family.names:
        if _FAMILIES.get(name) is family:
            del _FAMILIES[name]


def _families() -> dict[str, ModelFamily]:
    global _loaded
    if not _loaded:
        _loaded = True
        for module in FAMILY_MODULES:
            register(importlib.import_module(module).FAMILY)
    return _FAMILIES


def model_names() -> tuple[str, ...]:
    return tuple(_families())


def families() -> list[ModelFamily]:
    """Each registered family once, in registration order."""
    return list(dict.fromkeys(_families().values()))


def family(name: str) -> ModelFamily:
    fams = _families()
    if name not in fams:
        raise ConfigError(f"model must be one of {tuple(fams)}, got {name!r}")
    return fams[name]


def model_name(cfg) -> str:
    return getattr(cfg, "model", DEFAULT_MODEL)


def family_of_config(cfg) -> ModelFamily:
    fam = family(model_name(cfg))
    if not isinstance(cfg, fam.config_class):
        raise TypeError(f"config must be a {fam.config_class.__name__}, got {type(cfg).__name__}")
    return fam


def recipe(name: str, setting: str) -> dict:
    recipes = family(name).recipes
    if (name, setting) not in recipes:
        raise ConfigError(f"model {name!r} has no {setting!r} recipe; its settings: "
                          f"{sorted(s for n, s in recipes if n == name)}")
    return recipes[(name, setting)]


def config_from_dict(d: dict):
    """The config a checkpoint's or config.json's ``model`` dict describes."""
    if not isinstance(d, dict):
        raise ConfigError(f"model config must be a dict, got {type(d).__name__}")
    name = d.get("model", DEFAULT_MODEL)
    if name not in _families():
        raise ConfigError(f"model config names the model {name!r}, expected one of {model_names()}")
    return family(name).config_class.from_dict(d)


def build_model(cfg, *, device=None, dtype=None) -> nn.Module:
    return family_of_config(cfg).model_class(cfg, device=device, dtype=dtype)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def describe(model: nn.Module) -> str:
    """One line: the architecture and its parameter count."""
    fam = family_of_config(model.config)
    if fam.describe is not None:
        return fam.describe(model)
    c, n = model.config, count_parameters(model)
    parts = [f"{k}={v}" for k, v in c.to_dict().items() if k != "model" and v is not None]
    return f"{model_name(c).upper()}({', '.join(parts)}): {n:,} parameters ({n / 1e6:.2f} M)"


__all__ = ["DEFAULT_MODEL", "FAMILY_MODULES", "ModelFamily", "build_model", "config_from_dict", "count_parameters",
           "describe", "families", "family", "family_of_config", "model_name", "model_names", "recipe", "register",
           "unregister"]
