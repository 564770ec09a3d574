"""``sparsemac run`` and ``sparsemac perf`` on a compressed graph folder: what they write and
print, equal to the golden model and the performance model; bad input gives one line and
leaves no output behind."""

import json
import re

import numpy as np
import onnx
import pytest
from conftest import require_simulator

from explore import zoo
from golden_model.graph import IntGraph
from golden_model.quant import dequantize
from hdl.config import Config
from host.perf import format_graph_report, graph_report
from sparsemac import cli


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """A SqueezeNet 1.1 (Concat, MaxPool, GlobalAveragePool) compressed 2:4, and its input."""
    tmp = tmp_path_factory.mktemp("runperf")
    onnx.save(zoo.build("squeezenet1_1", input_size=32, num_classes=10, seed=1, batch=None),
              tmp / "model.onnx")
    x = np.random.default_rng(4).standard_normal((6, 3, 32, 32)).astype(np.float32)
    np.save(tmp / "x.npy", x)
    assert cli.main(["compress", str(tmp / "model.onnx"), "--calib", str(tmp / "x.npy"),
                     "--sparsity", "2:4", "--out", str(tmp / "g")]) == 0
    return tmp


def _main(capsys, *args):
    code = cli.main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err.strip().splitlines()


@pytest.mark.parametrize("requant", ["tflite", "onnx"])
def test_run_writes_the_dequantized_output(folder, requant, tmp_path, capsys):
    graph = IntGraph.load(folder / "g")
    x = np.load(folder / "x.npy")
    out = tmp_path / "y.npy"
    code, stdout, err = _main(capsys, "run", folder / "g", folder / "x.npy", "--out", out,
                              "--requant", requant)
    assert code == 0 and err == [], err
    codes = graph.forward(x, requant=requant)[-1]
    scale, zp = graph.tensor_qparams()[-1]
    y = np.load(out, allow_pickle=False)
    assert y.dtype == np.float32 and y.shape == (6, 10)
    assert np.array_equal(y, dequantize(codes, scale, zp))
    assert np.array_equal(y, (codes.astype(np.int32) - zp).astype(np.float32) * np.float32(scale))
    assert f"6 inputs through {len(graph.layers)} layers ({requant} arithmetic" in stdout
    # Flat samples are reshaped to the input shape.
    np.save(tmp_path / "flat.npy", x.reshape(6, -1))
    assert cli.main(["run", str(folder / "g"), str(tmp_path / "flat.npy"), "--out",
                     str(tmp_path / "y2.npy"), "--requant", requant]) == 0
    assert np.array_equal(np.load(tmp_path / "y2.npy"), y)


@pytest.mark.sim
def test_run_on_rtl(folder, tmp_path, capsys, monkeypatch):
    """--on rtl: every layer checked against the golden model on the simulated array; the
    output is the golden one."""
    require_simulator("verilator")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    out = tmp_path / "y.npy"
    code, stdout, _ = _main(capsys, "run", folder / "g", folder / "x.npy", "--out", out,
                            "--on", "rtl", "--rows", 4, "--cols", 4)
    assert code == 0
    graph = IntGraph.load(folder / "g")
    x = np.load(folder / "x.npy")
    golden = graph.forward(x)
    assert f"every layer bit-exact with the golden model: " \
           f"{sum(g.size for g in golden[1:]):,} values" in stdout
    assert "verilator, 4x4 2:4 array, 6 images" in stdout
    scale, zp = graph.tensor_qparams()[-1]
    assert np.array_equal(np.load(out), dequantize(golden[-1], scale, zp))


def test_perf_prints_and_writes_the_model(folder, tmp_path, capsys):
    out = tmp_path / "perf.json"
    code, stdout, err = _main(capsys, "perf", folder / "g", "--rows", 8, "--cols", 8,
                              "--sparsity", "2:4", "--freq", 150, "--batch", 2, "--json", out)
    assert code == 0 and err == []
    graph = IntGraph.load(folder / "g")
    report = graph_report(Config.from_sparsity(8, 8, "2:4"), graph, batch=2, freq_mhz=150)
    assert stdout == format_graph_report(report) + "\n"
    assert json.loads(out.read_text()) == json.loads(json.dumps(report))
    assert report["speedup"] == report["dense_cycles"] / report["cycles"] > 1
    assert report["inferences_per_s"] == pytest.approx(150e6 / (report["cycles"] / 2))
    kinds = {op["kind"] for op in report["host_ops"]}
    assert {"QConcat", "MaxPool2d", "QGlobalAvgPool"} <= kinds
    assert "speed-up of the N:M graph over the dense twin" in stdout
    # A dense array runs every layer dense: no speed-up.
    code, stdout, _ = _main(capsys, "perf", folder / "g", "--rows", 8, "--cols", 8,
                            "--sparsity", "dense")
    assert code == 0 and "over the dense twin: 1.00x" in stdout


