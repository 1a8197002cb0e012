"""Output paths through symbolic links that lead nowhere (examples/ave/checks.py ``check_out_dir``, issue 22
item 11): an --out that is (or lies under) a loop of links or a link to a missing target is refused by every
command, naming the link, before any work; it used to end in ``FileExistsError: [Errno 17] File exists``.
"""

from __future__ import annotations

import os

import pytest
from cli_checks import one_thread, run, single_process  # noqa: F401  (fixtures act where imported)

from examples.ave.checks import ConfigError, check_out_dir


def _links(tmp_path):
    os.symlink(tmp_path / "loop_b", tmp_path / "loop_a")
    os.symlink(tmp_path / "loop_a", tmp_path / "loop_b")
    os.symlink(tmp_path / "gone", tmp_path / "dangling")
    return [(tmp_path / "loop_a", "is a loop of symbolic links"),
            (tmp_path / "loop_a" / "run", f"lies under {str(tmp_path / 'loop_a')!r}, which is a loop of symbolic links"),
            (tmp_path / "dangling", f"is a symbolic link to the missing {str(tmp_path / 'gone')!r}")]


def test_every_command_refuses_an_out_through_a_broken_link(capsys, tmp_path):
    ckpt = tmp_path / "missing.pt"  # never read: --out is refused first
    for out, says in _links(tmp_path):
        for argv in (["train", "--epochs", "1"], ["export-synthetic"], ["visualize", "--checkpoint", ckpt],
                     ["import-reference", ckpt, "--setting", "supervised"]):
            code, _, err = run(capsys, *argv, "--out", out)
            assert code == 2 and f"--out {str(out)!r} {says}" in err and "Traceback" not in err, (argv, err)
        code, _, err = run(capsys, "predict", "--checkpoint", ckpt, "--out", out / "events.jsonl")
        assert code == 2 and says in err, err


def test_a_link_to_a_directory_is_fine(tmp_path):
    (tmp_path / "real").mkdir()
    os.symlink(tmp_path / "real", tmp_path / "link")
    check_out_dir(tmp_path / "link")
    check_out_dir(tmp_path / "link" / "new" / "run")
    with pytest.raises(ConfigError, match="must name a directory"):
        check_out_dir("")
