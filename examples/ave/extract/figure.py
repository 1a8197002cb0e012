"""The figures of docs/own_videos.md, made from a synthetic video (``synthetic.py``): which frames stand for
each second, the per-second VGGish examples of its audio, and how whole seconds become 10-second rows; and what
``visualize --video`` draws.

Axis legend: D whole seconds, k = 16 samples per second, t 96 log-mel frames, m 64 mel bands.

    python -m examples.ave.extract.figure --out docs/own_videos_synthetic.png
    python -m examples.ave.extract.figure --which visualize --out docs/own_videos_visualize.png
"""

from __future__ import annotations

import argparse
import tempfile
from fractions import Fraction
from pathlib import Path

import numpy as np
import torch

from . import logmel
from .decode import frames_at, probe, scan
from .pipeline import mono_float
from .resample import resample
from .sampling import index_rule, time_rule
from .synthetic import read_frame_code, write_video
from .windows import windows

SECONDS, FPS, TONES = 12, Fraction(30000, 1001), (2, 3, 7)


def sampled_frames(path: Path):
    """(index rule, time rule) selections and the decoded times (ms) of the chosen frames."""
    info = probe(path)
    chunks: list[np.ndarray] = []
    found = scan(info, 44100, chunks.append, decode_video=True, check_constant_rate=True)
    by_index = index_rule(len(found.frame_times), info.fps, SECONDS)
    by_time = time_rule(found.frame_times, SECONDS)
    codes = {i: read_frame_code(rgb) for i, rgb in frames_at(info, np.concatenate([by_index, by_time]).ravel(),
                                                                10**9, check_constant_rate=True)}
    return by_index, by_time, codes, chunks


def examples(chunks: list[np.ndarray]) -> np.ndarray:
    return np.stack([logmel.second_example(torch.from_numpy(resample(mono_float(c), 44100, 16000))).numpy()
                     for c in chunks])


def draw(out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    with tempfile.TemporaryDirectory() as tmp:
        path = write_video(Path(tmp) / "synthetic.mp4", SECONDS, fps=FPS, tone_seconds=TONES)
        by_index, by_time, codes, chunks = sampled_frames(path)
    fig, axes = plt.subplots(3, 1, figsize=(9, 7.2), gridspec_kw={"height_ratios": [1.2, 1, 0.8]})
    ax = axes[0]
    target = (np.arange(SECONDS)[:, None] + np.arange(16)[None] / 16).ravel()
    for selection, style, label in ((by_index, dict(marker="o", ms=3, color="C0"),
                                     "index rule (AVE): frame l*F + int(i/16*F) of the block, F = int(N_block/10) = 30"),
                                    (by_time, dict(marker="x", ms=3, color="C1", alpha=0.6),
                                     "time rule: the frame on screen at s + i/16")):
        t = np.array([codes[int(i)][1] / 1000 for i in selection.ravel()])
        ax.plot(target, 1000 * (t - target), ls="none", label=label, **style)
    ax.axvline(10, color="grey", lw=0.8, ls=":")
    ax.set(xlabel="sampling instant s + i/16 (s)", ylabel="chosen frame's time\nminus instant (ms)",
           title=f"16 frames per second of a {float(FPS):.2f}-fps synthetic video (times read from the pixels); "
                 "blocks of 10 s", xlim=(0, SECONDS))
    ax.legend(fontsize=7, loc="upper left", framealpha=0.9)
    ax.set_ylim(-40, 30)
    ax = axes[1]
    ex = examples(chunks)
    ax.imshow(np.concatenate(list(ex), axis=0).T, origin="lower", aspect="auto", cmap="magma",
              extent=(0, len(ex), 0, 64))
    ax.set(xlabel="second (each: one 96 x 64 VGGish example, its first 0.975 s)", ylabel="mel band",
           title=f"per-second log-mel examples; a 1 kHz tone in seconds {', '.join(map(str, TONES))}, silence "
                 "(log 0.01) elsewhere")
    ax = axes[2]
    for y, (d, name) in enumerate(((23, "23 s video"), (7, "7 s video"))):
        ax.text(-0.3, y - 0.25, name, ha="right", va="center", fontsize=8)
        for k, w in enumerate(windows(d)):
            real = w.real_seconds
            ax.barh(y + 0.25 * k - 0.25, real, left=w.start, height=0.22, color=f"C{k}", edgecolor="black")
            if real < 10:
                ax.barh(y + 0.25 * k - 0.25, 10 - real, left=w.start + real, height=0.22, color="white",
                        edgecolor="black", hatch="//")
            ax.text(w.start + 0.2, y + 0.25 * k - 0.25, f"row {k}: seconds {w.start}-{w.start + real - 1}"
                    + (f" (+{10 - real} repeated)" if real < 10 else "")
                    + (f", {w.overlap_seconds} shared" if w.overlap_seconds else ""), va="center", fontsize=7)
    ax.set(xlim=(-4, 24), ylim=(-0.7, 1.6), yticks=[], xlabel="second of the video",
           title="rows of 10 segments: windows from 0, the last one aligned to the end; short videos padded")
    fig.tight_layout()
    fig.savefig(out, dpi=80)


def random_networks(seed: int = 0):
    """The real VGG-19 and VGGish architectures with seeded He-normal weights (no weight file: nothing learned)."""
    from .pipeline import Networks
    from .vgg19 import VGG19Pool5
    from .vggish import VGGish

    torch.manual_seed(seed)
    visual, audio = VGG19Pool5(), VGGish()
    for m in (*visual.modules(), *audio.modules()):
        if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear)):
            torch.nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
            torch.nn.init.zeros_(m.bias)
    return Networks(visual.eval(), audio.eval(), torch.device("cpu"), {"random": {"seed": seed}})


