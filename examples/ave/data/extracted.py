"""Extract folders (written by ``python -m examples.ave extract``) as the pipeline's data: recognised by their
``videos.json`` (format ``avattn-ave-extract``), read like any release folder, with three differences.

Axis legend: N rows, T = 10 segments.

* **Unlabelled** (no ``labels.h5``, no ``Annotations.txt``: extracted without ``--labels``): the shipped AVE
  annotations are never used for it. Its rows get the segment and video label ``UNKNOWN`` (-1) so that
  ``predict`` and ``visualize`` run on it; ``train`` and ``evaluate`` refuse it ("this folder has no labels").
* **Rows are named** by the index's row ids, ``<video id>@<start second>`` (``row_ids``), and grouped back into
  videos (``index_rows``) so that ``predict`` reports events on each video's own timeline.
* **Empty splits**: an order file whose ``order`` holds no index is a valid empty split (``extract --split``
  puts every row in one split). This holds for any release folder; a command that needs rows from an empty
  split refuses, naming it (``require_rows``; ``check_trainable`` for ``train``, before any work).

Extract folders serve the supervised setting: a weak-setting model can predict and be evaluated on them (the
weak setting changes only the train split), but not train on them (no ``mil_labels.h5``, no background videos).
"""

from __future__ import annotations

import functools
import json
import os
from pathlib import Path

import numpy as np
from torch.utils.data import Subset

from ..checks import ConfigError
from ..constants import NUM_SEGMENTS, SPLITS
from .meta import AVEDataError

INDEX, INDEX_FORMAT = "videos.json", "avattn-ave-extract"
LABEL_FILES = ("labels.h5", "Annotations.txt")
UNKNOWN = -1  # the segment and video label of every row of an unlabelled extract folder
ROW_KEYS = ("row_id", "video_id", "start", "real_seconds", "overlap_seconds", "split")
NO_LABELS = ("this folder has no labels (no labels.h5, no Annotations.txt: it was extracted without --labels), "
             "so {what}; extract it again with --labels FILE (Category&VideoID&Quality&StartTime&EndTime lines) to "
             "{purpose}, or use predict / visualize, which need none")


