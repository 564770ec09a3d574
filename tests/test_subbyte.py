"""Sub-8-bit graphs (issue 18): calibrators that optimize the applied quantizer, 4- and 3-bit
weights and activations in int8 containers (the integer forward against a direct NumPy
reference, the codes within their widths, the files), bytes as stored (packed sub-8-bit codes,
the smallest of dense / bitmap / CSR) and mixed precision under a byte budget."""

import itertools
import json
import math

import numpy as np
import pytest
from test_graph import residual_net

from golden_model.calibration import calibrate
from golden_model.compress import (
    STORAGE_FORMATS,
    decode_weights,
    encode_weights,
    nbytes_bitmap,
    nbytes_csr,
    nbytes_dense,
    nbytes_n_m,
)
from golden_model.graph import (
    INPUT,
    Add,
    Concat,
    Dense,
    GraphError,
    IntGraph,
    act_code_range,
    float_forward,
    quantize_graph,
    weight_code_range,
)
from golden_model.mixed import (
    choose_bits,
    layer_bytes,
    layer_sensitivity,
    mixed_precision,
)
from golden_model.prune import prune_n_m
from golden_model.quant import qparams_from_range


def mlp(rng, sizes=(12, 16, 16, 6), names=("fc0", "fc1", "fc2")):
    """A ReLU MLP (the last layer without ReLU)."""
    layers = []
    for i, (k, n) in enumerate(zip(sizes[:-1], sizes[1:])):
        w = (rng.standard_normal((n, k)) / np.sqrt(k)).astype(np.float32)
        b = (0.1 * rng.standard_normal(n)).astype(np.float32)
        layers.append(Dense(w, b, relu=i < len(sizes) - 2, name=names[i]))
    return layers


@pytest.fixture(scope="module")
def chain():
    rng = np.random.default_rng(18)
    layers = mlp(rng)
    x = rng.standard_normal((64, 12)).astype(np.float32)
    return layers, x


# --- 1. calibrators that optimize the applied quantizer ----------------------------------------

@pytest.mark.parametrize("bits", [8, 4, 3])
@pytest.mark.parametrize("method", ["mse", "kl"])
def test_relu_outputs_are_calibrated_one_sided(chain, method, bits):
    """A ReLU output is quantized affine over [0, t] with 2^b - 1 steps: its range is the
    one-sided search's, for that many bits; a signed tensor keeps the symmetric search."""
    layers, x = chain
    graph = quantize_graph(layers, (12,), x, method=method, act_bits=bits)
    acts = float_forward(layers, x)
    params = graph.tensor_qparams()
    relu_out = acts[1]                                  # fc0, ReLU
    assert relu_out.min() >= 0
    want = qparams_from_range(*calibrate(relu_out, method, one_sided=True, bits=bits),
                              bits=bits)
    assert params[1] == want
    lo, hi = calibrate(relu_out, method, one_sided=True, bits=bits)
    assert lo == 0 and hi > 0
    signed = acts[3]                                    # fc2, no ReLU
    assert signed.min() < 0
    want = qparams_from_range(*calibrate(signed, method, bits=bits), bits=bits)
    assert params[3] == want


def test_percentile_stays_asymmetric(chain):
    layers, x = chain
    graph = quantize_graph(layers, (12,), x, method="percentile")
    acts = float_forward(layers, x)
    lo, hi = calibrate(acts[3], "percentile", symmetric=False)
    assert graph.tensor_qparams()[3] == qparams_from_range(lo, hi)


# --- 2. sub-8-bit weights and activations --------------------------------------------------------

def test_code_ranges():
    assert weight_code_range(8) == (-127, 127)
    assert weight_code_range(4) == (-7, 7)
    assert weight_code_range(3) == (-3, 3)
    assert act_code_range(8) == (-128, 127)
    assert act_code_range(4) == (-8, 7)
    assert act_code_range(3) == (-4, 3)


