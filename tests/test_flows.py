"""Tests of sparsemac.flows in quick mode: exact byte counts, declared N:M layers, the
accuracy relations the quick recipe meets, determinism, and argument errors."""

import re

import numpy as np
import pytest
from threadpoolctl import threadpool_limits

from golden_model.datasets import as_images, load_digits_split
from golden_model.graph import IntGraph
from golden_model.prune import is_n_m
from golden_model.quant import qparams_from_range
from golden_model.train import CNN, MLP, accuracy
from sparsemac.flows import (
    FLOWS,
    QUICK_FLOWS,
    evaluate_graph,
    flow_plan,
    format_rows,
    n_m_layers,
    run_flows,
)
from sparsemac.stats import at_least, within


def raises(exc, message):
    return pytest.raises(exc, match=re.escape(message))


@pytest.fixture(scope="module")
def quick():
    calls = []
    rows = run_flows(quick=True, progress=lambda done, total, row: calls.append(
        (done, total, row)))
    return rows, calls


@pytest.fixture(scope="module")
def test_data():
    _, _, x_test, y_test = load_digits_split()
    return {"mlp": x_test, "cnn": as_images(x_test)}, y_test


def by_key(rows):
    return {(r["model"], r["key"]): r for r in rows}


def dense_bytes(shapes):
    """int8 weights + int32 bias + 5 bytes of requantization per output channel."""
    return sum(int(np.prod(s)) + 9 * s[0] for s in shapes)


def test_quick_plan_rows_and_progress(quick):
    rows, calls = quick
    plan = flow_plan(quick=True)
    assert [(r["model"], r["key"]) for r in rows] == plan
    assert plan == [(m, k) for m in ("mlp", "cnn") for k in QUICK_FLOWS]
    assert [(d, t) for d, t, _ in calls] == [(i + 1, len(plan)) for i in range(len(plan))]
    assert all(c[2] is r for c, r in zip(calls, rows))
    assert all(r["flow"] == FLOWS[r["key"]] for r in rows)
    assert len(format_rows(rows).splitlines()) == len(rows) + 2


def test_every_row_is_measured_on_its_own_graph(quick, test_data):
    rows, _ = quick
    x, y = test_data
    for r in rows:
        net = r["net"]
        # The same float computation as the flows' (one BLAS thread: a float GEMM's sums may
        # be split differently across threads).
        with threadpool_limits(limits=1, user_api="blas"):
            assert r["float_acc"] == accuracy(net.forward(x[r["model"]]), y)
        assert r["sparsity"] == net.sparsity()
        if r["key"] == "float":
            assert r["graph"] is None and r["int8_acc"] is None
            params = sum(w.size + b.size for w, b in zip(net.weights, net.biases))
            assert r["bytes"] == 4 * params
            continue
        graph = r["graph"]
        assert isinstance(graph, IntGraph)
        assert r["int8_acc"] == evaluate_graph(graph, x[r["model"]], y)
        assert r["bytes"] == graph.total_bytes()
        assert [q.name for q in graph.weighted()] == net.layer_names()
        if not r["n_m"]:
            dense = dense_bytes([q.w.shape for q in graph.weighted()])
            assert graph.total_bytes(formats=("dense",)) == dense
            if r["key"].startswith("magnitude"):
                assert r["bytes"] < dense          # bitmap / CSR as stored
            else:
                assert r["bytes"] == dense


def test_dense_byte_counts_are_exact(quick):
    rows = by_key(quick[0])
    # MLP 64-128-64-10: 17024 weights, 202 output channels; CNN: 13584 weights, 122 channels.
    assert rows["mlp", "ptq_minmax"]["bytes"] == 17024 + 9 * 202 == 18842
    assert rows["cnn", "ptq_minmax"]["bytes"] == 13584 + 9 * 122 == 14682
    assert rows["mlp", "float"]["bytes"] == 4 * (17024 + 202)


