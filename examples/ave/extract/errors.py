"""The errors of feature extraction.

``ConfigError``: a bad option (the pipeline's, exit status 2, raised before any work).
``VideoError``: one input video that cannot be used (named, with what is wrong); a folder run goes on.
``WorkFolderError``: the work folder under ``--out`` holds results made with other settings.
"""

from __future__ import annotations

import os

from examples.ave.checks import ConfigError

__all__ = ["ConfigError", "VideoError", "WorkFolderError"]


class VideoError(ValueError):
    """A video file that cannot be extracted: ``str(e)`` names the file and what is wrong."""

    def __init__(self, path: str | os.PathLike, problem: str):
        self.path, self.problem = os.fspath(path), problem
        super().__init__(f"{self.path}: {problem}")


class WorkFolderError(RuntimeError):
    """Intermediate results under ``--out`` that do not match this run's settings."""
