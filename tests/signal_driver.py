"""Runs ``python -m examples.cmran ARGS`` paused at one phase of its work, so that a test can send a real
signal (``os.kill``) exactly there. Not a test module: ``test_ave_signals.py`` starts it as a subprocess.

    python tests/signal_driver.py PHASE ARGS...

PHASE
    ``save:K``      inside the K-th ``torch.save`` (a checkpoint half written: train writes best.pt then
                    last.pt at each improving epoch, so save:1 is epoch 1's best.pt, save:2 its last.pt)
    ``replace:NAME:K`` the K-th write of NAME complete under its temporary name, before the rename
    ``sample:K``    the exporter generating its K-th video (the feature files half written)

At the pause it prints ``PAUSED PHASE`` on stdout and waits, at most 60 s, until a signal has been
received (then the program goes on as it would have).
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def pause(phase: str) -> None:
    print(f"PAUSED {phase}", flush=True)
    try:
        from examples.ave.signals import pending
    except ImportError:  # code without the signal handling: the signal acts as it does there
        def pending():
            return None
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and pending() is None:
        time.sleep(0.01)


class _PausingFile:
    """A file whose first write stops halfway for ``pause``."""

    def __init__(self, f, phase: str) -> None:
        self._f, self._phase, self._paused = f, phase, False

    def write(self, data) -> int:
        if self._paused:
            return self._f.write(data)
        self._paused = True
        half = len(data) // 2
        n = self._f.write(data[:half])
        pause(self._phase)
        return n + self._f.write(data[half:])

    def __getattr__(self, name):
        return getattr(self._f, name)


def install(phase: str) -> None:
    kind, _, arg = phase.partition(":")
    arg, _, k = arg.partition(":") if kind == "replace" else (arg, "", arg)
    calls = [0]

    def nth() -> bool:
        calls[0] += 1
        return calls[0] == int(k)

    if kind == "save":
        import torch

        real_save = torch.save
        torch.save = lambda obj, f, *a, **k: real_save(obj, _PausingFile(f, phase) if nth() else f, *a, **k)
    elif kind == "replace":
        real_replace = os.replace

        def replace(src, dst, *a, **k):
            if Path(dst).name == arg and nth():
                pause(phase)
            return real_replace(src, dst, *a, **k)

        os.replace = replace
    elif kind == "sample":
        from examples.ave.data.synthetic import SyntheticAVEGenerator

        real_sample = SyntheticAVEGenerator.sample

        def sample(self, *a, **k):
            if nth():
                pause(phase)
            return real_sample(self, *a, **k)

        SyntheticAVEGenerator.sample = sample
    else:
        raise SystemExit(f"unknown phase {phase!r}")


if __name__ == "__main__":
    install(sys.argv[1])
    from examples.cmran.__main__ import main

    sys.exit(main(sys.argv[2:]))