def _bad_inputs(tmp):
    np.save(tmp / "ints.npy", np.zeros((2, 3, 32, 32), np.int8))
    np.save(tmp / "shape.npy", np.zeros((2, 3, 16, 16), np.float32))
    np.save(tmp / "empty.npy", np.zeros((0, 3, 32, 32), np.float32))
    nan = np.zeros((2, 3, 32, 32), np.float32)
    nan[1, 0, 0, 0] = np.nan
    np.save(tmp / "nan.npy", nan)
    np.save(tmp / "obj.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    np.savez(tmp / "two.npz", a=np.zeros(3))
    (tmp / "notgraph").mkdir()


RUN_ERRORS = [
    (["{g}", "{tmp}/ints.npy"], r"input '.*ints.npy' must hold floats \(the network's float "
     r"input\), not int8"),
    (["{g}", "{tmp}/shape.npy"], r"input '.*shape.npy' must have shape \(N, 3, 32, 32\) with "
     r"N >= 1, not \(2, 3, 16, 16\)"),
    (["{g}", "{tmp}/empty.npy"], r"must have shape \(N, 3, 32, 32\) with N >= 1, not "
     r"\(0, 3, 32, 32\)"),
    (["{g}", "{tmp}/nan.npy"], r"input '.*nan.npy' holds NaN or infinite values"),
    (["{g}", "{tmp}/obj.npy"], r"input '.*obj.npy' holds Python objects \(pickled data\), "
     r"which are not read"),
    (["{g}", "{tmp}/two.npz"], r"input '.*two.npz' must be one array \(.npy\), not an .npz"),
    (["{g}", "{tmp}/missing.npy"], r"cannot read input '.*missing.npy': .*No such file"),
    (["{tmp}/notgraph", "{x}"], r"graph.json"),
    (["{g}", "{x}", "--requant", "onnx", "--on", "rtl"], r"run: --on rtl runs the "
     r"hardware's arithmetic \(--requant tflite\), not --requant onnx"),
    (["{g}", "{x}", "--rows", "4"], r"run: --rows, --cols, --sparsity and --sim go with "
     r"--on rtl"),
    (["{g}", "{x}", "--on", "rtl", "--sparsity", "5:4"], r"N must be at most M \(4\), not 5"),
    (["{g}", "{x}", "--on", "rtl", "--rows", "0"], r"argument --rows: must be at least 1, "
     r"not 0"),
]


@pytest.mark.parametrize("case", range(len(RUN_ERRORS)))
def test_run_errors(folder, case, tmp_path, capsys):
    _bad_inputs(tmp_path)
    args, pattern = RUN_ERRORS[case]
    fill = {"g": folder / "g", "x": folder / "x.npy", "tmp": tmp_path}
    out = tmp_path / "y.npy"
    code, stdout, err = _main(capsys, "run", *(a.format(**fill) for a in args), "--out", out)
    assert code == 2 and len(err) == 1 and err[0].startswith("sparsemac: error: "), err
    assert re.search(pattern, err[0]), err[0]
    assert not out.exists()


def test_out_file_errors(folder, tmp_path, capsys):
    for out, pattern in ((tmp_path, "is a folder, not a file"),
                         (tmp_path / "no" / "y.npy", "does not exist")):
        for cmd in (["run", folder / "g", folder / "x.npy", "--out", out],
                    ["perf", folder / "g", "--rows", 4, "--cols", 4, "--sparsity", "2:4",
                     "--json", out]):
            code, _, err = _main(capsys, *cmd)
            assert code == 2 and len(err) == 1 and pattern in err[0], err


@pytest.mark.parametrize("args, pattern", [
    (["--freq", "0"], "perf: --freq must be a positive number of MHz, not 0"),
    (["--freq", "-5"], "perf: --freq must be a positive number of MHz, not -5"),
    (["--freq", "nan"], "perf: --freq must be a positive number of MHz, not nan"),
    (["--freq", "inf"], "perf: --freq must be a positive number of MHz, not inf"),
    (["--batch", "0"], "argument --batch: must be at least 1, not 0"),
    (["--sparsity", "5:4"], "N must be at most M (4), not 5"),
])
def test_perf_errors(folder, args, pattern, capsys):
    base = {"--rows": "4", "--cols": "4", "--sparsity": "2:4"}
    for k, v in zip(args[::2], args[1::2]):
        base[k] = v
    flat = [x for kv in base.items() for x in kv]
    code, stdout, err = _main(capsys, "perf", folder / "g", *flat)
    assert code == 2 and len(err) == 1 and pattern in err[0], err
    assert stdout == ""


def test_zoo_writes_the_model_and_calibration(tmp_path, capsys):
    out, calib = tmp_path / "m.onnx", tmp_path / "c.npy"
    code, stdout, err = _main(capsys, "zoo", "shufflenet_unit", "--out", out, "--input-size",
                              40, "--classes", 7, "--seed", 3, "--calib", calib,
                              "--calib-samples", 2)
    assert code == 0 and err == []
    want = zoo.build("shufflenet_unit", input_size=40, num_classes=7, seed=3, batch=None)
    assert onnx.load(out).SerializeToString() == want.SerializeToString()
    x = np.load(calib)
    assert x.shape == (2, 3, 40, 40) and x.dtype == np.float32
    assert stdout.splitlines()[0] == (f"shufflenet_unit: {zoo.parameter_count(want):,} "
                                      "parameters, input (N, 3, 40, 40), random weights (seed 3)")


@pytest.mark.parametrize("args, pattern", [
    (["nope"], "unknown model 'nope': the zoo has resnet18, resnet50"),
    (["resnet18", "--input-size", "16"], "input_size must be at least 32, not 16"),
    (["resnet18", "--width", "-1"], "width must be a positive number, not -1.0"),
    (["resnet18", "--calib", "c.npy", "--calib-samples", "0"],
     "zoo: --calib-samples must be at least 1, not 0"),
])
def test_zoo_errors(args, pattern, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, _, err = _main(capsys, "zoo", *args, "--out", "m.onnx")
    assert code == 2 and len(err) == 1 and pattern in err[0], err
    assert list(tmp_path.iterdir()) == []
