"""Which frames stand for each one-second segment.

Axis legend: D whole seconds, k samples per second (16 in AVE), N frames.

Index rule (AVE's ``video_frame_sample``): a 10-second clip of N frames has F = int(N / 10) frames per
segment, and sample i of segment l is frame ``int(l*F + (i/16)*F)``: by index, never by timestamp. For a
video of any length the rule is applied to each block of 10 whole seconds (0-9, 10-19, ...; the last block
holds the remaining seconds): a block of L seconds holds the frames whose nominal time ``n / fps`` falls in
it (N_b of them, from n0 = ceil(start * fps)), F = int(N_b / L), sample i of its second l is frame
``n0 + int(l*F + (i/k)*F)``. For a 10-second clip this is AVE's rule (F is the same whenever the frames past
10 s do not change ``int(N / 10)``); the drift of an integer F is bounded by one block instead of growing
along the video.

Time rule: sample i of second s is the last frame shown at or before ``s + i/k`` seconds (timestamps relative
to the first frame), which also handles variable frame rates.

Indices past the last decoded frame (a container count larger than the decoded one) are clamped to it.
"""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np

from .convention import WINDOW_SECONDS


def block_bounds(seconds: int, block: int = WINDOW_SECONDS) -> list[tuple[int, int]]:
    """[start, end) seconds of each block: (0, 10), (10, 20), ..., (10 b, seconds)."""
    return [(s, min(s + block, seconds)) for s in range(0, seconds, block)]


def index_rule(num_frames: int, fps: Fraction, seconds: int, per_second: int = 16) -> np.ndarray:
    """(D, k) frame indices by AVE's index rule, block by block; ValueError when a second would get no frame."""
    out = np.empty((seconds, per_second), dtype=np.int64)
    for start, end in block_bounds(seconds):
        first = math.ceil(start * fps)
        last = min(num_frames, math.ceil(end * fps))
        length = end - start
        per_segment = (last - first) // length  # F
        if per_segment < 1:
            raise ValueError(f"seconds {start}..{end - 1} hold {last - first} frames: fewer than one per second "
                             f"(frame rate {float(fps):.3f}, {num_frames} frames)")
        for segment in range(length):
            out[start + segment] = [first + int(segment * per_segment + (i / per_second) * per_segment)
                                    for i in range(per_second)]
    return np.minimum(out, num_frames - 1)


def time_rule(frame_times: np.ndarray, seconds: int, per_second: int = 16) -> np.ndarray:
    """(D, k) indices of the frames shown at s + i/k seconds; ``frame_times`` (N,) ascending, first = 0."""
    targets = np.arange(seconds)[:, None] + np.arange(per_second)[None, :] / per_second
    chosen = np.searchsorted(frame_times, targets + 1e-9, side="right") - 1
    return np.clip(chosen, 0, len(frame_times) - 1)


def whole_seconds(duration: float) -> int:
    """Whole seconds of a stream: a second counts when at least 0.975 s of it is there, the audio one VGGish
    example reads (96 frames of 10 ms plus the 25 ms window)."""
    return int(math.floor(duration + 0.025 + 1e-9))
