"""Events of an extract folder's videos, each on its own timeline: a model runs over a video's rows, the rows are
joined back (``join.py``: the grid windows keep their seconds, the end window adds its new ones, padding is
dropped) and runs of one label become events, as ``predict`` does for a clip.

Axis legend: b rows in a batch, t = T = 10 segments of a row, D whole seconds of a video, k = 29 classes
(28 = background), h, w the 7 x 7 grid.

Per-second class probabilities (the timeline figure) come from the model's output: ``segment_logits`` (AVEL, PSP):
their softmax; ``event_logits`` + ``class_logits`` (CMRAN): ``p(k) = sigmoid(s_t) softmax(z)_k`` for the events
and ``1 - sigmoid(s_t)`` for background (a weak head's background class adds to it); another model: its
predicted labels, one-hot. The events are always the model's own ``predict``.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Subset, default_collate

from .. import registry
from ..checks import ConfigError
from ..constants import BACKGROUND, NUM_CLASSES, NUM_EVENT_CLASSES
from ..data.extracted import read_index, split_rows
from ..data.meta import META_DIR, read_categories
from ..evaluate import NonFiniteOutputError, non_finite_videos
from ..figures import SpatialMaps
from ..predict import category_names, merge_events, write_events
from ..runtime import autocast, to_device
from .join import join, window_of
from .windows import Window


@dataclass
class RowResult:
    """One row's predictions: labels (t,), relevance (t,), probabilities (t, k), spatial maps (t, h, w) or None."""

    labels: np.ndarray
    relevance: np.ndarray
    probabilities: np.ndarray
    spatial: np.ndarray | None = None


@dataclass
class VideoTimeline:
    """One video's predictions on its own seconds: labels (D,), relevance (D,), probabilities (D, k), spatial
    maps (D, h, w) or None; ``video`` is its ``videos.json`` entry, ``index`` its place there."""

    video: dict
    index: int
    row_ids: list[str]
    windows: list[Window]
    labels: np.ndarray
    relevance: np.ndarray
    probabilities: np.ndarray
    spatial: np.ndarray | None = None
    spatial_kind: str | None = None


def segment_probabilities(output) -> torch.Tensor | None:
    """(b, t, k) per-segment class probabilities of a model's output (see the module docstring); None if the
    output has neither form."""
    fields = getattr(output, "_fields", ())
    if "segment_logits" in fields:
        return output.segment_logits.float().softmax(-1)
    if "event_logits" in fields and "class_logits" in fields:
        event = torch.sigmoid(output.event_logits.float())  # (b, t)
        probs = event[..., None] * output.class_logits.float().softmax(-1)[:, None, :]  # (b, t, 28 or 29)
        if probs.shape[-1] == NUM_EVENT_CLASSES:
            return torch.cat([probs, (1 - event)[..., None]], -1)
        probs[..., BACKGROUND] += 1 - event
        return probs
    return None


def spatial_maps(cfg, weights, b: int, t_len: int) -> tuple[list[np.ndarray | None], str | None]:
    """Each row's first spatial map (t, h, w) the model folder draws (AGSCA's M_s, AGVA's alpha), and its kind."""
    figures = registry.family_of_config(cfg).figures
    maps, kind = [], None
    for j in range(b):
        found = [f for f in (figures(cfg, weights, j, t_len) if figures is not None else [])
                 if isinstance(f, SpatialMaps)]
        if not found:
            maps.append(None)
            continue
        m = found[0].maps.float().numpy()
        side = int(round(m.shape[-1] ** 0.5))
        maps.append(m.reshape(m.shape[0], side, side) if m.ndim == 2 else m)
        kind = found[0].kind
    return maps, kind


@torch.no_grad()
def run_rows(model, dataset, positions: list[int], ids: list[str], *, split: str, device: torch.device,
             amp: str = "none", batch_size: int = 64, spatial: bool = False) -> tuple[list[RowResult], str | None]:
    """Each row's predictions (and spatial maps: the model must be built with a backend that returns weights);
    NonFiniteOutputError naming the row where the output is NaN or infinite."""
    results, kind = [], None
    for start in range(0, len(positions), batch_size):
        chunk = positions[start:start + batch_size]
        visual, audio, _, _ = to_device(default_collate([dataset[p] for p in chunk]), device)
        with autocast(device, amp):
            output = model(visual, audio, return_weights=True) if spatial else model(visual, audio)
        output, weights = output if spatial else (output, None)
        output = type(output)(*(x.float() for x in output))
        bad = non_finite_videos(output).nonzero().flatten().tolist()
        if bad:
            raise NonFiniteOutputError(f"the model's output is NaN or infinite on row {ids[chunk[bad[0]]]!r} of the "
                                       f"{split} split: no events can be given (amp={amp!r})")
        labels, relevance = model.predict(output).cpu().numpy(), model.relevance(output).cpu().numpy()
        probs = segment_probabilities(output)
        probs = np.eye(NUM_CLASSES, dtype=np.float32)[labels] if probs is None else probs.cpu().numpy()
        maps, kind = spatial_maps(model.config, weights, len(chunk), labels.shape[1]) if spatial else \
            ([None] * len(chunk), None)
        results += [RowResult(labels[j], relevance[j], probs[j], maps[j]) for j in range(len(chunk))]
    return results, kind


