"""Event labels for a user's videos: an ``Annotations.txt``-style file (``Category&VideoID&Quality&StartTime&EndTime``,
times in whole seconds of the video, end exclusive; a header line is optional) cut to the rows' windows.

Axis legend: T = 10 segments of a row.

As in the AVE release, a row holds one event: a window that meets two events gives two rows with the same
features (AVE lists a video with two events twice); a window that meets none gives one row whose segments
are all background, under the video's first category with start = end = 0 (as AVE's row 26).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .convention import WINDOW_SECONDS as T
from .errors import ConfigError
from .windows import Window

HEADER = "Category&VideoID&Quality&StartTime&EndTime"
BACKGROUND = 28
AVE_CATEGORIES = (
    "Church bell", "Male speech, man speaking", "Bark", "Fixed-wing aircraft, airplane", "Race car, auto racing",
    "Female speech, woman speaking", "Helicopter", "Violin, fiddle", "Flute", "Ukulele", "Frying (food)", "Truck",
    "Shofar", "Motorcycle", "Acoustic guitar", "Train horn", "Clock", "Banjo", "Goat", "Baby cry, infant cry", "Bus",
    "Chainsaw", "Cat", "Horse", "Toilet flush", "Rodents, rats, mice", "Accordion", "Mandolin",
)


@dataclass(frozen=True)
class Event:
    category: str
    quality: str
    start: int  # seconds of the video, end exclusive
    end: int
    line: int


@dataclass(frozen=True)
class RowLabel:
    """One row's event: its category, quality, segment span [start, end) in the row, and (T,) class indices."""

    category: str
    quality: str
    start: int
    end: int
    segments: np.ndarray


def read_categories(path) -> list[str]:
    if path is None:
        return list(AVE_CATEGORIES)
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"--categories {os.fspath(path)!r}: no such file (expected {len(AVE_CATEGORIES)} names, "
                          "one a line)")
    names = [ln.strip() for ln in p.read_text(encoding="utf-8").splitlines() if ln.strip()]
    if len(names) != len(AVE_CATEGORIES) or len(set(names)) != len(names) or any("&" in n for n in names):
        raise ConfigError(f"--categories {os.fspath(path)!r}: {len(names)} lines ({len(set(names))} distinct), "
                          f"expected {len(AVE_CATEGORIES)} distinct names without '&' (the models' event classes)")
    return names


def read_labels(path, categories: list[str]) -> dict[str, list[Event]]:
    """video id -> its events, in file order; ConfigError naming the line of any malformed entry."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"--labels {os.fspath(path)!r}: no such file (expected lines {HEADER})")
    events: dict[str, list[Event]] = {}
    for number, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip() or (number == 1 and line.strip() == HEADER):
            continue
        fields = line.rstrip("\r\n").split("&")
        where = f"--labels {os.fspath(path)!r} line {number}"
        if len(fields) != 5:
            raise ConfigError(f"{where}: {len(fields)} '&'-separated fields, expected 5 ({HEADER}): {line!r}")
        category, video_id, quality, start, end = fields
        if category not in categories:
            raise ConfigError(f"{where}: unknown category {category!r}, expected one of the "
                              f"{len(categories)} categories ({categories[0]!r}, ...)")
        try:
            s, e = int(start), int(end)
        except ValueError:
            raise ConfigError(f"{where}: start/end {start!r}/{end!r} are not whole seconds") from None
        if not 0 <= s <= e:
            raise ConfigError(f"{where}: start={s}, end={e}, expected 0 <= start <= end (seconds, end exclusive)")
        events.setdefault(video_id, []).append(Event(category, quality, s, e, number))
    if not events:
        raise ConfigError(f"--labels {os.fspath(path)!r}: holds no event line")
    return events


def row_labels(events: list[Event], window: Window, categories: list[str]) -> list[RowLabel]:
    """The rows of one window: one per event that meets its real seconds, else one all-background row."""
    seconds = window.seconds()
    rows = []
    for event in events:
        inside = (seconds >= event.start) & (seconds < event.end)
        if not inside.any():
            continue
        segments = np.where(inside, categories.index(event.category), BACKGROUND).astype(np.int64)
        where = np.flatnonzero(inside)
        rows.append(RowLabel(event.category, event.quality, int(where[0]), int(where[-1]) + 1, segments))
    if not rows:
        first = events[0]
        rows.append(RowLabel(first.category, first.quality, 0, 0, np.full(T, BACKGROUND, dtype=np.int64)))
    return rows
