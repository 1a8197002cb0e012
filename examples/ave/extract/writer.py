"""The release layout the AVE loader reads, from the per-video work files: every file is written under a
temporary name in the output folder and renamed when complete; ``videos.json`` (the index) is renamed last.

Axis legend: N rows, T = 10 segments, h, w pool5 cells (7 x 7), C visual channels (512), E audio channels
(128), K = 29 classes (28 = background).

    visual_feature.h5   avadataset (N, T, h, w, C)   audio_feature.h5  avadataset (N, T, E)
    {train,val,test}_order.h5  order (n_split,) int64 row indices (a split without rows holds none)
    videos.json         the index: settings, every video (file, durations, seconds, rows) and every row
                        (row id, video id, file, start second, real seconds, overlap, split, event)
    with labels also:   labels.h5 avadataset (N, T, K) one-hot, Annotations.txt (header + one line per row,
                        VideoID = the row id ``<video id>@<start>``), categories.txt
"""

from __future__ import annotations

import contextlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..files import atomic_path
from .convention import WINDOW_SECONDS as T
from .labels import HEADER, RowLabel
from .windows import Window

FEATURE_KEY, ORDER_KEY = "avadataset", "order"
VISUAL, AUDIO, LABELS = "visual_feature.h5", "audio_feature.h5", "labels.h5"
ANNOTATIONS, CATEGORIES, INDEX = "Annotations.txt", "categories.txt", "videos.json"
SPLITS = ("train", "val", "test")
ORDER_FILES = {s: f"{s}_order.h5" for s in SPLITS}
LABEL_FILES = (LABELS, ANNOTATIONS, CATEGORIES)
RELEASE_FILES = (VISUAL, AUDIO, *ORDER_FILES.values(), *LABEL_FILES, INDEX)
INDEX_FORMAT, INDEX_VERSION = "avattn-ave-extract", 1
NUM_CLASSES = 29


@dataclass(frozen=True)
class Row:
    video_id: str
    file: str
    window: Window
    split: str
    label: RowLabel | None = None

    @property
    def row_id(self) -> str:
        return f"{self.video_id}@{self.window.start}"


@dataclass(frozen=True)
class Video:
    video_id: str
    file: str
    work_file: Path
    summary: dict


def write_release(out: Path, videos: list[Video], rows: list[Row], *, dtype: str, settings: dict,
                  categories: list[str] | None) -> None:
    """Write the release files for ``rows`` (in order) of ``videos``; ``categories`` None = no labels."""
    import h5py

    out = Path(out)
    names = (VISUAL, AUDIO, *ORDER_FILES.values()) + (LABEL_FILES if categories else ())
    with contextlib.ExitStack() as stack:  # every file renamed into place together, the index last; none on error
        index_tmp = stack.enter_context(atomic_path(out / INDEX))
        if not categories:  # labels of an earlier run in this folder no longer match its rows
            stack.enter_context(_on_success(lambda: [(out / name).unlink(missing_ok=True) for name in LABEL_FILES]))
        temps = {name: stack.enter_context(atomic_path(out / name)) for name in names}  # name -> temporary path
        by_id = {v.video_id: v for v in videos}
        with h5py.File(temps[VISUAL], "w") as fv, h5py.File(temps[AUDIO], "w") as fa:
            _write_features(fv, fa, rows, by_id, dtype)
        for split, name in ORDER_FILES.items():
            with h5py.File(temps[name], "w") as f:
                f.create_dataset(ORDER_KEY, data=np.array([i for i, r in enumerate(rows) if r.split == split],
                                                          dtype=np.int64))
        if categories:
            _write_labels(temps, rows, categories)
        index_tmp.write_text(json.dumps(index(videos, rows, settings), indent=1) + "\n", encoding="utf-8")


@contextlib.contextmanager
def _on_success(action):
    yield
    action()


def _write_features(fv, fa, rows: list[Row], by_id: dict, dtype: str) -> None:
    """Row by row; one video's work file open at a time (rows of one video are consecutive)."""
    import h5py

    visual = audio = source = None
    try:
        for i, row in enumerate(rows):
            if source is None or source.filename != os.fspath(by_id[row.video_id].work_file):
                if source is not None:
                    source.close()
                source = h5py.File(by_id[row.video_id].work_file, "r")
            v, a = source["visual"], source["audio"]
            if visual is None:
                visual = fv.create_dataset(FEATURE_KEY, (len(rows), T, *v.shape[1:]), dtype=dtype,
                                           chunks=(1, T, *v.shape[1:]))
                audio = fa.create_dataset(FEATURE_KEY, (len(rows), T, a.shape[1]), dtype=dtype)
            w = row.window
            picks = w.seconds() - w.start
            visual[i] = v[w.start:w.start + w.real_seconds][picks]
            audio[i] = a[w.start:w.start + w.real_seconds][picks]
    finally:
        if source is not None:
            source.close()


def _write_labels(temps: dict, rows: list[Row], categories: list[str]) -> None:
    import h5py

    segments = np.stack([r.label.segments for r in rows])
    with h5py.File(temps[LABELS], "w") as f:
        f.create_dataset(FEATURE_KEY, data=np.eye(NUM_CLASSES, dtype=np.float32)[segments])
    lines = [HEADER] + [f"{r.label.category}&{r.row_id}&{r.label.quality}&{r.label.start}&{r.label.end}"
                        for r in rows]
    temps[ANNOTATIONS].write_text("\n".join(lines) + "\n", encoding="utf-8")
    temps[CATEGORIES].write_text("\n".join(categories) + "\n", encoding="utf-8")


def index(videos: list[Video], rows: list[Row], settings: dict) -> dict:
    """The content of ``videos.json``."""
    rows_of: dict[str, list[int]] = {}
    for i, r in enumerate(rows):
        rows_of.setdefault(r.video_id, []).append(i)
    return {
        "format": INDEX_FORMAT,
        "version": INDEX_VERSION,
        "settings": settings,
        "segment_seconds": 1,
        "window_seconds": T,
        "videos": [{"video_id": v.video_id, "file": v.file, **v.summary, "rows": rows_of.get(v.video_id, [])}
                   for v in videos],
        "rows": [{"row": i, "row_id": r.row_id, "video_id": r.video_id, "file": r.file, "start": r.window.start,
                  "real_seconds": r.window.real_seconds, "overlap_seconds": r.window.overlap_seconds,
                  "split": r.split,
                  "event": None if r.label is None else {"category": r.label.category, "start": r.label.start,
                                                         "end": r.label.end}}
                 for i, r in enumerate(rows)],
    }
