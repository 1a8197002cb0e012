"""PSP (Zhou et al., CVPR 2021) on the AVE pipeline: positive sample propagation, supervised and weak."""

from .family import FAMILY

__all__ = ["FAMILY"]
