"""SegmentClassifier: a class score per segment, the head of AVEL (Tian et al., ECCV 2018) and PSP
(Zhou et al., CVPR 2021).

Axis legend: b batch, t segments, e input features, j hidden width, k classes (29: 28 events + background).
"""

from __future__ import annotations

import torch
import torch.nn as nn
from torch import Tensor

from .._checks import check_flag, check_input_dtypes, check_positive_int, check_sequence_features
from .._deprecation import renamed_attribute, renamed_keywords


class SegmentClassifier(nn.Module):
    """``logits_t = output(ReLU(hidden(x_t)))``, or ``output(x_t)`` when ``hidden_dim=None``.

    ``hidden: Linear(input_dim, hidden_dim)``, ``output: Linear(hidden_dim, num_classes)``, with biases
    when ``bias=True`` (``input_dim`` was ``in_dim``). ``num_classes`` is the width of the class
    axis it outputs: 29 in AVE, the 28 events and background (index 28). AVEL's concatenation head is ``hidden_dim=64`` with biases (fed ReLU([a ; v]));
    its DMRN head ``hidden_dim=None``; PSP's ``hidden_dim=64, bias=False``. Softmax over the last axis
    gives the per-segment class distribution; the predicted class is its argmax over all classes
    (``avattn.predict_segment_classes``).

    Shapes: x (B, T, input_dim) -> (B, T, num_classes).
    """

    @renamed_keywords(in_dim="input_dim")
    def __init__(
        self,
        input_dim: int,
        num_classes: int = 29,
        *,
        hidden_dim: int | None = 64,
        bias: bool = True,
        device=None,
        dtype=None,
    ) -> None:
        super().__init__()
        self.input_dim = check_positive_int("input_dim", input_dim)
        self.num_classes = check_positive_int("num_classes", num_classes)
        hidden_dim = None if hidden_dim is None else check_positive_int("hidden_dim", hidden_dim)
        bias = check_flag("bias", bias)
        kw = {"device": device, "dtype": dtype}
        self.hidden = None if hidden_dim is None else nn.Linear(self.input_dim, hidden_dim, bias=bias, **kw)
        self.output = nn.Linear(hidden_dim or self.input_dim, self.num_classes, bias=bias, **kw)

    in_dim = renamed_attribute("in_dim", "input_dim")

    def forward(self, x: Tensor) -> Tensor:
        """Class logits for every segment (softmax over the last axis: the class distribution).

        Axes: B batch, T segments, C input_dim, K num_classes.
        Shapes: x (B, T, C) -> (B, T, K).
        """
        check_sequence_features("x", x, self.input_dim)
        check_input_dtypes(self, x=x)
        if self.hidden is not None:
            x = torch.relu(self.hidden(x))
        return self.output(x)