@functools.lru_cache(maxsize=8)
def _load(path: str, mtime_ns: int, size: int) -> dict | None:
    try:
        index = json.loads(Path(path).read_bytes().decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise AVEDataError(f"{path}: not readable as JSON ({exc}); expected the index extract writes") from None
    return index if isinstance(index, dict) and index.get("format") == INDEX_FORMAT else None


def read_index(root: str | os.PathLike) -> dict | None:
    """``root``'s ``videos.json`` when extract wrote it (None otherwise: no index, or someone else's file)."""
    path = Path(root) / INDEX
    try:
        st = path.stat()
    except OSError:
        return None
    return _load(os.fspath(path), st.st_mtime_ns, st.st_size) if path.is_file() else None


def is_extract_folder(root: str | os.PathLike) -> bool:
    return read_index(root) is not None


def is_unlabelled(root: str | os.PathLike) -> bool:
    """An extract folder without labels.h5 and Annotations.txt."""
    return is_extract_folder(root) and not any((Path(root) / name).is_file() for name in LABEL_FILES)


def index_rows(root: str | os.PathLike, n: int) -> list[dict]:
    """The index's N rows, checked against the features' N; AVEDataError naming what is wrong."""
    path = Path(root) / INDEX
    rows = read_index(root)["rows"] if is_extract_folder(root) else None
    if not isinstance(rows, list) or len(rows) != n:
        found = f"{len(rows)} rows" if isinstance(rows, list) else "no list of rows"
        raise AVEDataError(f"{path}: holds {found}, expected {n} (the rows of visual_feature.h5 beside it)")
    for i, row in enumerate(rows):
        missing = [k for k in ROW_KEYS if not isinstance(row, dict) or k not in row]
        if missing:
            raise AVEDataError(f"{path}: row {i} lacks {missing}, expected the keys {list(ROW_KEYS)}")
    return rows


def unknown_labels(root: Path, n: int, labels: str) -> tuple:
    """What the release loader's ``_segment_labels`` returns for an unlabelled extract folder: UNKNOWN segment
    and video labels, source "none", no disagreement; as (seg (N, T), vid (N,), source, disagreements), or as
    (seg, vid, LabelChoice) where the loader reports its label choice (``label_sources.py``, issue 22)."""
    if labels != "auto":
        raise AVEDataError(f"{root}: labels={labels!r} asks for {'labels.h5' if labels == 'file' else 'Annotations.txt'}"
                           f", but {NO_LABELS.format(what='there is nothing to read', purpose='label it')}")
    index_rows(root, n)
    seg, vid = np.full((n, NUM_SEGMENTS), UNKNOWN, dtype=np.int64), np.full(n, UNKNOWN, dtype=np.int64)
    choice = _no_label_choice(root, n)
    return (seg, vid, "none", []) if choice is None else (seg, vid, choice)


try:  # where the loader reports its label choice (label_sources.py, issue 22), say "none" in its terms
    from .label_sources import LabelChoice
except ImportError:  # pragma: no cover - before issue 22: the loader returns (seg, vid, source, disagreements)
    LabelChoice = None

if LabelChoice is not None:

    class NoLabels(LabelChoice):
        """The label choice of an unlabelled extract folder: none, and nothing to refuse."""

        def note(self) -> str:
            return f"segment labels: none ({self.root} is an extract folder without labels: predictions only)"

        def problem(self) -> None:
            return None


def _no_label_choice(root: Path, n: int):
    return None if LabelChoice is None else NoLabels(root, n, "auto", "none", root / "Annotations.txt", 0, False, ())


def release_setting(root: str | os.PathLike, setting: str, splits: tuple[str, ...]) -> str:
    """The setting to validate ``root`` in: an extract folder has no weak-setting files, which only the weak
    train split reads; its other splits are the supervised ones."""
    if setting != "weak" or not is_extract_folder(root):
        return setting
    if "train" in splits:
        raise AVEDataError(f"{root}: an extract folder holds no weak-setting files (mil_labels.h5, background "
                           "videos): a weak model can predict and be evaluated on it, not train on it")
    return "supervised"


def _unwrap(dataset):
    return dataset.dataset if isinstance(dataset, Subset) else dataset


def _positions(dataset) -> list[int]:
    """The whole-folder row index of each item of ``dataset`` (a Subset's items in its order)."""
    base = _unwrap(dataset)
    rows = [int(i) for i in base.items[:, 1]]
    return [rows[i] for i in dataset.indices] if isinstance(dataset, Subset) else rows


def row_ids(dataset) -> list[str] | None:
    """``<video id>@<start>`` for each item of an extract folder's split; None for other data."""
    root = getattr(_unwrap(dataset), "root", None)
    if root is None or not is_extract_folder(root):
        return None
    rows = read_index(root)["rows"]
    return [rows[i]["row_id"] for i in _positions(dataset)]


def split_rows(dataset) -> list[dict] | None:
    """The index rows of each item of an extract folder's split (with ``row``, its whole-folder index)."""
    root = getattr(_unwrap(dataset), "root", None)
    if root is None or not is_extract_folder(root):
        return None
    rows = read_index(root)["rows"]
    return [{**rows[i], "row": i} for i in _positions(dataset)]


def require_rows(dataset, split: str, command: str) -> None:
    """Refuse an empty split for a command that needs rows from it, naming the split and the non-empty ones."""
    if len(dataset):
        return
    root = getattr(_unwrap(dataset), "root", None)
    where = f"{root}: " if root is not None else ""
    others = [s for s in SPLITS if s != split and root is not None and _order_size(root, s)]
    hint = f"; this folder's rows are in {', '.join(others)} (--split)" if others else ""
    raise AVEDataError(f"{where}the {split} split holds no rows ({split}_order.h5 is empty): {command} needs at "
                       f"least one{hint}")


def require_labels(dataset, command: str) -> None:
    """Refuse an unlabelled extract folder for a command that scores against labels."""
    base = _unwrap(dataset)
    if getattr(base, "label_source", None) == "none":
        raise AVEDataError(f"{base.root}: " + NO_LABELS.format(what=f"{command} has nothing to score against",
                                                               purpose=command))


def _order_size(root: str | os.PathLike, split: str) -> int | None:
    """The number of indices in ``root``'s order file of ``split``; None when it cannot be read."""
    import h5py

    try:
        with h5py.File(Path(root) / f"{split}_order.h5", "r") as f:
            return int(f["order"].shape[0])
    except (OSError, KeyError, IndexError, TypeError):
        return None


def check_trainable(data: str, setting: str, select_on: str) -> None:
    """Before any work: ``train --data DIR`` needs labels and rows in train, val (and test: the final score, and
    the selection with --select-on test). ConfigError naming what is missing."""
    if data == "synthetic" or not os.path.isdir(data):
        return
    if is_unlabelled(data):
        raise ConfigError(f"--data {data!r}: " + NO_LABELS.format(what="train has nothing to learn from",
                                                                   purpose="train on it"))
    if setting == "weak" and is_extract_folder(data):
        raise ConfigError(f"--data {data!r}: an extract folder holds no weak-setting files (mil_labels.h5, "
                          "background videos): train it with --setting supervised")
    empty = [s for s in SPLITS if _order_size(data, s) == 0]
    if empty:
        raise ConfigError(f"--data {data!r}: the {' and '.join(empty)} split{'s hold' if len(empty) > 1 else ' holds'}"
                          f" no rows ({', '.join(f'{s}_order.h5' for s in empty)} empty): train needs rows in train, "
                          f"val and test (selection on val{', test' if select_on == 'test' else ''}, the final "
                          "score on test); extract with --labels and --split-ratio TRAIN,VAL,TEST")


__all__ = ["INDEX", "INDEX_FORMAT", "UNKNOWN", "check_trainable", "index_rows", "is_extract_folder",
           "is_unlabelled", "read_index", "release_setting", "require_labels", "require_rows", "row_ids",
           "split_rows", "unknown_labels"]
