"""CMRAN's own ``train`` flags (the ablations of the CMRAN paper's Tables 3-5) and the config they give."""

from __future__ import annotations

import argparse

from avattn import CMRA_VARIANTS, DROPOUT_IMPLS, INTERACTION_VARIANTS
from avattn.functional import BACKENDS

from .config import (
    ARCHS,
    INITS,
    VISUAL_ATTENTIONS,
    WEAK_LOSS_INPUTS,
    CMRANConfig,
)


def add_arguments(g: argparse._ArgumentGroup) -> None:
    g.add_argument("--arch", default=None, choices=ARCHS, help="the full model or a baseline (default cmran)")
    g.add_argument("--cmra", default=None, choices=CMRA_VARIANTS, help="relation-aware module variant (default cmra)")
    g.add_argument("--visual-attention", default=None, choices=VISUAL_ATTENTIONS, help="default agsca")
    g.add_argument("--interaction", default=None, choices=INTERACTION_VARIANTS, help="AV interaction (default cmra)")
    g.add_argument("--itr-layers", type=int, default=None, help="ITR depth L (default 2)")
    g.add_argument("--interaction-heads", type=int, default=None, help="default 4 supervised / 2 weak")
    g.add_argument("--dropout-impl", default=None, choices=DROPOUT_IMPLS,
                   help=f"relation-layer dropout masks: bit (BitDropout, default {CMRANConfig().dropout_impl}: same "
                        "distribution, cheaper) or torch (nn.Dropout, the reference's); the random draws differ")
    g.add_argument("--visual-dropout", type=float, default=None,
                   help="dropout after the visual pre-projection (default 0.2)")
    g.add_argument("--no-visual-proj", action="store_true", help="drop the Linear(C_v,512)+ReLU+Dropout pre-projection")
    g.add_argument("--agva-audio-along-cells", action="store_true", help="AVEL's AGVA code quirk")
    g.add_argument("--weak-loss-on", default=None, choices=WEAK_LOSS_INPUTS,
                   help="weak loss input (default scores, the reference's)")
    g.add_argument("--backend", default=None, choices=BACKENDS, help="attention backend (default auto)")
    g.add_argument("--init", default=None, choices=INITS,
                   help="reference: each ITR's stacked layers start identical, as in the reference code (default "
                        "default)")


def config_from_args(args: argparse.Namespace, name: str) -> CMRANConfig:
    return CMRANConfig(
        setting=args.setting, features=args.features, arch=args.arch or "cmran", cmra=args.cmra,
        visual_attention=args.visual_attention, interaction=args.interaction, itr_layers=args.itr_layers,
        interaction_heads=args.interaction_heads, dropout=0.1 if args.dropout is None else args.dropout,
        visual_dropout=args.visual_dropout, visual_proj=False if args.no_visual_proj else None,
        agva_audio_along_cells=args.agva_audio_along_cells, weak_loss_on=args.weak_loss_on or "scores",
        backend=args.backend or "auto", init=args.init or "default",
        dropout_impl=args.dropout_impl or CMRANConfig().dropout_impl,
    )
