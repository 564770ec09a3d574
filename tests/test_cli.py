"""The sparsemac command line: an integer network's numbers, the benchmark's fields, clean
errors (``sparsemac demo``: tests/test_demo.py)."""

import json
import subprocess
import sys

import numpy as np
import pytest

import golden_model as gm
from golden_model.datasets import load_digits_split
from golden_model.graph import quantize_graph
from golden_model.train import MLP, accuracy
from sparsemac import cli
from sparsemac.stats import at_least, within


def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "sparsemac.cli", *args], capture_output=True,
                          text=True, timeout=300)


#: Seeds of the networks PTQ is checked on: the claim is on the mean over them.
SEEDS = (0, 1, 2)


@pytest.fixture(scope="module")
def trained():
    x_train, y_train, x_test, y_test = load_digits_split()
    nets = [MLP.init([64, 64, 10], seed=s).fit(x_train, y_train, epochs=20, seed=s)
            for s in SEEDS]
    return nets, x_train, x_test, y_test


def test_digits_split_is_fixed_and_disjoint():
    a = load_digits_split()
    b = load_digits_split()
    for u, v in zip(a, b):
        np.testing.assert_array_equal(u, v)
    x_train, _, x_test, _ = a
    assert x_train.shape == (1348, 64) and x_test.shape == (449, 64)
    assert x_train.min() == 0.0 and x_train.max() == 1.0


@pytest.mark.parametrize("method", ["minmax", "percentile", "mse", "kl"])
def test_int8_network_tracks_the_float_network(trained, method):
    nets, x_train, x_test, y_test = trained
    float_accs, q_accs = [], []
    for net in nets:
        float_accs.append(accuracy(net.forward(x_test), y_test))
        graph = quantize_graph(net.to_layers(), (64,), x_train[:256], method=method)
        outs = graph.forward(x_test)
        assert [o.dtype for o in outs] == [np.int8] * 3
        # Hidden layer: fused ReLU clamps at the output zero point.
        lay = graph.layers[0]
        assert outs[1].min() >= lay.out_zp
        q_accs.append(accuracy(outs[-1], y_test))
        # The first layer's integer output is the golden requantization of the exact
        # accumulator.
        acc = (outs[0].astype(np.int64) - lay.in_zp) @ lay.w.T.astype(np.int64) + lay.bias
        want = gm.requantize(acc, lay.multiplier, lay.shift, zero_point=lay.out_zp,
                             qmin=lay.act_min, qmax=lay.act_max)
        np.testing.assert_array_equal(outs[1], want)
    # Statistical claims on the mean over the seeds (sparsemac.stats): the float network
    # learns the digits (>= 95 %), and int8 PTQ stays within 1 point of it.
    n = len(SEEDS) * len(y_test)
    base = at_least(float(np.mean(float_accs)), 0.95, n, what="float32 MLP")
    claim = within(float(np.mean(q_accs)), float(np.mean(float_accs)), n, 0.01,
                   what=f"int8 PTQ ({method})")
    assert base, base
    assert claim, claim


def test_gemm_bench_small_is_exact(tmp_path):
    out = tmp_path / "bench.json"
    r = run_cli("gemm-bench", "--size", "96", "--repeat", "2", "--json", str(out))
    assert r.returncode == 0, r.stderr
    data = json.loads(out.read_text())
    assert data["shape"] == [96, 96, 96]
    assert data["exact_vs_onnxruntime"] is True and data["exact_vs_int64_reference"] is True
    assert data["ratio"] == pytest.approx(data["onnxruntime_s"] / data["golden_s"])
    assert "ratio (golden speed / ONNX Runtime speed):" in r.stdout


@pytest.mark.parametrize("args, message", [
    (["gemm-bench", "--size", "0"], "argument --size: must be at least 1, not 0"),
    (["gemm-bench", "--repeat", "x"], "argument --repeat: must be an integer, not 'x'"),
    (["gemm-bench", "--seed", "-1"], "argument --seed: must be at least 0, not -1"),
    (["frobnicate"], "invalid choice: 'frobnicate'"),
    # Checked before the benchmark runs (minutes), not after.
    (["bench", "--json", "/nonexistent-folder/bench.json"],
     "output folder '/nonexistent-folder' does not exist"),
    (["bench", "--json", "/"], "output '/' is a folder, not a file"),
    (["bench", "--driver", "vpi"], "argument --driver: invalid choice: 'vpi'"),
    (["bench", "--layer", "3136x2304"], "Workload must be MxKxN with positive integers"),
    (["bench", "--layer", "64x64x0"], "not '64x64x0'"),
    (["bench", "--layer", "64x64x64", "--array", "8by8"], "Array must be RxC (e.g. 16x16), "
                                                         "not '8by8'"),
    (["bench", "--layer", "64x64x64", "--sparsity", "5:4"], "N must be at most M (4), not 5"),
    (["bench", "--layer", "64x64x64", "--array", "0x8"], "rows must be between 1 and 64, not 0"),
    (["bench", "--layer", "64x64x64", "--driver", "axi"],
     "--layer runs on the bulk driver, not --driver axi"),
    (["bench", "--layer", "64x64x64", "--quick"], "it does not go with --quick"),
    (["bench", "--array", "16x16"], "--array and --sparsity go with --layer"),
])
def test_cli_bad_arguments(args, message):
    r = run_cli(*args)
    assert r.returncode == 2
    assert message in r.stderr
    assert "Traceback" not in r.stderr


def test_cli_missing_output_folder_leaves_nothing(tmp_path, capsys):
    target = tmp_path / "nope" / "bench.json"
    code = cli.main(["gemm-bench", "--size", "8", "--repeat", "1", "--json", str(target)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert err == [f"sparsemac: error: output folder {str(target.parent)!r} does not exist"]
    assert not target.parent.exists()


def test_an_internal_bug_keeps_its_traceback(tmp_path):
    """Only the user-error type becomes one line: a ValueError raised by a bug inside the work
    (here injected into the generator, after the arguments were validated) is not dressed up
    as bad input."""
    code = ("import sys, hdl.generate as g\n"
            "def broken(*a, **k): raise ValueError('injected internal bug')\n"
            "g.generate = broken\n"
            "from sparsemac.cli import main\n"
            f"sys.exit(main(['generate', '--rows', '2', '--cols', '2', '--sparsity', '2:4', "
            f"'--out', {str(tmp_path / 'out')!r}]))\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert r.returncode == 1
    assert "Traceback" in r.stderr and "ValueError: injected internal bug" in r.stderr
    assert "sparsemac: error" not in r.stderr
    # The same command with bad input is one line, exit 2.
    r = run_cli("generate", "--rows", "0", "--cols", "2", "--sparsity", "2:4", "--out",
                str(tmp_path / "out"))
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert r.stderr.strip() == "sparsemac: error: rows must be between 1 and 64, not 0"
