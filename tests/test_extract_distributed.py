"""Under torchrun every rank extracts its share of the sorted video list and rank 0 joins the shards into one
release folder: two CPU processes (gloo), random weights in the published layouts, one bad video."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import h5py
from test_extract_support import weight_files

from examples.ave.extract.synthetic import write_video

ROOT = Path(__file__).resolve().parents[1]


def test_two_ranks_share_the_videos_and_rank_0_joins_them(tmp_path):
    videos = tmp_path / "videos"
    videos.mkdir()
    for name, seconds in (("a", 1.0), ("b", 1.2), ("c", 1.0)):
        write_video(videos / f"{name}.mkv", seconds, size=(64, 48))
    (videos / "d.mp4").write_bytes(b"not a video")
    files = weight_files()
    out = tmp_path / "feats"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
           "OMP_NUM_THREADS": "1"}
    for var in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(var, None)
    proc = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--standalone",
         "-m", "examples.ave.extract", "--videos", str(videos), "--out", str(out), "--device", "cpu",
         "--frames-per-second", "1", "--wav-rate", "16000",
         "--vgg19-weights", str(files["keras_notop"]), "--vggish-weights", str(files["vggish"])],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    log = proc.stdout + proc.stderr
    assert proc.returncode != 0, log  # d.mp4 failed: every rank exits 1, torchrun reports it
    assert "[rank 0]" in log and "[rank 1]" in log
    assert log.count("1 of 4 videos failed") == 1 and "d.mp4: cannot be opened as a video file" in log
    index = json.loads((out / "videos.json").read_text())
    assert [v["video_id"] for v in index["videos"]] == ["a", "b", "c"]
    with h5py.File(out / "visual_feature.h5", "r") as f:
        assert f["avadataset"].shape == (3, 10, 7, 7, 512)
    assert sorted(p.name for p in (out / ".extract").iterdir()) == ["a.h5", "b.h5", "c.h5"]
    assert not [p for p in out.rglob("*") if p.name.endswith(".tmp")]
