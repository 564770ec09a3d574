"""Tests of sparsemac.flows in quick mode: exact byte counts, declared N:M layers, the
accuracy relations the quick recipe meets, determinism, every importance / regularization /
factorization / reduction flow against its definition (masks, kept filters, ranks, removed
layer recomputed from the baseline and the held-out data), the data of each dataset, the
multi-seed run and its aggregation into mean ± standard deviation with paired comparisons,
and argument errors."""

import dataclasses
import re

import numpy as np
import pytest
from threadpoolctl import threadpool_limits

from golden_model.datasets import (
    as_images,
    load_digits_split,
    load_mnist1d_split,
    load_mnist_split,
)
from golden_model.graph import IntGraph
from golden_model.lowrank import Sequential, choose_rank, singular_values
from golden_model.prune import (
    global_magnitude_masks,
    is_n_m,
    obd_filter_scores,
    obd_scores,
    prune_n_m,
    score_mask,
)
from golden_model.quant import qparams_from_range
from golden_model.reduction import layer_importance
from golden_model.train import (
    CNN,
    MLP,
    accuracy,
    ensemble_logits,
    gradient_neuron_scores,
    hessian_diagonal,
    taylor_importance,
    train,
)
from sparsemac import flows as fl
from sparsemac.flows import (
    FLOW_MODELS,
    FLOWS,
    QUICK,
    QUICK_FLOWS,
    aggregate,
    evaluate_graph,
    flow_plan,
    format_rows,
    format_summary,
    load_split,
    model_inputs,
    n_m_layers,
    run_flows,
    run_seeds,
)
from sparsemac.stats import at_least, compare, within


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


#: The flows that prune single weights (stored as a bitmap or CSR).
UNSTRUCTURED = ("magnitude", "taylor_75", "obd_75", "l1_75")


