"""Whole seconds to feature rows: one row per 10-second window, because the models are trained on
10-segment clips and the release layout fixes T = 10.

Axis legend: D whole seconds of a video, T = 10 segments of a row.

Windows are non-overlapping from second 0; when D is not a multiple of 10 the last window is aligned to the
video's end, overlapping the one before; a video shorter than 10 s gets one window, padded to 10 by repeating
its last second. Every whole second is in some row; nothing is cut.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .convention import WINDOW_SECONDS as T


@dataclass(frozen=True)
class Window:
    start: int  # first second of the video in the row
    real_seconds: int  # seconds of the video in the row (< T only for a video shorter than T, then padded)
    overlap_seconds: int  # seconds shared with the video's previous row

    def seconds(self) -> np.ndarray:
        """(T,) the video second each segment of the row shows (the last real one repeated as padding)."""
        return self.start + np.minimum(np.arange(T), self.real_seconds - 1)


def windows(seconds: int) -> list[Window]:
    if seconds < 1:
        raise ValueError(f"seconds must be >= 1, got {seconds}")
    if seconds <= T:
        return [Window(0, seconds, 0)]
    starts = list(range(0, seconds - T + 1, T))
    if starts[-1] + T < seconds:
        starts.append(seconds - T)
    return [Window(s, T, max(0, (prev + T) - s) if prev is not None else 0)
            for prev, s in zip([None, *starts[:-1]], starts)]