@pytest.mark.parametrize("weights", ["per_channel", "per_tensor", "pot"])
@pytest.mark.parametrize("bits", [4, 3])
def test_every_code_lies_in_its_width(chain, weights, bits):
    layers, x = chain
    graph = quantize_graph(layers, (12,), x, weights=weights, weight_bits=bits, act_bits=bits)
    wlo, whi = weight_code_range(bits)
    alo, ahi = act_code_range(bits)
    for layer in graph.weighted():
        assert layer.w.dtype == np.int8
        assert wlo <= layer.w.min() and layer.w.max() <= whi
        assert alo <= layer.act_min <= layer.out_zp <= layer.act_max <= ahi
    assert graph.weight_bits == {"fc0": bits, "fc1": bits, "fc2": bits}
    assert graph.act_bits == {INPUT: bits, "fc0": bits, "fc1": bits, "fc2": bits}
    # Far outside the calibration range too: the clamps hold every code in the width.
    wild = np.concatenate([x, 50 * x])
    for requant in ("tflite", "onnx"):
        for out in graph.forward(wild, requant=requant):
            assert out.dtype == np.int8 and alo <= out.min() and out.max() <= ahi


def test_pot_weights_at_4_bits_are_signed_powers_of_two(chain):
    layers, x = chain
    graph = quantize_graph(layers, (12,), x, weights="pot", weight_bits=4)
    for layer in graph.weighted():
        assert set(np.unique(np.abs(layer.w))) <= {0, 1, 2, 4}
    at8 = quantize_graph(layers, (12,), x, weights="pot")
    assert {int(v) for ly in at8.weighted() for v in np.unique(np.abs(ly.w))} <= \
        {0, 1, 2, 4, 8, 16, 32, 64}


def _srdhm(a, b):
    ab = a.astype(np.int64) * b.astype(np.int64)
    nudge = np.where(ab >= 0, 1 << 30, 1 - (1 << 30))
    s = ab + nudge
    q = np.abs(s) >> 31                                 # C division truncates toward zero
    out = np.where(s < 0, -q, q)
    return np.where((a == -(1 << 31)) & (b == -(1 << 31)), (1 << 31) - 1, out)


def _rdbpot(x, e):
    mask = (np.int64(1) << e) - 1
    rem = x & mask
    thr = (mask >> 1) + (x < 0)
    return (x >> e) + (rem > thr)


def _reference_forward(graph, x, bits):
    """The graph's arithmetic written out for a Dense chain: input quantized to ``bits`` bits,
    int64 accumulation, TFLite double-rounding requantization, the output clamped to the
    ``bits``-bit range (at the zero point for a ReLU)."""
    lo, hi = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    xs = np.asarray(x, np.float32) / np.float32(graph.input_scale)
    q = np.clip(np.rint(xs) + graph.input_zp, lo, hi).astype(np.int64)
    outs = [q]
    for layer in graph.layers:
        acc = (q - layer.in_zp) @ layer.w.astype(np.int64).T + layer.bias.astype(np.int64)
        acc = ((acc + (1 << 31)) & 0xFFFFFFFF) - (1 << 31)            # int32 wrap
        left = np.maximum(layer.shift, 0)
        right = np.maximum(-layer.shift, 0)
        y = _rdbpot(_srdhm(acc << left, layer.multiplier), right)
        q = np.clip(y + layer.out_zp, max(lo, layer.out_zp) if layer.relu else lo, hi)
        outs.append(q)
    return outs


@pytest.mark.parametrize("bits", [8, 4, 3])
def test_integer_forward_equals_a_direct_numpy_reference(chain, bits):
    layers, x = chain
    graph = quantize_graph(layers, (12,), x, weight_bits=bits, act_bits=bits)
    rng = np.random.default_rng(bits)
    probe = np.concatenate([x, 3 * rng.standard_normal((64, 12)).astype(np.float32)])
    for got, want in zip(graph.forward(probe), _reference_forward(graph, probe, bits),
                         strict=True):
        np.testing.assert_array_equal(got, want)


