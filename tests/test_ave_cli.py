"""The pipeline's command line reads well: every option explained with its default, a short error on a bad
argument, and ``python -m examples.cmran`` equal to ``python -m examples.ave``."""

from __future__ import annotations

import argparse
import subprocess
import sys

import pytest

from examples.ave.cli import SUBCOMMANDS, build_parser


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    (action,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return dict(action.choices)


def test_every_option_of_every_subcommand_has_help_text():
    subs = _subparsers(build_parser())
    assert set(subs) == set(SUBCOMMANDS)
    missing = [f"{name} {a.option_strings or a.dest}" for name, sub in subs.items() for a in sub._actions
               if not isinstance(a, argparse._HelpAction) and not a.help]
    assert not missing


@pytest.mark.parametrize("command", list(SUBCOMMANDS))
def test_help_shows_the_defaults(command, capsys):
    with pytest.raises(SystemExit) as exc:
        build_parser("examples.cmran").parse_args([command, "--help"])
    text = capsys.readouterr().out
    assert exc.value.code == 0 and f"usage: python -m examples.cmran {command}" in text
    shown = {"train": "(default: synthetic)", "evaluate": "(default: test)", "predict": "(default: 64)",
             "visualize": "(default: 4)", "export-synthetic": "(default: float32)",
             "import-reference": "(default: cmran)", "sweep": "(default: 0,1,2)", "extract": "(default: index)"}
    assert shown[command] in " ".join(text.split())


def test_an_argument_error_prints_one_usage_line_and_the_error():
    result = subprocess.run([sys.executable, "-m", "examples.cmran", "train", "--epochs", "x"],
                            capture_output=True, text=True)
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2 and len(lines) == 2, result.stderr
    assert lines[0].startswith("usage: python -m examples.cmran train [options]")
    assert lines[1] == "python -m examples.cmran train: error: argument --epochs: invalid int value: 'x'"


def test_a_bad_value_found_after_parsing_is_as_short(capsys):
    from examples.cmran.__main__ import main

    with pytest.raises(SystemExit) as exc:
        main(["train", "--model", "avel", "--dropout", "0.2"])
    lines = capsys.readouterr().err.strip().splitlines()
    assert exc.value.code == 2 and len(lines) == 2 and "AVEL has no dropout" in lines[1]


def test_examples_cmran_is_the_pipeline_with_its_own_name(capsys):
    ave = _subparsers(build_parser("examples.ave"))
    cmran = _subparsers(build_parser("examples.cmran"))
    for name in SUBCOMMANDS:
        assert [a.option_strings for a in ave[name]._actions] == [a.option_strings for a in cmran[name]._actions]
        assert cmran[name].prog == f"python -m examples.cmran {name}"
