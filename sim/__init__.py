"""SparseMAC verification and performance: cocotb testbenches, simulator toolchain, benches.

Builds on ``hdl`` (the gateware) and ``golden_model`` (the reference arithmetic).
"""
