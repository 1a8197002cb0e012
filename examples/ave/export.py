"""Export synthetic AVE in the exact layout of the real feature release.

    python -m examples.cmran export-synthetic --out DIR [--num-videos N] [--features vgg19|resnet151]
        [--dtype float32|float64] [--seed S] [--difficulty X] [--overwrite]

Axis legend: N exported samples, M background-only videos, T=10 segments, 7x7 grid, C visual
channels, A=128 audio channels, K=29 classes.

Writes visual_feature.h5 (N,T,7,7,C), audio_feature.h5 (N,T,128), labels.h5 (N,T,29) one-hot,
mil_labels.h5 (N,29), {train,val,test}_order.h5 ('order'), labels_noisy.h5 (M,29),
visual_feature_noisy.h5 (M,T,7,7,C), audio_feature_noisy.h5 (M,T,128), plus Annotations.txt,
categories.txt and {train,val,test}Set.txt for the exported rows (the real release ships these
too), and export_info.json (seed, features, difficulty, original indices). Feature and label
files use dataset 'avadataset'. Each file is written under a temporary name in DIR and renamed.
DIR is locked while the export writes (a second export or a training run there is refused); a DIR that
holds any file the export would write is refused unless --overwrite; a disk without room for the whole
export is refused before anything is written.
With --num-videos N < 4143, N videos are taken from the three splits in proportion (evenly
spaced along each split's order), kept in their original relative order and re-indexed 0..N-1;
the order files are re-indexed accordingly; M = round(178 N / 4143) (at least 1) background videos.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shlex
from pathlib import Path

import numpy as np

from . import run_lock, signals
from .checks import SEED_MAX, ConfigError, check_out_dir
from .constants import NUM_SEGMENTS, SPLITS, VISUAL_DIMS
from .data.meta import ANNOTATION_HEADER, one_hot
from .data.synthetic import SyntheticAVEGenerator
from .files import atomic_path, atomic_write, check_free_space, remove_stale_temp_files
from .runtime import python_command

BLOCK = 32  # samples generated and written per step
H5_OVERHEAD = 8 << 10  # bytes of an HDF5 file beyond its data: superblock, object headers (a generous guess)
FEATURE_FILES = ("visual_feature.h5", "audio_feature.h5", "visual_feature_noisy.h5", "audio_feature_noisy.h5")
LABEL_FILES = ("labels.h5", "mil_labels.h5", "labels_noisy.h5", *(f"{s}_order.h5" for s in SPLITS))
TEXT_FILES = ("Annotations.txt", "categories.txt", *(f"{s}Set.txt" for s in SPLITS), "export_info.json")


def select_videos(meta, num_videos: int | None):
    """Return (original indices, sorted ascending, new index = position), {split: new-index order}, noisy ids."""
    n_all = meta.num_samples
    if num_videos is None or num_videos >= n_all:
        return np.arange(n_all), {s: meta.orders[s].copy() for s in SPLITS}, np.arange(meta.num_noisy)
    if num_videos < len(SPLITS):
        raise ValueError(f"--num-videos must be >= {len(SPLITS)} (one per split), got {num_videos}")
    sizes = np.array([len(meta.orders[s]) for s in SPLITS])
    want = np.maximum(1, np.round(num_videos * sizes / n_all).astype(int))
    want[0] += num_videos - want.sum()  # the rounding remainder goes to train
    picked = {}
    for s, n in zip(SPLITS, want):
        order = meta.orders[s]
        pos = np.unique(np.round(np.linspace(0, len(order) - 1, n)).astype(int))
        picked[s] = order[pos]
    orig = np.sort(np.concatenate(list(picked.values())))
    new_index = {int(o): i for i, o in enumerate(orig)}
    orders = {s: np.array([new_index[int(o)] for o in picked[s]], dtype=np.int64) for s in SPLITS}
    m = max(1, int(round(meta.num_noisy * num_videos / n_all)))
    noisy = np.unique(np.round(np.linspace(0, meta.num_noisy - 1, m)).astype(int))
    return orig, orders, noisy


@contextlib.contextmanager
def _atomic_h5(path: Path, need_bytes: int):
    """An h5py.File written under a temporary name beside ``path`` and renamed when the block ends
    (``files.atomic_path``: a full disk is ``NoSpaceError``, the temporary file removed)."""
    import h5py

    with atomic_path(path, need_bytes=need_bytes) as tmp:
        f = h5py.File(tmp, "w")
        try:
            yield f
            f.close()
        except BaseException:
            # Empty the file first: HDF5 flushes at close, and a flush that fails too crashes the process later.
            with contextlib.suppress(OSError):
                os.truncate(tmp, 0)
            with contextlib.suppress(Exception):
                f.close()
            raise


def _atomic_text(path: Path, text: str) -> None:
    atomic_write(path, lambda f: f.write(text.encode("utf-8")))


def _write_small(path: Path, key: str, array: np.ndarray) -> None:
    with _atomic_h5(path, array.nbytes + H5_OVERHEAD) as f:
        f.create_dataset(key, data=array)


def _write_features(path_v: Path, path_a: Path, ids, sample_fn, channels: int, dtype, desc: str, progress: bool):
    """The visual features, written block by block as they are generated, then the audio features (kept in
    memory meanwhile: 5 KB a video), each file on its own (so a failure names the file it happened in)."""
    from tqdm import tqdm

    n = len(ids)
    audio = np.empty((n, NUM_SEGMENTS, 128), dtype=dtype)
    with _atomic_h5(path_v, _feature_bytes(n, channels, dtype)[0]) as fv:
        dv = fv.create_dataset(
            "avadataset", (n, NUM_SEGMENTS, 7, 7, channels), dtype=dtype, chunks=(1, NUM_SEGMENTS, 7, 7, channels)
        )
        with tqdm(total=n, desc=desc, unit="video", disable=not progress) as bar:
            for b0 in range(0, n, BLOCK):
                block = [sample_fn(int(i)) for i in ids[b0 : b0 + BLOCK]]
                dv[b0 : b0 + len(block)] = np.stack([v for v, _ in block]).astype(dtype)
                audio[b0 : b0 + len(block)] = np.stack([a for _, a in block]).astype(dtype)
                bar.update(len(block))
                signals.check()  # a signal that h5py swallowed stops here
    _write_small(path_a, "avadataset", audio)


def _feature_bytes(n: int, channels: int, dtype) -> tuple[int, int]:
    """About the sizes of a visual and an audio feature file of n videos (data, chunk index, HDF5 header)."""
    item = np.dtype(dtype).itemsize
    return (n * NUM_SEGMENTS * 49 * channels * item + 256 * n + H5_OVERHEAD,
            n * NUM_SEGMENTS * 128 * item + H5_OVERHEAD)


def _space_needed(out: Path, n: int, m: int, channels: int, dtype) -> int:
    """The most free space the export takes at any moment: the files are written in order (labels and text,
    then the visual and audio features together, then the background videos' pair), and each replaces its
    earlier copy only once it is whole."""
    groups = [(LABEL_FILES + TEXT_FILES, (n + m + 2) * NUM_SEGMENTS * 29 * 4 + 16 * H5_OVERHEAD),
              (FEATURE_FILES[:2], sum(_feature_bytes(n, channels, dtype))),
              (FEATURE_FILES[2:], sum(_feature_bytes(m, channels, dtype)))]
    peak = extra = 0
    for names, size in groups:
        peak = max(peak, extra + size)
        extra += size - sum((out / name).stat().st_size for name in names if (out / name).is_file())
    return peak


def _refuse_replacing(out: Path, overwrite: bool) -> None:
    held = [name for name in FEATURE_FILES + LABEL_FILES + TEXT_FILES if (out / name).exists()]
    if held and not overwrite:
        names = ", ".join(held[:4]) + (f" and {len(held) - 4} more" if len(held) > 4 else "")
        raise ConfigError(f"--out {str(out)!r} already holds {names}, which the export would replace: pass "
                          "--overwrite to replace them, or choose another --out")


def export_synthetic(
    out: str | os.PathLike,
    num_videos: int | None = None,
    features: str = "vgg19",
    dtype: str = "float32",
    seed: int = 0,
    difficulty: float | None = None,
    progress: bool = True,
    overwrite: bool = False,
) -> dict:
    """Write synthetic AVE (or N of its videos) to `out` in the release layout; return the info dict.

    The folder is locked for the export (``run_lock``); files it would replace are refused unless
    ``overwrite``; a disk without room for the export is refused before anything is written."""
    if dtype not in ("float32", "float64"):
        raise ValueError(f"dtype must be 'float32' or 'float64', got {dtype!r}")
    if features not in VISUAL_DIMS:
        raise ValueError(f"features must be one of {sorted(VISUAL_DIMS)}, got {features!r}")
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {out}: exists and is not a directory")
    with run_lock.hold(out, "export-synthetic"):
        _refuse_replacing(out, overwrite)
        remove_stale_temp_files(out, FEATURE_FILES + LABEL_FILES + TEXT_FILES)  # of killed exports
        gen = SyntheticAVEGenerator(seed=seed, features=features, difficulty=difficulty)
        orig, orders, noisy = select_videos(gen.meta, num_videos)
        check_free_space(out, _space_needed(out, len(orig), len(noisy), VISUAL_DIMS[features], dtype),
                         f"the export to {out} ({len(orig)} videos, {features}, {dtype})")
        return _write_export(out, gen, orig, orders, noisy, dtype, progress)


def _write_export(out: Path, gen, orig, orders, noisy, dtype: str, progress: bool) -> dict:
    meta, C = gen.meta, gen.channels
    # labels and text metadata first (small), then the features
    _write_small(out / "labels.h5", "avadataset", one_hot(meta.segment_labels[orig]))
    _write_small(out / "mil_labels.h5", "avadataset", one_hot(meta.video_labels[orig]))
    for s in SPLITS:
        _write_small(out / f"{s}_order.h5", "order", orders[s])
    noisy_labels = np.zeros((len(noisy), 29), dtype=np.float32)
    noisy_labels[:, 28] = 1.0
    _write_small(out / "labels_noisy.h5", "avadataset", noisy_labels)
    lines = [meta.annotations[int(i)].line() for i in orig]
    _atomic_text(out / "Annotations.txt", "\n".join([ANNOTATION_HEADER, *lines]) + "\n")
    _atomic_text(out / "categories.txt", "\n".join(meta.categories) + "\n")
    for s in SPLITS:
        _atomic_text(out / f"{s}Set.txt", "".join(lines[int(i)] + "\n" for i in orders[s]))
    _write_features(out / "visual_feature.h5", out / "audio_feature.h5", orig, gen.sample, C, dtype, "videos", progress)
    _write_features(out / "visual_feature_noisy.h5", out / "audio_feature_noisy.h5", noisy, gen.noisy_sample, C, dtype,
                    "background videos", progress)
    info = {
        "generator": "examples.ave.data.synthetic",
        "seed": gen.seed,
        "features": gen.features,
        "difficulty": gen.difficulty,
        "dtype": dtype,
        "num_videos": len(orig),
        "num_noisy": len(noisy),
        "original_indices": [int(i) for i in orig],
        "noisy_indices": [int(j) for j in noisy],
    }
    _atomic_text(out / "export_info.json", json.dumps(info, indent=1, allow_nan=False) + "\n")
    return info


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", required=True, help="output directory (created if missing)")
    parser.add_argument("--num-videos", type=int, default=None, help="export N videos (default: all 4143)")
    parser.add_argument("--features", default="vgg19", choices=sorted(VISUAL_DIMS), help="visual feature extractor")
    parser.add_argument("--dtype", default="float32", choices=["float32", "float64"],
                        help="feature dtype (the real release is float64)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the synthetic data set")
    parser.add_argument("--difficulty", type=float, default=None, help="synthetic data difficulty (default 1.0)")
    parser.add_argument("--overwrite", action="store_true", help="replace the data set files --out holds")


def main(args: argparse.Namespace) -> int:
    if args.num_videos is not None and args.num_videos < len(SPLITS):
        raise ConfigError(f"--num-videos must be >= {len(SPLITS)} (one video per split), got {args.num_videos}")
    if not 0 <= args.seed <= SEED_MAX:
        raise ConfigError(f"--seed must be an integer in [0, {SEED_MAX}], got {args.seed}")
    if args.difficulty is not None and not 0 <= args.difficulty < float("inf"):
        raise ConfigError(f"--difficulty must be a finite number >= 0, got {args.difficulty}")
    check_out_dir(args.out)
    info = export_synthetic(args.out, args.num_videos, args.features, args.dtype, args.seed, args.difficulty,
                            overwrite=args.overwrite)
    print(
        f"wrote {info['num_videos']} videos + {info['num_noisy']} background videos ({args.features}, {args.dtype}) to {args.out}"
    )
    print(f"train on it with: {python_command(getattr(args, 'module', 'examples.ave'))} train --data {shlex.quote(str(args.out))}")
    return 0

