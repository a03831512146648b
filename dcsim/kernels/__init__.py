"""Numba reference kernels: they DEFINE the expected results of the engine."""

from dcsim.kernels.fixed import FixedFormat
from dcsim.kernels.run import evaluate, run, run_fixed, trace_fixed, trace_fixed_batch
from dcsim.kernels.spmv import (
    FixedPlan, PackedMatrix, dense_gemv, layer_dense, layer_fixed, layer_float, pack,
    plan_fixed, quantize_layer, spmv_csc, spmv_csr, spmv_fixed, spmv_fixed_plan, spmv_packed,
)
from dcsim.kernels.vectors import write_vectors

__all__ = [
    "FixedFormat", "FixedPlan", "PackedMatrix", "dense_gemv", "evaluate", "layer_dense",
    "layer_fixed", "layer_float", "pack", "plan_fixed", "quantize_layer", "run", "run_fixed",
    "spmv_csc", "spmv_csr", "spmv_fixed", "spmv_fixed_plan", "spmv_packed", "trace_fixed",
    "trace_fixed_batch",
    "write_vectors",
]
