"""Numba reference kernels: they DEFINE the expected results of the engine."""

from dcsim.kernels.fixed import FixedFormat
from dcsim.kernels.run import evaluate, run, run_fixed, trace_fixed
from dcsim.kernels.spmv import (
    dense_gemv, layer_dense, layer_fixed, layer_float, quantize_layer, spmv_csc, spmv_csr,
    spmv_fixed,
)
from dcsim.kernels.vectors import write_vectors

__all__ = [
    "FixedFormat", "dense_gemv", "evaluate", "layer_dense", "layer_fixed", "layer_float",
    "quantize_layer", "run", "run_fixed", "spmv_csc", "spmv_csr", "spmv_fixed",
    "trace_fixed", "write_vectors",
]
