"""SparseMAC verification: the cocotb testbenches of the generated RTL, and how to run them.

One testbench class (:class:`.tb.TB`: cocotbext-axi drivers and monitors, a scoreboard fed
from the input monitors through the transaction-level model :mod:`.model`), one generator of
random layers (:mod:`.layers`), the cocotb modules (``*_tb.py``: the regression, the top level
through its AXI ports, the benchmark, whole networks), the build-and-run layer over cocotb's
runner (:mod:`.runner`), the simulator toolchain (:mod:`.toolchain`), and the simulation as a
backend of the host runtime (:mod:`.network`).

Builds on ``golden_model``, ``hdl`` and ``host``.
"""
