"""Decoding synthetic videos whose frames carry their own index and time: which frames stand for each second
(AVE's index rule, block by block; the time rule), every container, the per-second audio chunks (a tone in
known seconds changes exactly those seconds' features), what a silent track gives, and the visual averaging."""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest
import torch
from test_extract_support import stand_in_networks

from examples.ave.extract import logmel
from examples.ave.extract.convention import Convention
from examples.ave.extract.decode import frames_at, probe, scan
from examples.ave.extract.errors import VideoError
from examples.ave.extract.pipeline import AudioFeatures, Networks, Timer, VisualFeatures, extract_video, settings_of
from examples.ave.extract.sampling import index_rule, time_rule
from examples.ave.extract.synthetic import read_frame_code, write_video
from examples.ave.extract.work import read_attrs, read_features


def ave_rule(n_frames: int, segments: int = 10, k: int = 16) -> list[list[int]]:
    """video_frame_sample of AVE's attention_visualization.py, transcribed: F = int(N / 10), by index."""
    f = int(n_frames / segments)
    return [[int(seg * f + (i / k) * f) for i in range(k)] for seg in range(segments)]


def decoded_codes(info, selection) -> dict[int, tuple[int, int]]:
    return {i: read_frame_code(rgb) for i, rgb in frames_at(info, selection.ravel(), 10**9, check_constant_rate=False)}


# ---- which frames --------------------------------------------------------------------------------------------


def test_index_rule_is_aves_for_a_ten_second_clip():
    got = index_rule(251, Fraction(25), 10)  # the maintainer's example: N = 251, F = 25
    assert got.tolist() == ave_rule(251)
    assert got[0].tolist() == [0, 1, 3, 4, 6, 7, 9, 10, 12, 14, 15, 17, 18, 20, 21, 23] and got[1, 0] == 25
    assert index_rule(299, Fraction(30000, 1001), 10).tolist() == ave_rule(299)  # F = 29 (9.98 s at 29.97)


def test_index_rule_counts_frames_per_block_of_ten_seconds():
    fps = Fraction(30000, 1001)
    got = index_rule(720, fps, 24)  # 24.02 s at 29.97 fps: blocks 0-9, 10-19, 20-23
    firsts = [0, 300, 600]  # ceil(10 b * fps)
    counts = [300, 300, min(720, math.ceil(24 * fps)) - 600]
    for (start, length), first, count in zip(((0, 10), (10, 10), (20, 4)), firsts, counts):
        f = count // length
        for seg in range(length):
            assert got[start + seg].tolist() == [first + int(seg * f + i / 16 * f) for i in range(16)]


def test_sampled_frames_are_the_indices_the_rule_names(tmp_path):
    path = write_video(tmp_path / "v.mp4", 3.0, fps=25)
    info = probe(path)
    found = scan(info, 44100, lambda chunk: None, decode_video=True, check_constant_rate=True)
    assert len(found.frame_times) == 75 == info.container_frames
    selection = index_rule(75, info.fps, 3)
    codes = decoded_codes(info, selection)
    for second in range(3):
        assert [codes[i][0] for i in selection[second]] == [25 * second + int(i / 16 * 25) for i in range(16)]
        assert all(second * 1000 <= codes[i][1] < (second + 1) * 1000 for i in selection[second])


def test_time_rule_takes_the_frame_shown_at_each_instant_of_a_variable_rate_video(tmp_path):
    path = write_video(tmp_path / "vfr.mkv", 3.0, frame_durations_ms=[40, 80, 30])
    info = probe(path)
    with pytest.raises(VideoError, match="variable frame rate"):
        scan(info, 44100, lambda chunk: None, decode_video=True, check_constant_rate=True)
    found = scan(info, 44100, lambda chunk: None, decode_video=True, check_constant_rate=False)
    selection = time_rule(found.frame_times, 2, 16)
    codes = decoded_codes(info, selection)
    times = [code[1] for code in sorted(codes.values())]
    for second in range(2):
        for i, index in enumerate(selection[second]):
            target = 1000 * (second + i / 16)
            shown = codes[int(index)][1]
            assert shown <= target < min([t for t in times if t > shown], default=math.inf)


