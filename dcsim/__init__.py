"""dcsim: Deep Compression down to an EIE-style engine.

A software pipeline (``dcsim.compress``) produces compressed models, numba kernels
(``dcsim.kernels``) define the expected results, Amaranth gateware (``dcsim.hw``) is
verified against them with cocotb on Verilator, and ``dcsim.perf`` costs it.
"""

__version__ = "0.1.0"
