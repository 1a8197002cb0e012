"""The AVE task's constants, one source for the pipeline and every model folder.

Axis legend: T one-second segments per video, H=W=GRID visual grid, C visual channels, A audio channels.
"""

from __future__ import annotations

from avattn import BACKGROUND

NUM_SEGMENTS = 10  # T: each AVE video is ten one-second segments
NUM_EVENT_CLASSES = 28
NUM_CLASSES = NUM_EVENT_CLASSES + 1  # the events, then background (index BACKGROUND = 28)
AUDIO_DIM = 128  # A: VGGish embeddings
GRID = 7  # H = W: VGG-19 pool5 maps of a 224 x 224 frame
VISUAL_DIMS = {"vgg19": 512, "resnet151": 2048}  # C of each visual feature extractor
SETTINGS = ("supervised", "weak")
SPLITS = ("train", "val", "test")

assert BACKGROUND == NUM_EVENT_CLASSES  # the library's background index is the task's

__all__ = ["AUDIO_DIM", "BACKGROUND", "GRID", "NUM_CLASSES", "NUM_EVENT_CLASSES", "NUM_SEGMENTS", "SETTINGS",
           "SPLITS", "VISUAL_DIMS"]
