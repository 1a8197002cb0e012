"""AVE data for the pipeline: synthetic AVE (default) and the real release loader.

Axis legend: T=10 segments, 7x7 visual grid, C visual channels (VISUAL_DIMS), 128 audio channels.

    from examples.ave.data import build_datasets, NUM_EVENT_CLASSES, BACKGROUND, VISUAL_DIMS
    splits = build_datasets("synthetic" | "/path/to/release", setting="supervised" | "weak",
                            features="vgg19" | "resnet151", seed=0, difficulty=None)
    visual, audio, segment_labels, video_label = splits["train"][i]
    # (10, 7, 7, C) float32, (10, 128) float32, (10,) int64 in 0..28, () int64 in 0..28
    # (labels UNKNOWN = -1 in an unlabelled extract folder: predict and visualize only; see extracted.py)

See docs/data.md for the generative model, the release layout and the export.
"""

from __future__ import annotations

import os

from torch.utils.data import Dataset

from ..constants import AUDIO_DIM, BACKGROUND, NUM_CLASSES, NUM_EVENT_CLASSES, NUM_SEGMENTS, SPLITS, VISUAL_DIMS
from .extracted import UNKNOWN, is_extract_folder, release_setting
from .meta import AVEDataError, load_meta
from .release import ReleaseAVE, ReleaseInfo, validate_release
from .synthetic import SyntheticAVE, SyntheticAVEGenerator, SyntheticConfig

__all__ = [
    "AUDIO_DIM",
    "BACKGROUND",
    "VISUAL_DIMS",
    "NUM_CLASSES",
    "NUM_EVENT_CLASSES",
    "NUM_SEGMENTS",
    "SPLITS",
    "AVEDataError",
    "UNKNOWN",
    "ReleaseAVE",
    "ReleaseInfo",
    "SyntheticAVE",
    "SyntheticAVEGenerator",
    "SyntheticConfig",
    "build_datasets",
    "is_extract_folder",
    "load_meta",
    "validate_release",
]


def build_datasets(
    data: str | os.PathLike = "synthetic",
    setting: str = "supervised",
    features: str = "vgg19",
    seed: int = 0,
    difficulty: float | None = None,
    *,
    labels: str = "auto",
    splits: tuple[str, ...] = SPLITS,
) -> dict[str, Dataset]:
    """Return {"train", "val", "test"} datasets of (visual, audio, segment_labels, video_label).

    data: "synthetic" (generated features on the real labels and splits) or the path of a
        directory in the real release layout (validated here, before returning: AVEDataError).
    setting: "supervised", or "weak" (train = official train + the background-only videos, label 28).
    features: "vgg19" (7x7x512) or "resnet151" (7x7x2048).
    seed, difficulty: synthetic only (difficulty None = 1.0, the default calibration).
    labels: release only; where segment labels come from ("auto", "annotations", "file"), see
        ``validate_release``.
    splits: the splits to build (a release's features are checked for NaN/inf once, when its split is
        built: only the splits asked for are read).
    """
    if isinstance(splits, str) or not splits or any(s not in SPLITS for s in splits):
        raise ValueError(f"splits must be a non-empty tuple of {SPLITS}, got {splits!r}")
    if setting not in ("supervised", "weak"):
        raise ValueError(f"setting must be 'supervised' or 'weak', got {setting!r}")
    if features not in VISUAL_DIMS:
        raise ValueError(f"features must be one of {sorted(VISUAL_DIMS)}, got {features!r}")
    if isinstance(data, str) and data == "synthetic":
        gen = SyntheticAVEGenerator(seed=seed, features=features, difficulty=difficulty)
        return {split: SyntheticAVE(gen, split, setting) for split in splits}
    if not isinstance(data, (str, os.PathLike)):
        raise TypeError(f"data must be 'synthetic' or a directory path, got {type(data).__name__}")
    setting = release_setting(data, setting, splits)  # an extract folder: no weak-setting files (extracted.py)
    info = validate_release(data, features=features, setting=setting, labels=labels)
    return {split: ReleaseAVE(info, split) for split in splits}
