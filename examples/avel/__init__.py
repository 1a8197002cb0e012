"""AVEL (Tian et al., ECCV 2018) on the AVE pipeline: A+V-att, W-A+V-att, DMRN and the paper's other rows."""

from .family import FAMILY

__all__ = ["FAMILY"]
