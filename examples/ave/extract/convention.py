"""The AVE feature convention: every choice that changes the numbers, one frozen dataclass.

The defaults reproduce how the AVE release (Tian et al., ECCV 2018) was extracted; each field is one
command-line flag away (``FLAGS``). docs/own_videos.md gives the sources of each default.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from .errors import ConfigError

SEGMENT_SECONDS = 1  # one feature row per whole second
WINDOW_SECONDS = 10  # T: the models are trained on 10-segment clips; the index rule counts frames per 10 s block
FRAME_RULES = ("index", "time")
FRAME_COUNTS = ("decoded", "container")
VISUAL_WEIGHTS = ("keras", "torchvision")
AUDIO_CHUNKINGS = ("second", "stream")
VGGISH_OUTPUTS = ("relu", "linear")
VGGISH_POSTPROCESSING = ("none", "audioset")

# field -> the command-line flag that sets it
FLAGS = {
    "frames_per_second": "--frames-per-second",
    "frame_rule": "--frame-rule",
    "frame_count": "--frame-count",
    "visual_weights": "--vgg19-weights (its format)",
    "wav_rate": "--wav-rate",
    "audio_chunking": "--audio-chunking",
    "vggish_output": "--vggish-output",
    "vggish_postprocess": "--vggish-postprocess",
}


@dataclass(frozen=True)
class Convention:
    """How a video becomes AVE features.

    frames_per_second: frames sampled in each one-second segment, their pool5 maps averaged (AVE: 16).
    frame_rule: "index" (AVE: in each block of 10 whole seconds holding N frames, F = int(N / 10) frames per
        segment, sample i of segment l is frame ``int(l*F + i/16*F)`` of the block, chosen by index, not by
        time) or "time" (the frame shown at ``l + i/16`` seconds, by timestamp; accepts variable frame rates).
    frame_count: N for the index rule: "decoded" (frames actually decoded, the maintainer's later advice) or
        "container" (the container's frame count, what ``len(reader)`` of the 2018 code read).
    visual_weights: "keras" (the release: Caffe-ported Keras VGG-19, 224x224 squash, BGR mean subtraction)
        or "torchvision" (``vgg19-dcbb9e9d.pth`` with its own preprocessing; not the release's numbers).
    wav_rate: the rate the audio track is first written at as 16-bit PCM, channels kept (AVE: 44100, then
        each second is resampled to 16 kHz; 16000 skips that step).
    audio_chunking: "second" (AVE: each second [i, i+1) s is its own VGGish example, its first 0.975 s)
        or "stream" (stock VGGish: the whole track framed with a 0.96 s hop; drifts 40 ms per second).
    vggish_output: "relu" (the 2018 graph and torchvggish: ReLU after the last layer, the release) or
        "linear" (today's TensorFlow VGGish: the pre-activation embedding).
    vggish_postprocess: "none" (the release: the raw embedding) or "audioset" (PCA, clip to [-2, 2],
        8-bit quantization: the AudioSet embeddings, integers 0..255; needs --vggish-pca).
    """

    frames_per_second: int = 16
    frame_rule: str = "index"
    frame_count: str = "decoded"
    visual_weights: str = "keras"
    wav_rate: int = 44100
    audio_chunking: str = "second"
    vggish_output: str = "relu"
    vggish_postprocess: str = "none"

    def __post_init__(self) -> None:
        fps = self.frames_per_second
        if isinstance(fps, bool) or not isinstance(fps, int) or not 1 <= fps <= 240:
            raise ConfigError(f"--frames-per-second must be an integer in [1, 240], got {fps!r} (AVE: 16)")
        rate = self.wav_rate
        if isinstance(rate, bool) or not isinstance(rate, int) or not 16000 <= rate <= 192000:
            raise ConfigError(f"--wav-rate must be an integer in [16000, 192000] Hz, got {rate!r} (AVE: 44100)")
        for name, choices in (("frame_rule", FRAME_RULES), ("frame_count", FRAME_COUNTS),
                              ("visual_weights", VISUAL_WEIGHTS), ("audio_chunking", AUDIO_CHUNKINGS),
                              ("vggish_output", VGGISH_OUTPUTS), ("vggish_postprocess", VGGISH_POSTPROCESSING)):
            if getattr(self, name) not in choices:
                raise ConfigError(f"{FLAGS[name]} must be one of {choices}, got {getattr(self, name)!r}")
        if self.frame_rule == "time" and self.frame_count != "decoded":
            raise ConfigError("--frame-count applies to --frame-rule index only (the time rule reads every "
                              f"frame's timestamp), got --frame-count {self.frame_count!r} with --frame-rule time")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> Convention:
        return cls(**d)

    def differences(self) -> list[str]:
        """The fields that differ from the AVE release's convention, as 'flag value (AVE: value)'."""
        ave = Convention()
        return [f"{FLAGS[f.name]} {getattr(self, f.name)} (AVE: {getattr(ave, f.name)})"
                for f in dataclasses.fields(self) if getattr(self, f.name) != getattr(ave, f.name)]
