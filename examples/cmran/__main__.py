"""``python -m examples.cmran {train,evaluate,visualize,export-synthetic,import-reference,predict} ...``

``train``, ``evaluate``, ``predict``, ``visualize`` and ``import-reference`` serve CMRAN (default) and the
other models of ``--model`` (AVEL, AVEL-DMRN, PSP); a run folder records its model, so the commands that
read a checkpoint need no ``--model``.

Each subcommand lives in its own module exposing ``add_arguments(parser)`` and ``main(args) -> int``.
Bad option values are refused (exit status 2) before any work; an unusable checkpoint or data file, or a
non-finite model output, exits with 1; Ctrl-C exits with 130 after one line saying what was saved.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

SUBCOMMANDS = {
    "train": ("train", "train CMRAN (an ablation/baseline), AVEL or PSP (--model); torchrun for several processes"),
    "evaluate": ("evaluate", "segment accuracy of a checkpoint on a split"),
    "visualize": ("visualize", "AGSCA/AGVA spatial maps, CMRA attention or PSP weights of a checkpoint (PNGs)"),
    "export-synthetic": ("export", "write the synthetic AVE data set in the real release's file layout"),
    "import-reference": ("import_reference", "convert a reference implementation's state dict (CMRAN, AVEL, PSP) "
                                             "into a run folder"),
    "predict": ("predict", "the events a checkpoint finds in each video (category, start, end), as JSONL or CSV"),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m examples.cmran", description="CMRAN, AVEL and PSP on AVE: train, evaluate, visualize, predict, export synthetic data, import reference checkpoints.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="{" + ",".join(SUBCOMMANDS) + "}")
    for name, (module, help_text) in SUBCOMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        try:
            mod = importlib.import_module(f"examples.cmran.{module}")
        except ModuleNotFoundError as exc:  # a subcommand whose module is not installed here
            if exc.name != f"examples.cmran.{module}":
                raise
            p.set_defaults(_main=_unavailable(name, exc), _parser=p)
            continue
        mod.add_arguments(p)
        p.set_defaults(_main=mod.main, _parser=p)
    return parser


def _unavailable(name: str, exc: Exception):
    def run(args) -> int:
        print(f"error: the {name} subcommand is unavailable: {exc}", file=sys.stderr)
        return 1

    return run


def _data_error():
    try:
        from .data.meta import AVEDataError
    except ImportError:
        return ()
    return (AVEDataError,)


def _run_errors():
    from .checkpoint import CheckpointError

    try:
        from .evaluate import NonFiniteOutputError
    except ImportError:
        return (CheckpointError,)
    return (CheckpointError, NonFiniteOutputError)


def main(argv: list[str] | None = None) -> int:
    from .config import ConfigError

    argv = sys.argv[1:] if argv is None else list(argv)
    args = build_parser().parse_args(argv)
    args.argv = argv  # train prints the command that resumes an interrupted run
    quiet = os.environ.get("RANK", "0") != "0"  # under torchrun every rank fails alike; rank 0 says why
    try:
        return int(args._main(args) or 0)
    except ConfigError as exc:
        if quiet:
            return 2
        args._parser.error(str(exc))  # exits with status 2
    except (*_run_errors(), *_data_error()) as exc:
        if not quiet:
            print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:  # train reports its own (what was saved, how to resume)
        if not quiet:
            print(f"interrupted: {args.command} stopped; no file is left half-written", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
