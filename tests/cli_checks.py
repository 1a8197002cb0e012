"""Shared by the example's CLI tests: run ``python -m examples.cmran`` in process, one thread, one process.

A test module imports ``run`` and the two fixtures (``from cli_checks import one_thread, run,
single_process  # noqa: F401``): importing a fixture makes it active there.
"""

from __future__ import annotations

import pytest
import torch

from examples.cmran.__main__ import main as cli


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(autouse=True)
def single_process(monkeypatch):
    for var in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        monkeypatch.delenv(var, raising=False)


def run(capsys, *argv) -> tuple[int, str, str]:
    """(exit status, stdout, stderr) of ``python -m examples.cmran *argv``."""
    try:
        code = cli([str(a) for a in argv])
    except SystemExit as exc:
        code = exc.code
    out, err = capsys.readouterr()
    return code, out, err
