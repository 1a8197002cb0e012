"""Fused Triton kernels. Importing this package never imports triton; see ``cmra_op``."""