def test_per_layer_widths(chain):
    layers, x = chain
    graph = quantize_graph(layers, (12,), x, weight_bits={"fc1": 3}, act_bits={"fc0": 4})
    assert graph.weight_bits == {"fc1": 3} and graph.act_bits == {"fc0": 4}
    assert [graph.layer_weight_bits(n) for n in ("fc0", "fc1", "fc2")] == [8, 3, 8]
    assert graph.tensor_bits() == [8, 4, 8, 8]
    fc0, fc1, fc2 = graph.weighted()
    assert fc0.act_max <= 7 and fc1.in_zp <= 7
    assert np.abs(fc1.w).max() <= 3 and np.abs(fc0.w).max() == 127
    assert (graph.forward(x)[1] <= 7).all()


def test_residual_graph_at_4_bits(tmp_path):
    """Add clamps to the narrower range; Concat and GlobalAvgPool outputs stay 8-bit (their
    int8 kernels clamp to [-128, 127] only); pass-through layers keep their input's width."""
    rng = np.random.default_rng(7)
    layers = residual_net(rng)
    x = rng.standard_normal((16, 3, 8, 8)).astype(np.float32)
    graph = quantize_graph(layers, (3, 8, 8), x, weight_bits=4, act_bits=4)
    names = [INPUT, *(ly.name for ly in graph.layers)]
    bits = dict(zip(names, graph.tensor_bits()))
    assert bits["res"] == bits["relu6"] == bits["pool"] == 4
    assert bits["cat"] == bits["split"] == bits["gap"] == bits["flat"] == 8
    for requant in ("tflite", "onnx"):
        for name, out in zip(names, graph.forward(3 * x, requant=requant)):
            lo, hi = act_code_range(bits[name])
            assert lo <= out.min() and out.max() <= hi, name
    with pytest.raises(GraphError, match=r"act_bits\['cat'\]: Concat 'cat' has no output "
                                         r"clamp in its int8 kernel, so its output is 8-bit, "
                                         r"not 4"):
        quantize_graph(layers, (3, 8, 8), x, act_bits={"cat": 4})
    graph.save(tmp_path)
    loaded = IntGraph.load(tmp_path)
    assert loaded.tensor_bits() == graph.tensor_bits()
    for u, v in zip(graph.forward(x), loaded.forward(x)):
        np.testing.assert_array_equal(u, v)


def test_a_quantized_input_outside_its_width_is_refused(chain):
    layers, x = chain
    graph = quantize_graph(layers, (12,), x, act_bits=4)
    codes = graph.quantize_input(x)
    assert codes.dtype == np.int8 and codes.min() >= -8 and codes.max() <= 7
    np.testing.assert_array_equal(graph.forward(codes, quantized=True)[-1],
                                  graph.forward(x)[-1])
    with pytest.raises(GraphError, match=r"quantized input codes must lie in \[-8, 7\] \(a "
                                         r"4-bit input\), not \[-8, 9\]"):
        graph.forward(np.where(codes == codes.max(), 9, codes).astype(np.int8), quantized=True)


