"""``visualize --video``: the spatial attention of each second drawn over that second's actual frame (the CMRAN
paper's Figure 5, on your own video).

Axis legend: D whole seconds, k frames sampled per second, H, W frame pixels, h, w the 7 x 7 grid, c colour
channels (RGB).

Which frame: the middle one of the k frames the extractor sampled for the second (``sampling.py``: the index
rule by default, or the time rule), decoded again with the extractor's decoder (``decode.py``). Where the map
goes: the 7 x 7 pool5 grid covers what VGG-19 saw. With the release's Keras convention that is the whole frame,
squashed to 224 x 224, so the map is stretched over the whole frame; with torchvision's weights it is the centre
crop (shorter side to 256, then 224 x 224), so the map covers the centred square of side ``224/256`` of the
shorter side. The map is upsampled bilinearly (half-pixel centres) to that box and drawn translucent over the
frame, one colour scale per video.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from fractions import Fraction
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ..checkpoint import atomic_write
from ..constants import BACKGROUND
from ..data.extracted import read_index
from .convention import WINDOW_SECONDS, Convention
from .decode import frames_at, probe, scan
from .image import SIZE, TORCHVISION_RESIZE
from .sampling import index_rule, time_rule
from .video_events import VideoTimeline

THUMB_HEIGHT = 160  # pixels of a drawn frame


def video_entry(work: Path, video_id: str) -> tuple[dict, Convention]:
    """The video's ``videos.json`` entry and the convention it was extracted with."""
    index = read_index(work)
    entry = next(v for v in index["videos"] if v["video_id"] == video_id)
    return entry, Convention.from_dict(index["settings"]["convention"])


def frame_selection(entry: dict, convention: Convention, max_pixels: int) -> np.ndarray:
    """(D, k) the frame indices the extractor averaged for each second (recomputed from the video's summary;
    the time rule reads the frames' timestamps again)."""
    seconds, k = int(entry["seconds"]), convention.frames_per_second
    if convention.frame_rule == "index":
        return index_rule(int(entry["frames"]), Fraction(entry["fps"]), seconds, k)
    found = scan(probe(entry["file"], max_pixels), convention.wav_rate, lambda chunk: None, decode_video=True,
                 check_constant_rate=False, max_pixels=max_pixels)
    return time_rule(found.frame_times, seconds, k)


def thumbnail(rgb: np.ndarray, height: int = THUMB_HEIGHT) -> np.ndarray:
    """(H, W, c) uint8 -> (height, W * height / H, c) uint8, anti-aliased bilinear."""
    width = max(1, round(rgb.shape[1] * height / rgb.shape[0]))
    x = torch.from_numpy(rgb).permute(2, 0, 1)[None].float()
    y = F.interpolate(x, size=(height, width), mode="bilinear", align_corners=False, antialias=True)
    return y[0].permute(1, 2, 0).round().clamp(0, 255).to(torch.uint8).numpy()


def second_frames(work: Path, video_id: str, max_pixels: int) -> Iterator[np.ndarray]:
    """One thumbnail per whole second, in order: the middle sampled frame of that second (decoded as they are
    drawn: memory holds one decoded frame and the thumbnails of one figure)."""
    entry, convention = video_entry(work, video_id)
    middle = frame_selection(entry, convention, max_pixels)[:, convention.frames_per_second // 2]  # non-decreasing
    decoded = frames_at(probe(entry["file"], max_pixels), middle, max_pixels,
                        check_constant_rate=convention.frame_rule == "index")
    index, current = -1, None
    for wanted in middle.tolist():
        while index < wanted:  # frames_at yields each distinct index once, in order
            index, rgb = next(decoded)
            current = thumbnail(rgb) if index == wanted else None
        yield current


def grid_box(width: int, height: int, visual_weights: str) -> tuple[float, float, float, float]:
    """(left, top, right, bottom) in pixels of the frame region the 7 x 7 grid covers."""
    if visual_weights != "torchvision":
        return 0.0, 0.0, float(width), float(height)
    side = min(width, height) * SIZE / TORCHVISION_RESIZE
    left, top = (width - side) / 2, (height - side) / 2
    return left, top, left + side, top + side


def upsample_map(grid: np.ndarray, height: int, width: int) -> np.ndarray:
    """(h, w) -> (height, width) bilinear, half-pixel centres (each cell's value at its centre)."""
    x = torch.from_numpy(np.ascontiguousarray(grid, dtype=np.float32))[None, None]
    return F.interpolate(x, size=(height, width), mode="bilinear", align_corners=False)[0, 0].numpy()


def draw_maps(out: Path, timeline: VideoTimeline, frames: Iterable[np.ndarray], names: list[str],
              visual_weights: str, title: str) -> list[Path]:
    """One PNG per 10 seconds (``<video id>_maps_<first>-<last>s.png``): each second's frame (``frames``: one per
    second, in order) with its map."""
    maps, seconds, frames = timeline.spatial, len(timeline.spatial), iter(frames)
    vmin, vmax = float(maps.min()), float(maps.max())
    digits = len(str(seconds - 1))
    written = []
    for start in range(0, seconds, WINDOW_SECONDS):
        end = min(start + WINDOW_SECONDS, seconds)
        block = {s: next(frames) for s in range(start, end)}
        path = out / f"{timeline.video['video_id']}_maps_{start:0{digits}d}-{end - 1:0{digits}d}s.png"
        _draw_block(path, timeline, block, names, visual_weights, range(start, end), (vmin, vmax),
                    f"{title}, seconds {start}-{end - 1}")
        written.append(path)
    return written


def _draw_block(path: Path, timeline: VideoTimeline, frames, names, visual_weights: str, seconds: range,
                scale: tuple[float, float], title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    aspect = frames[seconds[0]].shape[0] / frames[seconds[0]].shape[1]
    fig, axes = plt.subplots(1, WINDOW_SECONDS, figsize=(1.6 * WINDOW_SECONDS + 0.9, 1.6 * aspect + 0.8),
                             constrained_layout=True, squeeze=False)
    im = None
    for ax, s in zip(axes[0], list(seconds) + [None] * (WINDOW_SECONDS - len(seconds))):
        ax.set_axis_off()
        if s is None:
            continue
        frame = frames[s]
        left, top, right, bottom = grid_box(frame.shape[1], frame.shape[0], visual_weights)
        ax.imshow(frame)
        overlay = upsample_map(timeline.spatial[s], max(1, round(bottom - top)), max(1, round(right - left)))
        im = ax.imshow(overlay, cmap="jet", alpha=0.45, vmin=scale[0], vmax=scale[1], extent=(left, right, bottom, top))
        ax.set_xlim(0, frame.shape[1])
        ax.set_ylim(frame.shape[0], 0)
        label = int(timeline.labels[s])
        what = "background" if label == BACKGROUND else f"{names[label][:16]} {timeline.relevance[s]:.2f}"
        ax.set_title(f"{s} s\n{what}", fontsize=7, color="black" if label == BACKGROUND else "darkred")
    if im is not None:
        fig.colorbar(im, ax=axes[0].tolist(), shrink=0.9, fraction=0.02, pad=0.01,
                     label=(timeline.spatial_kind or "attention").replace(" attention", "\nattention"))
    fig.suptitle(title, fontsize=9)
    atomic_write(path, lambda f: fig.savefig(f, format="png", dpi=80))
    plt.close(fig)


__all__ = ["draw_maps", "frame_selection", "grid_box", "second_frames", "thumbnail", "upsample_map", "video_entry"]
