"""The real AVE metadata shipped in ``meta/``: categories, annotations, splits, weak-setting files.

Axis legend: N samples (4,143 in the release), T=10 one-second segments, K=29 classes
(28 events + background at index 28), A=128 audio channels, M background-only videos (178).

Everything here is parsed from the copies in ``examples/ave/data/meta/`` (nothing outside the
repository is read). Segment labels are rebuilt from ``Annotations.txt``: segments
``start .. end-1`` get the category, the rest background (28). The release's ``labels.h5``
disagrees with the annotations on two test rows, so the annotations are the consistent source.
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..constants import AUDIO_DIM, BACKGROUND, NUM_CLASSES, NUM_EVENT_CLASSES, NUM_SEGMENTS, SPLITS

ANNOTATION_HEADER = "Category&VideoID&Quality&StartTime&EndTime"

META_DIR = Path(__file__).resolve().parent / "meta"


class AVEDataError(ValueError):
    """A data file or directory is missing, malformed or inconsistent (names file, key, found, expected)."""


@dataclass(frozen=True)
class Annotation:
    category: str
    video_id: str
    quality: str
    start: int
    end: int

    def line(self) -> str:
        return f"{self.category}&{self.video_id}&{self.quality}&{self.start}&{self.end}"


def read_text_lines(path: str | os.PathLike, what: str) -> list[str]:
    """The lines of a UTF-8 text file; AVEDataError naming the file, the line and the byte that is not UTF-8."""
    data = Path(path).read_bytes()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        column = exc.start - (data.rfind(b"\n", 0, exc.start) + 1) + 1
        raise AVEDataError(
            f"{path}: line {line}, byte {column} (byte {exc.start + 1} of the file, 0x{data[exc.start]:02x}) is not "
            f"UTF-8 ({exc.reason}); expected {what} as UTF-8 text"
        ) from None
    return text.splitlines()


def read_categories(path: str | os.PathLike) -> list[str]:
    path = Path(path)
    if not path.is_file():
        raise AVEDataError(f"{path}: file not found (expected the {NUM_EVENT_CLASSES} category names, one a line)")
    names = [line.rstrip("\r\n") for line in read_text_lines(path, "the category names") if line.strip()]
    if len(names) != NUM_EVENT_CLASSES or len(set(names)) != len(names):
        raise AVEDataError(
            f"{path}: found {len(names)} lines ({len(set(names))} distinct), expected {NUM_EVENT_CLASSES} distinct category names"
        )
    return names


def parse_annotation_lines(lines: list[str], path: str | os.PathLike, categories: list[str]) -> list[Annotation]:
    """Parse ``Category&VideoID&Quality&StartTime&EndTime`` lines (no header)."""
    out = []
    for lineno, line in enumerate(lines, 1):
        fields = line.rstrip("\r\n").split("&")
        if len(fields) != 5:
            raise AVEDataError(f"{path}: line {lineno}: found {len(fields)} '&'-separated fields, expected 5: {line!r}")
        cat, vid, quality, start, end = fields
        if cat not in categories:
            raise AVEDataError(f"{path}: line {lineno}: unknown category {cat!r}, expected one of categories.txt")
        try:
            s, e = int(start), int(end)
        except ValueError:
            raise AVEDataError(f"{path}: line {lineno}: start/end {start!r}/{end!r} are not integers") from None
        if not (0 <= s <= e <= NUM_SEGMENTS):
            raise AVEDataError(
                f"{path}: line {lineno}: found start={s}, end={e}, expected 0 <= start <= end <= {NUM_SEGMENTS}"
            )
        out.append(Annotation(cat, vid, quality, s, e))
    return out


def read_annotations(path: str | os.PathLike, categories: list[str]) -> list[Annotation]:
    """Read ``Annotations.txt`` (header line, then one sample a line; row i = sample i)."""
    path = Path(path)
    if not path.is_file():
        raise AVEDataError(f"{path}: file not found (expected the AVE annotation file)")
    lines = [line for line in read_text_lines(path, "the AVE annotations") if line.strip()]
    if not lines or lines[0].strip() != ANNOTATION_HEADER:
        found = lines[0] if lines else "<empty file>"
        raise AVEDataError(f"{path}: first line is {found!r}, expected the header {ANNOTATION_HEADER!r}")
    return parse_annotation_lines(lines[1:], path, categories)


def labels_from_annotations(annotations: list[Annotation], categories: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Segment labels (N, T) int64 and video labels (N,) int64 rebuilt from the annotations."""
    index = {c: k for k, c in enumerate(categories)}
    seg = np.full((len(annotations), NUM_SEGMENTS), BACKGROUND, dtype=np.int64)
    vid = np.empty(len(annotations), dtype=np.int64)
    for i, a in enumerate(annotations):
        k = index[a.category]
        vid[i] = k
        seg[i, a.start : a.end] = k
    return seg, vid


