"""What ``train`` prints when a run ends or is interrupted: where the run went, and the exact commands that
read or continue it, with the interpreter that is running now (so they work pasted into any shell)."""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from pathlib import Path

from .runtime import python_command


@dataclass
class Progress:
    """What the end of an interrupted run needs to know: the epoch last.pt holds in --out, the open progress
    bar, and whether --out still holds the earlier run that this --overwrite run replaces at its first save."""

    saved_epoch: int | None = None
    best_epoch: int | None = None
    bar: object | None = None
    replacing: bool = False


def next_steps(out: Path, *, module: str = "examples.ave", has_maps: bool = True) -> str:
    """Where the run went and the commands that read it (``visualize`` only for a model with attention maps)."""
    ckpt, q, cmd = out / "best.pt", lambda p: shlex.quote(str(p)), python_command(module)
    return "\n".join([
        f"run folder {out}: checkpoint {ckpt}, metrics {out / 'metrics.jsonl'}, result {out / 'result.json'}",
        "next:",
        f"  {cmd} evaluate  --checkpoint {q(ckpt)} --split test",
        *([f"  {cmd} visualize --checkpoint {q(ckpt)} --out {q(out / 'vis')}"] if has_maps else []),
        f"  {cmd} predict   --checkpoint {q(ckpt)} --out {q(out / 'events.jsonl')}",
    ])


def interrupted_message(out: Path, epochs: int, resume: str | None, world_size: int, progress: Progress,
                        argv: list[str] | None, module: str = "examples.ave", head: str = "interrupted") -> str:
    """The one line printed when a run stops early (``head``: 'interrupted' on Ctrl-C, 'interrupted by
    SIGTERM', 'stopped' after an error): what --out holds and the exact command that continues the run."""
    saved = progress.saved_epoch is not None and progress.saved_epoch >= 0 and (out / "last.pt").is_file()
    if saved:
        best = f", best.pt epoch {progress.best_epoch}" if progress.best_epoch else ""
        what = f"{head}: {out / 'last.pt'} holds epoch {progress.saved_epoch} of {epochs}{best}"
        flag, how = "--resume", "resume with"
    elif resume is not None:  # resuming into another --out that holds no checkpoint yet: the same command
        what, flag, how = f"{head}: nothing new was saved in {out}, {resume} is unchanged", None, "resume with"
    else:
        held = "still holds the earlier run, untouched" if progress.replacing else "holds no last.pt"
        what, flag, how = f"{head} before epoch 1 was saved: {out} {held}", "--overwrite", "start again with"
    if argv is None:
        return f"{what}; {how} the same train command{f' and {flag}' if flag else ''}"
    args = list(argv) if flag is None else [*without_run_flags(argv), flag]
    return f"{what}; {how}: {python_command(module, processes=world_size)} {shlex.join(args)}"


def without_run_flags(argv: list[str]) -> list[str]:
    """argv without --resume [CHECKPOINT] and --overwrite (argparse also takes unique prefixes: --res, --ov)."""
    kept, skip_value = [], False
    for token in argv:
        if skip_value and not token.startswith("-"):
            skip_value = False
            continue
        skip_value = False
        name = token.split("=", 1)[0]
        if len(name) >= 3 and "--resume".startswith(name):
            skip_value = "=" not in token
            continue
        if len(name) >= 4 and "--overwrite".startswith(name):
            continue
        kept.append(token)
    return kept


__all__ = ["Progress", "interrupted_message", "next_steps", "without_run_flags"]
