"""SparseMAC exploration: what the design costs and how fast it goes.

Synthesis and place and route from the YoWASP wheels (:mod:`.synth`), sweeps of array
configurations with their plots (:mod:`.sweep`, ``sparsemac explore``), the RTL throughput
benchmark (:mod:`.bench`, ``sparsemac bench``) and the golden model's GEMM against ONNX
Runtime (:mod:`.gemm_bench`, ``sparsemac gemm-bench``).

Builds on ``hdl``, ``host`` and ``sim``.
"""
