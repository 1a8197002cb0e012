"""The release folder the extractor writes: 10-second windows (no silent truncation), the index file, labels
cut to the windows, splits, what the loader makes of it (labelled, unlabelled: UNKNOWN labels and never the
shipped annotations, empty splits), resuming, and the work folder's settings check. Plumbing tests: a stand-in
visual network (test_extract_support)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import h5py
import numpy as np
import pytest
from test_extract_support import stand_in_networks

from examples.ave.data import AVEDataError, build_datasets, validate_release
from examples.ave.data.extracted import UNKNOWN, require_rows, row_ids
from examples.ave.data.meta import META_DIR
from examples.ave.extract import run as run_module
from examples.ave.extract.convention import Convention
from examples.ave.extract.errors import ConfigError
from examples.ave.extract.labels import AVE_CATEGORIES, read_labels
from examples.ave.extract.pipeline import settings_of
from examples.ave.extract.run import Options, assign_splits, list_videos, run, video_ids
from examples.ave.extract.synthetic import write_video
from examples.ave.extract.windows import windows
from examples.ave.extract.work import read_features, work_path

CONVENTION = Convention(frames_per_second=2, wav_rate=16000)  # plumbing: no per-second resampling needed


def extract(out: Path, videos, *, labels: str | None = None, split="test", ratio=None, dtype="float32",
            convention=CONVENTION, networks=None) -> int:
    networks = networks or stand_in_networks()
    categories = list(AVE_CATEGORIES) if labels is not None else None
    options = Options(out, convention, settings_of(convention, networks, dtype), dtype, 8, 10**8, split, ratio,
                      read_labels(labels, categories) if labels is not None else None, categories)
    out.mkdir(parents=True, exist_ok=True)
    return run(video_ids(list_videos(videos)), networks, options, log=lambda *a, **k: None)


def index(out: Path) -> dict:
    return json.loads((out / "videos.json").read_text())


def h5(path: Path, key: str = "avadataset") -> np.ndarray:
    with h5py.File(path, "r") as f:
        return f[key][()]


@pytest.fixture(scope="module")
def videos(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("videos")
    write_video(d / "long.mkv", 23.2, fps=10, size=(64, 48))
    write_video(d / "short.mp4", 7.0, fps=10, size=(64, 48))
    write_video(d / "ten.avi", 10.0, fps=10, size=(64, 48))
    return d


# ---- windows ---------------------------------------------------------------------------------------------


def test_windows_cover_every_second_aligning_the_last_to_the_end():
    assert [(w.start, w.real_seconds, w.overlap_seconds) for w in windows(23)] == [(0, 10, 0), (10, 10, 0), (13, 10, 7)]
    assert [(w.start, w.overlap_seconds) for w in windows(20)] == [(0, 0), (10, 0)]
    assert [(w.start, w.real_seconds) for w in windows(10)] == [(0, 10)]
    assert windows(7)[0].seconds().tolist() == [0, 1, 2, 3, 4, 5, 6, 6, 6, 6]  # padded with the last second
    assert windows(1)[0].seconds().tolist() == [0] * 10
    covered = set()
    for w in windows(37):
        covered |= set(w.seconds().tolist())
    assert covered == set(range(37))


def test_rows_are_windows_of_the_per_second_features(tmp_path, videos):
    out = tmp_path / "feats"
    assert extract(out, [videos]) == 0
    info = index(out)
    assert [(r["video_id"], r["start"], r["real_seconds"], r["overlap_seconds"]) for r in info["rows"]] == [
        ("long", 0, 10, 0), ("long", 10, 10, 0), ("long", 13, 10, 7), ("short", 0, 7, 0), ("ten", 0, 10, 0)]
    assert {v["video_id"]: v["seconds"] for v in info["videos"]} == {"long": 23, "short": 7, "ten": 10}
    assert [r["row_id"] for r in info["rows"]][:3] == ["long@0", "long@10", "long@13"]
    assert all(r["file"].endswith(r["video_id"] + Path(r["file"]).suffix) for r in info["rows"])
    visual, audio = h5(out / "visual_feature.h5"), h5(out / "audio_feature.h5")
    assert visual.shape == (5, 10, 7, 7, 512) and audio.shape == (5, 10, 128) and visual.dtype == np.float32
    long_v, long_a = read_features(work_path(out, "long"))
    assert np.array_equal(visual[2], long_v[13:23]) and np.array_equal(audio[1], long_a[10:20])
    short_v, _ = read_features(work_path(out, "short"))
    assert np.array_equal(visual[3, :7], short_v) and all(np.array_equal(visual[3, t], short_v[6]) for t in (7, 8, 9))
    assert h5(out / "test_order.h5", "order").tolist() == [0, 1, 2, 3, 4]
    assert h5(out / "train_order.h5", "order").size == 0 and h5(out / "val_order.h5", "order").size == 0
    assert not (out / "labels.h5").exists() and not (out / "Annotations.txt").exists()
    assert info["settings"]["convention"] == CONVENTION.to_dict()
    assert not list(out.glob(".*.tmp")) and not list((out / ".extract").glob(".*.tmp"))


def test_float64_is_stored_when_asked(tmp_path, videos):
    out = tmp_path / "f64"
    assert extract(out, [videos / "short.mp4"], dtype="float64") == 0
    assert h5(out / "visual_feature.h5").dtype == np.float64 and h5(out / "audio_feature.h5").dtype == np.float64


# ---- labels, splits and the loader -------------------------------------------------------------------------


def write_labels(path: Path, lines: list[str]) -> str:
    path.write_text("Category&VideoID&Quality&StartTime&EndTime\n" + "\n".join(lines) + "\n")
    return os.fspath(path)


def test_labelled_rows_pass_todays_loader_and_build_datasets(tmp_path, videos):
    labels = write_labels(tmp_path / "labels.txt", [
        "Bark&long&good&8&15",  # meets windows 0 (8, 9), 10 (10..14) and 13 (13, 14)
        "Cat&long&good&20&23",  # meets window 13 only
        "Banjo&short&good&2&7",  # runs to the video's last second: the padding repeats it
        "Goat&ten&good&0&10",
    ])
    out = tmp_path / "feats"
    assert extract(out, [videos], labels=labels, ratio=(1, 1, 1)) == 0
    info = validate_release(out)
    assert info.num_samples == 6 and info.label_source == "annotations" and not info.label_disagreements
    bark, cat, banjo, goat = (AVE_CATEGORIES.index(c) for c in ("Bark", "Cat", "Banjo", "Goat"))
    rows = index(out)["rows"]
    assert [(r["row_id"], r["event"]["category"], r["event"]["start"], r["event"]["end"]) for r in rows] == [
        ("long@0", "Bark", 8, 10), ("long@10", "Bark", 0, 5), ("long@13", "Bark", 0, 2), ("long@13", "Cat", 7, 10),
        ("short@0", "Banjo", 2, 10), ("ten@0", "Goat", 0, 10)]
    assert info.segment_labels[0].tolist() == [28] * 8 + [bark] * 2
    assert info.segment_labels[4].tolist() == [28, 28] + [banjo] * 8
    assert info.video_labels.tolist() == [bark, bark, bark, cat, banjo, goat]
    visual = h5(out / "visual_feature.h5")
    assert np.array_equal(visual[2], visual[3])  # one window with two events: two rows, the same features (AVE)
    splits = {r["video_id"]: r["split"] for r in rows}
    assert sorted(splits.values()) == ["test", "train", "val"]  # one video each, all rows of a video together
    datasets = build_datasets(out)
    assert sum(len(d) for d in datasets.values()) == 6
    v, a, seg, vid = datasets[splits["long"]][0]
    assert v.shape == (10, 7, 7, 512) and a.shape == (10, 128) and seg.tolist() == [28] * 8 + [bark] * 2
    assert (out / "categories.txt").read_text().splitlines() == list(AVE_CATEGORIES)
    assert (META_DIR / "categories.txt").read_text().splitlines() == list(AVE_CATEGORIES)


def test_a_window_without_event_is_all_background_under_the_videos_category(tmp_path, videos):
    labels = write_labels(tmp_path / "labels.txt", ["Bus&long&good&0&3"])
    out = tmp_path / "feats"
    assert extract(out, [videos / "long.mkv"], labels=labels) == 0
    lines = (out / "Annotations.txt").read_text().splitlines()
    assert lines == ["Category&VideoID&Quality&StartTime&EndTime", "Bus&long@0&good&0&3", "Bus&long@10&good&0&0",
                     "Bus&long@13&good&0&0"]
    assert (h5(out / "labels.h5").argmax(-1)[1:] == 28).all()


def test_loader_accepts_an_unlabelled_folder_with_unknown_labels(tmp_path, videos):
    out = tmp_path / "feats"
    assert extract(out, [videos / "short.mp4", videos / "long.mkv"]) == 0
    info = validate_release(out)  # N = 4 rows: the shipped Annotations.txt (N = 4143) is never looked at
    assert info.label_source == "none" and info.num_samples == 4
    assert (info.segment_labels == UNKNOWN).all() and (info.video_labels == UNKNOWN).all()
    test = build_datasets(out, splits=("test",))["test"]
    v, a, seg, vid = test[3]
    assert seg.tolist() == [UNKNOWN] * 10 and int(vid) == UNKNOWN and v.shape == (10, 7, 7, 512)
    assert row_ids(test) == ["long@0", "long@10", "long@13", "short@0"]
    with pytest.raises(AVEDataError, match="this folder has no labels"):
        validate_release(out, labels="file")


def test_an_unlabelled_folder_of_4143_rows_never_gets_aves_labels(tmp_path, videos):
    out = tmp_path / "feats"
    assert extract(out, [videos / "short.mp4"]) == 0
    for name in ("visual_feature.h5", "audio_feature.h5"):  # as many rows as the release: the old trap
        shape = h5(out / name).shape[1:]
        with h5py.File(out / name, "w") as f:  # chunks never written take no space
            f.create_dataset("avadataset", (4143, *shape), dtype="float32", chunks=(1, *shape))
    with h5py.File(out / "test_order.h5", "w") as f:
        f.create_dataset("order", data=np.arange(4143))
    with pytest.raises(AVEDataError, match="videos.json: holds 1 rows, expected 4143"):
        validate_release(out)


def test_loader_accepts_a_labelled_folder_with_one_split(tmp_path, videos):
    labels = write_labels(tmp_path / "labels.txt", ["Bus&short&good&0&3"])
    out = tmp_path / "feats"
    assert extract(out, [videos / "short.mp4"], labels=labels) == 0
    datasets = build_datasets(out)
    assert (len(datasets["train"]), len(datasets["val"]), len(datasets["test"])) == (0, 0, 1)
    with pytest.raises(AVEDataError, match=r"the val split holds no rows \(val_order.h5 is empty\): predict needs "
                                           "at least one; this folder's rows are in test"):
        require_rows(datasets["val"], "val", "predict")
    require_rows(datasets["test"], "test", "predict")


def test_split_ratio_is_stable_and_gives_every_split_a_video():
    ids = [f"v{i}" for i in range(10)]
    splits = assign_splits(ids, "test", (0.8, 0.1, 0.1))
    assert sorted(splits.values()).count("train") == 8 and set(splits.values()) == {"train", "val", "test"}
    more = assign_splits(ids + ["w"], "test", (0.8, 0.1, 0.1))
    assert sum(splits[v] != more[v] for v in ids) <= 2  # adding a video moves few others
    assert set(assign_splits(ids[:3], "test", (0.98, 0.01, 0.01)).values()) == {"train", "val", "test"}
    assert set(assign_splits(ids, "val", None).values()) == {"val"}


def test_videos_missing_from_the_labels_fail_and_are_listed(tmp_path, videos, capsys):
    labels = write_labels(tmp_path / "labels.txt", ["Bus&short&good&0&3"])
    out = tmp_path / "feats"
    networks = stand_in_networks()
    options = Options(out, CONVENTION, settings_of(CONVENTION, networks, "float32"), split="test",
                      labels=read_labels(labels, list(AVE_CATEGORIES)), categories=list(AVE_CATEGORIES))
    out.mkdir()
    assert run(video_ids(list_videos([videos / "short.mp4", videos / "ten.avi"])), networks, options) == 1
    err = capsys.readouterr().err
    assert "ten.avi: no line of --labels names its video id 'ten'" in err
    assert index(out)["rows"][0]["video_id"] == "short" and len(index(out)["rows"]) == 1


def test_malformed_labels_are_refused_naming_the_line(tmp_path):
    cats = list(AVE_CATEGORIES)
    for line, says in (("Bus&a&good&3", "5"), ("Dragon&a&good&0&3", "unknown category 'Dragon'"),
                       ("Bus&a&good&x&3", "not whole seconds"), ("Bus&a&good&5&3", "start=5, end=3")):
        with pytest.raises(ConfigError, match="line 2") as info:
            read_labels(write_labels(tmp_path / "l.txt", [line]), cats)
        assert says in str(info.value)


# ---- resuming and the work folder ----------------------------------------------------------------------------


def test_a_rerun_skips_finished_videos_and_rewrites_the_same_release(tmp_path, videos, monkeypatch):
    out = tmp_path / "feats"
    assert extract(out, [videos / "short.mp4", videos / "ten.avi"]) == 0
    before = h5(out / "visual_feature.h5")

    def refuse(*args, **kwargs):
        raise AssertionError("a finished video was extracted again")

    monkeypatch.setattr(run_module, "extract_video", refuse)
    assert extract(out, [videos / "short.mp4", videos / "ten.avi"]) == 0
    assert np.array_equal(h5(out / "visual_feature.h5"), before)


def test_a_changed_video_is_extracted_again(tmp_path, videos):
    src = tmp_path / "clip.mp4"
    src.write_bytes((videos / "short.mp4").read_bytes())
    out = tmp_path / "feats"
    assert extract(out, [src]) == 0
    mtime = work_path(out, "clip").stat().st_mtime_ns
    os.utime(src, ns=(src.stat().st_atime_ns, src.stat().st_mtime_ns + 10**9))
    assert extract(out, [src]) == 0
    assert work_path(out, "clip").stat().st_mtime_ns != mtime


def test_other_settings_are_refused_before_any_work(tmp_path, videos):
    out = tmp_path / "feats"
    assert extract(out, [videos / "short.mp4"]) == 0
    with pytest.raises(ConfigError, match=r"other settings .*frames_per_second: 2 -> 3"):
        extract(out, [videos / "short.mp4"], convention=Convention(frames_per_second=3, wav_rate=16000))
    with pytest.raises(ConfigError, match="dtype: 'float32' -> 'float64'"):
        extract(out, [videos / "short.mp4"], dtype="float64")


def test_an_unlabelled_rerun_removes_the_labels_of_the_earlier_rows(tmp_path, videos):
    out = tmp_path / "feats"
    labels = write_labels(tmp_path / "labels.txt", ["Bus&short&good&0&3"])
    assert extract(out, [videos / "short.mp4"], labels=labels) == 0
    assert (out / "labels.h5").exists()
    assert extract(out, [videos / "short.mp4"]) == 0
    assert not (out / "labels.h5").exists() and not (out / "Annotations.txt").exists()


def test_a_folder_holding_another_release_is_refused(tmp_path, videos):
    out = tmp_path / "ave"
    out.mkdir()
    (out / "visual_feature.h5").write_bytes(b"someone's release")
    with pytest.raises(ConfigError, match="not written by extract"):
        run_module.check_out(out)