@pytest.mark.parametrize("kwargs, exc, message", [
    ({"weight_bits": 9}, ValueError, "weight_bits must be between 2 and 8, not 9"),
    ({"weight_bits": 1}, ValueError, "weight_bits must be between 2 and 8, not 1"),
    ({"act_bits": 16}, ValueError, "act_bits must be between 2 and 8, not 16"),
    ({"weight_bits": "4"}, TypeError, "weight_bits must be an integer or a dict of name -> "
                                      "bits, not '4'"),
    ({"weight_bits": True}, TypeError, "weight_bits must be an integer, not True"),
    ({"weight_bits": 4.0}, TypeError, "weight_bits must be an integer or a dict"),
    ({"weight_bits": {"fc1": 12}}, ValueError,
     r"weight_bits\['fc1'\] must be between 2 and 8, not 12"),
    ({"weight_bits": {"fc1": 4.5}}, TypeError, r"weight_bits\['fc1'\] must be an integer"),
    ({"weight_bits": {"fc9": 4}}, GraphError,
     "weight_bits names 'fc9', which is not a Dense or Conv2d layer of the graph"),
    ({"act_bits": {"nope": 4}}, GraphError, "act_bits names 'nope', which is not the input or "
                                            "a layer with its own output quantization"),
])
def test_bad_widths_name_the_value(chain, kwargs, exc, message):
    layers, x = chain
    with pytest.raises(exc, match=message):
        quantize_graph(layers, (12,), x, **kwargs)


def test_widths_round_trip_through_the_files(chain, tmp_path):
    layers, x = chain
    graph = quantize_graph(layers, (12,), x, weight_bits={"fc0": 4, "fc1": 3},
                           act_bits={INPUT: 4, "fc1": 3})
    graph.save(tmp_path)
    manifest = json.loads((tmp_path / "graph.json").read_text())
    assert manifest["bits"] == {"weights": {"fc0": 4, "fc1": 3, "fc2": 8},
                                "activations": {INPUT: 4, "fc0": 8, "fc1": 3, "fc2": 8}}
    assert manifest["total_bytes"] == graph.total_bytes()
    loaded = IntGraph.load(tmp_path)
    assert (loaded.weight_bits, loaded.act_bits) == (graph.weight_bits, graph.act_bits) == (
        {"fc0": 4, "fc1": 3}, {INPUT: 4, "fc1": 3})
    assert loaded.nbytes() == graph.nbytes()
    for u, v in zip(graph.forward(x), loaded.forward(x)):
        np.testing.assert_array_equal(u, v)


def test_a_file_without_widths_is_all_8_bit(chain, tmp_path):
    """Every file written before the widths: no ``bits`` object."""
    layers, x = chain
    graph = quantize_graph(layers, (12,), x)
    graph.save(tmp_path)
    manifest = json.loads((tmp_path / "graph.json").read_text())
    del manifest["bits"]
    (tmp_path / "graph.json").write_text(json.dumps(manifest))
    loaded = IntGraph.load(tmp_path)
    assert loaded.weight_bits == {} and loaded.act_bits == {}
    assert loaded.tensor_bits() == [8, 8, 8, 8]
    assert loaded.total_bytes() == graph.total_bytes()


@pytest.mark.parametrize("edit, message", [
    (lambda b: b["weights"].update(fc0=9), r"bits.weights\['fc0'\] must be an integer from 2 "
                                           r"to 8, not 9"),
    (lambda b: b["activations"].update(fc1="4"), r"bits.activations\['fc1'\] must be an "
                                                 r"integer from 2 to 8, not '4'"),
    (lambda b: b["weights"].update(fc7=8), "weight_bits names 'fc7', which is not a weighted "
                                           "layer"),
    (lambda b: b["weights"].update(fc0=3), r"Dense 'fc0': 3-bit weights must lie in \[-4, 3\], "
                                           r"not \[-7, 7\]"),
    (lambda b: b["activations"].update(fc0=3), r"Dense 'fc0': a 3-bit output needs its clamp "
                                               r"within \[-4, 3\], not \[-8, 7\]"),
    (lambda b: b.update(extra=1), "bits must be an object with 'weights' and 'activations'"),
])
def test_bad_widths_in_a_file_are_refused(chain, tmp_path, edit, message):
    layers, x = chain
    graph = quantize_graph(layers, (12,), x, weight_bits=4, act_bits=4)
    graph.save(tmp_path)
    manifest = json.loads((tmp_path / "graph.json").read_text())
    edit(manifest["bits"])
    (tmp_path / "graph.json").write_text(json.dumps(manifest))
    with pytest.raises(GraphError, match=f"graph.json: .*{message}"):
        IntGraph.load(tmp_path)


