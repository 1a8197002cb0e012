"""Loader for a directory holding the real AVE feature release (or an export of synthetic AVE).

Axis legend: N samples, M background-only videos, T=10 segments, H=W=7 grid, C visual channels
(512 VGG-19 / 2048 ResNet-151), A=128 audio channels, K=29 classes (28 = background).

Layout (every feature/label file holds one dataset ``avadataset``; order files hold ``order``):

    visual_feature.h5         (N, T, 7, 7, C)  float32 or float64
    audio_feature.h5          (N, T, 128)      float32 or float64
    labels.h5                 (N, T, 29)       one-hot, optional (see ``labels=``)
    {train,val,test}_order.h5 (n_split,)       int sample indices
    Annotations.txt           optional: the shipped copy is used when absent (needs N == 4143), except in
                              an unlabelled extract folder (videos.json): labels UNKNOWN, see extracted.py
    weak setting also: mil_labels.h5 (N, 29), labels_noisy.h5 (M, 29),
                       visual_feature_noisy.h5 (M, T, 7, 7, C), audio_feature_noisy.h5 (M, T, 128)

Everything is validated when the dataset is built (``validate_release``: files, shapes, one-hot
labels, orders; ``ReleaseAVE``: one pass over the split's feature values for NaN/inf), before any
training; each problem raises ``AVEDataError`` naming the file, the key, what was found and what
was expected. HDF5 files are opened lazily, once per process, on the first ``__getitem__`` (so a
DataLoader with workers opens its own handles; open handles are never pickled).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from ..constants import AUDIO_DIM, BACKGROUND, GRID, NUM_CLASSES, NUM_SEGMENTS, SPLITS, VISUAL_DIMS
from .label_sources import LabelChoice
from .meta import META_DIR, AVEDataError, labels_from_annotations, read_annotations, read_categories

T = NUM_SEGMENTS
FEATURE_KEY, ORDER_KEY = "avadataset", "order"
VISUAL, AUDIO, LABELS = "visual_feature.h5", "audio_feature.h5", "labels.h5"
MIL, NOISY_LABELS = "mil_labels.h5", "labels_noisy.h5"
NOISY_VISUAL, NOISY_AUDIO = "visual_feature_noisy.h5", "audio_feature_noisy.h5"
ORDER_FILES = {s: f"{s}_order.h5" for s in SPLITS}
LABEL_SOURCES = ("auto", "annotations", "file")


def _shape(s) -> str:
    return "(" + ", ".join(str(x) for x in s) + ")"


def _open_dataset(path: Path, key: str, what: str):
    """Return (shape, dtype) of dataset `key` in HDF5 file `path`, with clear errors."""
    import h5py

    if not path.is_file():
        raise AVEDataError(f"{path}: file not found (expected {what}, HDF5 dataset '{key}')")
    try:
        f = h5py.File(path, "r")
    except OSError as e:
        raise AVEDataError(f"{path}: cannot be opened as HDF5 ({e}); expected {what}, dataset '{key}'") from None
    with f:
        if key not in f:
            raise AVEDataError(
                f"{path}: no dataset '{key}' (found keys {sorted(f.keys())}); expected {what} under '{key}'"
            )
        d = f[key]
        if not isinstance(d, h5py.Dataset):
            raise AVEDataError(f"{path}: '{key}' is a {type(d).__name__}, expected a dataset holding {what}")
        return tuple(d.shape), d.dtype


def _check_array(path: Path, key: str, what: str, expected: tuple, float_data: bool, hint: str = ""):
    """Check shape (None = any size on that axis) and dtype; return the shape found."""
    shape, dtype = _open_dataset(path, key, what)
    want = _shape("N" if e is None else e for e in expected)
    ok = len(shape) == len(expected) and all(e is None or e == s for e, s in zip(expected, shape))
    if not ok:
        raise AVEDataError(f"{path}: dataset '{key}' has shape {_shape(shape)}, expected {want} ({what}){hint}")
    if float_data and dtype not in (np.float32, np.float64):
        raise AVEDataError(f"{path}: dataset '{key}' has dtype {dtype}, expected float32 or float64 ({what})")
    if not float_data and not np.issubdtype(dtype, np.integer):
        raise AVEDataError(f"{path}: dataset '{key}' has dtype {dtype}, expected an integer type ({what})")
    return shape


def _hint(path: Path, features: str) -> str:
    """A hint when a visual file's channel count is another backbone's."""
    try:
        shape, _ = _open_dataset(path, FEATURE_KEY, "visual features")
    except AVEDataError:
        return ""
    for name, c in VISUAL_DIMS.items():
        if name != features and shape[-1:] == (c,):
            return f"; the file holds {name} features ({c} channels): pass features='{name}'"
    return ""


def _check_count(path: Path, key: str, found: int, expected: int, reference: str):
    if found != expected:
        raise AVEDataError(
            f"{path}: dataset '{key}' holds {found} samples, expected {expected} (the sample count of {reference})"
        )


def _read(path: Path, key: str) -> np.ndarray:
    import h5py

    with h5py.File(path, "r") as f:
        return f[key][()]


def _one_hot_classes(path: Path, array: np.ndarray, what: str) -> np.ndarray:
    """The class of each one-hot row of ``array`` (..., K); AVEDataError naming the first row that is not one."""
    ok = np.isin(array, (0, 1)).all(-1) & (array.sum(-1) == 1)
    if not ok.all():
        pos = tuple(int(i) for i in np.argwhere(~ok)[0])
        row = array[pos]
        odd = row[~np.isin(row, (0, 1))]
        found = f"it holds the value {odd[0]}" if odd.size else f"it has {int(row.sum())} ones"
        raise AVEDataError(
            f"{path}: dataset '{FEATURE_KEY}' row {list(pos)} ({what}) is not one-hot: {found}; expected one 1 "
            f"and {NUM_CLASSES - 1} zeros, the 1 at a class in 0..{NUM_CLASSES - 1} ({BACKGROUND} = background)"
        )
    return array.argmax(-1).astype(np.int64)


F32_MAX = float(np.finfo(np.float32).max)
BLOCK = 32  # rows read at once by the value check


def _spans(rows: np.ndarray):
    """[lo, hi) spans of at most BLOCK consecutive rows covering the sorted distinct ``rows``."""
    start = 0
    for j in range(1, len(rows) + 1):
        if j == len(rows) or rows[j] != rows[j - 1] + 1 or j - start == BLOCK:
            yield int(rows[start]), int(rows[j - 1]) + 1
            start = j


def first_non_finite(dataset, rows) -> tuple[int, tuple[int, ...], float, int] | None:
    """(row, position in the row, value, count in the row) of the first value among ``rows`` of an HDF5
    dataset that is NaN, infinite or beyond float32's range (the loader's dtype); None if there is none.

    One read of the rows, in blocks, with two reductions (min, max) per row; the culprit is located
    only in a row that fails.
    """
    for lo, hi in _spans(np.unique(np.asarray(rows, dtype=np.int64))):
        block = dataset[lo:hi]
        flat = block.reshape(hi - lo, -1)
        ok = (flat.min(1) >= -F32_MAX) & (flat.max(1) <= F32_MAX)  # False for NaN too
        if not ok.all():
            r = int(np.argmin(ok))
            bad = ~(np.abs(flat[r]) <= F32_MAX)
            where = np.unravel_index(int(np.argmax(bad)), block.shape[1:])
            return lo + r, tuple(int(i) for i in where), float(flat[r][bad][0]), int(bad.sum())
    return None


@dataclass
class ReleaseInfo:
    """What ``validate_release`` found: sample counts, label arrays, orders."""

    root: Path
    features: str
    setting: str
    num_samples: int
    num_noisy: int
    segment_labels: np.ndarray  # (N, T) int64
    video_labels: np.ndarray  # (N,) int64
    orders: dict[str, np.ndarray]
    noisy_video_labels: np.ndarray | None = None  # (M,) int64 (weak)
    label_source: str = "annotations"
    label_disagreements: list[int] = field(default_factory=list)  # samples whose labels.h5 != annotations
    label_choice: LabelChoice | None = None  # which file the labels came from, and what disagrees (a sentence)


def validate_release(
    root: str | os.PathLike, features: str = "vgg19", setting: str = "supervised", labels: str = "auto"
) -> ReleaseInfo:
    """Check every file of a release directory; return labels and orders. Raises AVEDataError.

    labels: "auto" (default) uses Annotations.txt (the directory's copy, else the shipped one when
    the release has 4,143 samples) and falls back to labels.h5 when no annotation file matches;
    "annotations" requires matching annotations; "file" uses labels.h5 (argmax per segment).
    labels.h5, when present, is always shape-checked.
    """
    root = Path(root)
    _check_arguments(root, features, setting, labels)
    n = _check_features(root, features)
    seg, vid, choice = _segment_labels(root, n, labels)
    info = ReleaseInfo(root, features, setting, n, 0, seg, vid, _read_orders(root, n), None, choice.source,
                       list(choice.disagreements), choice)
    if setting == "weak":
        _check_weak_files(root, info)
    return info


def _check_arguments(root: Path, features: str, setting: str, labels: str) -> None:
    if features not in VISUAL_DIMS:
        raise ValueError(f"features must be one of {sorted(VISUAL_DIMS)}, got {features!r}")
    if setting not in ("supervised", "weak"):
        raise ValueError(f"setting must be 'supervised' or 'weak', got {setting!r}")
    if labels not in LABEL_SOURCES:
        raise ValueError(f"labels must be one of {LABEL_SOURCES}, got {labels!r}")
    if not root.is_dir():
        raise AVEDataError(
            f"{root}: not a directory (expected an AVE release directory holding {VISUAL}, {AUDIO}, ...)"
        )


def _check_features(root: Path, features: str) -> int:
    """The visual and audio feature files' shapes; the number of samples N."""
    C = VISUAL_DIMS[features]
    vshape = _check_array(root / VISUAL, FEATURE_KEY, f"{features} visual features", (None, T, GRID, GRID, C), True,
                          _hint(root / VISUAL, features))
    ashape = _check_array(root / AUDIO, FEATURE_KEY, "VGGish audio features", (None, T, AUDIO_DIM), True)
    _check_count(root / AUDIO, FEATURE_KEY, ashape[0], vshape[0], VISUAL)
    return vshape[0]


