"""The pipeline's commands on extract folders and on video files, through ``python -m examples.cmran`` in process:
``predict`` and ``visualize`` on an unlabelled folder with a CMRAN, an AVEL and a PSP checkpoint (events per
video, on its own seconds), ``train`` and ``evaluate`` refused there, empty splits refused only where rows are
needed, and ``predict --video`` / ``visualize --video`` in one command each (random weights in the published
layouts, one frame per second). Checkpoints are untrained models written as import-reference writes them."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch
from cli_checks import run, single_process  # noqa: F401  (fixtures act where imported)
from test_ave_video_join import expected_join
from test_extract_support import stand_in_networks, weight_files

from examples.ave import registry
from examples.ave.config import TrainConfig
from examples.ave.data import build_datasets, validate_release
from examples.ave.evaluate import load_trained_model
from examples.ave.extract import run as run_module
from examples.ave.extract.convention import Convention
from examples.ave.extract.join import window_of
from examples.ave.extract.labels import AVE_CATEGORIES, read_labels
from examples.ave.extract.pipeline import settings_of
from examples.ave.extract.run import Options, list_videos, video_ids
from examples.ave.extract.synthetic import write_video
from examples.ave.import_reference import write_run
from examples.ave.predict import category_names, merge_events

MODELS = ("cmran", "avel", "psp")
CONVENTION = Convention(frames_per_second=2, wav_rate=16000)


def checkpoint(root: Path, name: str, **fields) -> Path:
    """An untrained model's best.pt (seeded), written as import-reference writes one."""
    cfg = registry.family(name).config_class(**fields)
    torch.manual_seed(0)
    run_dir = root / "-".join([name, *fields.values()])
    write_run(run_dir, cfg, registry.build_model(cfg).state_dict(),
              TrainConfig(data="synthetic").resolve(cfg.setting, name), {})
    return run_dir / "best.pt"


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("runs")
    return {name: checkpoint(root, name) for name in MODELS}


def extract(out: Path, videos: list[Path], labels: str | None = None) -> None:
    networks = stand_in_networks()
    options = Options(out, CONVENTION, settings_of(CONVENTION, networks, "float32"), split="test",
                      labels=read_labels(labels, list(AVE_CATEGORIES)) if labels else None,
                      categories=list(AVE_CATEGORIES) if labels else None)
    out.mkdir()
    assert run_module.run(video_ids(list_videos(videos)), networks, options, log=lambda *a, **k: None) == 0


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    """An unlabelled extract folder: a 13-second video (rows at 0 and 3) and a 7-second one (one padded row)."""
    d = tmp_path_factory.mktemp("videos")
    videos = [write_video(d / "long.mkv", 13.2, fps=5, size=(64, 48)), write_video(d / "short.mp4", 7.0, fps=5,
                                                                                  size=(64, 48))]
    extract(d / "feats", videos)
    return d / "feats"


def joined_events(ckpt: Path, folder: Path) -> dict[str, list[dict]]:
    """Independently: the model on every row, each video's rows joined by the rule's transcription, merged."""
    model, _ = load_trained_model(ckpt, torch.device("cpu"))
    test = build_datasets(folder, splits=("test",))["test"]
    items = [test[i] for i in range(len(test))]
    with torch.no_grad():
        output = model(torch.stack([it[0] for it in items]), torch.stack([it[1] for it in items]))
    labels, relevance = model.predict(output).numpy(), model.relevance(output).numpy()
    rows = json.loads((folder / "videos.json").read_text())["rows"]
    out = {}
    for video in dict.fromkeys(r["video_id"] for r in rows):
        mine = [i for i, r in enumerate(rows) if r["video_id"] == video]
        wins = [window_of(rows[i]) for i in mine]
        out[video] = merge_events(expected_join(wins, [labels[i] for i in mine]).tolist(),
                                  expected_join(wins, [relevance[i] for i in mine]).tolist(), category_names(test))
    return out