# --- 3. bytes as stored ------------------------------------------------------------------------

def _dense_layer(rng, out, k, name, **kw):
    return Dense((rng.standard_normal((out, k)) / np.sqrt(k)).astype(np.float32),
                 np.zeros(out, np.float32), name=name, **kw)


def test_a_90_percent_pruned_layer_is_stored_in_the_smallest_format():
    rng = np.random.default_rng(90)
    layers = [_dense_layer(rng, 64, 128, "sparse", relu=True), _dense_layer(rng, 10, 64, "head")]
    w = layers[0].w
    cut = np.sort(np.abs(w).ravel())[int(0.9 * w.size)]
    layers[0].w = np.where(np.abs(w) >= cut, w, 0).astype(np.float32)
    x = rng.standard_normal((32, 128)).astype(np.float32)
    for bits in (8, 4):
        graph = quantize_graph(layers, (128,), x, weight_bits=bits)
        row, head = graph.nbytes()
        codes = graph.weighted()[0].gemm_weights()
        nnz = int(np.count_nonzero(codes))
        assert nnz <= 0.1 * codes.size + 1
        formulas = {"dense": nbytes_dense(codes.shape, bits).nbytes,
                    "bitmap": nbytes_bitmap(codes.shape, nnz, bits).nbytes,
                    "csr": nbytes_csr(codes.shape, nnz, bits).nbytes}
        assert row["formats"] == formulas
        assert row["weights"] + row["metadata"] == min(formulas.values()) < formulas["dense"]
        assert row["format"] == min(formulas, key=formulas.get)
        assert head["format"] == "dense"
        dense_only = graph.nbytes(formats=("dense",))[0]
        assert dense_only["weights"] == formulas["dense"] and dense_only["metadata"] == 0
        assert graph.total_bytes() < graph.total_bytes(formats=("dense",))
        # The buffers themselves have exactly the counted sizes, and decode to the codes.
        buffers = encode_weights(codes, row["format"], bits)
        assert buffers["values"].nbytes == row["weights"]
        assert sum(b.nbytes for k, b in buffers.items() if k != "values") == row["metadata"]
        np.testing.assert_array_equal(
            decode_weights(buffers, row["format"], codes.shape, bits), codes)


def test_4_bit_dense_weights_take_half_the_bytes():
    rng = np.random.default_rng(4)
    layers = [_dense_layer(rng, 16, 32, "a", relu=True), _dense_layer(rng, 8, 16, "b")]
    # No weight near zero: every code non-zero even at 3 bits, so dense is the smallest format.
    for layer in layers:
        layer.w = (np.sign(layer.w) * (0.5 + np.abs(layer.w))).astype(np.float32)
    x = rng.standard_normal((16, 32)).astype(np.float32)
    rows = {b: quantize_graph(layers, (32,), x, weight_bits=b).nbytes() for b in (8, 4, 3)}
    for r8, r4, r3 in zip(rows[8], rows[4], rows[3]):
        assert r8["format"] == r4["format"] == r3["format"] == "dense"
        size = math.prod(r8["shape"])
        assert (r8["weights"], r4["weights"], r3["weights"]) == (size, size // 2,
                                                                 math.ceil(size * 3 / 8))
        assert r4["bias"] == r8["bias"] and r4["requant"] == r8["requant"]


