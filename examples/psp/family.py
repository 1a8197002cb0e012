"""PSP's registration with the AVE pipeline (``examples.ave.registry``)."""

from __future__ import annotations

from examples.ave.figures import RelationMaps, SpatialMaps, memory_labels
from examples.ave.registry import ModelFamily

from . import options
from .config import RECIPES, PSPConfig
from .model import PSP
from .reference import REFERENCES

SWEEP = {"psp": (["--model", "psp"], (77.8, 73.5))}  # the paper's accuracy: supervised, weak


def figures(cfg: PSPConfig, weights, j: int, t_len: int) -> list:
    """Video ``j``'s AGVA maps and its pruned propagation weights (each visual segment's weights over the
    audio segments and vice versa)."""
    out = []
    if weights.spatial is not None:
        out.append(SpatialMaps("agva", "AGVA spatial attention", weights.spatial[j].float().cpu()))
    out.append(RelationMaps("psp", [
        ("visual from audio (PSP)", weights.visual_from_audio[j].float().cpu(), memory_labels("a", t_len)),
        ("audio from visual (PSP)", weights.audio_from_visual[j].float().cpu(), memory_labels("v", t_len)),
    ]))
    return out


FAMILY = ModelFamily(
    names=("psp",),
    config_class=PSPConfig,
    model_class=PSP,
    recipes=RECIPES,
    add_arguments=options.add_arguments,
    config_from_args=options.config_from_args,
    title="PSP options (--model psp; docs/psp.md)",
    references=REFERENCES,
    figures=figures,
    sweep=SWEEP,
)
