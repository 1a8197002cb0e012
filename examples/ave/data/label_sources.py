"""Where a release directory's segment labels came from, in one sentence, and the disagreement between its
two label sources (``labels.h5``, ``Annotations.txt``) that nobody chose.

``validate_release`` picks the labels (``labels="auto"``: the annotations when an annotation file with N
rows is there, else ``labels.h5``); this module says which file that was (``note``) and, under ``auto``,
what the user did not ask for (``problem``): ``labels.h5`` disagreeing with the annotations, or the
directory's own ``Annotations.txt`` not matching the features' N (then silently set aside). The pipeline
prints the note and refuses the problem (``examples.ave.datasets.build_splits``); ``--labels annotations``
or ``--labels file`` is the choice that makes it go away.

Axis legend: N samples.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

# The real release (4,143 samples): labels.h5 disagrees with Annotations.txt on these two test samples,
# a known error of the release file; the annotations are used and this is not a disagreement to refuse.
KNOWN_ERRATA = {4143: (171, 2189)}


@dataclass(frozen=True)
class LabelChoice:
    """What ``validate_release`` found about the two label sources of a directory of N samples."""

    root: Path
    n: int
    mode: str  # the labels= asked for: auto, annotations, file
    source: str  # the one used: annotations, file
    annotations: Path  # the annotation file considered (the directory's, else the shipped copy)
    annotation_rows: int
    has_file: bool  # labels.h5 is there
    disagreements: tuple[int, ...]  # samples where labels.h5 and the annotations differ (both N rows)

    @property
    def own_annotations(self) -> bool:
        return self.annotations.parent == self.root

    def note(self) -> str:
        if self.source == "annotations":
            where = str(self.annotations) if self.own_annotations else \
                f"the shipped Annotations.txt ({self.root} has none)"
            return f"segment labels: {where} ({self._file_verdict()})"
        why = "--labels file" if self.mode == "file" else (
            f"{self.annotations} holds {self.annotation_rows} samples, not {self.n}" if self.own_annotations
            else f"{self.root} has no Annotations.txt; the shipped one is the {self.annotation_rows}-video release's")
        agree = f"; Annotations.txt disagrees on {self._samples()}" if self.disagreements else ""
        return f"segment labels: {self.root / 'labels.h5'} ({why}{agree})"

    def problem(self) -> str | None:
        """Under labels='auto': the disagreement nobody chose, as an error message; else None."""
        if self.mode != "auto":
            return None
        if self.source == "file" and self.own_annotations:
            return (f"{self.annotations}: holds {self.annotation_rows} samples, but the features hold {self.n}: it "
                    f"does not describe these videos; fix or remove it, or pass --labels file to use "
                    f"{self.root / 'labels.h5'}")
        if self.source == "annotations" and self.disagreements and not self._errata():
            return (f"{self.root / 'labels.h5'} and {self.annotations} disagree on {self._samples()}: pass "
                    "--labels annotations to use the annotations, or --labels file to use labels.h5")
        return None

    def _file_verdict(self) -> str:
        if not self.has_file:
            return f"{self.root} has no labels.h5"
        if not self.disagreements:
            return "labels.h5 agrees"
        if self._errata():
            return f"labels.h5 differs on {self._samples()}, the release's known label errors"
        return f"--labels annotations; labels.h5 disagrees on {self._samples()}"

    def _errata(self) -> bool:
        return self.disagreements == KNOWN_ERRATA.get(self.n)

    def _samples(self) -> str:
        d = self.disagreements
        shown = ", ".join(map(str, d[:5])) + (" ..." if len(d) > 5 else "")
        return f"{len(d)} of {self.n} samples ({'sample' if len(d) == 1 else 'samples'} {shown})"


__all__ = ["KNOWN_ERRATA", "LabelChoice"]