def _file_labels(root: Path, n: int) -> np.ndarray | None:
    """labels.h5's segment classes (N, T), checked one-hot; None without the file."""
    if not (root / LABELS).is_file():
        return None
    lshape, _ = _open_dataset(root / LABELS, FEATURE_KEY, "one-hot segment labels")
    if lshape != (n, T, NUM_CLASSES):
        raise AVEDataError(
            f"{root / LABELS}: dataset '{FEATURE_KEY}' has shape {_shape(lshape)}, expected "
            f"{_shape((n, T, NUM_CLASSES))} (one-hot segment labels; N={n} from {VISUAL})"
        )
    return _one_hot_classes(root / LABELS, _read(root / LABELS, FEATURE_KEY), "[sample, segment]")


def _segment_labels(root: Path, n: int, labels: str) -> tuple[np.ndarray, np.ndarray, LabelChoice]:
    """(segment labels (N, T), video labels (N,), where they came from and where labels.h5 disagrees)."""
    categories_path = root / "categories.txt" if (root / "categories.txt").is_file() else META_DIR / "categories.txt"
    categories = read_categories(categories_path)
    from .extracted import is_unlabelled, unknown_labels

    if is_unlabelled(root):  # an extract folder without labels: never the shipped annotations (extracted.py)
        return unknown_labels(root, n, labels)
    ann_path = root / "Annotations.txt" if (root / "Annotations.txt").is_file() else META_DIR / "Annotations.txt"
    annotations = read_annotations(ann_path, categories)
    ann_ok = len(annotations) == n
    file_labels = _file_labels(root, n)
    if labels == "file" and file_labels is None:
        raise AVEDataError(f"{root / LABELS}: file not found, but labels='file' asks for it")
    if labels == "annotations" or (labels == "auto" and (ann_ok or file_labels is None)):
        if not ann_ok:
            raise AVEDataError(
                f"{ann_path}: holds {len(annotations)} samples, expected {n} (the sample count of {root / VISUAL}); "
                f"put the matching Annotations.txt in {root} or provide {LABELS}"
            )
        seg, vid = labels_from_annotations(annotations, categories)
        source = "annotations"
    else:
        seg = file_labels
        ev = np.where(seg != BACKGROUND, seg, NUM_CLASSES)  # video label: the (first) event class of the video
        vid = np.where((seg != BACKGROUND).any(1), ev.min(1), BACKGROUND).astype(np.int64)
        source = "file"
    disagree = ()
    if file_labels is not None and ann_ok:
        ann_seg, _ = labels_from_annotations(annotations, categories)
        disagree = tuple(int(i) for i in np.flatnonzero((ann_seg != file_labels).any(1)))
    return seg, vid, LabelChoice(root, n, labels, source, ann_path, len(annotations), file_labels is not None, disagree)


