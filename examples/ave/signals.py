"""SIGINT (Ctrl-C), SIGTERM and SIGHUP end every subcommand the same clean way: one line saying what was
saved, exit status 128 + the signal's number (130, 143, 129).

``handled()`` (entered by the CLI around a subcommand) installs one handler for the three signals. The
handler remembers the signal and raises ``Stop`` (a ``KeyboardInterrupt``) where the program is, so a
command stops at once, except:

- inside ``deferred()`` (a checkpoint write, a run's end-of-epoch save) the first signal is held until the
  block ends, then raised: the write finishes and every file stays whole; a second signal stops at once
  (the write is abandoned and its temporary file removed);
- a ``Stop`` raised where Python swallows exceptions (a weakref callback, a ``__del__``: DataLoader and
  h5py internals) is not lost: ``check()``, called at every training step, evaluation batch and export
  block, and once more before a subcommand reports success, raises it again (and Python's "Exception
  ignored" report of the swallowed one is left out).

A forked DataLoader worker inherits the handler but leaves the decision to the main process (SIGINT: the
worker's own ``KeyboardInterrupt`` handling; SIGTERM, SIGHUP: the default action).
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading

HANDLED = tuple(getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, name))


class Stop(KeyboardInterrupt):
    """A handled signal, raised where the program can stop; ``exit_status`` is 128 + its number."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum

    @property
    def name(self) -> str:
        return signal.Signals(self.signum).name

    @property
    def exit_status(self) -> int:
        return 128 + self.signum


class _State:
    owner: int | None = None  # the process that installed the handler
    pending: int | None = None  # a signal received and not yet reported
    deferred: int = 0  # depth of deferred() blocks


_state = _State()


def _handler(signum: int, frame) -> None:
    if os.getpid() != _state.owner:  # a forked worker: its parent decides
        if signum == signal.SIGINT:
            raise KeyboardInterrupt
        signal.signal(signum, signal.SIG_DFL)
        os.kill(os.getpid(), signum)
        return
    held = _state.pending is None and _state.deferred > 0
    if _state.pending is None:
        _state.pending = signum
    if not held:
        raise Stop(_state.pending)


@contextlib.contextmanager
def handled():
    """Install the handler for the block (main thread only; elsewhere the block runs without it)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {s: signal.getsignal(s) for s in HANDLED}
    previous_hook = sys.unraisablehook
    _state.owner, _state.pending, _state.deferred = os.getpid(), None, 0
    for s in HANDLED:
        signal.signal(s, _handler)
    sys.unraisablehook = lambda unraisable: None if unraisable.exc_type is Stop else previous_hook(unraisable)
    try:
        yield
    finally:
        for s, h in previous.items():
            signal.signal(s, h if h is not None else signal.SIG_DFL)
        sys.unraisablehook = previous_hook
        _state.owner, _state.pending, _state.deferred = None, None, 0


@contextlib.contextmanager
def deferred():
    """Hold the first signal until the block ends (then raise it); a second one stops at once."""
    _state.deferred += 1
    try:
        yield
    finally:
        _state.deferred -= 1
    if _state.deferred == 0:
        check()


def check() -> None:
    """Raise ``Stop`` for a signal that was received and not yet reported (outside ``deferred()``)."""
    if _state.pending is not None and _state.deferred == 0:
        raise Stop(_state.pending)


def pending() -> int | None:
    return _state.pending


def exit_status(exc: KeyboardInterrupt) -> int:
    """128 + the signal of ``exc`` (130 for a plain KeyboardInterrupt); the signal counts as reported."""
    _state.pending = None
    return exc.exit_status if isinstance(exc, Stop) else 128 + signal.SIGINT


def describe(exc: KeyboardInterrupt) -> str:
    """'interrupted' (Ctrl-C), or 'interrupted by SIGTERM' for another signal."""
    return f"interrupted by {exc.name}" if isinstance(exc, Stop) and exc.signum != signal.SIGINT else "interrupted"


__all__ = ["HANDLED", "Stop", "check", "deferred", "describe", "exit_status", "handled", "pending"]
