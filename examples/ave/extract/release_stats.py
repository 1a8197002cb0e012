"""Does an extraction's audio look like the AVE release's? Summary statistics of VGGish features, the release's
own (measured on the release's ``audio_feature_noisy.h5``: 178 background videos x 10 seconds, float64), and the
differences that betray a convention mismatch (a pre-ReLU embedding, AudioSet quantization).

Axis legend: N rows, T segments, E = 128 audio channels.

    from examples.ave.extract.release_stats import audio_stats, audio_mismatches
    print(audio_mismatches(audio_stats(h5py.File("FEATS/audio_feature.h5")["avadataset"][()])))

Real VGGish weights are needed for the comparison to mean anything; random weights only exercise the code.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

ZERO_FRACTION_RANGE = (0.4, 0.85)  # per-row zero fractions of the release span 0.38 to 0.90, mean 0.65


@dataclass(frozen=True)
class AudioStats:
    rows: int
    min: float
    max: float
    mean: float
    std: float
    zero_fraction: float  # exact zeros among all values
    integer_valued: bool
    float32_exact: bool  # every value survives a round trip through float32
    always_zero_dims: tuple[int, ...]  # channels that are zero in every row and segment


# audio_feature_noisy.h5 of the AVE release (YapengTian/AVE-ECCV18 data/), measured once.
RELEASE_AUDIO = AudioStats(rows=178, min=0.0, max=4.5373, mean=0.1222, std=0.2623, zero_fraction=0.6527,
                           integer_valued=False, float32_exact=True, always_zero_dims=(65,))


def audio_stats(features: np.ndarray) -> AudioStats:
    """(N, T, E) audio features -> their summary."""
    a = np.asarray(features, dtype=np.float64)
    if a.ndim != 3 or a.shape[-1] != 128 or a.size == 0:
        raise ValueError(f"features must have shape (N, T, 128) with N, T >= 1, got {a.shape}")
    zero = a == 0
    return AudioStats(
        rows=a.shape[0], min=round(float(a.min()), 4), max=round(float(a.max()), 4), mean=round(float(a.mean()), 4),
        std=round(float(a.std()), 4), zero_fraction=round(float(zero.mean()), 4),
        integer_valued=bool(np.array_equal(a, np.round(a))),
        float32_exact=bool(np.array_equal(a, a.astype(np.float32).astype(np.float64))),
        always_zero_dims=tuple(int(i) for i in np.flatnonzero(zero.all(axis=(0, 1)))),
    )


def audio_mismatches(stats: AudioStats, release: AudioStats = RELEASE_AUDIO) -> list[str]:
    """What sets ``stats`` apart from the release's audio, each with its likely cause; empty when nothing does."""
    out = []
    if stats.min < 0:
        out.append(f"negative values (min {stats.min}): a pre-ReLU embedding (--vggish-output linear, today's "
                   "TensorFlow VGGish); the release's are >= 0")
    if stats.integer_valued and stats.max > 1:
        out.append(f"integer values up to {stats.max}: AudioSet's PCA and 8-bit quantization "
                   "(--vggish-postprocess audioset, torchvggish's default); the release has the raw embedding")
    low, high = ZERO_FRACTION_RANGE
    if not low <= stats.zero_fraction <= high:
        out.append(f"{100 * stats.zero_fraction:.1f}% exact zeros, the release {100 * release.zero_fraction:.1f}%")
    if not stats.float32_exact:
        out.append("values that float32 cannot hold exactly: the release's are float32 embeddings stored as float64")
    return out
