"""The events a checkpoint finds in each video, and the ``predict`` subcommand.

Axis legend: b batch, t segments (10 one-second segments), k classes.

    python -m examples.cmran predict --checkpoint runs/demo/best.pt --out runs/demo/events.jsonl
    python -m examples.cmran predict --checkpoint runs/ref/best.pt --data /data/AVE --videos EsfJpLbBeb4 --out ev.csv

Segment labels come from the model's ``predict`` (CMRAN: ``avattn.predict_segments``, event where
``sigmoid(s_t) > 0.5``, with the argmax category; AVEL and PSP: the argmax over the 29 classes).
Consecutive segments with the same event label form one event: (category, start second, end second,
relevance = mean over its segments of the model's ``relevance``: ``sigmoid(s_t)`` for CMRAN, the softmax
probability of the segment's predicted class for AVEL and PSP); background is left out. Segment t covers seconds [t, t + 1), so an event over segments
2..4 runs from 2 to 5, as in the AVE annotations. Category names are the data's ``categories.txt``
(synthetic data: the real AVE categories).

``.jsonl``: one line per video, ``{"video_id", "split", "index", "events": [...]}`` (events may be
empty). ``.csv``: one row per event, ``video_id,split,index,category,start,end,relevance``.
Either is written atomically.

An extract folder (``--data FEATS`` written by ``extract``) is predicted per video: its 10-second rows joined on
the video's own seconds, one record per video with its ``file``, ``seconds`` and ``rows``
(``examples/ave/extract/video_events.py``). ``--video FILE`` extracts one video file first and also draws a
timeline of per-second class probabilities (``examples/ave/extract/video_commands.py``; docs/own_videos.md).
"""

from __future__ import annotations

import argparse
import csv
import io
import json
from pathlib import Path

import torch
from torch.utils.data import DataLoader, Subset

from .checkpoint import atomic_write
from .checks import ConfigError, check_data, check_out_dir
from .config import AMP_MODES
from .constants import BACKGROUND, SPLITS
from .data.extracted import require_rows, row_ids, split_rows
from .evaluate import NonFiniteOutputError, add_model_argument, load_for_inference, non_finite_videos
from .extract.video_options import add_video_arguments
from .runtime import autocast, to_device

FORMATS = (".jsonl", ".csv")
CSV_FIELDS = ("video_id", "split", "index", "category", "start", "end", "relevance")


def merge_events(labels: list[int], relevance: list[float], names: list[str]) -> list[dict]:
    """Runs of one event label in a video's segment labels (T,), background left out, in time order:
    ``{"category", "start", "end", "relevance"}`` with seconds [start, end) and the run's mean relevance."""
    events, t = [], 0
    while t < len(labels):
        label, start = labels[t], t
        while t < len(labels) and labels[t] == label:
            t += 1
        if label != BACKGROUND:
            mean = sum(relevance[start:t]) / (t - start)
            events.append({"category": names[label], "start": start, "end": t, "relevance": round(mean, 6)})
    return events


def dataset_video_ids(dataset) -> list[str]:
    """The AVE video id of each item of a split (``background_J`` for the weak setting's background videos,
    ``sample_I`` where a release directory's labels did not come from its annotations, the row id
    ``<video id>@<start second>`` in an extract folder)."""
    from .data.meta import META_DIR, read_annotations, read_categories

    if isinstance(dataset, Subset):  # a run trained with --subset: the first videos of the split
        ids = dataset_video_ids(dataset.dataset)
        return [ids[i] for i in dataset.indices]
    extracted_ids = row_ids(dataset)  # an extract folder names its rows <video id>@<start second>
    if extracted_ids is not None:
        return extracted_ids
    meta = getattr(getattr(dataset, "generator", None), "meta", None)
    if meta is not None:
        annotations = meta.annotations
    elif getattr(dataset, "label_source", None) == "annotations":
        root = dataset.root
        cats = read_categories(root / "categories.txt" if (root / "categories.txt").is_file()
                               else META_DIR / "categories.txt")
        annotations = read_annotations(root / "Annotations.txt" if (root / "Annotations.txt").is_file()
                                       else META_DIR / "Annotations.txt", cats)
    else:
        annotations = None
    ids = []
    for stream, index in dataset.items.tolist():
        if stream != 0:
            ids.append(f"background_{index}")
        else:
            ids.append(annotations[index].video_id if annotations is not None else f"sample_{index}")
    return ids


def category_names(dataset) -> list[str]:
    """The 28 event category names of the data set's ``categories.txt``, then "background"."""
    from .data.meta import META_DIR, read_categories

    root = getattr(dataset.dataset if isinstance(dataset, Subset) else dataset, "root", None)
    path = root / "categories.txt" if root is not None and (root / "categories.txt").is_file() else None
    return read_categories(path if path is not None else META_DIR / "categories.txt") + ["background"]


