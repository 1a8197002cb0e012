"""``python -m examples.ave.extract`` end to end with random weights in the published layouts (the real
VGG-19 and VGGish architectures, one frame per second to stay fast), and its option errors (exit status 2,
before any work)."""

from __future__ import annotations

import json

import h5py
import numpy as np
import pytest
import torch
from test_extract_support import weight_files

from examples.ave.extract.__main__ import main
from examples.ave.extract.synthetic import write_video


@pytest.fixture(autouse=True)
def one_process(monkeypatch):
    for var in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        monkeypatch.delenv(var, raising=False)
    n = torch.get_num_threads()
    yield
    torch.set_num_threads(n)


def cli(capsys, *argv) -> tuple[int, str, str]:
    try:
        code = main([str(a) for a in argv])
    except SystemExit as exc:
        code = exc.code
    out, err = capsys.readouterr()
    return code, out, err


def weights(**extra) -> list[str]:
    files = weight_files()
    args = ["--vgg19-weights", files["keras_notop"], "--vggish-weights", files["vggish"], "--device", "cpu"]
    for flag, value in extra.items():
        args += [f"--{flag.replace('_', '-')}", value]
    return args


def test_a_video_to_the_release_layout(tmp_path, capsys):
    video = write_video(tmp_path / "clip.mkv", 2.0, tone_seconds=(1,))
    out = tmp_path / "feats"
    code, stdout, err = cli(capsys, "--videos", video, "--out", out, "--frames-per-second", 1, *weights())
    assert code == 0, err
    assert "not the AVE release's convention: --frames-per-second 1 (AVE: 16)" in stdout
    assert "1 videos (1 extracted, 0 already done), 1 rows" in stdout
    with h5py.File(out / "visual_feature.h5", "r") as f:
        visual = f["avadataset"][()]
    with h5py.File(out / "audio_feature.h5", "r") as f:
        audio = f["avadataset"][()]
    assert visual.shape == (1, 10, 7, 7, 512) and audio.shape == (1, 10, 128)
    assert (visual >= 0).all() and (audio >= 0).all() and visual.max() > 0
    assert np.array_equal(visual[0, 1], visual[0, 9]) and not np.array_equal(audio[0, 0], audio[0, 1])
    index = json.loads((out / "videos.json").read_text())
    assert index["settings"]["weights"]["vgg19"]["format"] == "keras-notop"
    code, stdout, _ = cli(capsys, "--videos", video, "--out", out, "--frames-per-second", 1, *weights())
    assert code == 0 and "(0 extracted, 1 already done)" in stdout
    files = weight_files()
    code, _, err = cli(capsys, "--videos", video, "--out", out, "--frames-per-second", 1,
                       "--vgg19-weights", files["torchvision"], "--vggish-weights", files["vggish"])
    assert code == 2 and "other settings" in err and "'keras-notop' -> 'torchvision'" in err


def test_audioset_post_processing_gives_integers(tmp_path, capsys):
    video = write_video(tmp_path / "clip.mkv", 1.0, tone_seconds=(0,))
    out = tmp_path / "feats"
    code, stdout, err = cli(capsys, "--videos", video, "--out", out, "--frames-per-second", 1, "--vggish-postprocess",
                            "audioset", *weights(vggish_pca=weight_files()["pca"]))
    assert code == 0, err
    with h5py.File(out / "audio_feature.h5", "r") as f:
        audio = f["avadataset"][()]
    assert np.array_equal(audio, np.round(audio)) and audio.min() >= 0 and audio.max() <= 255


@pytest.mark.parametrize("argv,says", [
    (["--split-ratio", "0.8,0.1,0.1"], "--split-ratio needs --labels"),
    (["--vggish-postprocess", "audioset"], "--vggish-pca and --vggish-postprocess audioset go together"),
    (["--batch-size", "0"], "--batch-size must be >= 1"),
    (["--frames-per-second", "0"], "--frames-per-second must be an integer in [1, 240]"),
    (["--wav-rate", "8000"], "--wav-rate must be an integer in [16000, 192000]"),
    (["--frame-rule", "time", "--frame-count", "container"], "--frame-count applies to --frame-rule index only"),
    (["--device", "cuda:0"] if not torch.cuda.is_available() else ["--device", "tpu"], "--device"),
])
def test_option_errors_exit_2(tmp_path, capsys, argv, says):
    video = write_video(tmp_path / "clip.mkv", 1.0)
    code, _, err = cli(capsys, "--videos", video, "--out", tmp_path / "out", *weights(), *argv)
    assert code == 2 and says in err, err


def test_missing_inputs_and_wrong_weight_files_exit_2(tmp_path, capsys):
    video = write_video(tmp_path / "clip.mkv", 1.0)
    code, _, err = cli(capsys, "--videos", tmp_path / "none", "--out", tmp_path / "out", *weights())
    assert code == 2 and "no such file or folder" in err
    files = weight_files()
    code, _, err = cli(capsys, "--videos", video, "--out", tmp_path / "out", "--vgg19-weights", files["vggish"],
                       "--vggish-weights", files["vggish"])
    assert code == 2 and "--vgg19-weights" in err and "keys do not match" in err
    code, _, err = cli(capsys, "--videos", video, "--out", tmp_path / "out", "--vgg19-weights", files["keras_notop"],
                       "--vggish-weights", tmp_path / "vggish.pth")
    assert code == 2 and "--vggish-weights" in err and "no such file" in err
    code, _, err = cli(capsys, "--videos", video, "--out", video, *weights())
    assert code == 2 and "is a file" in err
