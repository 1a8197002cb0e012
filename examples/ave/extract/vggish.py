"""VGGish in plain PyTorch (torchvggish's ``vggish-10086976.pth`` layout) and AudioSet's post-processing.

Axis legend: B examples, t 96 log-mel frames, m 64 mel bands, C channels, h, w cells after the last pool
(6 x 4), E 128 embedding channels.

The forward flattens the last map channels-last (B, 6, 4, 512) as TensorFlow did, and ends with a ReLU when
``final_relu`` (the 2018 graph, torchvggish, and the AVE release; today's TensorFlow VGGish has none).
``audioset_postprocess`` is ``vggish_postprocess.Postprocessor``: PCA with ``pca_eigen_vectors`` (E, E) and
``pca_means`` (E,), clip to [-2, 2], scale to [0, 255] and truncate to uint8 (here kept as float).
"""

from __future__ import annotations

import os

import torch
from torch import nn

from .errors import ConfigError
from .weights import WeightFile, check_file, check_hash_in_name, check_keys_and_shapes, load_state_dict, sha256_of

FLAG, PCA_FLAG = "--vggish-weights", "--vggish-pca"
EMBEDDING = 128
CONVS = ((1, 64), (64, 128), (128, 256), (256, 256), (256, 512), (512, 512))
POOL_AFTER = (0, 1, 3, 5)  # conv numbers followed by a 2x2 max-pool
FC = ((512 * 6 * 4, 4096), (4096, 4096), (4096, EMBEDDING))
QUANTIZE_MIN, QUANTIZE_MAX = -2.0, 2.0
PCA_SHAPES = {"pca_eigen_vectors": (EMBEDDING, EMBEDDING), "pca_means": (EMBEDDING,)}


def state_shapes() -> dict[str, tuple[int, ...]]:
    """The published file's keys -> shapes: ``features.{0,3,6,8,11,13}``, ``embeddings.{0,2,4}``."""
    out, i = {}, 0
    for n, (cin, cout) in enumerate(CONVS):
        out[f"features.{i}.weight"], out[f"features.{i}.bias"] = (cout, cin, 3, 3), (cout,)
        i += 3 if n in POOL_AFTER else 2
    for j, (fin, fout) in enumerate(FC):
        out[f"embeddings.{2 * j}.weight"], out[f"embeddings.{2 * j}.bias"] = (fout, fin), (fout,)
    return out


class VGGish(nn.Module):
    """(B, 96, 64) log-mel examples -> (B, 128) embeddings."""

    def __init__(self, final_relu: bool = True, device=None, dtype=None):
        super().__init__()
        layers = []
        for n, (cin, cout) in enumerate(CONVS):
            layers += [nn.Conv2d(cin, cout, 3, padding=1, device=device, dtype=dtype), nn.ReLU(inplace=True)]
            if n in POOL_AFTER:
                layers.append(nn.MaxPool2d(2, 2))
        self.features = nn.Sequential(*layers)
        fc = []
        for fin, fout in FC:
            fc += [nn.Linear(fin, fout, device=device, dtype=dtype), nn.ReLU(inplace=True)]
        self.embeddings = nn.Sequential(*(fc if final_relu else fc[:-1]))
        self.final_relu = final_relu

    def forward(self, examples: torch.Tensor) -> torch.Tensor:
        maps = self.features(examples[:, None])  # (B, C, h, w)
        return self.embeddings(maps.permute(0, 2, 3, 1).flatten(1))


def audioset_postprocess(embeddings: torch.Tensor, eigen_vectors: torch.Tensor, means: torch.Tensor) -> torch.Tensor:
    """(B, E) -> (B, E) floats holding integers 0..255: PCA, clip to [-2, 2], 8-bit quantization (truncated)."""
    projected = (embeddings.to(eigen_vectors.dtype) - means) @ eigen_vectors.T
    clipped = projected.clamp(QUANTIZE_MIN, QUANTIZE_MAX)
    return torch.trunc((clipped - QUANTIZE_MIN) * (255.0 / (QUANTIZE_MAX - QUANTIZE_MIN)))


def load_vggish(path, final_relu: bool = True, device=None) -> tuple[VGGish, WeightFile]:
    path = check_file(FLAG, path)
    sha = sha256_of(path)
    check_hash_in_name(FLAG, path, sha)
    state = load_state_dict(FLAG, path)
    check_keys_and_shapes(FLAG, path, state, state_shapes())
    model = nn.utils.skip_init(VGGish, final_relu=final_relu, device=device or "cpu")  # every weight comes from the file
    model.load_state_dict({k: v.to(torch.float32) for k, v in state.items()})
    return model.eval().requires_grad_(False), WeightFile(FLAG, os.fspath(path), "torchvggish", sha)


def load_pca(path) -> tuple[tuple[torch.Tensor, torch.Tensor], WeightFile]:
    """``vggish_pca_params-970ea276.pth`` -> ((E, E) eigen vectors, (E,) means) float64."""
    path = check_file(PCA_FLAG, path)
    sha = sha256_of(path)
    check_hash_in_name(PCA_FLAG, path, sha)
    state = load_state_dict(PCA_FLAG, path)
    if "pca_means" in state and tuple(state["pca_means"].shape) == (EMBEDDING, 1):
        state["pca_means"] = state["pca_means"].reshape(EMBEDDING)
    try:
        check_keys_and_shapes(PCA_FLAG, path, state, PCA_SHAPES)
    except ConfigError as exc:
        raise ConfigError(f"{exc} (the AudioSet PCA parameters)") from None
    pca = (state["pca_eigen_vectors"].to(torch.float64), state["pca_means"].to(torch.float64))
    return pca, WeightFile(PCA_FLAG, os.fspath(path), "vggish-pca", sha)
