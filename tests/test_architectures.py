"""The seven architectures of explore/zoo.py through the command line, as a user runs them:
``sparsemac zoo`` -> ``compress`` (dense and 2:4) -> ``run --requant onnx`` equal to ONNX
Runtime on the ``model.qdq.onnx`` compress wrote, bit for bit -> ``perf`` on a 16x16 2:4
array. Small inputs (32x32) and narrow widths keep each one to seconds."""

import json

import numpy as np
import onnxruntime as ort
import pytest

from golden_model.graph import IntGraph
from sparsemac import cli
from sparsemac.importer.qdq_writer import SESSION_CONFIG

#: ``sparsemac zoo`` options per model: the published shapes, narrowed where they are large.
MODELS = {
    "resnet18": ["--width", "0.25"],
    "resnet50": ["--width", "0.25"],
    "mobilenet_v2": ["--width", "0.35"],
    "squeezenet1_1": [],
    "vgg16": ["--width", "0.125"],
    "densenet_block": [],
    "shufflenet_unit": [],
}

#: What each graph must hold (its residual, branching and pooling ops).
KINDS = {
    "resnet18": {"QAdd", "MaxPool2d", "QGlobalAvgPool", "Flatten"},
    "resnet50": {"QAdd", "MaxPool2d", "QGlobalAvgPool"},
    "mobilenet_v2": {"QAdd", "QGlobalAvgPool"},
    "squeezenet1_1": {"QConcat", "MaxPool2d", "QGlobalAvgPool"},
    "vgg16": {"MaxPool2d", "Flatten"},
    "densenet_block": {"QConcat", "QAvgPool2d", "QGlobalAvgPool"},
    "shufflenet_unit": {"QAdd", "QConcat", "QAvgPool2d", "Reshape", "Transpose"},
}


def ort_output(path, x):
    """ONNX Runtime on ``path`` with the session the README gives for bit-exactness."""
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.intra_op_num_threads = 1
    for key, value in SESSION_CONFIG.items():
        options.add_session_config_entry(key, value)
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    return session.run(None, {session.get_inputs()[0].name: x})[0]


def _ok(capsys, *args):
    code = cli.main([str(a) for a in args])
    out, err = capsys.readouterr()
    assert code == 0, err
    return out


@pytest.mark.parametrize("name", MODELS)
def test_architecture_end_to_end(name, tmp_path, capsys):
    model, calib = tmp_path / f"{name}.onnx", tmp_path / "calib.npy"
    _ok(capsys, "zoo", name, "--out", model, "--input-size", 32, "--classes", 10, "--seed", 1,
        "--calib", calib, "--calib-samples", 8, *MODELS[name])
    x = np.random.default_rng(5).standard_normal((4, 3, 32, 32)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    speedups = {}
    for sparsity in ("dense", "2:4"):
        out = tmp_path / sparsity.replace(":", "_")
        _ok(capsys, "compress", model, "--calib", calib, "--sparsity", sparsity, "--out", out)
        assert {p.name for p in out.iterdir()} == {"graph.json", "graph.npz", "summary.md",
                                                   "model.qdq.onnx"}
        graph = IntGraph.load(out)
        assert KINDS[name] <= {type(ly).__name__ for ly in graph.layers}
        assert any(ly.sparsity == (2, 4) for ly in graph.weighted()) == (sparsity == "2:4")
        # ORT on the QDQ model compress wrote equals `sparsemac run --requant onnx`.
        _ok(capsys, "run", out, tmp_path / "x.npy", "--out", tmp_path / "y.npy",
            "--requant", "onnx")
        y = np.load(tmp_path / "y.npy")
        want = ort_output(out / "model.qdq.onnx", x)
        assert want.dtype == y.dtype == np.float32 and want.shape == y.shape == (4, 10)
        assert np.array_equal(want, y), (name, sparsity, np.abs(want - y).max())
        # perf on a 16x16 2:4 array, from the command line.
        _ok(capsys, "perf", out, "--rows", 16, "--cols", 16, "--sparsity", "2:4", "--json",
            tmp_path / "perf.json")
        report = json.loads((tmp_path / "perf.json").read_text())
        assert report["engine_layers"] == len(graph.weighted())
        speedups[sparsity] = report["speedup"]
    assert speedups["dense"] == 1.0 and speedups["2:4"] > 1.0, speedups