def draw_video_maps(out: Path) -> None:
    """``visualize --video``'s figure on a 10-second synthetic video, by the command's own functions: the features
    of random networks (one frame per second), an untrained CMRAN (seeded), its AGSCA maps over the frames."""
    from examples.ave import registry
    from examples.ave.data import ReleaseAVE, validate_release
    from examples.ave.data.meta import META_DIR, read_categories

    from .convention import Convention
    from .overlay import draw_maps, second_frames
    from .pipeline import settings_of
    from .run import Options, run, video_ids
    from .video_events import predict_timelines, video_groups

    with tempfile.TemporaryDirectory() as tmp:
        video = write_video(Path(tmp) / "synthetic.mp4", 10.0, fps=FPS, size=(160, 112), tone_seconds=TONES)
        networks, convention, feats = random_networks(), Convention(frames_per_second=1), Path(tmp) / "feats"
        feats.mkdir()
        run(video_ids([video]), networks, Options(feats, convention, settings_of(convention, networks, "float32")),
            log=lambda *a, **k: None)
        torch.manual_seed(0)
        model = registry.build_model(registry.family("cmran").config_class(backend="reference")).eval()
        dataset = ReleaseAVE(validate_release(feats), "test")
        (timeline,) = predict_timelines(model, dataset, video_groups(dataset), split="test", device=torch.device("cpu"),
                                        amp="none", batch_size=4, spatial=True)
        names = read_categories(META_DIR / "categories.txt") + ["background"]
        (drawn,) = draw_maps(Path(tmp), timeline, second_frames(feats, "synthetic", 10**8), names,
                             "keras", "synthetic video, random VGG-19/VGGish and untrained CMRAN: AGSCA M_s")
        out.write_bytes(drawn.read_bytes())


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="Draw the docs' figures from a synthetic video.")
    p.add_argument("--out", default="docs/own_videos_synthetic.png")
    p.add_argument("--which", default="extract", choices=("extract", "visualize"),
                   help="extract: sampling, audio examples and rows; visualize: visualize --video's maps")
    args = p.parse_args(argv)
    (draw if args.which == "extract" else draw_video_maps)(Path(args.out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