def _read_orders(root: Path, n: int) -> dict[str, np.ndarray]:
    """Each split's sample indices: in range, distinct, the splits disjoint (a split may be empty)."""
    orders = {}
    for split, name in ORDER_FILES.items():
        _check_array(root / name, ORDER_KEY, f"the {split} split's sample indices", (None,), False)
        order = _read(root / name, ORDER_KEY).astype(np.int64)  # may be empty: a split without rows
        bad = np.flatnonzero((order < 0) | (order >= n))
        if bad.size:
            raise AVEDataError(
                f"{root / name}: dataset '{ORDER_KEY}' has index {int(order[bad[0]])} at position {int(bad[0])} "
                f"({bad.size} out of range), expected indices in [0, {n}) (N={n} from {VISUAL})"
            )
        if np.unique(order).size != order.size:
            raise AVEDataError(
                f"{root / name}: dataset '{ORDER_KEY}' repeats sample indices, expected distinct indices"
            )
        orders[split] = order
    for i, a in enumerate(SPLITS):
        for b in SPLITS[i + 1 :]:
            common = np.intersect1d(orders[a], orders[b])
            if common.size:
                raise AVEDataError(
                    f"{root / ORDER_FILES[a]} and {root / ORDER_FILES[b]}: share {common.size} sample indices "
                    f"(e.g. {int(common[0])}), expected disjoint splits"
                )
    return orders


