"""The VGGish frontend of the extractor against independent float64 transcriptions of its reference formulas:
AudioSet's log-mel (periodic Hann, |rfft 512|, HTK mel matrix with the DC bin zeroed, log(x + 0.01), 96-frame
examples), resampy 0.2's kaiser_best resampler (a plain loop), and AudioSet's PCA post-processing."""

from __future__ import annotations

import functools
import math

import numpy as np
import pytest
import torch

from examples.ave.extract import logmel
from examples.ave.extract.resample import kaiser_best_half_window, resample
from examples.ave.extract.vggish import audioset_postprocess

# ---- independent transcriptions -------------------------------------------------------------------------


def ref_mel_matrix() -> np.ndarray:
    def mel(f):
        return 1127.0 * math.log(1.0 + f / 700.0)

    bins = [mel(8000.0 * q / 256) for q in range(257)]
    lo, hi = mel(125.0), mel(7500.0)
    edges = [lo + (hi - lo) * j / 65 for j in range(66)]
    w = np.zeros((257, 64))
    for b in range(64):
        left, centre, right = edges[b], edges[b + 1], edges[b + 2]
        for q in range(1, 257):  # q = 0, the DC bin, stays zero
            w[q, b] = max(0.0, min((bins[q] - left) / (centre - left), (right - bins[q]) / (right - centre)))
    return w


