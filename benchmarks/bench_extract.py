"""Feature extraction throughput: seconds of video per second of wall time, split into decoding, frame
resizing, the audio frontend (resampling + log-mel), the visual network (VGG-19 to block5_pool) and the audio
network (VGGish), with the memory peak. One synthetic video (H.264 + AAC in mp4, like AVE's), the real network
architectures with random weights (or the real weight files when given), the AVE convention by default.

The stage shares are measured in one run, so they hold on a shared machine; absolute rates mean something only
on a quiet one. Memory: the largest resident set while each video is extracted (sampled every 20 ms) and its rise over the
resident set just before (weights and libraries loaded); with several ``--seconds`` the rises show whether
memory grows with the video's length (it should not: frames stream through; compare lengths whose frames fill
whole batches, as the activations of a batch dominate).

    python benchmarks/bench_extract.py [--device cpu] [--seconds 10] [--size 480x360] [--fps 25]
        [--frames-per-second 16] [--batch-size 32] [--threads N] [--vgg19-weights F --vggish-weights F] [--out F]
    python benchmarks/bench_extract.py --device cuda --seconds 10,60
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import sys
import tempfile
import threading
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from examples.ave.extract.convention import Convention  # noqa: E402
from examples.ave.extract.pipeline import Networks, Timer, extract_video, settings_of  # noqa: E402
from examples.ave.extract.synthetic import write_video  # noqa: E402
from examples.ave.extract.vgg19 import VGG19Pool5, load_vgg19  # noqa: E402
from examples.ave.extract.vggish import VGGish, load_vggish  # noqa: E402


def random_networks(device: torch.device) -> Networks:
    """The real architectures, weights drawn N(0, 2 / fan_in) (no file needed)."""
    torch.manual_seed(0)
    modules = []
    for cls in (VGG19Pool5, VGGish):
        m = torch.nn.utils.skip_init(cls, device=device)
        with torch.no_grad():
            for p in m.parameters():
                p.normal_(0, (2 / p[0].numel()) ** 0.5 if p.dim() > 1 else 0.01)
        modules.append(m.eval())
    return Networks(modules[0], modules[1], device, {"random": {"seed": 0}})


def file_networks(args, device: torch.device) -> Networks:
    visual, vfile = load_vgg19(args.vgg19_weights, device=device)
    audio, afile = load_vggish(args.vggish_weights, device=device)
    return Networks(visual, audio, device, {"vgg19": vfile.fingerprint(), "vggish": afile.fingerprint()})


def rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class RssPeak:
    """The largest resident set seen while the block runs (sampled every 20 ms by a thread)."""

    def __enter__(self):
        self.peak, self._stop = rss_mb(), threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self):
        while not self._stop.wait(0.02):
            self.peak = max(self.peak, rss_mb())

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, rss_mb())


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            return next((ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")), platform.machine())
    except OSError:
        return platform.machine()


def measure(video: Path, seconds: float, networks: Networks, convention: Convention, batch_size: int,
            work: Path) -> dict:
    timer = Timer(networks.device)
    if networks.device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(networks.device)
    before = rss_mb()
    start = time.perf_counter()
    with RssPeak() as rss:
        summary = extract_video(video, work / f"{video.stem}.h5", convention, networks,
                                settings_of(convention, networks, "float32"), batch_size=batch_size, timer=timer)
    wall = time.perf_counter() - start
    stages = {k: round(v, 3) for k, v in timer.seconds.items()}
    out = {
        "video_seconds": summary.seconds, "wall_s": round(wall, 3),
        "video_s_per_wall_s": round(summary.seconds / wall, 4),
        "stages_s": stages,
        "stage_share": {k: round(v / wall, 3) for k, v in timer.seconds.items()},
        "video_s_per_stage_s": {k: round(summary.seconds / v, 2) if v > 0 else None for k, v in timer.seconds.items()},
        "rss_before_mb": round(before, 1), "run_peak_rss_mb": round(rss.peak, 1),
        "run_rss_rise_mb": round(rss.peak - before, 1), "process_peak_rss_mb": round(peak_rss_mb(), 1),
    }
    if networks.device.type == "cuda":
        out["cuda_peak_mb"] = round(torch.cuda.max_memory_allocated(networks.device) / 2**20, 1)
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default="cpu")
    p.add_argument("--seconds", default="10", help="video lengths, comma-separated (each its own video)")
    p.add_argument("--size", default="480x360", help="frame size WxH (AVE's YouTube videos: mostly 480x360 or less)")
    p.add_argument("--fps", type=float, default=25.0)
    p.add_argument("--frames-per-second", type=int, default=16)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--vgg19-weights", default=None)
    p.add_argument("--vggish-weights", default=None)
    p.add_argument("--out", default=None, help="write the results as JSON here")
    args = p.parse_args(argv)
    try:
        lengths = [float(s) for s in args.seconds.split(",")]
        width, height = (int(x) for x in args.size.lower().split("x"))
    except ValueError:
        p.error(f"--seconds must be numbers and --size WxH, got {args.seconds!r} and {args.size!r}")
    if (args.vgg19_weights is None) != (args.vggish_weights is None):
        p.error("--vgg19-weights and --vggish-weights go together")
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        p.error("--device cuda: no CUDA device here")
    if args.threads:
        torch.set_num_threads(args.threads)
    networks = file_networks(args, device) if args.vgg19_weights else random_networks(device)
    convention = Convention(frames_per_second=args.frames_per_second)
    result = {"cpu": cpu_model(), "torch": torch.__version__, "threads": torch.get_num_threads(),
              "device": str(device) if device.type != "cuda" else torch.cuda.get_device_name(device),
              "size": f"{width}x{height}", "fps": args.fps, "convention": convention.to_dict(),
              "batch_size": args.batch_size, "weights": "files" if args.vgg19_weights else "random", "runs": []}
    print(f"{result['cpu']}; torch {result['torch']}, {result['threads']} threads; device {result['device']}")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        warm = write_video(tmp / "warm.mp4", 1.0, fps=args.fps, size=(width, height), codecs=("libx264", "aac"))
        measure(warm, 1.0, networks, convention, args.batch_size, tmp)  # first calls: allocator, kernels
        for seconds in lengths:
            video = write_video(tmp / f"v{seconds:g}.mp4", seconds, fps=args.fps, size=(width, height),
                                tone_seconds=range(0, int(seconds), 2), codecs=("libx264", "aac"))
            run = measure(video, seconds, networks, convention, args.batch_size, tmp)
            result["runs"].append(run)
            share = ", ".join(f"{k} {100 * v:.0f}%" for k, v in run["stage_share"].items())
            print(f"{run['video_seconds']} s of {width}x{height} video at {args.fps:g} fps: {run['wall_s']:.1f} s wall, "
                  f"{run['video_s_per_wall_s']:.3f} s of video per s; {share}; peak RSS during the run "
                  f"{run['run_peak_rss_mb']:.0f} MB ({run['run_rss_rise_mb']:+.0f} MB over the {run['rss_before_mb']:.0f} "
                  "MB before it)"
                  + (f", CUDA peak {run['cuda_peak_mb']:.0f} MB" if "cuda_peak_mb" in run else ""))
            rates = ", ".join(f"{k} {v}" for k, v in run["video_s_per_stage_s"].items())
            print(f"  seconds of video per second of each stage: {rates}")
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
