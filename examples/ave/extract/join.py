"""A video's rows joined back onto its own timeline: per-second values from its 10-second windows.

Axis legend: D whole seconds of the video, T = 10 segments of a row, ... any trailing axes of a value.

The windows (``windows.py``) start every 10 s from second 0; when the video's D whole seconds are not a multiple
of 10, the last window is aligned to the end and overlaps the one before; a video shorter than 10 s has one
window, padded to 10 by repeating its last second. Joining them:

* **Each second takes the value of the first window that holds it.** The windows of the 10-second grid
  (0, 10, 20, ...) keep all their seconds; the last, end-aligned window adds only its own new seconds (23 s:
  seconds 0-9 from the row at 0, 10-19 from the row at 10, 20-22 from segments 7-9 of the row at 13). Why: a grid
  window is the same whatever the video's length, so a second's prediction does not change when the video is
  cut or extended elsewhere, and two videos sharing their first minute get the same events there; the end
  window exists only so that the last seconds are seen in a full 10-segment row (as the models were trained)
  instead of a padded one.
* **Padding is dropped**: segments beyond a row's real seconds are repeats of its last second, and no second past
  the video's D whole seconds (its partial last second is not extracted) is reported.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .windows import Window


def window_of(row: dict) -> Window:
    """The window of a ``videos.json`` row."""
    return Window(int(row["start"]), int(row["real_seconds"]), int(row["overlap_seconds"]))


def sources(windows: Sequence[Window]) -> list[tuple[int, int, int]]:
    """For each window (in the given order): (its first segment used, one past its last, the video second of the
    first), by the rule above; ValueError when the windows leave a second uncovered."""
    order = sorted(range(len(windows)), key=lambda i: windows[i].start)
    out: list[tuple[int, int, int]] = [(0, 0, 0)] * len(windows)
    covered = 0
    for i in order:
        w = windows[i]
        if w.start > covered:
            raise ValueError(f"seconds {covered}..{w.start - 1} are in no window (windows start at "
                             f"{sorted(x.start for x in windows)})")
        first = covered - w.start
        last = max(first, w.real_seconds)
        out[i] = (first, last, w.start + first)
        covered = max(covered, w.start + w.real_seconds)
    return out


def join(windows: Sequence[Window], values: Sequence[np.ndarray]) -> np.ndarray:
    """(D, ...) per-second values from each window's (T, ...) values."""
    if len(windows) != len(values) or not windows:
        raise ValueError(f"expected one value per window and at least one window, got {len(windows)} windows and "
                         f"{len(values)} values")
    seconds = max(w.start + w.real_seconds for w in windows)
    out = np.empty((seconds, *np.shape(values[0])[1:]), dtype=np.asarray(values[0]).dtype)
    for (first, last, at), value in zip(sources(windows), values):
        out[at:at + last - first] = np.asarray(value)[first:last]
    return out


__all__ = ["join", "sources", "window_of"]