def dense_bytes(shapes, bits=None):
    """Weights (int8, or ``bits[i]``-bit codes packed: ``ceil(size * bits / 8)`` bytes) + int32
    bias + 5 bytes of requantization per output channel."""
    bits = bits or [8] * len(shapes)
    return sum(-(-int(np.prod(s)) * b // 8) + 9 * s[0] for s, b in zip(shapes, bits))


def test_quick_plan_rows_and_progress(quick):
    rows, calls = quick
    plan = flow_plan(quick=True)
    assert [(r["model"], r["key"]) for r in rows] == plan
    assert plan == [(m, k) for m in ("mlp", "cnn") for k in QUICK_FLOWS
                    if m in FLOW_MODELS.get(k, ("mlp", "cnn"))]
    assert ("mlp", "kd_hint") not in plan and ("cnn", "kd_hint") in plan
    assert all(r["dataset"] == "digits" and r["seed"] == 0 for r in rows)
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
        assert r["nonzero"] == sum(np.count_nonzero(w) for w in net.weights)
        if r["key"] == "float":
            assert r["graph"] is None and r["int8_acc"] is None
            params = sum(w.size + b.size for w, b in zip(net.weights, net.biases))
            assert r["bytes"] == 4 * params
            assert r["correct"].tolist() == (np.argmax(net.forward(x[r["model"]]), 1)
                                             == y).tolist()
            continue
        graph = r["graph"]
        assert isinstance(graph, IntGraph)
        assert r["int8_acc"] == evaluate_graph(graph, x[r["model"]], y)
        assert r["correct"].tolist() == (graph.predict(x[r["model"]]) == y).tolist()
        assert r["bytes"] == graph.total_bytes()
        assert [q.name for q in graph.weighted()] == net.layer_names()
        if not r["n_m"]:
            bits = [graph.layer_weight_bits(q.name) for q in graph.weighted()]
            dense = dense_bytes([q.w.shape for q in graph.weighted()], bits)
            assert graph.total_bytes(formats=("dense",)) == dense
            if r["key"].startswith(UNSTRUCTURED):
                assert r["bytes"] < dense          # bitmap / CSR as stored
            elif min(bits) < 4:
                assert r["bytes"] <= dense         # 3-bit codes: half zeros, a bitmap may win
            else:
                assert r["bytes"] == dense
            if r["key"] in ("ptq_w4a8", "ptq_w4a4_mse"):
                assert bits == [4] * len(bits)
                assert all(-8 <= q.w.min() and q.w.max() <= 7 for q in graph.weighted())


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


#: Seeds over which the accuracy relations are checked (seed 0 is the module's ``quick`` run),
#: and the flows they need.
SEEDS = (0, 1, 2, 3, 4)
RELATION_FLOWS = ["float", "ptq_minmax", "ptq_kl", "ptq_per_tensor", "ptq_pot",
                  "magnitude_75", "nm_2_4", "kd_qat_2_4", "grad_int8"]


@pytest.fixture(scope="module")
def seeds(quick):
    return [by_key(quick[0])] + [by_key(run_flows(quick=True, seed=s, flows=RELATION_FLOWS))
                                 for s in SEEDS[1:]]


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


def test_qat_w4a4_graph_keeps_its_widths_and_learned_ranges(quick):
    """4-bit QAT runs as a 4-bit graph: weight codes within [-7, 7], every activation clamp
    16 levels, the input's range the learned [0, 1] at 4 bits."""
    rows = by_key(quick[0])
    for model in ("mlp", "cnn"):
        graph = rows[model, "qat_w4a4"]["graph"]
        for q in graph.weighted():
            assert np.abs(q.w.astype(np.int64)).max() <= 7
        assert set(graph.weight_bits.values()) == {4}
        assert set(graph.act_bits.values()) == {4}
        scale, zp = qparams_from_range(0.0, 1.0, bits=4)
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


def test_kd_soft_targets_average_an_ensemble_of_teachers_and_students_train_at_their_rate():
    """The distilled student learns from the mean logits of ``kd_teachers`` teachers (the
    ``kd_teacher`` row's, and more from the seeds ``seed + 1000 k``); the students, alone and
    distilled, train at ``student_lr``."""
    recipe = dataclasses.replace(QUICK, epochs=1, kd_teachers=2, student_lr=5e-3,
                                 train_images=300)
    split = load_split("digits", recipe)
    b = fl._Bench("digits", "mlp", recipe, 3, split)

    def fresh(size, seed, lr):
        net = fl._build("mlp", size, seed, (64,))
        train(net, b.x_train, b.y_train, epochs=1, lr=lr, batch=64, seed=seed,
              lr_schedule="cosine")
        return net

    teachers = [fresh("teacher", 3, recipe.lr), fresh("teacher", 1003, recipe.lr)]
    for mine, want in zip([b.trained("teacher", 0), b.trained("teacher", 1)], teachers):
        for a, w in zip(mine.weights, want.weights):
            np.testing.assert_array_equal(a, w)
    np.testing.assert_array_equal(b.teacher_logits, ensemble_logits(teachers, b.x_train))
    assert not np.array_equal(b.teacher_logits, teachers[0].forward(b.x_train))
    student = fresh("student", 3, 5e-3)
    for a, w in zip(b.trained("student").weights, student.weights):
        np.testing.assert_array_equal(a, w)


def test_recipe_rejects_an_empty_teacher_ensemble():
    with raises(ValueError, "kd_teachers must be at least 1, not 0"):
        dataclasses.replace(QUICK, kd_teachers=0)


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
    assert plan == [(m, k) for m in ("mlp", "cnn") for k in FLOWS
                    if m in FLOW_MODELS.get(k, ("mlp", "cnn"))]
    assert flow_plan(models=["cnn"], flows=["qat", "float"]) == [("cnn", "float"),
                                                                ("cnn", "qat")]
    assert flow_plan(dataset="mnist1d") == [("mlp", k) for k in FLOWS
                                            if k not in FLOW_MODELS]
    assert flow_plan(dataset="mnist", quick=True) == [
        (m, k) for m in ("mlp", "cnn") for k in QUICK_FLOWS
        if m in FLOW_MODELS.get(k, ("mlp", "cnn"))]
    # Every comparison names a flow (or the residual network's block reduction).
    assert set(fl.COMPARISONS) <= {*FLOWS, "block_reduction"}
    assert set(fl.COMPARISONS.values()) <= set(FLOWS)


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
    with raises(ValueError, "dataset must be one of 'digits', 'mnist', 'mnist1d', not 'cifar'"):
        run_flows(dataset="cifar")
    with raises(ValueError, "dataset must be one of 'digits', 'mnist', 'mnist1d', not 'mnist2d'"):
        flow_plan(dataset="mnist2d")
    with raises(ValueError, "models must be among 'mlp', not 'cnn' (the models of mnist1d)"):
        run_flows(dataset="mnist1d", models=["cnn"])


@pytest.mark.parametrize("kwargs, exc, message", [
    ({"seeds": []}, ValueError, "seeds must hold at least one seed, not []"),
    ({"seeds": ()}, ValueError, "seeds must hold at least one seed, not ()"),
    ({"seeds": [0, 3, 0]}, ValueError, "seeds must be distinct, not 0 twice"),
    ({"seeds": [2, -1]}, ValueError, "seeds must be at least 0, not -1"),
    ({"seeds": [1.5]}, TypeError, "seeds must be integers, not 1.5"),
    ({"seeds": [True]}, TypeError, "seeds must be integers, not True"),
    ({"seeds": 3}, TypeError, "seeds must be a list of integers, not 3"),
    ({"seeds": "01"}, TypeError, "seeds must be a list of integers, not '01'"),
    ({"datasets": []}, ValueError, "datasets must name at least one, not ()"),
    ({"datasets": ["digits", "digits"]}, ValueError,
     "datasets must not repeat a name, not 'digits' twice"),
    ({"datasets": ["cifar"]}, ValueError,
     "datasets must be among 'digits', 'mnist', 'mnist1d', not 'cifar'"),
    ({"datasets": "digits"}, TypeError, "datasets must be a list of names, not 'digits'"),
    ({"flows": ["nope"]}, ValueError, "flows must be among"),
    ({"quick": 1}, TypeError, "quick must be a bool, not 1"),
    ({"progress": 3}, TypeError, "progress must be callable, not int"),
])
def test_run_seeds_argument_errors(kwargs, exc, message, monkeypatch):
    monkeypatch.setattr(fl, "run_flows", lambda **kw: pytest.fail("the flows started"))
    with raises(exc, message):
        run_seeds(**kwargs)


# --- the importance, regularization, factorization and reduction flows --------------------------

#: The flows checked against their definition, run without fine-tuning (their networks are then
#: exactly what the technique made of the baseline).
DEFINED = ["float", "magnitude_oneshot_75", "taylor_75", "obd_75", "taylor_2_4", "obd_2_4",
           "taylor_filter", "obd_filter", "grad_neuron", "lowrank_80", "layer_reduction"]


@pytest.fixture(scope="module")
def untuned():
    recipe = dataclasses.replace(QUICK, finetune_epochs=0)
    return by_key(run_flows(quick=True, flows=DEFINED, recipe=recipe))


@pytest.fixture(scope="module")
def scoring():
    """The held-out digits the scores are computed on, per model."""
    _, _, x, y, _, _ = load_split("digits", QUICK)
    return {m: model_inputs("digits", m, x) for m in ("mlp", "cnn")}, y


def global_masks(net, scores, amount):
    flat = np.concatenate([scores[n].ravel() for n in net.layer_names()])
    keep = score_mask(flat, amount)
    out, start = [], 0
    for w in net.weights:
        out.append(keep[start:start + w.size].reshape(w.shape))
        start += w.size
    return out


def obd(base, x, y, per="weight"):
    h = hessian_diagonal(base, x, y, samples=QUICK.hessian_samples, seed=0)
    score = obd_scores if per == "weight" else obd_filter_scores
    return {n: score(w, h[n]) for n, w in zip(base.layer_names(), base.weights)}


def test_unstructured_flows_prune_the_lowest_scores(untuned, scoring):
    xs, ys = scoring
    with threadpool_limits(limits=1, user_api="blas"):
        for model in ("mlp", "cnn"):
            base = untuned[model, "float"]["net"]
            x = xs[model]
            expect = {
                "magnitude_oneshot_75": global_magnitude_masks(base.weights, 0.75),
                "taylor_75": global_masks(base, taylor_importance(base, x, ys), 0.75),
                "obd_75": global_masks(base, obd(base, x, ys), 0.75)}
            for key, masks in expect.items():
                r = untuned[model, key]
                assert r["sparsity"] == 0.75, (model, key)
                for m, got, w, wb in zip(masks, r["net"].masks, r["net"].weights, base.weights):
                    np.testing.assert_array_equal(got, m, err_msg=f"{model} {key}")
                    np.testing.assert_array_equal(w, np.where(m, wb, 0))
            # The criteria differ: Taylor and OBD do not keep the largest weights.
            for key in ("taylor_75", "obd_75"):
                assert any(not np.array_equal(a, b) for a, b in zip(
                    untuned[model, key]["net"].masks, expect["magnitude_oneshot_75"]))


def test_n_m_flows_keep_the_most_important_of_each_group(untuned, scoring):
    xs, ys = scoring
    with threadpool_limits(limits=1, user_api="blas"):
        for model in ("mlp", "cnn"):
            base = untuned[model, "float"]["net"]
            names = n_m_layers(base, 4)
            scores = {"taylor_2_4": taylor_importance(base, xs[model], ys),
                      "obd_2_4": obd(base, xs[model], ys)}
            for key, score in scores.items():
                r = untuned[model, key]
                assert r["n_m"] == {name: (2, 4) for name in names}
                for name in base.layer_names():
                    i = base.layer_index(name)
                    w, q = r["net"].weights[i], r["graph"].weighted()[i]
                    if name not in names:
                        assert q.sparsity is None and np.count_nonzero(w) == w.size
                        continue
                    rows = (w.shape[0], -1)
                    keep = prune_n_m(base.weights[i].reshape(rows), 2, 4, axis=1,
                                     scores=score[name].reshape(rows)).reshape(w.shape)
                    np.testing.assert_array_equal(r["net"].masks[i], keep, err_msg=key)
                    assert q.sparsity == (2, 4) and is_n_m(q.gemm_weights(), 2, 4, axis=1)
                    assert is_n_m(w.reshape(rows), 2, 4, axis=1)


def test_structured_flows_remove_the_least_important_units(untuned, scoring):
    xs, ys = scoring
    with threadpool_limits(limits=1, user_api="blas"):
        for model in ("mlp", "cnn"):
            base = untuned[model, "float"]["net"]
            x = xs[model]
            first = base.layer_names()[0]
            scores = {"taylor_filter": taylor_importance(base, x, ys, per="filter"),
                      "obd_filter": obd(base, x, ys, per="filter"),
                      "grad_neuron": gradient_neuron_scores(base, x, ys)}
            for key, score in scores.items():
                net = untuned[model, key]["net"]
                keep = score_mask(score[first], QUICK.filter_amount)
                # The first layer's kept filters (neurons) are the baseline's, unchanged.
                np.testing.assert_array_equal(net.weights[0], base.weights[0][keep],
                                              err_msg=f"{model} {key}")
                np.testing.assert_array_equal(net.biases[0], base.biases[0][keep])
                assert [w.shape[0] for w in net.weights[:-1]] == [
                    w.shape[0] // 2 for w in base.weights[:-1]]
                assert net.weights[-1].shape[0] == 10


def test_lowrank_flow_keeps_80_percent_of_each_spectrum(untuned):
    for model in ("mlp", "cnn"):
        base = untuned[model, "float"]["net"]
        r = untuned[model, "lowrank_80"]
        net = r["net"]
        assert isinstance(net, Sequential)
        hidden = base.layer_names()[:-1]
        assert r["ranks"] == {n: choose_rank(singular_values(base.weights[base.layer_index(n)]),
                                             0.8) for n in hidden}
        assert [q.name for q in r["graph"].weighted()] == [
            name for n in base.layer_names() for name in ((f"{n}.v", n) if n in hidden else (n,))]
        # Unfine-tuned, the two factors multiply to the truncated matrix: close to the layer.
        for n in hidden:
            a = net.weights[net.layer_index(f"{n}.v")]
            b = net.weights[net.layer_index(n)]
            w = base.weights[base.layer_index(n)]
            product = b.reshape(b.shape[0], -1) @ a.reshape(a.shape[0], -1)
            assert product.shape == w.reshape(w.shape[0], -1).shape
            error = np.linalg.norm(product - w.reshape(w.shape[0], -1))
            assert error <= np.sqrt(0.2) * np.linalg.norm(w) * 1.0001


def test_layer_reduction_merges_the_least_important_layer(untuned, scoring):
    xs, ys = scoring
    with threadpool_limits(limits=1, user_api="blas"):
        for model in ("mlp", "cnn"):
            base = untuned[model, "float"]["net"]
            r = untuned[model, "layer_reduction"]
            scores = layer_importance(base, xs[model], ys)
            assert r["removed"] == [min(scores, key=scores.get)]
            assert len(r["net"].weights) == len(base.weights) - 1
            assert len(r["graph"].weighted()) == len(base.weights) - 1


def test_regularized_flows_shrink_the_weights_before_pruning(quick):
    rows = by_key(quick[0])
    for model in ("mlp", "cnn"):
        base = rows[model, "float"]["net"]
        r = rows[model, "l1_75"]
        reg = r["regularized"]
        # L1 (subgradient steps) leaves the weights it can spare near 0, not exactly 0.
        small = [float(np.mean(np.concatenate([np.abs(w).ravel() for w in n.weights]) < 1e-3))
                 for n in (reg, base)]
        assert small[0] > small[1] + 0.1, (model, small)
        assert sum(np.abs(w).sum() for w in reg.weights) < sum(np.abs(w).sum()
                                                               for w in base.weights)
        assert r["sparsity"] == 0.75 and reg.sparsity() < 0.75
        g = rows[model, "group_lasso_filter"]
        norms = [sum(np.linalg.norm(w.reshape(w.shape[0], -1), axis=1).sum()
                     for w in n.weights[:-1]) for n in (g["regularized"], base)]
        assert norms[0] < norms[1], (model, norms)
        assert [q.w.shape for q in g["graph"].weighted()] == [
            q.w.shape for q in rows[model, "filter_fpgm"]["graph"].weighted()]


def test_every_quick_flow_learns(quick):
    """No new flow collapses (a wrong mask or a broken removal gives chance, 10 %)."""
    for r in quick[0]:
        assert r["float_acc"] > 0.6 and (r["int8_acc"] is None or r["int8_acc"] > 0.6), \
            (r["model"], r["key"], r["float_acc"], r["int8_acc"])


# --- data ----------------------------------------------------------------------------------------

def test_each_dataset_is_split_into_fit_holdout_and_test():
    sources = {"digits": load_digits_split(), "mnist": load_mnist_split(),
               "mnist1d": load_mnist1d_split()}
    for dataset, (x_train, y_train, x_test, y_test) in sources.items():
        for recipe in (fl.FULL_RECIPES[dataset], fl.QUICK_RECIPES[dataset]):
            x_fit, y_fit, x_score, y_score, xt, yt = load_split(dataset, recipe)
            n = len(x_train) if recipe.train_images is None else recipe.train_images
            held = round(0.1 * n)
            assert (len(x_fit), len(x_score)) == (n - held, held), dataset
            np.testing.assert_array_equal(np.concatenate([x_fit, x_score]), x_train[:n])
            np.testing.assert_array_equal(np.concatenate([y_fit, y_score]), y_train[:n])
            m = len(x_test) if recipe.test_images is None else recipe.test_images
            np.testing.assert_array_equal(xt, x_test[:m])
            np.testing.assert_array_equal(yt, y_test[:m])
    assert len(load_split("digits")[0]) == 1213 and len(load_split("mnist")[4]) == 1000
    x = load_split("mnist", fl.QUICK_RECIPES["mnist"])[0][:3]
    assert model_inputs("mnist", "mlp", x).shape == (3, 784)
    assert model_inputs("mnist", "cnn", x).shape == (3, 1, 14, 14)
    assert model_inputs("digits", "cnn", load_split("digits")[0][:3]).shape == (3, 1, 8, 8)
    assert model_inputs("mnist1d", "mlp", load_split("mnist1d")[0][:3]).shape == (3, 40)
    with raises(ValueError, "holdout must leave at least one training image on each side, "
                            "not 0.0 of 1348"):
        load_split("digits", dataclasses.replace(QUICK, holdout=0.0))


# --- several seeds -------------------------------------------------------------------------------

def fake(dataset, model, key, seed, correct, *, int8=True, nbytes=100):
    correct = np.asarray(correct, bool)
    acc = float(np.mean(correct))
    return {"dataset": dataset, "model": model, "key": key, "flow": FLOWS.get(key, key),
            "seed": seed, "float_acc": acc if not int8 else 0.5, "int8_acc": acc if int8 else None,
            "correct": correct, "bytes": nbytes, "sparsity": 0.25, "nonzero": 30}


def test_aggregate_means_stds_and_paired_comparisons():
    right = {  # per seed, 4 test images
        "float": [[1, 1, 1, 0], [1, 1, 0, 0], [1, 1, 1, 1]],
        "ptq_minmax": [[1, 1, 0, 0], [1, 1, 0, 0], [1, 1, 1, 0]],
        "ptq_kl": [[1, 1, 1, 1], [1, 1, 1, 0], [1, 1, 1, 1]],
    }
    rows = [fake("digits", "mlp", key, seed, c, int8=key != "float",
                 nbytes=100 + 10 * i * (key == "ptq_kl"))
            for key, per_seed in right.items()
            for i, (seed, c) in enumerate(zip((3, 5, 7), per_seed))]
    out = aggregate(rows)
    assert [(s["dataset"], s["model"], s["key"]) for s in out] == [
        ("digits", "mlp", k) for k in right]
    base, ptq, kl = out
    assert base["seeds"] == (3, 5, 7) and base["n_test"] == 4
    assert base["int8_acc"] is None and base["acc"] == base["float_acc"]
    assert base["float_acc"][0] == pytest.approx(0.75)
    assert base["float_acc"][1] == pytest.approx(np.std([0.75, 0.5, 1.0], ddof=1))
    assert ptq["acc"] == ptq["int8_acc"]
    assert ptq["int8_acc"][0] == pytest.approx(0.5 + 1 / 12)
    assert kl["bytes"] == pytest.approx((110.0, 10.0))
    assert base["vs_float"] is None and base["reference"] is None
    assert ptq["reference"] is None and ptq["vs_reference"] is None
    assert ptq["vs_float"].diffs == pytest.approx((-0.25, 0.0, -0.25))
    assert ptq["vs_float"].mean == pytest.approx(-1 / 6)
    assert kl["reference"] == "ptq_minmax"
    assert kl["vs_reference"].diffs == pytest.approx((0.5, 0.25, 0.25))
    expect = compare([np.array(c, bool) for c in right["ptq_kl"]],
                     [np.array(c, bool) for c in right["ptq_minmax"]])
    assert kl["vs_reference"].se == expect.se and kl["vs_reference"].low == expect.low
    table = format_summary(out).splitlines()
    assert len(table) == 2 + 3
    assert "| digits | mlp | float32 baseline | 3 | 75.00 ± 25.00 | - | 100 | 25.0 ± 0.0 |" \
        in table[2]
    assert "| 110 ± 10 |" in table[4] and "| ptq_minmax |" in table[4]
    cell = f"{100 * kl['vs_reference'].mean:+.2f} [{100 * kl['vs_reference'].low:+.2f}, "
    assert cell in table[4]


def test_aggregate_compares_over_the_common_seeds_and_rejects_duplicates():
    rows = [fake("d", "m", "float", 0, [1, 0], int8=False),
            fake("d", "m", "float", 1, [1, 1], int8=False),
            fake("d", "m", "qat", 1, [0, 1]), fake("d", "m", "qat", 2, [0, 0]),
            fake("d", "m", "student", 4, [0, 0])]
    out = {s["key"]: s for s in aggregate(rows)}
    assert out["qat"]["vs_float"].diffs == (-0.5,)            # seed 1 only
    assert out["qat"]["reference"] is None                    # no ptq_minmax rows
    assert out["student"]["vs_float"] is None                 # no seed in common
    with raises(ValueError, "rows must hold one row per (dataset, model, flow, seed), not two "
                            "of ('d', 'm', 'qat', 2)"):
        aggregate([*rows, fake("d", "m", "qat", 2, [1, 1])])
    bad = dict(rows[0])
    del bad["correct"]
    with raises(ValueError, "rows must have the field 'correct'"):
        aggregate([bad])


def test_run_seeds_on_mnist1d_aggregates_real_rows():
    calls = []
    flows = ["float", "ptq_minmax", "nm_2_4", "taylor_2_4"]
    rows = run_seeds(quick=True, datasets=["mnist1d"], seeds=[2, 0], flows=flows,
                     progress=lambda d, t, r: calls.append((d, t)), keep_all=False)
    assert [(r["dataset"], r["seed"], r["model"], r["key"]) for r in rows] == [
        ("mnist1d", s, "mlp", k) for s in (2, 0) for k in flows]
    assert calls == [(i + 1, 8) for i in range(8)]
    # Only the first seed keeps its networks and graphs.
    assert all(r["net"] is not None for r in rows[:4])
    assert all(r["net"] is None and r["graph"] is None for r in rows[4:])
    assert all(len(r["correct"]) == 500 for r in rows)
    assert 0.35 < rows[0]["float_acc"] < 0.7            # the MLP on a quarter of MNIST-1D
    out = {s["key"]: s for s in aggregate(rows)}
    assert out["nm_2_4"]["int8_acc"][0] == pytest.approx(
        np.mean([r["int8_acc"] for r in rows if r["key"] == "nm_2_4"]))
    assert out["taylor_2_4"]["reference"] == "nm_2_4"
    assert out["taylor_2_4"]["vs_reference"].seeds == 2
    assert out["ptq_minmax"]["vs_float"].diffs == pytest.approx(tuple(
        a["int8_acc"] - b["float_acc"] for a, b in zip(rows[1::4], rows[0::4])))
    # The same seed gives the same rows through run_flows.
    again = run_flows(quick=True, dataset="mnist1d", seed=0, flows=["nm_2_4"])[0]
    assert again["int8_acc"] == rows[6]["int8_acc"]


def test_sub_byte_rows_count_packed_codes(quick):
    """4-bit weights store in about half the bytes of int8; the mixed-precision choice stays
    within the all-4-bit bytes it was given."""
    rows = by_key(quick[0])
    for model in ("mlp", "cnn"):
        w8, w4 = rows[model, "ptq_minmax"], rows[model, "ptq_w4a8"]
        weights8 = sum(q.w.size for q in w8["graph"].weighted())
        assert w8["bytes"] - w4["bytes"] == weights8 - sum(
            -(-q.w.size * 4 // 8) for q in w4["graph"].weighted())
        assert rows[model, "mixed_w843"]["bytes"] <= w4["bytes"]


def test_flow_names_fit_a_markdown_table_cell():
    """The reports put each flow's name in a Markdown table cell, where a ``|`` would split it
    (the Taylor flow's name once did, and its row lost a column)."""
    assert [key for key, name in FLOWS.items() if "|" in name or "\n" in name] == []