@pytest.mark.parametrize("key", ["nm_2_4", "kd_qat_2_4"])
def test_n_m_graphs_declare_exactly_their_sparse_layers(quick, key):
    rows = by_key(quick[0])
    expect = {"mlp": ["fc0", "fc1"], "cnn": ["conv1", "fc0"]}
    for model in ("mlp", "cnn"):
        r = rows[model, key]
        net, graph = r["net"], r["graph"]
        assert n_m_layers(net, 4) == expect[model]
        assert r["n_m"] == {name: (2, 4) for name in expect[model]}
        saved = 0
        for q, w in zip(graph.weighted(), net.weights):
            if q.name in r["n_m"]:
                assert q.sparsity == (2, 4)
                assert is_n_m(q.gemm_weights(), 2, 4, axis=1)
                assert is_n_m(w.reshape(w.shape[0], -1), 2, 4, axis=1)
                # Half the values stored, plus a 2-bit index per kept value.
                saved += q.w.size - (q.w.size // 2 + q.w.size // 8)
            else:
                assert q.sparsity is None
                assert np.count_nonzero(w) == w.size          # dense fallback, unpruned
        assert r["bytes"] == dense_bytes([q.w.shape for q in graph.weighted()]) - saved
    assert rows["mlp", key]["bytes"] == 12698 and rows["cnn", key]["bytes"] == 9882


#: Seeds over which the accuracy relations are checked (seed 0 is the module's ``quick`` run).
SEEDS = (0, 1, 2, 3, 4)


@pytest.fixture(scope="module")
def seeds(quick):
    return [by_key(quick[0])] + [by_key(run_flows(quick=True, seed=s)) for s in SEEDS[1:]]


def test_quick_mode_meets_the_accuracy_relations(seeds, test_data):
    """The relations each method guarantees, on the mean accuracy over :data:`SEEDS`, each
    contradicted only beyond 3 binomial standard errors (:mod:`sparsemac.stats`) of
    ``len(SEEDS) x 449`` predictions: about 1.5 points for a difference near 97 %.

    One seed's verdict is not a test: on 449 images one image is 0.22 points, and a new NumPy or
    BLAS release moves a small network trained for a few epochs by several images (the claim
    "2:4 within 1.5 points" once failed at -1.56 points on seed 0 alone, 12 seeds averaging
    -0.1 points on the MLP and -0.3 on the CNN).
    """
    n = len(SEEDS) * len(test_data[1])

    def mean(model, key, field="int8_acc"):
        return float(np.mean([rows[model, key][field] for rows in seeds]))

    claims = []
    for model in ("mlp", "cnn"):
        base = mean(model, "float", "float_acc")
        claims.append(at_least(base, 0.96, n, what=f"{model} float32 baseline >= 96 %"))
        # PTQ of the same network (per-channel min-max, per-tensor) stays within 1 point.
        for key in ("ptq_minmax", "ptq_per_tensor"):
            claims.append(within(mean(model, key), base, n, 0.01, what=f"{model} {key}"))
        # 2:4 + int8 after fine-tuning, and KD + QAT + 2:4, within 1.5 points of float.
        for key in ("nm_2_4", "kd_qat_2_4"):
            claims.append(within(mean(model, key), base, n, 0.015, what=f"{model} {key}"))
        # int8 gradients train as well as float ones, to within 1 point.
        claims.append(within(mean(model, "grad_int8"), base, n, 0.01,
                             what=f"{model} grad_int8"))
        # Power-of-two weights (4-bit codes) cost accuracy but stay usable: above 90 %, and
        # no better than min-max int8 codes, which they are a subset of.
        pot = mean(model, "ptq_pot")
        claims.append(at_least(pot, 0.9, n, what=f"{model} ptq_pot >= 90 %"))
        claims.append(within(mean(model, "ptq_minmax"), pot, n, 0.0,
                             what=f"{model} ptq_minmax no worse than ptq_pot"))
        for rows in seeds:
            # Gradual magnitude pruning reaches its global target exactly, on every seed.
            assert rows[model, "magnitude_75"]["sparsity"] == 0.75
            assert rows[model, "magnitude_75"]["int8_sparsity"] >= 0.75
    # KL calibration is claimed on the MLP only. On the CNN, TensorRT's entropy criterion is
    # fooled by the point masses that blank image patches leave in the first convolution's
    # output (each channel's ReLU(bias)): on 2 of 12 seeds it clips a quarter of that tensor
    # and the graph falls to about 50 % (tests/test_calibration.py shows the mechanism).
    claims.append(within(mean("mlp", "ptq_kl"), mean("mlp", "float", "float_acc"), n, 0.01,
                         what="mlp ptq_kl"))
    broken = [str(c) for c in claims if not c.holds]
    assert not broken, "\n".join(broken)


def test_quick_pot_weights_are_powers_of_two(quick):
    for r in quick[0]:
        if r["key"] == "ptq_pot":
            for q in r["graph"].weighted():
                mag = np.abs(q.w.astype(np.int64))
                assert set(np.unique(mag).tolist()) <= {0, 1, 2, 4, 8, 16, 32, 64}


def test_qat_graph_uses_the_learned_ranges(quick):
    rows = by_key(quick[0])
    for model in ("mlp", "cnn"):
        graph = rows[model, "qat"]["graph"]
        # The input's learned range is the data's [0, 1].
        scale, zp = qparams_from_range(0.0, 1.0)
        assert (graph.input_scale, graph.input_zp) == (scale, zp)


def test_filter_pruning_gives_smaller_dense_models(quick):
    rows = by_key(quick[0])
    mlp = rows["mlp", "filter_fpgm"]["graph"]
    assert [q.w.shape for q in mlp.weighted()] == [(64, 64), (32, 64), (10, 32)]
    cnn = rows["cnn", "filter_fpgm"]["graph"]
    assert [q.w.shape for q in cnn.weighted()] == [(8, 1, 3, 3), (16, 8, 3, 3), (32, 64),
                                                   (10, 32)]
    for model in ("mlp", "cnn"):
        assert rows[model, "filter_fpgm"]["bytes"] < rows[model, "ptq_minmax"]["bytes"] / 2
        assert rows[model, "filter_fpgm"]["sparsity"] == 0.0


def test_kd_student_is_the_small_network(quick):
    rows = by_key(quick[0])
    assert [w.shape for w in rows["mlp", "kd_student"]["net"].weights] == [(32, 64), (10, 32)]
    assert isinstance(rows["cnn", "kd_student"]["net"], CNN)
    assert isinstance(rows["mlp", "kd_student"]["net"], MLP)
    assert rows["mlp", "kd_student"]["bytes"] == 64 * 32 + 32 * 10 + 9 * 42


def test_flows_are_deterministic(quick):
    rows = by_key(quick[0])
    again = run_flows(quick=True, models=["mlp"], flows=["nm_2_4"])
    assert len(again) == 1
    for a, b in zip(again[0]["graph"].weighted(), rows["mlp", "nm_2_4"]["graph"].weighted()):
        np.testing.assert_array_equal(a.w, b.w)
        np.testing.assert_array_equal(a.bias, b.bias)
        np.testing.assert_array_equal(a.multiplier, b.multiplier)
    assert again[0]["int8_acc"] == rows["mlp", "nm_2_4"]["int8_acc"]


def test_full_plan_covers_every_flow():
    plan = flow_plan()
    assert plan == [(m, k) for m in ("mlp", "cnn") for k in FLOWS]
    assert flow_plan(models=["cnn"], flows=["qat", "float"]) == [("cnn", "float"),
                                                                ("cnn", "qat")]


def test_argument_errors():
    with raises(ValueError, "models must be among 'mlp', 'cnn', not 'rnn'"):
        run_flows(models=["rnn"])
    with raises(TypeError, "models must be a list of names, not 'mlp'"):
        flow_plan(models="mlp")
    with raises(ValueError, "flows must be among"):
        run_flows(flows=["nope"])
    with raises(TypeError, "progress must be callable, not int"):
        run_flows(progress=3)
    with raises(TypeError, "quick must be a bool, not 'yes'"):
        run_flows(quick="yes")
    with raises(ValueError, "seed must be at least 0, not -1"):
        run_flows(seed=-1)
    with raises(TypeError, "recipe must be a Recipe, not dict"):
        run_flows(recipe={})
