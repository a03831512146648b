"""Numba reference kernels: they DEFINE the expected results of the engine."""

from dcsim.kernels.fixed import FixedFormat
from dcsim.kernels.spmv import (
    dense_gemv, layer_dense, layer_fixed, layer_float, quantize_layer, spmv_csc, spmv_csr,
    spmv_fixed,
)

__all__ = [
    "FixedFormat", "dense_gemv", "layer_dense", "layer_fixed", "layer_float",
    "quantize_layer", "spmv_csc", "spmv_csr", "spmv_fixed",
]