@torch.no_grad()
def predict_events(model, dataset, positions: list[int], ids: list[str], names: list[str], *, split: str,
                   device: torch.device, amp: str = "none", batch_size: int = 64) -> list[dict]:
    """One record per video at ``positions`` of ``dataset``: its id, split, position and events.
    ``NonFiniteOutputError`` (naming the video) where the model's output is NaN or infinite."""
    records = []
    loader = DataLoader(Subset(dataset, positions), batch_size=batch_size, shuffle=False)
    done = 0
    for batch in loader:
        visual, audio, _, _ = to_device(batch, device)
        with autocast(device, amp):
            output = model(visual, audio)
        output = type(output)(*(x.float() for x in output))
        bad = non_finite_videos(output).nonzero().flatten().tolist()
        if bad:
            i = positions[done + bad[0]]
            raise NonFiniteOutputError(
                f"the model's output is NaN or infinite on video {ids[i]!r} (item {i} of the {split} split"
                f"{f' and {len(bad) - 1} more of its batch' if len(bad) > 1 else ''}): no events can be given "
                f"(amp={amp!r}; the inputs were checked, so the weights or the arithmetic overflowed)")
        labels = model.predict(output).cpu().tolist()
        relevance = model.relevance(output).cpu().tolist()
        for j in range(len(labels)):
            i = positions[done + j]
            records.append({"video_id": ids[i], "split": split, "index": i,
                            "events": merge_events(labels[j], relevance[j], names)})
        done += len(labels)
    return records


def write_events(path: Path, records: list[dict]) -> None:
    if path.suffix == ".jsonl":
        text = "".join(json.dumps(r, allow_nan=False) + "\n" for r in records)
    else:
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=CSV_FIELDS, lineterminator="\n")
        writer.writeheader()
        for r in records:
            for e in r["events"]:
                writer.writerow({"video_id": r["video_id"], "split": r["split"], "index": r["index"], **e})
        text = buf.getvalue()
    atomic_write(path, lambda f: f.write(text.encode()))


# ---- CLI ----------------------------------------------------------------------------------------

def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--checkpoint", required=True, help="a best.pt / last.pt written by train or import-reference")
    add_model_argument(p)
    p.add_argument("--out", default=None, help="FILE.jsonl (one line per video) or FILE.csv (one row per event); "
                                               "required, except with --video (VIDEO_ID.events.jsonl)")
    p.add_argument("--split", default="test", choices=SPLITS, help="the split whose videos are predicted")
    p.add_argument("--videos", default=None, help="comma-separated AVE video ids of the split (default: all; in an "
                                                  "extract folder: video ids or row ids)")
    p.add_argument("--data", default=None, help="override the checkpoint's data ('synthetic' or the AVE directory)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N, mps")
    p.add_argument("--amp", default=None, choices=AMP_MODES,
                   help="autocast mode (default: the training run's; a run trained with auto chooses again here)")
    p.add_argument("--batch-size", type=int, default=64, help="videos per forward pass")
    add_video_arguments(p, "predict")  # --video FILE: extract it, then its events and a timeline


def check_events_out(out: Path, batch_size: int) -> Path:
    """``--out`` names a .jsonl or .csv file that can be written; ``--batch-size`` is positive."""
    if out.suffix not in FORMATS:
        raise ConfigError(f"--out must end in .jsonl or .csv, got {str(out)!r}")
    if out.is_dir():
        raise ConfigError(f"--out {str(out)!r} is a directory, expected a file name ending in .jsonl or .csv")
    check_out_dir(out.parent, flag=f"--out {str(out)!r}: its folder")
    if batch_size < 1:
        raise ConfigError(f"--batch-size must be >= 1, got {batch_size}")
    return out


def main(args: argparse.Namespace) -> int:
    if args.video is not None:  # one video file in, its events and a timeline out (extract/video_commands.py)
        from .extract.video_commands import predict_video

        return predict_video(args)
    if args.out is None:
        raise ConfigError("--out is required (FILE.jsonl or FILE.csv), except with --video")
    out = check_events_out(Path(args.out), args.batch_size)
    wanted = None
    if args.videos is not None:
        wanted = [v.strip() for v in args.videos.split(",") if v.strip()]
        if not wanted:
            raise ConfigError(f"--videos must list video ids, got {args.videos!r}")
    if args.data is not None:
        check_data(args.data)
    device, model, ckpt, amp, dataset = load_for_inference(args)
    require_rows(dataset, args.split, "predict")  # an empty split (extracted.py)
    if split_rows(dataset) is not None:  # an extract folder: events per video, on its own seconds
        from .extract.video_events import predict_folder

        return predict_folder(args, model, ckpt, dataset, device, amp, out, wanted)
    ids = dataset_video_ids(dataset)
    if wanted is None:
        positions = list(range(len(dataset)))
    else:
        where = {v: i for i, v in enumerate(ids)}
        unknown = [v for v in wanted if v not in where]
        if unknown:
            raise ConfigError(f"--videos: {unknown[:3]} not in the {args.split} split "
                              f"({len(ids)} videos, e.g. {', '.join(ids[:3])})")
        positions = [where[v] for v in wanted]
    records = predict_events(model, dataset, positions, ids, category_names(dataset), split=args.split,
                             device=device, amp=amp,
                             batch_size=args.batch_size)
    write_events(out, records)
    n_events = sum(len(r["events"]) for r in records)
    print(f"{n_events} events in {len(records)} {args.split} videos -> {out}")
    return 0


__all__ = ["category_names", "dataset_video_ids", "merge_events", "predict_events", "write_events"]