def one_hot(labels: np.ndarray, num_classes: int = NUM_CLASSES) -> np.ndarray:
    """(..., ) int -> (..., K) float32 one-hot."""
    return np.eye(num_classes, dtype=np.float32)[labels]


@dataclass(frozen=True)
class AVEMeta:
    """The real AVE metadata: 4,143 annotated samples, official splits, weak-setting extras."""

    categories: list[str]
    annotations: list[Annotation]
    segment_labels: np.ndarray  # (N, T) int64, 28 = background
    video_labels: np.ndarray  # (N,) int64, 0..27
    orders: dict[str, np.ndarray]  # split -> (n_split,) int64 sample indices
    noisy_audio: np.ndarray  # (M, T, A) float32: real VGGish features of the 178 background videos
    num_noisy: int

    @property
    def num_samples(self) -> int:
        return len(self.annotations)


def _read_h5(path: Path, key: str) -> np.ndarray:
    import h5py

    with h5py.File(path, "r") as f:
        return f[key][()]


@functools.lru_cache(maxsize=2)
def load_meta(meta_dir: str | None = None) -> AVEMeta:
    """Parse the shipped metadata (cached). Checks the split files against the order files."""
    d = Path(meta_dir) if meta_dir is not None else META_DIR
    categories = read_categories(d / "categories.txt")
    annotations = read_annotations(d / "Annotations.txt", categories)
    seg, vid = labels_from_annotations(annotations, categories)
    orders = {s: _read_h5(d / f"{s}_order.h5", "order").astype(np.int64) for s in SPLITS}
    for s, order in orders.items():
        lines = [ln for ln in read_text_lines(d / f"{s}Set.txt", f"the {s} split's annotations") if ln.strip()]
        rows = parse_annotation_lines(lines, d / f"{s}Set.txt", categories)
        if len(rows) != len(order) or any(annotations[j] != r for j, r in zip(order, rows)):
            raise AVEDataError(f"{d / f'{s}Set.txt'}: does not match {s}_order.h5 applied to Annotations.txt")
    mil = _read_h5(d / "mil_labels.h5", "avadataset")
    if mil.shape != (len(annotations), NUM_CLASSES) or not np.array_equal(mil.argmax(1), vid):
        raise AVEDataError(f"{d / 'mil_labels.h5'}: shape {mil.shape} or labels disagree with Annotations.txt")
    noisy_audio = _read_h5(d / "audio_feature_noisy.h5", "avadataset").astype(np.float32)
    noisy_labels = _read_h5(d / "labels_noisy.h5", "avadataset")
    if noisy_audio.shape[1:] != (NUM_SEGMENTS, AUDIO_DIM) or noisy_labels.shape != (len(noisy_audio), NUM_CLASSES):
        raise AVEDataError(f"{d}: noisy files have shapes {noisy_audio.shape} / {noisy_labels.shape}")
    for a in (seg, vid, *orders.values(), noisy_audio):
        a.setflags(write=False)
    return AVEMeta(categories, annotations, seg, vid, orders, noisy_audio, len(noisy_audio))