def test_n_m_layers_stay_n_m_with_narrower_values():
    rng = np.random.default_rng(24)
    layers = [_dense_layer(rng, 16, 32, "a", relu=True), _dense_layer(rng, 8, 16, "b")]
    layers[0].w = np.where(prune_n_m(layers[0].w, 2, 4, axis=1), layers[0].w, 0).astype(
        np.float32)
    x = rng.standard_normal((16, 32)).astype(np.float32)
    for bits in (8, 4, 3):
        graph = quantize_graph(layers, (32,), x, sparsity={"a": (2, 4)}, weight_bits=bits)
        row = graph.nbytes()[0]
        want = nbytes_n_m((16, 32), 2, 4, axis=1, value_bits=bits)
        assert row["format"] == "n_m" and row["formats"] == {"n_m": want.nbytes}
        assert (row["weights"], row["metadata"]) == (want.values, want.metadata)
        codes = graph.weighted()[0].gemm_weights()
        buffers = encode_weights(codes, "n_m", bits, n_m=(2, 4))
        assert (buffers["values"].nbytes, buffers["indices"].nbytes) == (want.values,
                                                                          want.metadata)
        np.testing.assert_array_equal(
            decode_weights(buffers, "n_m", codes.shape, bits, n_m=(2, 4)), codes)


def test_weight_bytes_sums_values_and_metadata(chain):
    layers, x = chain
    graph = quantize_graph(layers, (12,), x, weight_bits=4)
    assert graph.weight_bytes() == sum(r["weights"] + r["metadata"] for r in graph.nbytes())
    assert STORAGE_FORMATS == ("dense", "bitmap", "csr")


# --- 4. mixed precision ------------------------------------------------------------------------

