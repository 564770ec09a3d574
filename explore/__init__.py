"""SparseMAC exploration: what the design costs and how fast it goes.

Synthesis and place and route from the YoWASP wheels (:mod:`.synth`), sweeps of array
configurations with their plots (:mod:`.sweep`, ``sparsemac explore``) on a GEMM or a whole
network (:mod:`.workload`), the RTL throughput benchmark (:mod:`.bench`, ``sparsemac bench``),
the golden model's GEMM against ONNX Runtime (:mod:`.gemm_bench`, ``sparsemac gemm-bench``),
the performance model against SCALE-Sim (:mod:`.scalesim_check`) and the zoo of well-known
CNNs as ONNX files (:mod:`.zoo`).

Builds on ``hdl``, ``host`` and ``sim``.
"""