def _check_weak_files(root: Path, info: ReleaseInfo) -> None:
    """The weak setting's files: video labels agreeing with the segment labels, and the background videos."""
    n, vid, C = info.num_samples, info.video_labels, VISUAL_DIMS[info.features]
    mshape = _check_array(root / MIL, FEATURE_KEY, "video-level one-hot labels", (None, NUM_CLASSES), True)
    _check_count(root / MIL, FEATURE_KEY, mshape[0], n, VISUAL)
    mil = _one_hot_classes(root / MIL, _read(root / MIL, FEATURE_KEY), "sample")
    if not np.array_equal(mil, vid):
        i = int(np.flatnonzero(mil != vid)[0])
        raise AVEDataError(
            f"{root / MIL}: dataset '{FEATURE_KEY}' row {i} says class {int(mil[i])}, but the segment labels "
            f"({info.label_source}) say video class {int(vid[i])}; expected them to agree"
        )
    nl = _check_array(root / NOISY_LABELS, FEATURE_KEY, "background-only video labels", (None, NUM_CLASSES), True)
    m = nl[0]
    nv = _check_array(root / NOISY_VISUAL, FEATURE_KEY, f"{info.features} visual features of background videos",
                      (None, T, GRID, GRID, C), True, _hint(root / NOISY_VISUAL, info.features))
    _check_count(root / NOISY_VISUAL, FEATURE_KEY, nv[0], m, NOISY_LABELS)
    na = _check_array(root / NOISY_AUDIO, FEATURE_KEY, "audio features of background videos", (None, T, AUDIO_DIM),
                      True)
    _check_count(root / NOISY_AUDIO, FEATURE_KEY, na[0], m, NOISY_LABELS)
    info.num_noisy = m
    noisy = _one_hot_classes(root / NOISY_LABELS, _read(root / NOISY_LABELS, FEATURE_KEY), "background video")
    if (noisy != BACKGROUND).any():
        j = int(np.flatnonzero(noisy != BACKGROUND)[0])
        raise AVEDataError(
            f"{root / NOISY_LABELS}: dataset '{FEATURE_KEY}' row {j} says class {int(noisy[j])}, expected "
            f"{BACKGROUND} (background) for every row: these videos hold no event"
        )
    info.noisy_video_labels = noisy


