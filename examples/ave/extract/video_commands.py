"""``predict --video FILE`` and ``visualize --video FILE``: one video file in, events or attention maps out.

    python -m examples.ave predict --video clip.mp4 --checkpoint runs/ave/best.pt \\
        --vgg19-weights vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5 --vggish-weights vggish-10086976.pth
    python -m examples.ave visualize --video clip.mp4 --checkpoint runs/ave/best.pt --out vis/ --vgg19-weights ...

Both extract the video into a work folder (``video_options.py``), read it back through the release loader, run the
model over the video's 10-second rows and join them on the video's own seconds (``join.py``). ``predict`` writes
the events (JSONL or CSV, as for a data folder: category, start, end in seconds, relevance) and a timeline figure
of per-second class probabilities (``timeline.py``); ``visualize`` writes the spatial attention over the frame of
each second (``overlay.py``).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from .. import registry
from ..amp import resolve_amp, run_amp
from ..checks import ConfigError, check_out_dir
from ..data import ReleaseAVE, validate_release
from ..evaluate import load_trained_model
from ..predict import check_events_out, write_events
from ..runtime import resolve_device
from .video_events import names_for, predict_timelines, video_groups, video_record
from .video_options import check_video_options, extract_one


def _check_model(model, ckpt_path: str) -> None:
    features = model.config.features
    if features != "vgg19":
        raise ConfigError(f"--checkpoint {ckpt_path!r} holds a model of {features} features; --video extracts VGG-19 "
                          "pool5 maps (the AVE convention): use a checkpoint trained on VGG-19 features")


def _events_out(args: argparse.Namespace) -> Path:
    out = Path(args.out) if args.out is not None else Path(f"{Path(args.video).stem}.events.jsonl")
    return check_events_out(out, args.batch_size)


def _video_rows(work: Path, video_id: str, features: str):
    """The work folder's test split (validated by the release loader) and the video's rows in it."""
    dataset = ReleaseAVE(validate_release(work, features=features), "test")
    return dataset, video_groups(dataset, [video_id])


def predict_video(args: argparse.Namespace) -> int:
    """Extract, predict, write the events and the timeline figure (``<out stem>.timeline.png``)."""
    out = _events_out(args)
    work = check_video_options(args, out.parent / "features")
    device = resolve_device(args.device)
    model, ckpt = load_trained_model(args.checkpoint, device, model=args.model)
    _check_model(model, args.checkpoint)
    amp, note = resolve_amp(run_amp(ckpt["train_config"], args.amp), device)
    video_id = extract_one(args, device, work)
    dataset, groups = _video_rows(work, video_id, model.config.features)
    (timeline,) = predict_timelines(model, dataset, groups, split="test", device=device, amp=amp,
                                    batch_size=args.batch_size)
    names = names_for(dataset, ckpt)
    record = video_record(timeline, names, "test")
    write_events(out, [record])
    figure = out.with_suffix(".timeline.png")
    from .timeline import plot_timeline

    plot_timeline(figure, timeline, names, f"{video_id}: per-second class probabilities "
                                           f"({registry.model_name(model.config)}, {args.checkpoint})")
    print(f"{len(record['events'])} events in {video_id} ({record['seconds']} s, {len(timeline.row_ids)} rows of 10 s "
          f"joined; {note}) -> {out}, timeline {figure}")
    return 0


def visualize_video(args: argparse.Namespace) -> int:
    """Extract, run the model with its attention weights, draw each second's map over its frame."""
    check_out_dir(args.out)
    work = check_video_options(args, Path(args.out) / "features")
    device = resolve_device(args.device)
    model, ckpt = load_trained_model(args.checkpoint, device, backend="reference", model=args.model)
    _check_model(model, args.checkpoint)
    video_id = extract_one(args, device, work)
    dataset, groups = _video_rows(work, video_id, model.config.features)
    (timeline,) = predict_timelines(model, dataset, groups, split="test", device=device, amp="none",
                                    batch_size=16, spatial=True)
    if timeline.spatial is None:
        print(f"nothing to draw: this {registry.describe(model).split(':')[0]} has no spatial attention")
        return 0
    from .overlay import draw_maps, second_frames, video_entry

    _, convention = video_entry(work, video_id)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    written = draw_maps(out, timeline, second_frames(work, video_id, args.max_pixels), names_for(dataset, ckpt),
                        convention.visual_weights,
                        f"{video_id}: {timeline.spatial_kind} ({registry.model_name(model.config)})")
    print(f"wrote {len(written)} figures ({len(timeline.spatial)} seconds of {video_id}) to {args.out}")
    return 0


__all__ = ["predict_video", "visualize_video"]
