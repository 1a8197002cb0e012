"""PSP's own ``train`` flags (``--model psp``; docs/psp.md) and the config they give."""

from __future__ import annotations

import argparse

from .config import AVPS_TARGETS, PSPConfig


def add_arguments(g: argparse._ArgumentGroup) -> None:
    g.add_argument("--psp-threshold", type=float, default=None,
                   help="pruning threshold tau (default 0.099 / weak 0.095)")
    g.add_argument("--avps-weight", type=float, default=None, help="supervised: weight of the AVPS loss (default 100)")
    g.add_argument("--avps-target", default=None, choices=AVPS_TARGETS,
                   help="supervised: clean per-video targets (default) or stale (the reference loader's uncleared "
                        "buffer)")


def config_from_args(args: argparse.Namespace, name: str) -> PSPConfig:
    return PSPConfig(setting=args.setting, features=args.features, threshold=args.psp_threshold,
                     dropout=0.1 if args.dropout is None else args.dropout, avps_weight=args.avps_weight,
                     avps_target=args.avps_target)
