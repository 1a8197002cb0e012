"""The timeline figure of ``predict --video``: per-second class probabilities over the whole video, the events
the model predicts, and the 10-second rows they were joined from.

Axis legend: D whole seconds, k = 29 classes (28 = background).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..checkpoint import atomic_write
from ..constants import BACKGROUND
from .video_events import VideoTimeline

MIN_SHOWN = 0.05  # an event class is drawn when it reaches this probability in some second


def shown_classes(probabilities: np.ndarray, labels: np.ndarray, most: int = 8) -> list[int]:
    """The event classes worth a row (predicted somewhere, or at least MIN_SHOWN probable; at most ``most``, the
    most probable first), then background."""
    peak = probabilities[:, :BACKGROUND].max(0)
    predicted = {int(k) for k in labels if k != BACKGROUND}
    ranked = sorted(range(BACKGROUND), key=lambda k: (k not in predicted, -peak[k]))
    chosen = [k for k in ranked if k in predicted or peak[k] >= MIN_SHOWN][:most]
    return chosen + [BACKGROUND]


def _short(name: str, n: int = 22) -> str:
    return name if len(name) <= n else name[: n - 1] + "."


def plot_timeline(path: Path, timeline: VideoTimeline, names: list[str], title: str) -> None:
    """Rows: the shown classes' probability in each second (0..1); below, the predicted events with their mean
    relevance; dotted lines where a row of 10 seconds starts."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    probs, labels = timeline.probabilities, timeline.labels
    seconds, classes = len(labels), shown_classes(timeline.probabilities, timeline.labels)
    fig, (ax, ev) = plt.subplots(2, 1, figsize=(min(18.0, 4.0 + 0.28 * seconds), 1.6 + 0.28 * len(classes)),
                                 sharex=True, gridspec_kw={"height_ratios": [len(classes), 1.4]},
                                 constrained_layout=True)
    im = ax.imshow(probs[:, classes].T, aspect="auto", cmap="viridis", vmin=0, vmax=1, interpolation="nearest",
                   extent=(0, seconds, len(classes), 0))
    ax.set_yticks(np.arange(len(classes)) + 0.5)
    ax.set_yticklabels([_short(names[k]) for k in classes], fontsize=7)
    fig.colorbar(im, ax=ax, shrink=0.9, label="probability")
    for w in timeline.windows[1:]:
        for a in (ax, ev):
            a.axvline(w.start, color="white" if a is ax else "grey", lw=0.8, ls=":")
    events = _events(labels, timeline.relevance)
    for start, end, k, relevance in events:
        ev.barh(0, end - start, left=start, height=0.8, color=f"C{k % 10}", edgecolor="black")
        ev.text(start + 0.1, 0, f"{_short(names[k], 16)} {relevance:.2f}", va="center", fontsize=7)
    if not events:
        ev.text(seconds / 2, 0, "no event: background in every second", ha="center", va="center", fontsize=8)
    ev.set(yticks=[], xlim=(0, seconds), xlabel="second of the video", ylim=(-0.6, 0.6))
    ev.set_title("predicted events (mean relevance); dotted: where a 10-second row starts", fontsize=8)
    ax.set_title(title, fontsize=9)
    atomic_write(path, lambda f: fig.savefig(f, format="png", dpi=90))
    plt.close(fig)


def _events(labels: np.ndarray, relevance: np.ndarray) -> list[tuple[int, int, int, float]]:
    """(start, end, class, mean relevance) of each run of one event class."""
    out, t = [], 0
    while t < len(labels):
        k, start = int(labels[t]), t
        while t < len(labels) and labels[t] == k:
            t += 1
        if k != BACKGROUND:
            out.append((start, t, k, float(np.mean(relevance[start:t]))))
    return out


__all__ = ["plot_timeline", "shown_classes"]
