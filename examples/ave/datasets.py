"""The data sets of a run: its splits as the data package builds them, or another copy of its data; which
file a data directory's segment labels come from."""

from __future__ import annotations

import dataclasses

from torch.utils.data import Dataset, Subset

from .config import TrainConfig
from .constants import SPLITS


def with_data(train_cfg: TrainConfig, data: str | None, labels: str | None = None) -> TrainConfig:
    """The training run's data config with ``data`` swapped in (synthetic-only options dropped for a directory)
    and, if given, ``labels`` (where a data directory's segment labels come from)."""
    if (data is None or data == train_cfg.data) and labels in (None, train_cfg.labels):
        return train_cfg
    data = train_cfg.data if data is None else data
    synthetic = data == "synthetic"
    cfg = dataclasses.replace(train_cfg, data=data, difficulty=train_cfg.difficulty if synthetic else None,
                              data_seed=(train_cfg.data_seed or 0) if synthetic else None,
                              labels=labels or ("auto" if synthetic else train_cfg.labels))
    cfg.validate()
    return cfg


def build_splits(model_cfg, train_cfg: TrainConfig, splits: tuple[str, ...] = SPLITS) -> dict[str, Dataset]:
    """{"train", "val", "test"} datasets of the data package (or those of ``splits``); the first ``subset``
    videos if set. A data directory's features are checked for NaN/inf here, before any is used, and its
    labels: a disagreement between labels.h5 and Annotations.txt that ``train_cfg.labels`` ('auto') did not
    settle is refused (``AVEDataError``)."""
    from .data import AVEDataError, build_datasets  # imported here: configs and models do not need the data package

    datasets = build_datasets(
        train_cfg.data,
        setting=model_cfg.setting,
        features=model_cfg.features,
        seed=train_cfg.data_seed,
        difficulty=train_cfg.difficulty,
        labels=train_cfg.labels,
        splits=splits,
    )
    choice = _label_choice(datasets)
    if choice is not None and choice.problem() is not None:
        raise AVEDataError(choice.problem())
    if train_cfg.subset is not None:
        datasets = {k: Subset(d, range(min(train_cfg.subset, len(d)))) for k, d in datasets.items()}
    return datasets


def _label_choice(datasets: dict[str, Dataset]):
    first = next(iter(datasets.values()))
    return getattr(first.dataset if isinstance(first, Subset) else first, "label_choice", None)


def label_source(datasets: dict[str, Dataset]) -> str | None:
    """'annotations' or 'file' for a data directory's splits; None for synthetic data."""
    choice = _label_choice(datasets)
    return None if choice is None else choice.source


def label_note(datasets: dict[str, Dataset]) -> str | None:
    """'segment labels: DIR/Annotations.txt (labels.h5 agrees)' and the like; None for synthetic data."""
    choice = _label_choice(datasets)
    return None if choice is None else choice.note()


__all__ = ["build_splits", "label_note", "label_source", "with_data"]
