"""The training processes: this process's place among torchrun's, its console, and the per-rank states a
checkpoint gathers from every process.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass

import torch.distributed as dist
from tqdm import tqdm


@dataclass(frozen=True)
class Processes:
    """This process's place among the torchrun processes (one process: rank 0 of 1)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    distributed: bool = False  # launched by torchrun (RANK and WORLD_SIZE set), even as one process

    @property
    def master(self) -> bool:
        return self.rank == 0

    @classmethod
    def from_env(cls) -> Processes:
        if "RANK" in os.environ and "WORLD_SIZE" in os.environ:
            return cls(int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"]), int(os.environ.get("LOCAL_RANK", 0)),
                       distributed=True)
        return cls()


def log(master: bool, msg: str, *, err: bool = False) -> None:
    if master:
        tqdm.write(msg, file=sys.stderr if err else sys.stdout)


def extra_states(model, world_size: int) -> list | None:
    """Each rank's model state beyond the weights (PSP's stale AVPS target buffer), or None (collective)."""
    get = getattr(model, "extra_training_state", None)
    if get is None:
        return None
    states = [get()]
    if world_size > 1:
        states = [None] * world_size
        dist.all_gather_object(states, get())
    return states


__all__ = ["Processes", "extra_states", "log"]
