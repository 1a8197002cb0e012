"""Bad input: a corrupt file, no audio or no video stream, shorter than one second, a variable frame rate, a
huge resolution, an unreadable path. Each is a VideoError naming the file and what is wrong; a folder run goes
on past it, lists every failure at the end, exits 1 and leaves no half-written file."""

from __future__ import annotations

import os
from pathlib import Path

import h5py
import pytest
import torch
from test_extract_support import stand_in_networks

from examples.ave.extract.convention import Convention
from examples.ave.extract.decode import probe, scan
from examples.ave.extract.errors import ConfigError, VideoError
from examples.ave.extract.pipeline import extract_video, settings_of
from examples.ave.extract.run import Options, list_videos, run, video_ids
from examples.ave.extract.synthetic import write_video

CONVENTION = Convention(frames_per_second=2, wav_rate=16000)


def extract_one(path: Path, tmp_path: Path, convention=CONVENTION, max_pixels: int = 10**8):
    networks = stand_in_networks()
    return extract_video(path, tmp_path / "work" / "x.h5", convention, networks,
                         settings_of(convention, networks, "float32"), max_pixels=max_pixels)


def fails(path: Path, tmp_path: Path, *patterns, **kwargs) -> str:
    with pytest.raises(VideoError) as info:
        extract_one(path, tmp_path, **kwargs)
    message = str(info.value)
    assert message.startswith(f"{path}: "), message
    for p in patterns:
        assert p in message, message
    assert not (tmp_path / "work").exists() or not list((tmp_path / "work").iterdir())  # nothing half-written
    return message


def test_corrupt_and_truncated_files(tmp_path):
    garbage = tmp_path / "garbage.mp4"
    garbage.write_bytes(os.urandom(5000))
    fails(garbage, tmp_path, "cannot be opened as a video file")
    good = write_video(tmp_path / "good.mp4", 2.0)
    truncated = tmp_path / "truncated.mp4"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    fails(truncated, tmp_path, "cannot be opened as a video file")
    empty = tmp_path / "empty.mkv"
    empty.write_bytes(b"")
    fails(empty, tmp_path, "cannot be opened")


def test_a_file_without_audio_or_video_stream_is_refused(tmp_path):
    fails(write_video(tmp_path / "silent_film.mkv", 2.0, audio=False), tmp_path, "has no audio stream", "anullsrc")
    fails(write_video(tmp_path / "radio.mkv", 2.0, video=False), tmp_path, "has no video stream")


def test_shorter_than_one_second(tmp_path):
    fails(write_video(tmp_path / "blink.mp4", 0.6), tmp_path, "shorter than one second", "0.975 s")
    fails(write_video(tmp_path / "mute_tail.mkv", 3.0, audio_seconds=0.5), tmp_path, "audio 0.500 s")


def test_a_second_counts_from_0975_seconds(tmp_path):
    summary = extract_one(write_video(tmp_path / "short.mkv", 1.96, fps=50), tmp_path)
    assert summary.seconds == 1  # 0.96 s of the second second: less than one VGGish example reads
    summary = extract_one(write_video(tmp_path / "enough.mkv", 1.98, fps=50), tmp_path)
    assert summary.seconds == 2  # 0.98 s of it: one example's 0.975 s are there


def test_variable_frame_rate(tmp_path):
    path = write_video(tmp_path / "phone.mkv", 3.0, frame_durations_ms=[33, 50, 33, 17])
    fails(path, tmp_path, "variable frame rate", "--frame-rule time")
    summary = extract_one(path, tmp_path, convention=Convention(frames_per_second=2, wav_rate=16000, frame_rule="time"))
    assert summary.seconds == 3


def test_a_resolution_above_max_pixels_is_refused(tmp_path):
    path = write_video(tmp_path / "big.mp4", 1.0)
    fails(path, tmp_path, "resolution 256x96", "--max-pixels 10000", max_pixels=10_000)
    info = probe(path)  # a header that states no size: the first decoded frame is checked
    with pytest.raises(VideoError, match="resolution 256x96"):
        scan(info, 44100, lambda chunk: None, decode_video=True, check_constant_rate=True, max_pixels=10_000)


def test_absent_directory_and_dangling_paths_are_refused_by_name(tmp_path):
    fails(tmp_path / "absent.mp4", tmp_path, "no such file")
    (tmp_path / "folder.mp4").mkdir()
    fails(tmp_path / "folder.mp4", tmp_path, "not a regular file")
    (tmp_path / "dangling.mp4").symlink_to(tmp_path / "nowhere.mp4")
    fails(tmp_path / "dangling.mp4", tmp_path, "no such file")


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their permissions")
def test_a_file_without_read_permission(tmp_path):
    path = write_video(tmp_path / "locked.mp4", 1.0)
    path.chmod(0)
    fails(path, tmp_path, "cannot be")


