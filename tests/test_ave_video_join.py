"""A video's rows joined back onto its own seconds (the grid windows keep their seconds, the end window adds its
new ones, padding dropped), per-video events across rows, per-segment class probabilities, and where the
spatial maps of ``visualize --video`` go on the frames."""

from __future__ import annotations

from types import SimpleNamespace
from typing import NamedTuple

import numpy as np
import pytest
import torch
from test_extract_support import stand_in_networks

from examples.ave.constants import BACKGROUND
from examples.ave.extract import overlay
from examples.ave.extract.convention import Convention
from examples.ave.extract.join import join, sources
from examples.ave.extract.pipeline import settings_of
from examples.ave.extract.run import Options, list_videos, run, video_ids
from examples.ave.extract.sampling import index_rule
from examples.ave.extract.synthetic import read_frame_code, write_video
from examples.ave.extract.video_events import (
    RowResult,
    join_videos,
    segment_probabilities,
    video_groups,
    video_record,
)
from examples.ave.extract.windows import Window, windows

NAMES = [f"c{k}" for k in range(28)] + ["background"]


def expected_join(wins: list[Window], values: list[np.ndarray]) -> np.ndarray:
    """Transcription of the rule: second s takes row r's segment s - start_r for the first row (by start) that
    holds s among its real seconds."""
    seconds = max(w.start + w.real_seconds for w in wins)
    out = []
    for s in range(seconds):
        r = min((i for i, w in enumerate(wins) if w.start <= s < w.start + w.real_seconds), key=lambda i: wins[i].start)
        out.append(values[r][s - wins[r].start])
    return np.stack(out)


@pytest.mark.parametrize("seconds", [1, 7, 10, 11, 20, 23, 37])
def test_join_keeps_the_grid_windows_and_adds_the_end_windows_new_seconds(seconds):
    wins = windows(seconds)
    values = [np.random.default_rng(seconds + i).standard_normal((10, 3)) for i in range(len(wins))]
    joined = join(wins, values)
    assert joined.shape == (seconds, 3)  # padding dropped, nothing past the whole seconds
    assert np.array_equal(joined, expected_join(wins, values))
    if seconds == 23:  # rows at 0, 10, 13: seconds 20-22 are segments 7-9 of the row at 13
        assert np.array_equal(joined[10:20], values[1]) and np.array_equal(joined[20:], values[2][7:])
        assert sources(wins) == [(0, 10, 0), (0, 10, 10), (7, 10, 20)]
    assert np.array_equal(join(wins[::-1], values[::-1]), joined)  # the rows' order does not matter


def test_join_refuses_a_gap_and_mismatched_values():
    with pytest.raises(ValueError, match="seconds 10..12 are in no window"):
        join([Window(0, 10, 0), Window(13, 10, 0)], [np.zeros(10)] * 2)
    with pytest.raises(ValueError, match="one value per window"):
        join([Window(0, 10, 0)], [])


def result(labels, relevance=0.5) -> RowResult:
    labels = np.asarray(labels)
    probs = np.eye(29)[labels]
    return RowResult(labels, np.full(len(labels), relevance), probs)


def test_events_run_across_rows_on_the_videos_own_seconds():
    rows = [{"row_id": f"v@{s}", "video_id": "v", "start": s, "real_seconds": 10, "overlap_seconds": o}
            for s, o in ((0, 0), (10, 0), (13, 7))]
    bg = BACKGROUND
    results = {0: result([bg] * 8 + [3, 3], 0.9), 1: result([3] * 3 + [bg] * 7, 0.6),
               2: result([5] * 7 + [bg, 4, 4], 0.3)}  # seconds 13-19 of the end row lose to the row at 10
    (timeline,) = join_videos([(0, {"video_id": "v", "file": "v.mp4"}, list(enumerate(rows)))], results)
    record = video_record(timeline, NAMES, "test")
    assert record["seconds"] == 23 and record["rows"] == ["v@0", "v@10", "v@13"]
    assert record["events"] == [{"category": "c3", "start": 8, "end": 13, "relevance": 0.72},
                                {"category": "c4", "start": 21, "end": 23, "relevance": 0.3}]