def test_choose_bits_is_exact_against_brute_force():
    rng = np.random.default_rng(5)
    for trial in range(20):
        names = [f"l{i}" for i in range(5)]
        nbytes = {n: {8: int(s), 4: int(s) // 2, 3: -(-int(s) * 3 // 8)}
                  for n, s in zip(names, rng.integers(8, 200, size=5))}
        sens = {n: {8: 0.0, 4: float(a), 3: float(a + b)}
                for n, a, b in zip(names, rng.random(5), rng.random(5))}
        lo = sum(min(v.values()) for v in nbytes.values())
        hi = sum(max(v.values()) for v in nbytes.values())
        budget = int(rng.integers(lo, hi + 1))
        best = min((sum(sens[n][b] for n, b in zip(names, combo)), combo)
                   for combo in itertools.product((8, 4, 3), repeat=5)
                   if sum(nbytes[n][b] for n, b in zip(names, combo)) <= budget)
        for search in ("exact", "greedy"):
            bits = choose_bits(sens, nbytes, budget, search=search)
            assert sum(nbytes[n][b] for n, b in bits.items()) <= budget, (trial, search)
            cost = sum(sens[n][b] for n, b in bits.items())
            if search == "exact":
                assert cost == pytest.approx(best[0], abs=1e-12), trial
            else:
                assert cost >= best[0] - 1e-12


def test_choose_bits_budget_edges():
    nbytes = {"a": {8: 100, 4: 50, 3: 38}, "b": {8: 60, 4: 30, 3: 23}}
    sens = {"a": {8: 0.0, 4: 1.0, 3: 2.0}, "b": {8: 0.0, 4: 0.5, 3: 0.75}}
    for search in ("exact", "greedy"):
        assert choose_bits(sens, nbytes, 160, search=search) == {"a": 8, "b": 8}
        assert choose_bits(sens, nbytes, 61, search=search) == {"a": 3, "b": 3}
    only84 = {n: {b: v[b] for b in (8, 4)} for n, v in nbytes.items()}
    sens84 = {n: {b: v[b] for b in (8, 4)} for n, v in sens.items()}
    assert choose_bits(sens84, only84, 80) == {"a": 4, "b": 4}
    # Zero sensitivity everywhere: the widest choice that fits.
    flat = {n: dict.fromkeys(v, 0.0) for n, v in nbytes.items()}
    assert choose_bits(flat, nbytes, 160) == {"a": 8, "b": 8}
    with pytest.raises(ValueError, match="budget 60 bytes is below the minimum 61"):
        choose_bits(sens, nbytes, 60)
    with pytest.raises(TypeError, match="budget must be an integer"):
        choose_bits(sens, nbytes, 100.5)
    with pytest.raises(ValueError, match="search must be"):
        choose_bits(sens, nbytes, 100, search="annealing")


@pytest.fixture(scope="module")
def fragile():
    """Three equal layers; the middle one reads a unit the first never activates with one
    large weight per row, so that at 4 bits (scale max/7) every weight it uses rounds to 0:
    by far the most sensitive layer."""
    rng = np.random.default_rng(11)
    layers = mlp(rng, sizes=(16, 16, 16, 16), names=("a", "b", "c"))
    layers[0].w[0], layers[0].b[0] = 0.0, -1.0          # unit 0 of "a": always 0 after ReLU
    layers[1].w[:, 0] = 12.0
    x = rng.standard_normal((128, 16)).astype(np.float32)
    return layers, x


def test_the_most_sensitive_layer_keeps_the_most_bits(fragile):
    layers, x = fragile
    nbytes = layer_bytes(layers, choices=(8, 4))
    sens = layer_sensitivity(layers, (16,), x, choices=(8, 4))
    assert max(sens, key=lambda n: sens[n][4]) == "b"
    assert all(sens[n][8] == 0.0 for n in sens)
    all4 = sum(v[4] for v in nbytes.values())
    budget = all4 - nbytes["b"][4] + nbytes["b"][8]            # room for one layer at 8
    for metric in ("mse", "kl"):
        result = mixed_precision(layers, (16,), x, budget, choices=(8, 4), metric=metric)
        assert result.bits == {"a": 4, "b": 8, "c": 4}
        assert {n: result.graph.layer_weight_bits(n) for n in "abc"} == result.bits
        assert result.graph.weight_bytes() == result.weight_bytes <= budget


def test_mixed_precision_budgets(fragile):
    layers, x = fragile
    nbytes = layer_bytes(layers)
    all8 = sum(v[8] for v in nbytes.values())
    assert mixed_precision(layers, (16,), x, all8).bits == {"a": 8, "b": 8, "c": 8}
    all4 = sum(v[4] for v in nbytes.values())
    assert mixed_precision(layers, (16,), x, all4, choices=(8, 4)).bits == \
        dict.fromkeys("abc", 4)
    result = mixed_precision(layers, (16,), x, all4)            # 3 bits allowed
    assert result.graph.weight_bytes() == result.weight_bytes <= all4
    assert result.cost <= sum(result.sensitivity[n][4] for n in "abc") + 1e-15
    minimum = sum(min(v.values()) for v in nbytes.values())
    assert mixed_precision(layers, (16,), x, minimum).bits == dict.fromkeys("abc", 3)
    with pytest.raises(ValueError, match=f"budget {minimum - 1} bytes is below the minimum "
                                         f"{minimum}"):
        mixed_precision(layers, (16,), x, minimum - 1)


def test_add_and_concat_graphs_are_not_weighted_only():
    """Sanity of the width tables on a graph with Add and Concat (names resolved)."""
    rng = np.random.default_rng(2)
    layers = [_dense_layer(rng, 8, 8, "p", relu=True), _dense_layer(rng, 8, 8, "q"),
              Add(relu=True, name="s", inputs=("p", "q")),
              Concat(name="c", inputs=("s", "p")), _dense_layer(rng, 4, 16, "h")]
    x = rng.standard_normal((16, 8)).astype(np.float32)
    graph = quantize_graph(layers, (8,), x, act_bits=3, weight_bits={"h": 4})
    assert graph.tensor_bits() == [3, 3, 3, 3, 8, 3]
    assert graph.weight_bits == {"h": 4}
    assert graph.bits_entry() == {"weights": {"p": 8, "q": 8, "h": 4},
                                  "activations": {INPUT: 3, "p": 3, "q": 3, "s": 3, "c": 8,
                                                  "h": 3}}
