"""Pictures like the CMRAN paper's Figures 5 and 6, for a few test videos of a checkpoint.

Axis legend: b batch, t segments (10), h/w grid (7x7), k memory steps (2T for CMRA).

    python -m examples.cmran visualize --checkpoint runs/demo/best.pt --out runs/demo/vis --num-videos 4

For each video it writes
  ``NN_agsca.png``: AGSCA's spatial attention M_s over the 7x7 grid, one panel per segment,
      titled with the true and predicted labels (Figure 5; the features carry no frames, so
      the maps are drawn on their own);
  ``NN_cmra.png``: each relation-aware module's attention (head-averaged) from its query
      segments to its memory ``[ITR(other modality) ; own segments]``, with each query's top-k
      memory steps circled (Figure 6), plus the AV-interaction attention.

AVEL (``--model avel``/``avel-dmrn``) draws its AGVA maps (``NN_agva.png``; none for the variants without
AGVA); PSP draws its AGVA maps and its pruned propagation weights (``NN_psp.png``: each visual segment's
weights over the audio segments and vice versa).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from avattn import BACKGROUND

from .checkpoint import atomic_write
from .config import ConfigError, check_out_dir
from .evaluate import add_model_argument, build_splits, load_trained_model, resolve_device, with_data
from .predict import category_names


def _short(name: str, n: int = 14) -> str:
    name = name.replace(", ", "/").replace("_", " ")
    return name if len(name) <= n else name[: n - 1] + "."


def pick_videos(dataset, n: int) -> list[int]:
    """The first n videos with both event and background segments (the instructive ones), then any."""
    mixed, other = [], []
    for i in range(len(dataset)):
        labels = dataset[i][2]
        has_event, has_bg = bool((labels != BACKGROUND).any()), bool((labels == BACKGROUND).any())
        (mixed if has_event and has_bg else other).append(i)
        if len(mixed) >= n:
            break
    return (mixed + other)[:n]


def plot_agsca(path: Path, spatial: torch.Tensor, truth, pred, names, title: str) -> None:
    """spatial (T, H, W) softmax weights -> one panel per segment."""
    import matplotlib.pyplot as plt

    t_len = spatial.shape[0]
    fig, axes = plt.subplots(1, t_len, figsize=(1.7 * t_len, 2.6), constrained_layout=True)
    # one colour scale per video; tanh bounds the logits, so M_s stays within e^{+-2} of uniform (1/49)
    vmin, vmax = float(spatial.min()), float(spatial.max())
    for t, ax in enumerate(axes):
        im = ax.imshow(spatial[t].numpy(), cmap="jet", vmin=vmin, vmax=vmax, interpolation="nearest")
        ok = int(truth[t]) == int(pred[t])
        ax.set_title(f"t={t + 1}\nGT {_short(names[int(truth[t])])}\npred {_short(names[int(pred[t])])}",
                     fontsize=7, color="black" if ok else "red")
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
        ax.set_yticklabels([f"{name[0]}{q + 1}{'*' if int(truth[q]) != BACKGROUND else ''}" for q in range(t_len)],
                           fontsize=7)
        if k_len == 2 * t_len:
            ax.axvline(t_len - 0.5, color="white", linewidth=1.5)
        ax.set_title(f"{name}: query segment -> memory (top-{k} circled)", fontsize=8)
        ax.set_xlabel("memory step", fontsize=8)
    fig.suptitle(title + "   (* = event segment)", fontsize=9)
    atomic_write(path, lambda f: fig.savefig(f, format="png", dpi=110))
    plt.close(fig)


def _memory_labels(variant: str, own: str, other: str, t_len: int, k_len: int) -> list[str]:
    if variant == "cmra" and k_len == 2 * t_len:
        return [f"{other}{i + 1}" for i in range(t_len)] + [f"{own}{i + 1}" for i in range(t_len)]
    if variant == "co":
        return [f"{other}{i + 1}" for i in range(k_len)]
    return [f"{own}{i + 1}" for i in range(k_len)]


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--checkpoint", required=True)
    add_model_argument(p)
    p.add_argument("--out", required=True, help="directory for the PNGs")
    p.add_argument("--num-videos", type=int, default=4)
    p.add_argument("--split", default="test", choices=("train", "val", "test"))
    p.add_argument("--top-k", type=int, default=3)
    p.add_argument("--data", default=None, help="override the checkpoint's data")
    p.add_argument("--device", default="cpu")


def main(args: argparse.Namespace) -> int:
    if args.num_videos < 1:
        raise ConfigError(f"--num-videos must be >= 1, got {args.num_videos}")
    if args.top_k < 1:
        raise ConfigError(f"--top-k must be >= 1, got {args.top_k}")
    check_out_dir(args.out)
    import matplotlib

    matplotlib.use("Agg")

    device = resolve_device(args.device)
    model, ckpt = load_trained_model(args.checkpoint, device, backend="reference", model=args.model)  # the one returning weights
    cfg = model.config
    train_cfg = with_data(ckpt["train_config"], args.data)
    dataset = build_splits(cfg, train_cfg, (args.split,))[args.split]
    idx = pick_videos(dataset, args.num_videos)
    items = [dataset[i] for i in idx]
    visual = torch.stack([it[0] for it in items]).to(device)
    audio = torch.stack([it[1] for it in items]).to(device)
    truth = torch.stack([it[2] for it in items])
    with torch.no_grad():
        output, weights = model(visual, audio, return_weights=True)
    pred = model.predict(output).cpu()
    names = category_names(dataset)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for j, i in enumerate(idx):
        vid = int(items[j][3])
        acc = float((pred[j] == truth[j]).float().mean())
        title = f"{args.split} video #{i}: {names[vid]} (segment accuracy {100 * acc:.0f}%)"
        agsca = getattr(cfg, "visual_attention", None) == "agsca"
        if weights.spatial is not None:
            path = out / f"{j:02d}_{'agsca' if hasattr(cfg, 'visual_attention') else 'agva'}.png"  # CMRAN: any map
            kind = "AGSCA spatial attention M_s" if agsca else "AGVA spatial attention"
            plot_agsca(path, weights.spatial[j].float().cpu(), truth[j], pred[j], names, f"{title} - {kind}")
            written.append(path)
        panels = []
        t_len = truth.shape[1]
        if hasattr(weights, "visual_from_audio"):  # PSP
            panels = [("visual from audio (PSP)", weights.visual_from_audio[j].float().cpu(),
                       [f"a{q + 1}" for q in range(t_len)]),
                      ("audio from visual (PSP)", weights.audio_from_visual[j].float().cpu(),
                       [f"v{q + 1}" for q in range(t_len)])]
            path = out / f"{j:02d}_psp.png"
            plot_relations(path, panels, truth[j], args.top_k, title)
            written.append(path)
            continue
        if not hasattr(weights, "audio_relation"):  # AVEL: AGVA only
            continue
        for name, own, other, maps in (("audio", "a", "v", weights.audio_relation),
                                       ("video", "v", "a", weights.video_relation)):
            if maps is not None:
                w = maps.weights[j].float().mean(0).cpu()
                panels.append((f"{name} CMRA ({cfg.cmra})", w, _memory_labels(cfg.cmra, own, other, t_len, w.shape[1])))
        if weights.interaction is not None:
            w = weights.interaction.weights[j].float().mean(0).cpu()
            labels = _memory_labels("cmra", "v", "a", t_len, w.shape[1]) if cfg.interaction == "cmra" else \
                [f"f{q + 1}" for q in range(w.shape[1])]
            panels.append((f"fused AV interaction ({cfg.interaction})", w, labels))
        if panels:
            path = out / f"{j:02d}_cmra.png"
            plot_relations(path, panels, truth[j], args.top_k, title)
            written.append(path)
    if not written:
        what = f"arch={cfg.arch!r}" if hasattr(cfg, "arch") else f"{cfg.model} variant={getattr(cfg, 'variant', None)!r}"
        print(f"nothing to draw: {what} has no spatial or relation attention")
        return 0
    print(f"wrote {len(written)} figures for {len(idx)} {args.split} videos to {out}")
    return 0
