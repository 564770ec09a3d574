"""SparseMAC host: what runs on the CPU that drives the accelerator.

Lowering an integer graph onto the engine (:mod:`.lowering`: which mode a layer runs in, its
GEMM, its engine runs), the stream words (:mod:`.packing`), the cycle-exact performance model
(:mod:`.perf`) and the runtime that sends a network's layers to a backend and checks them
(:mod:`.runtime`; today's backend is the cocotb simulation, :class:`sim.network.Simulation`).

Builds on ``golden_model`` (the arithmetic) and ``hdl`` (the configuration, word layouts and
timing of the gateware); never on the layers above.
"""
