"""CMRAN's ``visualize`` panels: the visual attention's spatial maps (the paper's Figure 5) and each
relation-aware module's and the AV interaction's attention (Figure 6), head-averaged.

Axis legend: t segments, h/w grid, k memory steps (2T for CMRA: [ITR(other) ; own]).
"""

from __future__ import annotations

from examples.ave.figures import RelationMaps, SpatialMaps, memory_labels

from .config import CMRANConfig


def relation_memory_labels(variant: str, own: str, other: str, t_len: int, k_len: int) -> list[str]:
    """Tick labels of a relation-aware module's K memory steps."""
    if variant == "cmra" and k_len == 2 * t_len:
        return memory_labels(other, t_len) + memory_labels(own, t_len)
    return memory_labels(other if variant == "co" else own, k_len)


def figures(cfg: CMRANConfig, weights, j: int, t_len: int) -> list:
    """Video ``j``'s figures from ``CMRANWeights``."""
    out = []
    if weights.spatial is not None:
        kind = "AGSCA spatial attention M_s" if cfg.visual_attention == "agsca" else "AGVA spatial attention"
        out.append(SpatialMaps("agsca", kind, weights.spatial[j].float().cpu()))  # any CMRAN map: NN_agsca.png
    panels = []
    for name, own, other, maps in (("audio", "a", "v", weights.audio_relation),
                                   ("video", "v", "a", weights.video_relation)):
        if maps is not None:
            w = maps.weights[j].float().mean(0).cpu()
            panels.append((f"{name} CMRA ({cfg.cmra})", w,
                           relation_memory_labels(cfg.cmra, own, other, t_len, w.shape[1])))
    if weights.interaction is not None:
        w = weights.interaction.weights[j].float().mean(0).cpu()
        labels = relation_memory_labels("cmra", "v", "a", t_len, w.shape[1]) if cfg.interaction == "cmra" else \
            memory_labels("f", w.shape[1])
        panels.append((f"fused AV interaction ({cfg.interaction})", w, labels))
    if panels:
        out.append(RelationMaps("cmra", panels))
    return out
