"""AVEL's registration with the AVE pipeline (``examples.ave.registry``)."""

from __future__ import annotations

from examples.ave.figures import SpatialMaps
from examples.ave.registry import ModelFamily

from . import options
from .config import RECIPES, AVELConfig
from .model import AVEL
from .reference import REFERENCES

# sweep entries: name -> (train options, the paper's accuracy: supervised, weak). Only A+V-att and DMRN have
# reference code; the other rows are reconstructions from the same parts.
SWEEP = {
    "avel": (["--model", "avel"], (72.7, 66.7)),
    "avel_dmrn": (["--model", "avel-dmrn"], (73.1, None)),
    "avel_a": (["--model", "avel", "--avel-variant", "a"], (59.5, 53.4)),
    "avel_v": (["--model", "avel", "--avel-variant", "v"], (55.3, 52.9)),
    "avel_v_att": (["--model", "avel", "--avel-variant", "v_att"], (58.6, 55.6)),
    "avel_av": (["--model", "avel", "--avel-variant", "av"], (71.4, 63.7)),
}


def figures(cfg: AVELConfig, weights, j: int, t_len: int) -> list:
    """AGVA's spatial maps of video ``j`` (none for the variants without AGVA)."""
    if weights.spatial is None:
        return []
    return [SpatialMaps("agva", "AGVA spatial attention", weights.spatial[j].float().cpu())]


FAMILY = ModelFamily(
    names=("avel", "avel-dmrn"),
    config_class=AVELConfig,
    model_class=AVEL,
    recipes=RECIPES,
    add_arguments=options.add_arguments,
    config_from_args=options.config_from_args,
    title="AVEL options (--model avel / avel-dmrn; docs/avel.md)",
    references=REFERENCES,
    figures=figures,
    sweep=SWEEP,
)