@pytest.mark.parametrize("name", MODELS)
def test_predict_gives_each_videos_events_on_its_own_seconds(capsys, tmp_path, folder, checkpoints, name):
    assert validate_release(folder).label_source == "none"
    out = tmp_path / "events.jsonl"
    code, text, err = run(capsys, "predict", "--checkpoint", checkpoints[name], "--data", folder, "--out", out)
    assert code == 0, err
    assert "in 2 test videos (3 rows joined on each video's own seconds)" in text
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert [(r["video_id"], r["seconds"], r["rows"]) for r in records] == [
        ("long", 13, ["long@0", "long@3"]), ("short", 7, ["short@0"])]
    assert {r["video_id"]: r["events"] for r in records} == joined_events(checkpoints[name], folder)
    assert all(0 <= e["start"] < e["end"] <= r["seconds"] for r in records for e in r["events"])


def test_predict_picks_videos_by_video_or_row_id_and_writes_csv(capsys, tmp_path, folder, checkpoints):
    out = tmp_path / "events.csv"
    code, _, err = run(capsys, "predict", "--checkpoint", checkpoints["avel"], "--data", folder, "--out", out,
                       "--videos", "long@3")
    assert code == 0, err
    lines = out.read_text().splitlines()
    assert lines[0] == "video_id,split,index,category,start,end,relevance"
    assert all(line.startswith("long,test,0,") for line in lines[1:])
    code, _, err = run(capsys, "predict", "--checkpoint", checkpoints["avel"], "--data", folder, "--out", out,
                       "--videos", "nope")
    assert code == 2 and "--videos: ['nope'] not in this split (2 videos, e.g. long, short" in err


@pytest.mark.parametrize("name", MODELS)
def test_visualize_draws_an_unlabelled_folder(capsys, tmp_path, folder, checkpoints, name):
    code, text, err = run(capsys, "visualize", "--checkpoint", checkpoints[name], "--data", folder, "--out",
                          tmp_path / "vis", "--num-videos", "1")
    assert code == 0, err
    assert "for 1 test videos" in text and sorted(p.name for p in (tmp_path / "vis").iterdir())[0].startswith("00_")


def test_train_and_evaluate_refuse_an_unlabelled_folder(capsys, tmp_path, folder, checkpoints):
    code, _, err = run(capsys, "evaluate", "--checkpoint", checkpoints["cmran"], "--data", folder)
    assert code == 1 and "this folder has no labels" in err and "evaluate has nothing to score against" in err
    code, _, err = run(capsys, "train", "--data", folder, "--out", tmp_path / "run")
    assert code == 2 and "this folder has no labels" in err and not (tmp_path / "run").exists()


def test_empty_splits_are_refused_only_where_rows_are_needed(capsys, tmp_path, folder, checkpoints):
    labels = tmp_path / "labels.txt"
    labels.write_text("Category&VideoID&Quality&StartTime&EndTime\nBus&short&good&0&3\n")
    video = Path(json.loads((folder / "videos.json").read_text())["videos"][1]["file"])
    extract(tmp_path / "one", [video], os.fspath(labels))  # every row in test: train and val empty
    one = tmp_path / "one"
    code, text, err = run(capsys, "evaluate", "--checkpoint", checkpoints["psp"], "--data", one, "--json")
    assert code == 0 and json.loads(text)["segments"] == 10, err
    for command, extra in (("predict", ["--out", tmp_path / "e.jsonl"]), ("visualize", ["--out", tmp_path / "v"]),
                           ("evaluate", [])):
        code, _, err = run(capsys, command, "--checkpoint", checkpoints["psp"], "--data", one, "--split", "val", *extra)
        assert code == 1 and f"the val split holds no rows (val_order.h5 is empty): {command} needs at least one; " \
                              "this folder's rows are in test" in err, err
    code, _, err = run(capsys, "train", "--data", one, "--out", tmp_path / "run")
    assert code == 2 and "the train and val splits hold no rows" in err
    code, _, err = run(capsys, "train", "--data", one, "--setting", "weak", "--out", tmp_path / "run")
    assert code == 2 and "an extract folder holds no weak-setting files" in err


def test_a_weak_model_predicts_on_an_extract_folder(capsys, tmp_path, folder):
    weak = checkpoint(tmp_path, "cmran", setting="weak")
    code, text, err = run(capsys, "predict", "--checkpoint", weak, "--data", folder, "--out", tmp_path / "e.jsonl")
    assert code == 0 and "in 2 test videos" in text, err


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    return write_video(tmp_path_factory.mktemp("clip") / "clip.mp4", 2.0, fps=10, size=(96, 64), tone_seconds=(1,))


