"""The figure of docs/own_videos.md, made from a synthetic video (``synthetic.py``): which frames stand for
each second, the per-second VGGish examples of its audio, and how whole seconds become 10-second rows.

Axis legend: D whole seconds, k = 16 samples per second, t 96 log-mel frames, m 64 mel bands.

    python -m examples.ave.extract.figure --out docs/own_videos_synthetic.png
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


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="Draw the docs' figure from a synthetic video.")
    p.add_argument("--out", default="docs/own_videos_synthetic.png")
    draw(Path(p.parse_args(argv).out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
