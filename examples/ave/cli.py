"""``python -m examples.ave <subcommand> [--model NAME] ...`` (and ``python -m examples.cmran ...``, the same
pipeline with CMRAN as the default model).

``train``, ``evaluate``, ``predict``, ``visualize`` and ``import-reference`` serve every registered model
(``--model``; ``examples.ave.registry``); a run folder records its model, so the commands that read a
checkpoint need no ``--model``.

Each subcommand lives in its own module exposing ``add_arguments(parser)`` and ``main(args) -> int``.
Bad option values are refused (exit status 2, the one-line usage and the error) before any work; an
unusable checkpoint or data file, data that changed under a run, a full disk or a non-finite model output
exits with 1; Ctrl-C, SIGTERM and SIGHUP exit with 128 + the signal (130, 143, 129) after one line saying
what was saved (``signals``). Under torchrun the reason also goes to torchrun's error file, so its summary
of the failed processes names it whichever process ended first.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import sys
import time

SUBCOMMANDS = {
    "train": ("train", "train a model (--model); torchrun for several processes"),
    "evaluate": ("evaluate", "segment accuracy of a checkpoint on a split"),
    "predict": ("predict", "the events a checkpoint finds in each video (category, start, end), as JSONL or CSV"),
    "visualize": ("visualize", "a checkpoint's attention maps (spatial, relation, PSP weights) as PNGs"),
    "export-synthetic": ("export", "write the synthetic AVE data set in the real release's file layout"),
    "import-reference": ("import_reference", "convert a reference implementation's state dict into a run folder"),
    "sweep": ("sweep", "train named model/ablation families over seeds and tabulate mean and spread"),
    "extract": ("extract.cli", "features of your own videos in the AVE convention (VGG-19 + VGGish), in the "
                               "release layout every other command reads"),
}


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows an option's default unless it is unset (None), a switch's False, or the help names it already."""

    def _get_help_string(self, action: argparse.Action) -> str:
        unset = action.default is None or action.default is False or action.default == argparse.SUPPRESS
        if unset or "default" in (action.help or ""):
            return action.help or ""
        return super()._get_help_string(action)


class Parser(argparse.ArgumentParser):
    """An argument error prints the one-line usage and the error, not the whole option list."""

    def __init__(self, *args, **kwargs) -> None:
        kwargs.setdefault("formatter_class", HelpFormatter)
        super().__init__(*args, **kwargs)

    def error(self, message: str):
        self.exit(2, f"usage: {self.prog} [options]   ({self.prog} --help lists them)\n{self.prog}: error: {message}\n")


def build_parser(module: str = "examples.ave") -> argparse.ArgumentParser:
    prog = f"python -m {module}"
    parser = Parser(prog=prog, description="Audio-visual event localization (AVE) with CMRAN, AVEL and PSP: "
                                           "train, evaluate, predict, visualize, sweep, extract features of your "
                                           "own videos, export synthetic data, import reference checkpoints.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="{" + ",".join(SUBCOMMANDS) + "}",
                                parser_class=Parser)
    for name, (mod_name, help_text) in SUBCOMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        try:
            mod = importlib.import_module(f"examples.ave.{mod_name}")
        except ModuleNotFoundError as exc:  # a subcommand whose dependencies are not installed here
            if exc.name is None or exc.name.startswith("examples."):
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


def _run_errors() -> tuple[type[Exception], ...]:
    from .checkpoint import CheckpointError
    from .data.meta import AVEDataError
    from .evaluate import NonFiniteOutputError
    from .files import NoSpaceError

    return CheckpointError, NonFiniteOutputError, AVEDataError, NoSpaceError


def _tell_torchrun(message: str) -> None:
    """Write the reason into torchrun's error file: its summary then shows it instead of a bare exit code."""
    path = os.environ.get("TORCHELASTIC_ERROR_FILE")
    if path:
        try:
            with open(path, "w") as f:
                # torch.distributed.elastic's format; its summary shows py_callstack: here the reason alone
                json.dump({"message": {"message": message, "extraInfo": {"py_callstack": message,
                                                                         "timestamp": str(int(time.time()))}}}, f)
        except OSError:
            pass


def main(argv: list[str] | None = None, *, module: str = "examples.ave") -> int:
    from . import signals
    from .checks import ConfigError

    argv = sys.argv[1:] if argv is None else list(argv)
    argv, extra = (argv[:argv.index("--")], argv[argv.index("--") + 1:]) if "--" in argv else (argv, None)
    args = build_parser(module).parse_args(argv)
    if extra is not None and args.command != "sweep":
        args._parser.error(f"unrecognized arguments: -- {' '.join(extra)}")
    args.argv, args.module, args.extra = argv, module, extra or []  # train prints the command that resumes a run
    quiet = os.environ.get("RANK", "0") != "0"  # under torchrun every rank fails alike; rank 0 says why
    with signals.handled():
        try:
            code = int(args._main(args) or 0)
            signals.check()  # a signal that a library swallowed on the way: the command did not end normally
            return code
        except ConfigError as exc:
            _tell_torchrun(str(exc))
            if quiet:
                return 2
            args._parser.error(str(exc))  # exits with status 2
        except _run_errors() as exc:
            _tell_torchrun(str(exc))
            if not quiet:
                print(f"error: {exc}", file=sys.stderr)
            return 1
        except KeyboardInterrupt as exc:  # train reports its own (what was saved, how to resume)
            if not quiet:
                print(f"{signals.describe(exc)}: {args.command} stopped; no file is left half-written", file=sys.stderr)
            return signals.exit_status(exc)


__all__ = ["SUBCOMMANDS", "build_parser", "main"]
