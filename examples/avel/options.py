"""AVEL's own ``train`` flags (``--model avel`` / ``avel-dmrn``; docs/avel.md) and the config they give."""

from __future__ import annotations

import argparse

from examples.ave.checks import ConfigError

from .config import AVEL_LOSSES, AVEL_VARIANTS, MIL_POOLINGS, AVELConfig


def add_arguments(g: argparse._ArgumentGroup) -> None:
    g.add_argument("--avel-variant", default=None, choices=AVEL_VARIANTS,
                   help="the paper's row: av_att (the reference's, default); reconstructions av, v_att, v, a")
    g.add_argument("--agva-paper", action="store_true",
                   help="AGVA as the paper writes it, not the code's cell-axis audio term")
    g.add_argument("--mil-pooling", default=None, choices=MIL_POOLINGS,
                   help="weak: max over segments (the code, default) or mean (the paper)")
    g.add_argument("--avel-loss", default=None, choices=AVEL_LOSSES,
                   help="reference (MultiLabelSoftMargin on the softmax, default) or cross_entropy (the paper)")
    g.add_argument("--dmrn-blocks", type=int, default=None, help="avel-dmrn: DMRN blocks (default 1)")
    g.add_argument("--dmrn-own-residuals", action="store_true",
                   help="avel-dmrn: each modality keeps its own residual beyond one block (the code swaps them)")


def config_from_args(args: argparse.Namespace, name: str) -> AVELConfig:
    if args.dropout is not None:
        raise ConfigError(f"--dropout {args.dropout} has no effect: AVEL has no dropout (leave it unset)")
    return AVELConfig(
        model=name, setting=args.setting, features=args.features, variant=args.avel_variant or "av_att",
        agva_audio_along_cells=False if args.agva_paper else None, mil_pooling=args.mil_pooling,
        loss=args.avel_loss or "reference", dmrn_blocks=args.dmrn_blocks,
        dmrn_swap_residuals=False if args.dmrn_own_residuals else None,
    )
