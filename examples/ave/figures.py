"""The figures ``visualize`` draws: spatial attention over the grid per segment (the CMRAN paper's
Figure 5) and attention from query segments to memory steps (its Figure 6). A model folder says which of
its weights to draw (``ModelFamily.figures``) as ``SpatialMaps`` and ``RelationMaps``.

Axis legend: t segments, h/w grid (7x7), k memory steps.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from .checkpoint import atomic_write
from .constants import BACKGROUND


@dataclass(frozen=True)
class SpatialMaps:
    """One video's attention over the grid, (T, H, W), drawn as ``NN_<name>.png``; ``kind`` titles it."""

    name: str
    kind: str
    maps: torch.Tensor


@dataclass(frozen=True)
class RelationMaps:
    """One video's attention panels, drawn side by side as ``NN_<name>.png``: (title, weights (T, K)
    head-averaged, the K memory steps' tick labels)."""

    name: str
    panels: list[tuple[str, torch.Tensor, list[str]]]


def memory_labels(own: str, t_len: int) -> list[str]:
    """Tick labels of T steps of one stream: ``v1 .. vT``."""
    return [f"{own}{i + 1}" for i in range(t_len)]


def _short(name: str, n: int = 14) -> str:
    name = name.replace(", ", "/").replace("_", " ")
    return name if len(name) <= n else name[: n - 1] + "."


def plot_spatial(path: Path, spatial: torch.Tensor, truth, pred, names, title: str) -> None:
    """spatial (T, H, W) softmax weights -> one panel per segment."""
    import matplotlib.pyplot as plt

    t_len = spatial.shape[0]
    fig, axes = plt.subplots(1, t_len, figsize=(1.7 * t_len, 2.6), constrained_layout=True)
    # one colour scale per video; tanh bounds the logits, so M_s stays within e^{+-2} of uniform (1/49)
    vmin, vmax = float(spatial.min()), float(spatial.max())
    for t, ax in enumerate(axes):
        im = ax.imshow(spatial[t].numpy(), cmap="jet", vmin=vmin, vmax=vmax, interpolation="nearest")
        ok = int(truth[t]) == int(pred[t]) or int(truth[t]) < 0  # < 0: unknown (an unlabelled extract folder)
        gt = _short(names[int(truth[t])]) if int(truth[t]) >= 0 else "?"
        ax.set_title(f"t={t + 1}\nGT {gt}\npred {_short(names[int(pred[t])])}", fontsize=7,
                     color="black" if ok else "red")
        ax.set_xticks([])
        ax.set_yticks([])
    fig.colorbar(im, ax=axes, shrink=0.8, label="M_s (uniform = 1/49 = 0.020)")
    fig.suptitle(title, fontsize=9)
    atomic_write(path, lambda f: fig.savefig(f, format="png", dpi=110))
    plt.close(fig)


def plot_relations(path: Path, panels: list[tuple[str, torch.Tensor, list[str]]], truth, top_k: int, title: str) -> None:
    """panels: (name, weights (T, K) head-averaged, memory tick labels)."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(panels), figsize=(5.2 * len(panels), 4.2), constrained_layout=True, squeeze=False)
    for ax, (name, w, mem_labels) in zip(axes[0], panels):
        t_len, k_len = w.shape
        im = ax.imshow(w.numpy(), cmap="viridis", aspect="auto", interpolation="nearest")
        fig.colorbar(im, ax=ax, shrink=0.8)
        k = min(top_k, k_len)
        top = w.topk(k, dim=-1).indices
        for q in range(t_len):
            ax.scatter(top[q].numpy(), [q] * k, s=28, facecolors="none", edgecolors="red", linewidths=1.2)
        ax.set_xticks(range(k_len))
        ax.set_xticklabels(mem_labels, rotation=90, fontsize=6)
        ax.set_yticks(range(t_len))
        ax.set_yticklabels([f"{name[0]}{q + 1}{'*' if 0 <= int(truth[q]) != BACKGROUND else ''}"  # -1: unknown
                            for q in range(t_len)], fontsize=7)
        if k_len == 2 * t_len:
            ax.axvline(t_len - 0.5, color="white", linewidth=1.5)
        ax.set_title(f"{name}: query segment -> memory (top-{k} circled)", fontsize=8)
        ax.set_xlabel("memory step", fontsize=8)
    fig.suptitle(title + "   (* = event segment)", fontsize=9)
    atomic_write(path, lambda f: fig.savefig(f, format="png", dpi=110))
    plt.close(fig)


__all__ = ["RelationMaps", "SpatialMaps", "memory_labels", "plot_relations", "plot_spatial"]