@pytest.mark.parametrize("suffix", [".mp4", ".mkv", ".webm", ".avi"])
def test_every_container_decodes_frames_and_seconds(tmp_path, suffix):
    path = write_video(tmp_path / f"v{suffix}", 2.0, fps=25)
    info = probe(path)
    chunks = []
    found = scan(info, 44100, chunks.append, decode_video=True, check_constant_rate=True)
    assert len(found.frame_times) == 50 and info.fps == 25
    assert len(chunks) == 2 and all(c.shape == (44100, 2) and c.dtype == np.int16 for c in chunks)
    codes = decoded_codes(info, np.array([[0, 49]]))
    assert codes[0] == (0, 0) and codes[49] == (49, 1960)
    rgb = next(frames_at(info, np.array([0]), 10**9, check_constant_rate=True))[1]
    assert rgb[-8, 8].argmax() == 0 and rgb[-8, 24].argmax() == 2  # red then blue: RGB order kept


def test_container_count_is_the_stated_count_or_duration_times_rate(tmp_path):
    assert probe(write_video(tmp_path / "a.mp4", 2.0, fps=25)).container_frames == 50  # mp4 states it
    assert probe(write_video(tmp_path / "b.mkv", 2.0, fps=25)).container_frames == 50  # mkv: duration x fps


# ---- audio -----------------------------------------------------------------------------------------------


def per_second_features(path, convention=None, networks=None):
    convention = convention or Convention()
    networks = networks or stand_in_networks()
    audio = AudioFeatures(convention, networks, Timer())
    found = scan(probe(path), convention.wav_rate, audio.add_second, decode_video=False, check_constant_rate=False)
    seconds = int((found.audio_samples / convention.wav_rate) + 0.025)
    examples = []
    original = audio._run

    def keep():
        examples.extend(audio.examples)
        original()

    audio._run = keep
    embeddings = audio.finish(found.audio_rest, seconds)
    return torch.stack(examples).double(), embeddings


def test_a_tone_changes_exactly_its_seconds(tmp_path):
    path = write_video(tmp_path / "tone.mkv", 5.0, tone_seconds=(1, 3))  # lossless PCM audio
    examples, embeddings = per_second_features(path, networks=stand_in_networks(vggish=True))
    silent = torch.full((96, 64), math.log(0.01)).double()  # the network's input is float32
    assert examples.shape == (5, 96, 64) and embeddings.shape == (5, 128)
    for second in (0, 2, 4):
        assert torch.equal(examples[second], silent)
        np.testing.assert_allclose(embeddings[second], embeddings[0], rtol=1e-4, atol=1e-6)
    assert not torch.allclose(examples[1], silent, atol=1.0)
    assert torch.equal(examples[1], examples[3])  # the same tone, resampled one second at a time
    assert np.abs(embeddings[1] - embeddings[0]).max() > 1e-2 * np.abs(embeddings[0]).max()


def test_a_silent_track_gives_vggishs_embedding_of_the_constant_patch(tmp_path):
    networks = stand_in_networks(vggish=True)
    path = write_video(tmp_path / "silent.mkv", 3.0)
    _, embeddings = per_second_features(path, networks=networks)
    with torch.inference_mode():
        want = networks.audio(torch.full((1, 96, 64), math.log(0.01)))[0].double().numpy()
    for row in embeddings:  # the same 128 numbers every silent second: not zeros
        np.testing.assert_allclose(row, want, rtol=1e-4, atol=1e-6)  # float32, another batch size
    assert np.abs(want).max() > 0


def test_a_lossy_tone_still_marks_its_seconds(tmp_path):
    path = write_video(tmp_path / "tone.mp4", 4.0, tone_seconds=(2,))  # AAC
    examples, _ = per_second_features(path)
    energy = (examples - math.log(0.01)).abs().mean(dim=(1, 2))
    assert int(energy.argmax()) == 2 and energy[2] > 10 * energy[[0, 1, 3]].max()


