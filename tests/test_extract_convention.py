"""The AVE convention's defaults (each one flag away), and the release's real audio statistics beside what
the extractor's conventions produce: non-negative, about 65% zeros, not integers."""

from __future__ import annotations

import dataclasses

import h5py
import numpy as np
import pytest
import torch

from examples.ave.data.meta import META_DIR
from examples.ave.extract import logmel
from examples.ave.extract.convention import FLAGS, SEGMENT_SECONDS, WINDOW_SECONDS, Convention
from examples.ave.extract.errors import ConfigError
from examples.ave.extract.image import CAFFE_BGR_MEAN, SIZE
from examples.ave.extract.release_stats import RELEASE_AUDIO, audio_mismatches, audio_stats
from examples.ave.extract.vggish import audioset_postprocess


def test_defaults_are_the_release_convention():
    c = Convention()
    assert (c.frames_per_second, c.frame_rule, c.frame_count) == (16, "index", "decoded")
    assert (c.visual_weights, c.wav_rate, c.audio_chunking) == ("keras", 44100, "second")
    assert (c.vggish_output, c.vggish_postprocess) == ("relu", "none")
    assert (SEGMENT_SECONDS, WINDOW_SECONDS, SIZE, CAFFE_BGR_MEAN) == (1, 10, 224, (103.939, 116.779, 123.68))
    assert (logmel.SAMPLE_RATE, logmel.WINDOW_SAMPLES, logmel.HOP_SAMPLES, logmel.FFT_LENGTH) == (16000, 400, 160, 512)
    assert (logmel.NUM_MEL_BANDS, logmel.MEL_LOW_HZ, logmel.MEL_HIGH_HZ, logmel.LOG_OFFSET) == (64, 125, 7500, 0.01)
    assert logmel.PATCH_FRAMES == logmel.PATCH_HOP_FRAMES == 96
    assert c.differences() == []
    assert set(FLAGS) == {f.name for f in dataclasses.fields(Convention)}


def test_each_choice_is_validated_and_reported():
    c = Convention(frames_per_second=8, audio_chunking="stream")
    assert c.differences() == ["--frames-per-second 8 (AVE: 16)", "--audio-chunking stream (AVE: second)"]
    assert Convention.from_dict(c.to_dict()) == c
    for bad, says in (({"frame_rule": "random"}, "--frame-rule must be one of"),
                      ({"frames_per_second": True}, "--frames-per-second"),
                      ({"vggish_postprocess": "pca"}, "--vggish-postprocess must be one of")):
        with pytest.raises(ConfigError, match=says):
            Convention(**bad)


def release_audio() -> np.ndarray:
    with h5py.File(META_DIR / "audio_feature_noisy.h5", "r") as f:
        return f["avadataset"][()]


def test_the_release_audio_statistics():
    stats = audio_stats(release_audio())
    assert stats == RELEASE_AUDIO
    assert audio_mismatches(stats) == []


def test_other_vggish_conventions_are_told_apart_from_the_release():
    real = torch.from_numpy(release_audio()).flatten(0, 1)
    pre_relu = real - 0.05 * torch.rand_like(real)  # signed, like today's TensorFlow embedding
    assert any("pre-ReLU" in m for m in audio_mismatches(audio_stats(pre_relu.view(178, 10, 128).numpy())))
    eigen, _ = torch.linalg.qr(torch.randn(128, 128, dtype=torch.float64))
    quantized = audioset_postprocess(real, eigen, real.mean(0)).view(178, 10, 128).numpy()
    problems = audio_mismatches(audio_stats(quantized))
    assert any("quantization" in m for m in problems)
    dense = np.abs(release_audio()) + 0.01  # no zeros at all
    assert any("exact zeros" in m for m in audio_mismatches(audio_stats(dense.astype(np.float32))))
    with pytest.raises(ValueError, match=r"\(N, T, 128\)"):
        audio_stats(np.zeros((3, 128)))