def test_an_interrupted_extraction_leaves_nothing(tmp_path, monkeypatch):
    path = write_video(tmp_path / "ok.mkv", 2.0)
    networks = stand_in_networks()

    def boom(*args):
        raise KeyboardInterrupt

    monkeypatch.setattr(networks.visual, "forward", boom)
    with pytest.raises(KeyboardInterrupt):
        extract_video(path, tmp_path / "work" / "ok.h5", CONVENTION, networks, settings_of(CONVENTION, networks, "f"))
    assert list((tmp_path / "work").iterdir()) == []


def test_a_folder_run_goes_on_lists_every_failure_and_exits_1(tmp_path, capsys):
    videos = tmp_path / "videos"
    videos.mkdir()
    write_video(videos / "a_good.mp4", 2.0)
    write_video(videos / "b_no_audio.mkv", 2.0, audio=False)
    (videos / "c_corrupt.avi").write_bytes(os.urandom(3000))
    write_video(videos / "d_short.mkv", 0.5)
    write_video(videos / "e_good.webm", 1.5)
    listing = tmp_path / "list.txt"
    listing.write_text("videos/a_good.mp4\nvideos/missing.mp4\n")
    out = tmp_path / "feats"
    out.mkdir()
    networks = stand_in_networks()
    options = Options(out, CONVENTION, settings_of(CONVENTION, networks, "float32"))
    ids = video_ids(list_videos([videos / "b_no_audio.mkv", videos / "c_corrupt.avi", videos / "d_short.mkv",
                                 videos / "e_good.webm", listing]))
    assert run(ids, networks, options) == 1
    err = capsys.readouterr().err
    summary = err[err.index("videos failed:"):]
    for name, why in (("b_no_audio.mkv", "no audio stream"), ("c_corrupt.avi", "cannot be opened"),
                      ("d_short.mkv", "shorter than one second"), ("missing.mp4", "no such file")):
        assert f"{name}: " in summary and why in summary, (name, summary)
    assert "4 of 6 videos failed" in err
    with h5py.File(out / "visual_feature.h5", "r") as f:
        assert f["avadataset"].shape[0] == 2  # the two good videos, one row each
    leftovers = [p for p in out.rglob("*") if p.name.endswith(".tmp")]
    assert leftovers == [] and sorted(p.name for p in (out / ".extract").iterdir()) == ["a_good.h5", "e_good.h5"]


def test_bad_folder_arguments_are_option_errors(tmp_path):
    with pytest.raises(ConfigError, match="no such file or folder"):
        list_videos([tmp_path / "nope"])
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match="no video file found"):
        list_videos([tmp_path / "empty"])
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    for d in ("a", "b"):
        (tmp_path / d / "clip.mp4").write_bytes(b"")
    with pytest.raises(ConfigError, match="same video id 'clip'"):
        video_ids(list_videos([tmp_path / "a", tmp_path / "b"]))


def test_an_ampersand_in_a_video_id_is_a_listed_failure(tmp_path, capsys):
    write_video(tmp_path / "rock&roll.mp4", 1.0)
    out = tmp_path / "feats"
    out.mkdir()
    networks = stand_in_networks()
    options = Options(out, CONVENTION, settings_of(CONVENTION, networks, "float32"))
    assert run(video_ids(list_videos([tmp_path / "rock&roll.mp4"])), networks, options) == 1
    assert "holds '&'" in capsys.readouterr().err
    assert torch.__version__  # the module's networks stay importable after a failed run


def test_an_unexpected_error_on_one_video_is_a_listed_failure(tmp_path, capsys, monkeypatch):
    from examples.ave.extract import run as run_module

    write_video(tmp_path / "odd.mp4", 1.0)
    out = tmp_path / "feats"
    out.mkdir()

    def odd(*args, **kwargs):
        raise RuntimeError("an unusual stream")

    monkeypatch.setattr(run_module, "extract_video", odd)
    networks = stand_in_networks()
    options = Options(out, CONVENTION, settings_of(CONVENTION, networks, "float32"))
    assert run(video_ids(list_videos([tmp_path / "odd.mp4"])), networks, options) == 1
    err = capsys.readouterr().err
    assert "odd.mp4: unexpected RuntimeError: an unusual stream" in err and "nothing written" in err