def video_flags(work: Path) -> list:
    files = weight_files()
    return ["--vgg19-weights", files["keras_notop"], "--vggish-weights", files["vggish"], "--frames-per-second", 1,
            "--work-dir", work, "--device", "cpu"]


def test_predict_video_and_visualize_video_in_one_command_each(capsys, tmp_path, clip, checkpoints, monkeypatch):
    events, work = tmp_path / "clip.events.csv", tmp_path / "work"
    code, text, err = run(capsys, "predict", "--video", clip, "--checkpoint", checkpoints["cmran"], "--out", events,
                          *video_flags(work))
    assert code == 0, err
    assert "[1/1]" in text and f"in clip (2 s, 1 rows of 10 s joined; amp=none) -> {events}" in text
    assert events.read_text().splitlines()[0] == "video_id,split,index,category,start,end,relevance"
    assert (tmp_path / "clip.events.timeline.png").stat().st_size > 1000
    index = json.loads((work / "videos.json").read_text())
    assert index["videos"][0]["file"] == str(clip) and validate_release(work).num_samples == 1

    def refuse(*args, **kwargs):
        raise AssertionError("the video was extracted again")

    monkeypatch.setattr(run_module, "extract_video", refuse)
    code, text, err = run(capsys, "visualize", "--video", clip, "--checkpoint", checkpoints["psp"], "--out",
                          tmp_path / "vis", *video_flags(work))
    assert code == 0, err
    assert "features of an earlier run reused" in text and "wrote 1 figures (2 seconds of clip)" in text
    assert [p.name for p in (tmp_path / "vis").iterdir()] == ["clip_maps_0-1s.png"]


@pytest.mark.parametrize("argv, code, says", [
    (["--vggish-weights", "x.pth"], 2, "--video needs --vgg19-weights FILE"),
    (["--data", "synthetic", "+"], 2, "--video and --data exclude each other"),
    (["--out", "e.txt", "+"], 2, "--out must end in .jsonl or .csv"),
    (["--frame-batch-size", "0", "+"], 2, "--frame-batch-size must be >= 1"),
    (["--frames-per-second", "0", "+"], 2, "--frames-per-second must be an integer in [1, 240]"),
])
def test_predict_video_refuses_bad_options_before_any_work(capsys, tmp_path, clip, checkpoints, argv, code, says):
    if argv[-1] == "+":  # the weight flags too
        argv = argv[:-1] + video_flags(tmp_path / "work")[:4]
    got, _, err = run(capsys, "predict", "--video", clip, "--checkpoint", checkpoints["cmran"], "--work-dir",
                      tmp_path / "work", *argv)
    assert got == code and says in err, err
    assert not (tmp_path / "work").exists()


def test_predict_video_names_a_bad_file_a_model_of_other_features_and_a_foreign_work_dir(capsys, tmp_path, clip,
                                                                                          checkpoints, folder):
    bad = tmp_path / "broken.mp4"
    bad.write_bytes(b"not a video")
    ckpt = checkpoints["cmran"]
    code, _, err = run(capsys, "predict", "--video", bad, "--checkpoint", ckpt, *video_flags(tmp_path / "w"))
    assert code == 1 and f"--video: {bad}: cannot be opened as a video file" in err, err
    code, _, err = run(capsys, "predict", "--video", tmp_path / "none.mp4", "--checkpoint", ckpt,
                       *video_flags(tmp_path / "w"))
    assert code == 2 and "--video" in err and "no such file" in err
    resnet = checkpoint(tmp_path, "cmran", features="resnet151")
    code, _, err = run(capsys, "visualize", "--video", clip, "--checkpoint", resnet, "--out", tmp_path / "v",
                       *video_flags(tmp_path / "w"))
    assert code == 2 and "holds a model of resnet151 features; --video extracts VGG-19" in err
    code, _, err = run(capsys, "predict", "--video", clip, "--checkpoint", ckpt, *video_flags(folder))
    assert code == 2 and "is an extract folder of 2 videos: --video would replace its release files" in err
