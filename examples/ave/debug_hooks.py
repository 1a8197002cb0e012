"""Testing aids of ``train`` (hidden options): a NaN loss or a NaN gradient at a given step, and every step's
global batch and gradient saved to a file.

Axis legend: none (whole tensors are recorded).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch.utils.data import DistributedSampler


@dataclass(frozen=True)
class DebugHooks:
    """A NaN loss / a NaN gradient at a (1-based, whole-run) step; where to save every step's batch and gradient."""

    nan_at_step: int | None = None
    nan_grad_at_step: int | None = None
    grads_out: str | None = None

    def loss(self, loss: torch.Tensor, global_step: int, model: torch.nn.Module) -> torch.Tensor:
        if self.nan_at_step is not None and global_step == self.nan_at_step:
            loss = loss * float("nan")
        if self.nan_grad_at_step is not None and global_step == self.nan_grad_at_step:
            # finite loss, NaN gradient: d sqrt(x)/dx at x = 0 is inf, times 0
            loss = loss + torch.sqrt(0.0 * next(model.parameters()).sum())
        return loss


def global_order(sampler: DistributedSampler, world_size: int) -> list[list[int]]:
    """Every rank's dataset indices for this epoch, in order (collective under DDP)."""
    mine = list(sampler)
    if world_size == 1:
        return [mine]
    orders = [None] * world_size
    dist.all_gather_object(orders, mine)
    return orders


def grad_record(model, order: list[list[int]], epoch: int, step: int, local_batch: int) -> dict:
    """The global batch of this step (per rank) and the gradient the optimizer is about to use."""
    return {
        "epoch": epoch, "step": step,
        "indices": [o[step * local_batch:(step + 1) * local_batch] for o in order],
        "grad": {n: p.grad.detach().cpu().clone() for n, p in model.named_parameters() if p.grad is not None},
    }


__all__ = ["DebugHooks", "global_order", "grad_record"]