def test_a_short_videos_padding_is_never_an_event():
    rows = [{"row_id": "s@0", "video_id": "s", "start": 0, "real_seconds": 7, "overlap_seconds": 0}]
    (timeline,) = join_videos([(0, {"video_id": "s"}, list(enumerate(rows)))], {0: result([2] * 10)})
    assert video_record(timeline, NAMES, "test")["events"] == [{"category": "c2", "start": 0, "end": 7,
                                                               "relevance": 0.5}]


class Supervised(NamedTuple):
    event_logits: torch.Tensor
    class_logits: torch.Tensor


class Segments(NamedTuple):
    segment_logits: torch.Tensor


def test_segment_probabilities_of_each_output_form():
    event, classes = torch.randn(2, 5, dtype=torch.float64), torch.randn(2, 28, dtype=torch.float64)
    p = segment_probabilities(Supervised(event, classes)).double()
    sig, soft = 1 / (1 + torch.exp(-event)), torch.exp(classes) / torch.exp(classes).sum(-1, keepdim=True)
    assert torch.allclose(p[..., :28], sig[..., None] * soft[:, None], atol=1e-6)
    assert torch.allclose(p[..., 28], 1 - sig, atol=1e-6) and torch.allclose(p.sum(-1), torch.ones(2, 5).double())
    weak = segment_probabilities(Supervised(event, torch.randn(2, 29))).double()  # a weak head's background class
    assert torch.allclose(weak.sum(-1), torch.ones(2, 5, dtype=torch.float64), atol=1e-6)
    logits = torch.randn(3, 4, 29)
    assert torch.allclose(segment_probabilities(Segments(logits)), logits.softmax(-1))
    assert segment_probabilities(SimpleNamespace(x=1)) is None


def test_upsampled_map_puts_each_cell_at_its_centre_and_the_grid_on_what_vgg_saw():
    grid = np.arange(49, dtype=np.float32).reshape(7, 7)
    up = overlay.upsample_map(grid, 70, 140)
    assert up.shape == (70, 140)
    assert up[35, 70] == pytest.approx(grid[3, 3], abs=0.6)  # the centre cell at the centre
    assert up[0, 0] == grid[0, 0] and up[-1, -1] == grid[6, 6]  # edges clamped
    assert overlay.grid_box(320, 240, "keras") == (0, 0, 320, 240)  # the squash: the whole frame
    assert overlay.grid_box(320, 240, "torchvision") == (55.0, 15.0, 265.0, 225.0)  # the 224/256 centre crop


def test_the_drawn_frame_of_each_second_is_its_middle_sampled_frame(tmp_path, monkeypatch):
    video = write_video(tmp_path / "clip.mkv", 11.0, fps=10)
    convention = Convention(frames_per_second=4, wav_rate=16000)
    networks = stand_in_networks()
    out = tmp_path / "feats"
    out.mkdir()
    options = Options(out, convention, settings_of(convention, networks, "float32"))
    assert run(video_ids(list_videos([video])), networks, options, log=lambda *a, **k: None) == 0
    monkeypatch.setattr(overlay, "thumbnail", lambda rgb: rgb)
    frames = list(overlay.second_frames(out, "clip", 10**8))
    expected = index_rule(110, 10, 11, 4)[:, 2]
    assert [read_frame_code(f)[0] for f in frames] == expected.tolist() and len(frames) == 11
    assert expected[:3].tolist() == [5, 15, 25]  # F = 10: sample 2 of 4 is frame l*10 + int(2/4 * 10)
    groups = video_groups(SimpleNamespace(root=out, items=np.array([[0, 0], [0, 1]]), dataset=None))
    assert [(index, v["video_id"], [r["row_id"] for _, r in g]) for index, v, g in groups] == [
        (0, "clip", ["clip@0", "clip@1"])]