class ReleaseAVE(Dataset):
    """One split of a release directory. Items as ``SyntheticAVE``: visual (T, 7, 7, C) float32,
    audio (T, 128) float32, segment labels (T,) int64, video label () int64 (28 = background video).
    Weak train split: the official train samples, then the M background-only videos."""

    def __init__(self, info: ReleaseInfo, split: str, *, check_values: bool = True):
        if split not in info.orders:
            raise ValueError(f"split must be one of {list(info.orders)}, got {split!r}")
        self.root, self.split, self.setting = info.root, split, info.setting
        # where labels came from, and samples (whole-release indices) where labels.h5 disagrees with them
        self.label_source, self.label_disagreements = info.label_source, list(info.label_disagreements)
        self.label_choice = info.label_choice
        order = info.orders[split]
        items = [np.stack([np.zeros_like(order), order], 1)]
        seg, vid = [info.segment_labels[order]], [info.video_labels[order]]
        if info.setting == "weak" and split == "train":
            j = np.arange(info.num_noisy, dtype=np.int64)
            items.append(np.stack([np.ones_like(j), j], 1))
            seg.append(np.full((info.num_noisy, T), BACKGROUND, dtype=np.int64))
            vid.append(info.noisy_video_labels)
        self.items = np.concatenate(items)  # (n, 2): (0 = annotated / 1 = background video, index)
        self.segment_labels = torch.from_numpy(np.concatenate(seg).astype(np.int64))
        self.video_labels = torch.from_numpy(np.concatenate(vid).astype(np.int64))
        self._files = (
            (VISUAL, AUDIO, NOISY_VISUAL, NOISY_AUDIO)
            if info.setting == "weak" and split == "train"
            else (VISUAL, AUDIO)
        )
        self._handles = None  # opened lazily, per process
        self._pid = None
        if check_values:
            self.check_values()

    def check_values(self) -> None:
        """One pass over this split's features: a NaN, an infinity or a float32 overflow raises
        AVEDataError naming the file, the video and the split (before any of it is used)."""
        import h5py

        for kind in (0, 1):
            positions = np.flatnonzero(self.items[:, 0] == kind)
            if not positions.size:
                continue
            for name in self._files[2 * kind : 2 * kind + 2]:
                with h5py.File(self.root / name, "r") as f:
                    bad = first_non_finite(f[FEATURE_KEY], self.items[positions, 1])
                if bad is not None:
                    row, where, value, count = bad
                    item = int(positions[np.flatnonzero(self.items[positions, 1] == row)[0]])
                    raise AVEDataError(
                        f"{self.root / name}: video {row} (item {item} of the {self.split} split) holds a non-finite "
                        f"feature: {value} at {list(where)} (segment {where[0]}; {count} non-finite value(s) in that "
                        "video); expected finite values within float32's range"
                    )

    def __len__(self) -> int:
        return len(self.items)

    @property
    def is_open(self) -> bool:
        return self._handles is not None and self._pid == os.getpid()

    def _open(self):
        import h5py

        self._handles = [h5py.File(self.root / name, "r")[FEATURE_KEY] for name in self._files]
        self._pid = os.getpid()

    def close(self) -> None:
        if self._handles is not None and self._pid == os.getpid():
            for d in self._handles:
                d.file.close()
        self._handles, self._pid = None, None

    def __getstate__(self):
        state = self.__dict__.copy()
        state["_handles"], state["_pid"] = None, None  # never pickle open HDF5 handles
        return state

    def __getitem__(self, i: int):
        if not self.is_open:  # first item in this process (also after a fork)
            self._open()
        kind, idx = (int(x) for x in self.items[i])
        vis_ds, aud_ds = self._handles[2 * kind], self._handles[2 * kind + 1]
        vis = torch.from_numpy(np.asarray(vis_ds[idx], dtype=np.float32))
        aud = torch.from_numpy(np.asarray(aud_ds[idx], dtype=np.float32))
        return vis, aud, self.segment_labels[i].clone(), self.video_labels[i].clone()
