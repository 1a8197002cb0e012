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

``--video FILE`` draws a video file's maps over its own frames instead (``examples/ave/extract/video_commands.py``).

AVEL (``--model avel``/``avel-dmrn``) draws its AGVA maps (``NN_agva.png``; none for the variants without
AGVA); PSP draws its AGVA maps and its pruned propagation weights (``NN_psp.png``: each visual segment's
weights over the audio segments and vice versa).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

from . import registry
from .checks import ConfigError, check_out_dir
from .constants import BACKGROUND, SPLITS
from .datasets import build_splits, label_note, with_data
from .evaluate import add_model_argument, load_trained_model
from .extract.video_options import add_video_arguments
from .figures import RelationMaps, SpatialMaps, plot_relations, plot_spatial
from .predict import category_names
from .runtime import resolve_device


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


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--checkpoint", required=True, help="a best.pt / last.pt written by train or import-reference")
    add_model_argument(p)
    p.add_argument("--out", required=True, help="directory for the PNGs")
    p.add_argument("--num-videos", type=int, default=4, help="how many videos of the split to draw")
    p.add_argument("--split", default="test", choices=SPLITS, help="the split the videos come from")
    p.add_argument("--top-k", type=int, default=3, help="memory steps circled per query segment")
    p.add_argument("--data", default=None, help="override the checkpoint's data ('synthetic' or the AVE directory)")
    p.add_argument("--device", default="cpu", help="auto, cpu, cuda, cuda:N, mps")
    add_video_arguments(p, "visualize")  # --video FILE: extract it, then its maps over its frames


def main(args: argparse.Namespace) -> int:
    from .data.extracted import require_rows

    if args.video is not None:  # one video file: the maps over its own frames (extract/video_commands.py)
        from .extract.video_commands import visualize_video

        return visualize_video(args)
    if args.num_videos < 1:
        raise ConfigError(f"--num-videos must be >= 1, got {args.num_videos}")
    if args.top_k < 1:
        raise ConfigError(f"--top-k must be >= 1, got {args.top_k}")
    check_out_dir(args.out)
    import matplotlib

    matplotlib.use("Agg")

    device = resolve_device(args.device)
    model, ckpt = load_trained_model(args.checkpoint, device, backend="reference", model=args.model)  # returns weights
    splits = build_splits(model.config, with_data(ckpt["train_config"], args.data, args.labels), (args.split,))
    if label_note(splits) is not None:
        print(label_note(splits), file=sys.stderr)
    dataset = splits[args.split]
    idx = pick_videos(dataset, args.num_videos)
    require_rows(dataset, args.split, "visualize")  # an empty split (extracted.py)
    items = [dataset[i] for i in idx]
    visual, audio = (torch.stack([it[k] for it in items]).to(device) for k in (0, 1))
    truth = torch.stack([it[2] for it in items])
    with torch.no_grad():
        output, weights = model(visual, audio, return_weights=True)
    pred = model.predict(output).cpu()
    written = draw_videos(Path(args.out), model.config, weights, items, idx, truth, pred,
                          category_names(dataset), args)
    if not written:
        print(f"nothing to draw: this {registry.describe(model).split(':')[0]} has no spatial or relation attention")
        return 0
    print(f"wrote {len(written)} figures for {len(idx)} {args.split} videos to {args.out}")
    return 0


def draw_videos(out: Path, cfg, weights, items, idx, truth, pred, names, args) -> list[Path]:
    """Each video's figures, as its model folder chooses them; the paths written."""
    figures = registry.family_of_config(cfg).figures
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for j, i in enumerate(idx):
        acc = float((pred[j] == truth[j]).float().mean())
        title = f"{args.split} video #{i}: {names[int(items[j][3])]} (segment accuracy {100 * acc:.0f}%)"
        if int(items[j][3]) < 0:  # UNKNOWN: an unlabelled extract folder, predictions only (extracted.py)
            title = f"{args.split} video #{i}: unlabelled"
        for fig in figures(cfg, weights, j, truth.shape[1]) if figures is not None else []:
            path = out / f"{j:02d}_{fig.name}.png"
            if isinstance(fig, SpatialMaps):
                plot_spatial(path, fig.maps, truth[j], pred[j], names, f"{title} - {fig.kind}")
            elif isinstance(fig, RelationMaps):
                plot_relations(path, fig.panels, truth[j], args.top_k, title)
            written.append(path)
    return written
