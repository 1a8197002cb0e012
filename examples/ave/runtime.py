"""Where and how a command runs: the device, autocast, batches moved to the device, seeds, and the
exact command line that runs the pipeline again (the interpreter that is running now).

Axis legend: b batch, t segments.
"""

from __future__ import annotations

import contextlib
import random
import shlex
import sys

import numpy as np
import torch

from .amp import resolve_amp
from .checks import ConfigError

DEVICE_CHOICES = "'auto', 'cpu', 'cuda', 'cuda:N' or 'mps'"


def resolve_device(name: str, local_rank: int = 0, *, distributed: bool = False) -> torch.device:
    """The torch device of ``--device`` (auto, cpu, cuda, cuda:N, mps); ConfigError if it cannot serve.

    ``auto`` and ``cuda`` give process ``local_rank`` its own GPU; ``cuda:N`` is refused under torchrun.
    """
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        device = torch.device(name)
    except (RuntimeError, TypeError):
        raise ConfigError(f"device must be {DEVICE_CHOICES}, got {name!r}") from None
    if device.type == "cuda":
        return _cuda_device(name, device, local_rank, distributed)
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise ConfigError(f"device={name!r} but MPS is not available")
    if device.type not in ("cpu", "mps"):
        raise ConfigError(f"device must be {DEVICE_CHOICES}, got {name!r}")
    return device


def _cuda_device(name: str, device: torch.device, local_rank: int, distributed: bool) -> torch.device:
    if not torch.cuda.is_available():
        raise ConfigError(f"device={name!r} but CUDA is not available")
    if device.index is None:
        device = torch.device("cuda", local_rank)
    elif distributed:
        raise ConfigError(f"device={name!r} under torchrun would put every process on one GPU: "
                          "use --device cuda (each process takes cuda:LOCAL_RANK)")
    if device.index >= torch.cuda.device_count():
        raise ConfigError(f"device {device} does not exist: {torch.cuda.device_count()} CUDA device(s) visible")
    return device


def autocast(device: torch.device, amp: str):
    """bf16/fp16 autocast on the device, or nothing for ``amp="none"``; ``auto`` is resolved for the device."""
    amp = resolve_amp(amp, device)[0]
    if amp == "none":
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=torch.bfloat16 if amp == "bf16" else torch.float16)


def to_device(batch, device: torch.device):
    """A batch (visual, audio, segment_labels, video_label) on ``device``."""
    nb = device.type == "cuda"
    return tuple(x.to(device, non_blocking=nb) for x in batch)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def python_command(module: str = "examples.ave", *, processes: int = 1) -> str:
    """The shell command that runs ``python -m module`` with this very interpreter (so it works pasted into a
    shell where no virtual environment is active); under torchrun, through ``torch.distributed.run``."""
    launcher = [sys.executable]
    if processes > 1:
        launcher += ["-m", "torch.distributed.run", "--nproc-per-node", str(processes)]
    return shlex.join([*launcher, "-m", module])


__all__ = ["autocast", "python_command", "resolve_device", "seed_everything", "to_device"]
