"""``predict --video FILE`` and ``visualize --video FILE``: the options that extract one video before the command
runs, and that extraction, into a work folder in the release layout (``--work-dir``).

The work folder is an extract folder like any other (``python -m examples.ave extract --videos FILE --out DIR``
with the same flags writes the same files): its ``.extract/<video id>.h5`` is kept, so a second command on the
same video with the same settings (convention, weight files, dtype) skips the extraction, and one with other
settings is refused before any work. Its release files hold the rows of the last video extracted there.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
from pathlib import Path
from types import SimpleNamespace

from ..checks import ConfigError
from ..data.meta import AVEDataError
from .cli import add_convention_arguments, add_weight_arguments, check_network_options, convention_of, load_networks
from .decode import MAX_PIXELS, probe
from .errors import VideoError
from .pipeline import settings_of
from .run import Options, check_out, check_work_files, extract_shard, is_done, join, video_ids
from .vgg19 import FLAG as VGG19_FLAG
from .vggish import FLAG as VGGISH_FLAG
from .vggish import PCA_FLAG
from .weights import check_file, check_hash_in_name, is_hdf5, sha256_of
from .work import WORK_DIR, remove_stale_temps

NEEDED = ("vgg19_weights", "vggish_weights")


def add_video_arguments(p: argparse.ArgumentParser, command: str) -> None:
    """The ``--video`` option group of ``command`` (predict or visualize)."""
    default_work = "FOLDER/features, FOLDER = --out's folder" if command == "predict" else "--out/features"
    g = p.add_argument_group("--video FILE: one video file in, extracted first (the flags of python -m examples.ave "
                             "extract; docs/own_videos.md)")
    g.add_argument("--video", default=None, metavar="FILE",
                   help="a video file (.mp4, .mkv, .webm, .avi, ...): extract it, then "
                        + ("its events and a timeline figure" if command == "predict" else
                           "the spatial attention over its frames, second by second"))
    g.add_argument("--work-dir", default=None, metavar="DIR",
                   help=f"the extract folder the video's features go to; a re-run with the same settings reuses "
                        f"them (default: {default_work})")
    add_weight_arguments(g, required=False)
    g.add_argument("--frame-batch-size", type=int, default=32, help="frames per VGG-19 batch (extract's --batch-size)")
    g.add_argument("--max-pixels", type=int, default=MAX_PIXELS, help="largest frame accepted")
    add_convention_arguments(g)


def check_video_options(args: argparse.Namespace, default_work: Path) -> Path:
    """Before any work: the video, the weight flags, the convention, the work folder; returns the work folder."""
    video = Path(args.video)
    if not video.is_file():
        raise ConfigError(f"--video {args.video!r}: {'a directory' if video.is_dir() else 'no such file'}, expected "
                          "a video file (to predict a folder of videos, extract it, then --data)")
    for flag in ("data", "videos"):
        if getattr(args, flag, None) is not None:
            raise ConfigError(f"--video and --{flag} exclude each other (--video reads one file; --{flag} a data "
                              "folder's rows)")
    missing = [f"--{n.replace('_', '-')}" for n in NEEDED if getattr(args, n) is None]
    if missing:
        raise ConfigError(f"--video needs {' and '.join(missing)} FILE: the networks that extract its features "
                          "(docs/own_videos.md, 'The weight files'; nothing is downloaded)")
    if args.frame_batch_size < 1:
        raise ConfigError(f"--frame-batch-size must be >= 1, got {args.frame_batch_size}")
    check_network_options(args)
    convention_of(args)
    work = Path(args.work_dir) if args.work_dir is not None else default_work
    if work.exists() and not work.is_dir():
        raise ConfigError(f"--work-dir {os.fspath(work)!r} is a file, expected a folder")
    check_out(work)
    _check_not_a_release_of_others(work)
    return work


def _check_not_a_release_of_others(work: Path) -> None:
    """--video rewrites the work folder's release files with its one video's rows: refuse a folder ``extract``
    made of several videos or with labels (those would be lost; its per-video files would not)."""
    from ..data.extracted import read_index

    index = read_index(work) if work.is_dir() else None
    videos = len(index.get("videos", [])) if index is not None else 0
    labelled = any((work / name).exists() for name in ("labels.h5", "Annotations.txt"))
    if videos > 1 or labelled:
        what = "labelled" if labelled else f"of {videos} videos"
        raise ConfigError(f"--work-dir {os.fspath(work)!r} is an extract folder {what}: --video would replace its "
                          "release files by the rows of one video; choose another --work-dir")


def weight_fingerprints(args: argparse.Namespace) -> tuple[str, dict]:
    """(VGG-19's convention name, each weight file's format and SHA-256) as ``load_networks`` records them, without
    reading the weights: enough to recognise a finished extraction."""
    import h5py

    from .vgg19 import KERAS_TOP

    files = {"vgg19": (VGG19_FLAG, args.vgg19_weights), "vggish": (VGGISH_FLAG, args.vggish_weights)}
    if args.vggish_pca is not None:
        files["vggish_pca"] = (PCA_FLAG, args.vggish_pca)
    out = {}
    for name, (flag, raw) in files.items():
        path = check_file(flag, raw)
        sha = sha256_of(path)
        check_hash_in_name(flag, path, sha)
        fmt = {"vggish": "torchvggish", "vggish_pca": "vggish-pca"}.get(name, "torchvision")
        if name == "vgg19" and is_hdf5(path):
            with h5py.File(path, "r") as f:
                root = f["model_weights"] if "model_weights" in f else f
                fmt = "keras-full" if all(k in root for k in KERAS_TOP) else "keras-notop"
        out[name] = {"format": fmt, "sha256": sha}
    return ("keras" if out["vgg19"]["format"].startswith("keras") else "torchvision"), out


def extract_one(args: argparse.Namespace, device, work: Path, log=print) -> str:
    """Extract ``args.video`` into ``work`` (or reuse it: the networks are then not even read) and write the
    folder's release files; its video id. AVEDataError naming the file when it cannot be extracted."""
    ids = video_ids([Path(os.path.abspath(args.video))])  # the file the index records, wherever it is read from
    video_id = next(iter(ids))
    try:
        probe(args.video, args.max_pixels)  # a file that is no video is refused before the networks are read
    except VideoError as exc:
        raise AVEDataError(f"--video: {exc}") from None
    visual_kind, fingerprints = weight_fingerprints(args)
    convention = dataclasses.replace(convention_of(args), visual_weights=visual_kind)
    if convention.differences():
        log(f"note: not the AVE release's convention: {'; '.join(convention.differences())}")
    options = Options(work, convention, settings_of(convention, SimpleNamespace(weights=fingerprints), "float32"),
                      "float32", args.frame_batch_size, args.max_pixels, "test")
    work.mkdir(parents=True, exist_ok=True)
    remove_stale_temps(work / WORK_DIR)
    remove_stale_temps(work)
    try:
        check_work_files(ids, options)
    except ConfigError as exc:
        raise ConfigError(str(exc).replace("--out", "--work-dir")) from None
    if is_done(video_id, ids[video_id], options):
        log(f"{args.video}: features of an earlier run reused ({work / WORK_DIR / (video_id + '.h5')})")
    else:
        networks, _ = load_networks(args, device)
        if networks.weights != fingerprints:  # pragma: no cover - the same files read twice
            raise ConfigError(f"the weight files changed while being read: {networks.weights} != {fingerprints}")
        outcome = extract_shard(ids, networks, options, log=log)
        if outcome.failures:
            raise AVEDataError(f"--video: {outcome.failures[0]}")
    join(ids, [video_id], options, log)
    return video_id


__all__ = ["add_video_arguments", "check_video_options", "extract_one", "weight_fingerprints"]
