"""The data sets of a run: its splits as the data package builds them, or another copy of its data."""

from __future__ import annotations

import dataclasses

from torch.utils.data import Dataset, Subset

from .config import TrainConfig
from .constants import SPLITS


def with_data(train_cfg: TrainConfig, data: str | None) -> TrainConfig:
    """The training run's data config with ``data`` swapped in (synthetic-only options dropped for a directory)."""
    if data is None or data == train_cfg.data:
        return train_cfg
    synthetic = data == "synthetic"
    cfg = dataclasses.replace(train_cfg, data=data, difficulty=train_cfg.difficulty if synthetic else None,
                              data_seed=(train_cfg.data_seed or 0) if synthetic else None)
    cfg.validate()
    return cfg


def build_splits(model_cfg, train_cfg: TrainConfig, splits: tuple[str, ...] = SPLITS) -> dict[str, Dataset]:
    """{"train", "val", "test"} datasets of the data package (or those of ``splits``); the first ``subset``
    videos if set. A data directory's features are checked for NaN/inf here, before any is used."""
    from .data import build_datasets  # imported here: configs and models do not need the data package

    datasets = build_datasets(
        train_cfg.data,
        setting=model_cfg.setting,
        features=model_cfg.features,
        seed=train_cfg.data_seed,
        difficulty=train_cfg.difficulty,
        splits=splits,
    )
    if train_cfg.subset is not None:
        datasets = {k: Subset(d, range(min(train_cfg.subset, len(d)))) for k, d in datasets.items()}
    return datasets


__all__ = ["build_splits", "with_data"]