def test_stereo_is_averaged_and_a_16k_wav_rate_skips_resampling(tmp_path):
    path = write_video(tmp_path / "t.mkv", 2.0, tone_seconds=(0, 1), audio_rate=16000)
    examples, _ = per_second_features(path, Convention(wav_rate=16000))
    t = np.arange(16000) / 16000
    mono = np.round(0.5 * np.sin(2 * np.pi * 1000 * t) * 32767) / 32768.0
    want = logmel.second_example(torch.from_numpy(mono))
    torch.testing.assert_close(examples[0], want.to(torch.float32).double(), rtol=0, atol=1e-5)


def test_stream_chunking_frames_the_whole_track(tmp_path):
    path = write_video(tmp_path / "t.mkv", 4.0, tone_seconds=(2,))
    per_second, _ = per_second_features(path)
    stream, _ = per_second_features(path, Convention(audio_chunking="stream"))
    assert stream.shape == per_second.shape == (4, 96, 64)
    assert not torch.equal(stream[2], per_second[2])  # example 2 starts at 1.92 s, not 2 s


# ---- visual averaging ---------------------------------------------------------------------------------------


class MeanPixel(torch.nn.Module):
    """(B, 3, 224, 224) -> (B, 1, 1, 1): the mean input value, so each second's map is the mean of its frames'."""

    def forward(self, x):
        return x.mean(dim=(1, 2, 3))[:, None, None, None]


def test_each_second_is_the_mean_of_its_sampled_frames_counted_with_multiplicity():
    selection = np.array([[0, 0, 1, 2], [2, 3, 3, 3]])  # frame 2 stands in both seconds, 0 twice, 3 three times
    out = np.zeros((2, 1, 1, 1))
    nets = Networks(MeanPixel(), torch.nn.Identity(), torch.device("cpu"), {})
    visual = VisualFeatures(selection, "keras", nets, out, batch_size=3, timer=Timer())
    for index in range(4):
        visual.add(index, np.full((8, 8, 3), 10 * index, dtype=np.uint8))
    visual.flush()
    value = {i: 10 * i - np.mean([103.939, 116.779, 123.68]) for i in range(4)}
    assert visual.written == 2
    np.testing.assert_allclose(out[:, 0, 0, 0], [np.mean([value[i] for i in row]) for row in selection], atol=1e-4)


def test_extract_video_writes_per_second_features_and_its_summary(tmp_path):
    networks = stand_in_networks()
    convention = Convention(frames_per_second=4)
    path = write_video(tmp_path / "v.mkv", 3.5, tone_seconds=(1,))
    summary = extract_video(path, tmp_path / "work" / "v.h5", convention, networks,
                            settings_of(convention, networks, "float32"))
    assert summary.seconds == 3 and summary.frames == 88 and summary.duration_audio == 3.5
    visual, audio = read_features(tmp_path / "work" / "v.h5")
    assert visual.shape == (3, 7, 7, 512) and audio.shape == (3, 128) and visual.dtype == np.float32
    attrs = read_attrs(tmp_path / "work" / "v.h5")
    assert attrs["settings"]["convention"]["frames_per_second"] == 4 and attrs["summary"]["seconds"] == 3
    assert list((tmp_path / "work").iterdir()) == [tmp_path / "work" / "v.h5"]  # no temporary file left


def test_the_container_count_can_stand_for_n(tmp_path):
    networks = stand_in_networks()
    convention = Convention(frames_per_second=2, wav_rate=16000, frame_count="container")
    path = write_video(tmp_path / "v.mp4", 2.0, fps=25)
    summary = extract_video(path, tmp_path / "v.h5", convention, networks, settings_of(convention, networks, "f4"))
    assert summary.frames == summary.container_frames == 50 and summary.seconds == 2


def test_indices_past_the_decoded_frames_get_the_last_frame(tmp_path):
    info = probe(write_video(tmp_path / "v.mkv", 1.0, fps=10))
    got = {i: read_frame_code(rgb)[0] for i, rgb in frames_at(info, np.array([3, 9, 12, 15]), 10**9,
                                                               check_constant_rate=True)}
    assert got == {3: 3, 9: 9, 12: 9, 15: 9}