def video_groups(dataset, wanted: list[str] | None = None) -> list[tuple[int, dict, list[tuple[int, dict]]]]:
    """(index in videos.json, its entry, [(item position, row)]) per video of an extract folder's split, in order;
    a window listed twice (two events in it: two rows, the same features) once. ``wanted``: video or row ids."""
    rows = split_rows(dataset)
    videos = {v["video_id"]: (i, v) for i, v in enumerate(read_index(dataset.root)["videos"])}
    groups: dict[str, list[tuple[int, dict]]] = {}
    for position, row in enumerate(rows):
        group = groups.setdefault(row["video_id"], [])
        if all(r["start"] != row["start"] for _, r in group):
            group.append((position, row))
    if wanted is not None:
        by_row = {r["row_id"]: r["video_id"] for r in rows}
        unknown = [w for w in wanted if w not in groups and w not in by_row]
        if unknown:
            raise ConfigError(f"--videos: {unknown[:3]} not in this split ({len(groups)} videos, e.g. "
                              f"{', '.join(list(groups)[:3])}; a row id <video>@<start> names its video)")
        chosen = list(dict.fromkeys(w if w in groups else by_row[w] for w in wanted))
        groups = {v: groups[v] for v in chosen}
    return [(*videos[v], group) for v, group in groups.items()]


def join_videos(groups, results: dict[int, RowResult], kind: str | None = None) -> list[VideoTimeline]:
    """Each video's rows joined on its own seconds (join.py)."""
    out = []
    for index, video, group in groups:
        windows = [window_of(row) for _, row in group]
        parts = [results[p] for p, _ in group]
        spatial = None if any(r.spatial is None for r in parts) else join(windows, [r.spatial for r in parts])
        out.append(VideoTimeline(video, index, [row["row_id"] for _, row in group], windows,
                                 join(windows, [r.labels for r in parts]), join(windows, [r.relevance for r in parts]),
                                 join(windows, [r.probabilities for r in parts]), spatial, kind))
    return out


def video_record(timeline: VideoTimeline, names: list[str], split: str) -> dict:
    """predict's record of one video: its id, split, index, file, whole seconds, rows and events (seconds)."""
    v = timeline.video
    return {"video_id": v["video_id"], "split": split, "index": timeline.index, "file": v.get("file"),
            "seconds": int(len(timeline.labels)), "rows": timeline.row_ids,
            "events": merge_events(timeline.labels.tolist(), timeline.relevance.tolist(), names)}


def names_for(dataset, ckpt: dict) -> list[str]:
    """The category names: the folder's categories.txt, else that of the data the checkpoint was trained on
    (a model trained on your own categories names them on unlabelled videos too), else AVE's; then background."""
    root = Path(dataset.root)
    trained_on = getattr(ckpt.get("train_config"), "data", "synthetic")
    if not (root / "categories.txt").is_file() and trained_on != "synthetic":
        theirs = Path(trained_on) / "categories.txt"
        if theirs.is_file():
            return read_categories(theirs) + ["background"]
    return category_names(dataset) if (root / "categories.txt").is_file() else \
        read_categories(META_DIR / "categories.txt") + ["background"]


def predict_timelines(model, dataset, groups, *, split: str, device, amp: str, batch_size: int,
                      spatial: bool = False) -> list[VideoTimeline]:
    """Run ``model`` over the rows of ``groups`` and join them per video."""
    positions = [p for _, _, group in groups for p, _ in group]
    ids = [row["row_id"] for row in split_rows(dataset)]
    results, kind = run_rows(model, dataset, positions, ids, split=split, device=device, amp=amp,
                             batch_size=batch_size, spatial=spatial)
    return join_videos(groups, dict(zip(positions, results)), kind)


def predict_folder(args: argparse.Namespace, model, ckpt: dict, dataset, device, amp: str, out: Path,
                   wanted: list[str] | None) -> int:
    """``predict`` on an extract folder: one record per video, its events in seconds of the video."""
    base = dataset.dataset if isinstance(dataset, Subset) else dataset  # whole videos: a run's --subset cuts rows
    groups = video_groups(base, wanted)
    timelines = predict_timelines(model, base, groups, split=args.split, device=device, amp=amp,
                                  batch_size=args.batch_size)
    names = names_for(base, ckpt)
    records = [video_record(t, names, args.split) for t in timelines]
    write_events(out, records)
    n_events = sum(len(r["events"]) for r in records)
    print(f"{n_events} events in {len(records)} {args.split} videos ({sum(len(t.row_ids) for t in timelines)} rows "
          f"joined on each video's own seconds) -> {out}")
    return 0


__all__ = ["RowResult", "VideoTimeline", "join_videos", "names_for", "predict_folder", "predict_timelines",
           "run_rows", "segment_probabilities", "spatial_maps", "video_groups", "video_record"]
