"""The ``extract`` subcommand: video files to the AVE release layout.

    python -m examples.ave.extract --videos DIR --out FEATS --vgg19-weights vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5 \\
        --vggish-weights vggish-10086976.pth [--labels Annotations.txt --split-ratio 0.8,0.1,0.1]
    torchrun --nproc-per-node 4 -m examples.ave.extract ...   (each rank its share, rank 0 joins)

Bad options exit with status 2 before any work; a folder run goes on past a bad video, lists every failure
at the end and exits with 1. docs/own_videos.md describes the convention, the weight files and the layout.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
from pathlib import Path

import torch

from .convention import AUDIO_CHUNKINGS, FRAME_COUNTS, FRAME_RULES, VGGISH_OUTPUTS, VGGISH_POSTPROCESSING, Convention
from .decode import MAX_PIXELS
from .errors import ConfigError
from .labels import read_categories, read_labels
from .pipeline import Networks, settings_of
from .run import Options, check_out, device_for, list_videos, run, video_ids
from .writer import SPLITS

DTYPES = ("float32", "float64")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--videos", required=True, nargs="+", metavar="PATH",
                   help="folders (their .mp4/.mkv/.webm/.avi), video files, or lists of paths (.txt, one a line)")
    p.add_argument("--out", required=True, help="the release folder to write (its .extract/ keeps finished videos)")
    add_weight_arguments(p, required=True)
    p.add_argument("--labels", default=None, metavar="FILE",
                   help="Category&VideoID&Quality&StartTime&EndTime lines (seconds of each video): writes labels.h5")
    p.add_argument("--categories", default=None, metavar="FILE", help="28 category names, one a line (default: AVE's)")
    p.add_argument("--split", default="test", choices=SPLITS, help="the split every row goes to (default test)")
    p.add_argument("--split-ratio", default=None, metavar="TRAIN,VAL,TEST",
                   help="with --labels: share the videos among train/val/test, e.g. 0.8,0.1,0.1")
    p.add_argument("--device", default="auto", help="auto (the GPU when there is one), cpu, cuda, cuda:N")
    p.add_argument("--batch-size", type=int, default=32, help="frames per VGG-19 batch (default 32)")
    p.add_argument("--dtype", default="float32", choices=DTYPES,
                   help="stored dtype (the release is float64; the loader reads float32 either way)")
    p.add_argument("--max-pixels", type=int, default=MAX_PIXELS, help=f"largest frame accepted (default {MAX_PIXELS})")
    add_convention_arguments(p.add_argument_group("the convention (defaults: the AVE release's)"))


def add_weight_arguments(p, *, required: bool) -> None:
    """--vgg19-weights, --vggish-weights, --vggish-pca (also predict/visualize --video's)."""
    p.add_argument("--vgg19-weights", required=required, default=None, metavar="FILE",
                   help="vgg19_weights_tf_dim_ordering_tf_kernels[_notop].h5 (Keras: the release's network) or "
                        "vgg19-dcbb9e9d.pth (torchvision: not the release's numbers)")
    p.add_argument("--vggish-weights", required=required, default=None, metavar="FILE",
                   help="torchvggish's vggish-10086976.pth")
    p.add_argument("--vggish-pca", default=None, metavar="FILE",
                   help="vggish_pca_params-970ea276.pth, only with --vggish-postprocess audioset")


def add_convention_arguments(g) -> None:
    """The convention's flags, defaults the AVE release's (also predict/visualize --video's)."""
    g.add_argument("--frames-per-second", type=int, default=16, help="frames averaged per second (AVE: 16)")
    g.add_argument("--frame-rule", default="index", choices=FRAME_RULES,
                   help="index: AVE's F = int(N/10) by frame index; time: by timestamp (variable frame rates)")
    g.add_argument("--frame-count", default="decoded", choices=FRAME_COUNTS,
                   help="N of the index rule: frames decoded, or the container's count (the 2018 code's len(vid))")
    g.add_argument("--wav-rate", type=int, default=44100,
                   help="PCM rate of the audio before VGGish's own 16 kHz resampling (AVE: 44100)")
    g.add_argument("--audio-chunking", default="second", choices=AUDIO_CHUNKINGS,
                   help="second: one VGGish example per second (AVE); stream: stock VGGish, 0.96 s hop")
    g.add_argument("--vggish-output", default="relu", choices=VGGISH_OUTPUTS,
                   help="relu: the 2018 graph's ReLU'd embedding (AVE); linear: today's TF VGGish")
    g.add_argument("--vggish-postprocess", default="none", choices=VGGISH_POSTPROCESSING,
                   help="none (AVE) or audioset: PCA + 8-bit quantization (needs --vggish-pca)")


def parse_ratio(text: str | None) -> tuple[float, float, float] | None:
    if text is None:
        return None
    try:
        parts = tuple(float(x) for x in text.split(","))
    except ValueError:
        parts = ()
    if len(parts) != 3 or any(not (x >= 0) for x in parts) or sum(parts) <= 0:
        raise ConfigError(f"--split-ratio must be three non-negative numbers TRAIN,VAL,TEST with a positive sum, "
                          f"got {text!r}")
    return parts


def check_options(args: argparse.Namespace) -> None:
    if args.batch_size < 1:
        raise ConfigError(f"--batch-size must be >= 1, got {args.batch_size}")
    if args.split_ratio is not None and args.labels is None:
        raise ConfigError("--split-ratio needs --labels: rows without labels serve predict only (use --split)")
    if args.categories is not None and args.labels is None:
        raise ConfigError("--categories has no effect without --labels")
    check_network_options(args)
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {args.out!r} is a file, expected a folder")


def check_network_options(args: argparse.Namespace) -> None:
    """--max-pixels and the PCA flags (extract's and predict/visualize --video's)."""
    if args.max_pixels < 1:
        raise ConfigError(f"--max-pixels must be >= 1, got {args.max_pixels}")
    if (args.vggish_pca is None) != (args.vggish_postprocess != "audioset"):
        raise ConfigError("--vggish-pca and --vggish-postprocess audioset go together, got "
                          f"--vggish-pca {args.vggish_pca!r} with --vggish-postprocess {args.vggish_postprocess!r}")


def convention_of(args: argparse.Namespace, visual_kind: str = "keras") -> Convention:
    """The convention the flags ask for (``visual_kind``: the VGG-19 weight file's format)."""
    return Convention(args.frames_per_second, args.frame_rule, args.frame_count, visual_kind, args.wav_rate,
                      args.audio_chunking, args.vggish_output, args.vggish_postprocess)


def load_networks(args: argparse.Namespace, device: torch.device) -> tuple[Networks, str]:
    """The networks and the visual weights' convention name ('keras' or 'torchvision')."""
    from .vgg19 import load_vgg19
    from .vggish import load_pca, load_vggish

    visual, vfile = load_vgg19(args.vgg19_weights, device=device)
    audio, afile = load_vggish(args.vggish_weights, final_relu=args.vggish_output == "relu", device=device)
    weights = {"vgg19": vfile.fingerprint(), "vggish": afile.fingerprint()}
    pca = None
    if args.vggish_pca is not None:
        pca, pfile = load_pca(args.vggish_pca)
        weights["vggish_pca"] = pfile.fingerprint()
    kind = "keras" if vfile.format.startswith("keras") else "torchvision"
    return Networks(visual, audio, device, weights, pca), kind


def main(args: argparse.Namespace) -> int:
    check_options(args)
    ratio = parse_ratio(args.split_ratio)
    ids = video_ids(list_videos(args.videos))
    out = Path(args.out)
    check_out(out)
    categories = read_categories(args.categories) if args.labels is not None else None
    labels = read_labels(args.labels, categories) if args.labels is not None else None
    device = device_for(args.device)
    convention = convention_of(args)  # checked before the weight files are read
    networks, visual_kind = load_networks(args, device)
    convention = dataclasses.replace(convention, visual_weights=visual_kind)
    if convention.differences() and int(os.environ.get("RANK", "0")) == 0:
        print(f"note: not the AVE release's convention: {'; '.join(convention.differences())}")
    options = Options(out, convention, settings_of(convention, networks, args.dtype), args.dtype, args.batch_size,
                      args.max_pixels, args.split, ratio, labels, categories)
    out.mkdir(parents=True, exist_ok=True)
    from .work import WORK_DIR, remove_stale_temps

    remove_stale_temps(out / WORK_DIR)
    remove_stale_temps(out)
    return run(ids, networks, options)