def ref_log_mel(x: np.ndarray) -> np.ndarray:
    window = np.array([0.5 - 0.5 * math.cos(2 * math.pi * k / 400) for k in range(400)])
    frames = [x[160 * i:160 * i + 400] for i in range(1 + (len(x) - 400) // 160)]
    magnitude = np.array([np.abs(np.fft.rfft(f * window, 512)) for f in frames])
    return np.log(magnitude @ ref_mel_matrix() + 0.01)


def ref_examples(x: np.ndarray) -> np.ndarray:
    lm = ref_log_mel(x)
    return np.array([lm[96 * p:96 * p + 96] for p in range(1 + (len(lm) - 96) // 96)])


def bessel_i0(a: np.ndarray) -> np.ndarray:
    """The modified Bessel function I0 by its power series, sum_j ((a/2)^j / j!)^2."""
    return sum(((a / 2) ** j / math.factorial(j)) ** 2 for j in range(60))


@functools.lru_cache(maxsize=1)
def ref_half_window() -> np.ndarray:
    """resampy 0.2's kaiser_best from its design: a 64-crossing sinc, 512 entries per crossing, Kaiser-tapered."""
    zeros, per_zero, rolloff, beta = 64, 512, 0.9475937167399596, 14.769656459379492
    n = zeros * per_zero
    m = 2 * n + 1
    arg = beta * np.sqrt(1.0 - (2.0 * np.arange(m) / (m - 1) - 1.0) ** 2)
    kaiser = bessel_i0(arg) / bessel_i0(np.float64(beta))
    return rolloff * np.sinc(rolloff * np.linspace(0, zeros, n + 1)) * kaiser[n:]


def ref_resample(x: np.ndarray, sr_orig: int, sr_new: int) -> np.ndarray:
    """resampy 0.2's algorithm written as its loop: the filter from its design numbers, one output at a time."""
    per_zero = 512
    half = ref_half_window()
    ratio = sr_new / sr_orig
    if ratio < 1:
        half = half * ratio
    delta = np.zeros_like(half)
    delta[:-1] = np.diff(half)
    scale, step = min(1.0, ratio), int(min(1.0, ratio) * per_zero)
    y = np.zeros(int(len(x) * ratio))
    t = 0.0
    for j in range(len(y)):
        k = int(t)
        for frac, taps, first, direction in ((scale * (t - k), k + 1, k, -1),
                                             (scale - scale * (t - k), len(x) - k - 1, k + 1, +1)):
            offset = int(frac * per_zero)
            eta = frac * per_zero - offset
            for i in range(min(taps, (len(half) - offset) // step)):
                y[j] += (half[offset + i * step] + eta * delta[offset + i * step]) * x[first + direction * i]
        t += 1.0 / ratio
    return y


# ---- log-mel ------------------------------------------------------------------------------------------------


def test_mel_matrix_equals_the_htk_formula():
    got = logmel.mel_matrix().numpy()
    assert got.shape == (257, 64)
    np.testing.assert_allclose(got, ref_mel_matrix(), rtol=0, atol=1e-12)
    assert (got[0] == 0).all() and (got >= 0).all()


@pytest.mark.parametrize("length", [400, 561, 15600, 16000, 16001, 39999])
def test_log_mel_equals_the_reference_formulas(length):
    x = np.random.default_rng(length).standard_normal(length) * 0.3
    got = logmel.log_mel(torch.from_numpy(x)).numpy()
    want = ref_log_mel(x)
    assert got.shape == want.shape == (1 + (length - 400) // 160, 64)
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-10)


def test_one_second_gives_one_example_from_its_first_0975_seconds():
    x = np.random.default_rng(1).standard_normal(16000)
    got = logmel.second_example(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(got, ref_examples(x)[0], rtol=0, atol=1e-10)
    tail = x.copy()
    tail[logmel.PATCH_MIN_SAMPLES:] = 0.0  # the last 25 ms are not read
    np.testing.assert_array_equal(logmel.second_example(torch.from_numpy(tail)).numpy(), got)
    assert logmel.PATCH_MIN_SAMPLES == 15600


def test_stream_examples_hop_096_seconds():
    x = np.random.default_rng(2).standard_normal(16000 * 5)
    got = logmel.stream_examples(torch.from_numpy(x)).numpy()
    want = ref_examples(x)
    assert got.shape == want.shape == (5, 96, 64)  # 498 frames -> 5 examples at 0, 0.96, ... s
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-10)


def test_silence_gives_the_constant_log_offset_patch():
    got = logmel.second_example(torch.zeros(16000, dtype=torch.float64))
    assert torch.equal(got, torch.full((96, 64), math.log(0.01), dtype=torch.float64))


# ---- resampling ---------------------------------------------------------------------------------------------


def test_kaiser_best_window_is_the_published_design():
    w = kaiser_best_half_window()
    assert w.shape == (64 * 512 + 1,) and w[0] == 0.9475937167399596
    np.testing.assert_allclose(w, ref_half_window(), rtol=0, atol=1e-12)


@pytest.mark.parametrize("sr_orig,sr_new,length", [(44100, 16000, 611), (48000, 16000, 500), (8000, 16000, 151),
                                                   (22050, 16000, 257)])
def test_resample_equals_resampy_02s_loop(sr_orig, sr_new, length):
    x = np.random.default_rng(length).standard_normal(length)
    got = resample(x, sr_orig, sr_new)
    want = ref_resample(x, sr_orig, sr_new)
    assert got.shape == want.shape == (int(length * sr_new / sr_orig),)
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-12)


def test_resample_is_identity_at_the_same_rate_and_refuses_too_short_input():
    x = np.arange(5.0)
    assert np.array_equal(resample(x, 16000, 16000), x)
    with pytest.raises(ValueError, match="too few"):
        resample(np.zeros(2), 44100, 16000)


# ---- AudioSet post-processing -------------------------------------------------------------------------------


def test_audioset_postprocess_equals_its_formula():
    rng = np.random.default_rng(3)
    emb = rng.random((7, 128)) * 3
    eigen, _ = np.linalg.qr(rng.standard_normal((128, 128)))
    means = rng.standard_normal(128) * 0.2
    want = np.clip(np.dot(eigen, (emb.T - means[:, None])).T, -2.0, 2.0)
    want = ((want + 2.0) * (255.0 / 4.0)).astype(np.uint8)  # vggish_postprocess.py truncates to uint8
    got = audioset_postprocess(torch.from_numpy(emb), torch.from_numpy(eigen), torch.from_numpy(means))
    assert np.array_equal(got.numpy(), want.astype(np.float64))
    assert got.min() >= 0 and got.max() <= 255
