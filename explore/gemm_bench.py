"""Benchmark: the golden model's exact int8 GEMM against ONNX Runtime's MatMulInteger.

Both compute ``s8 x s8 -> s32`` on the same operands in the same process; the figures are
measured in one run (median of ``repeat`` timings each, interleaved so that machine noise
hits both alike) and the results are checked equal bit for bit before anything is printed.
"""

import statistics
import time

import numpy as np

from common.checks import check_int
from golden_model import matmul_integer

__all__ = ["run_gemm_bench", "format_gemm_bench"]


def _ort_session(m, k, n):
    import onnx  # noqa: PLC0415 (test extra, imported only when benchmarking)
    import onnxruntime as ort  # noqa: PLC0415 (onnxruntime: a test extra, only when benchmarking)
    from onnx import TensorProto, helper  # noqa: PLC0415 (onnxruntime: a test extra, only when benchmarking)

    graph = helper.make_graph(
        [helper.make_node("MatMulInteger", ["A", "B"], ["Y"])], "gemm",
        [helper.make_tensor_value_info("A", TensorProto.INT8, [m, k]),
         helper.make_tensor_value_info("B", TensorProto.INT8, [k, n])],
        [helper.make_tensor_value_info("Y", TensorProto.INT32, [m, n])])
    # onnxruntime accepts IR <= 13 while recent onnx writes 14: pin what the runtime reads.
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], ir_version=8)
    onnx.checker.check_model(model)
    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    return ort.InferenceSession(model.SerializeToString(), opts,
                                providers=["CPUExecutionProvider"]), ort.__version__


def run_gemm_bench(size=1024, repeat=7, seed=0):
    """Time both GEMMs on ``size``-cubed int8 operands; returns a dict of the figures."""
    size = check_int(size, "size", lo=1)
    repeat = check_int(repeat, "repeat", lo=1)
    m = k = n = size
    rng = np.random.default_rng(seed)
    a = rng.integers(-128, 128, (m, k), dtype=np.int8)
    b = rng.integers(-128, 128, (k, n), dtype=np.int8)
    # Corner rows and columns: all -128 (the largest product) and all 127.
    a[0] = -128
    b[:, 0] = -128
    a[1] = 127
    sess, ort_version = _ort_session(m, k, n)

    def golden():
        return matmul_integer(a, b)

    def onnxrt():
        return sess.run(None, {"A": a, "B": b})[0]

    ref_rows = (a[:64].astype(np.int64) @ b.astype(np.int64))
    y_golden, y_ort = golden(), onnxrt()          # warm-up, and the exactness check
    exact_vs_ort = bool(np.array_equal(y_golden, y_ort))
    exact_vs_int64 = bool(np.array_equal(y_golden[:64], ref_rows))
    t_golden, t_ort = [], []
    for _ in range(repeat):
        for fn, times in ((golden, t_golden), (onnxrt, t_ort)):
            t0 = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t0)
    ops = 2.0 * m * k * n
    tg, to = statistics.median(t_golden), statistics.median(t_ort)
    return {
        "shape": [m, k, n], "repeat": repeat, "ops": ops,
        "golden_s": tg, "onnxruntime_s": to,
        "golden_gops": ops / tg / 1e9, "onnxruntime_gops": ops / to / 1e9,
        "ratio": to / tg, "exact_vs_onnxruntime": exact_vs_ort,
        "exact_vs_int64_reference": exact_vs_int64, "onnxruntime_version": ort_version,
        "numpy_version": np.__version__,
    }


def format_gemm_bench(r):
    """A Markdown table of :func:`run_gemm_bench`'s figures."""
    m, k, n = r["shape"]
    lines = [
        f"int8 GEMM {m} x {k} x {n} (s8 x s8 -> s32), median of {r['repeat']} runs",
        "",
        "| implementation | time (ms) | GOPS | exact |",
        "|---|---:|---:|---|",
        f"| golden_model.matmul_integer (float32 BLAS, chunked exact) | "
        f"{r['golden_s'] * 1e3:.1f} | {r['golden_gops']:.1f} | "
        f"{'yes' if r['exact_vs_onnxruntime'] and r['exact_vs_int64_reference'] else 'NO'} |",
        f"| onnxruntime {r['onnxruntime_version']} MatMulInteger | "
        f"{r['onnxruntime_s'] * 1e3:.1f} | {r['onnxruntime_gops']:.1f} | reference |",
        "",
        f"ratio (golden speed / ONNX Runtime speed): {r['ratio']:.2f}",
    ]
    return "\n".join(lines)
