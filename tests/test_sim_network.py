"""Whole networks on the RTL (sim.network): every layer bit-exact, cycles as modelled.

A 64-64-10 MLP (trained; fc0 2:4 pruned, so N:M on the engine; fc1 the dense fallback) and
a small CNN (conv0 1->8, pool, conv1 8->8 2:4, pool, flatten, fc0; untrained weights) on
digits test images, on a 4x4 2:4 array: Verilator on 32 images, Icarus on 8 with conv0 fed
in several engine runs. Then two branching networks of explore/zoo.py (a ShuffleNet stage:
grouped convs, channel shuffle, Concat, Add; MobileNetV2 at width 0.25: depthwise convs,
ReLU6, residual Add) compressed 2:4, on Verilator. One build per simulator and
configuration, one simulation per network.
"""

import numpy as np
import pytest
from conftest import require_simulator

from golden_model.datasets import load_digits_split
from golden_model.graph import IntGraph, QDense
from golden_model.networks import digits_cnn, digits_mlp
from hdl.config import Config
from host.lowering import engine_sparse
from host.perf import graph_estimate
from host.runtime import NetworkMismatch, check_layer, check_outputs
from sim import runner, toolchain
from sim.network import run_network

CONFIG = Config(rows=4, cols=4, n=2, m=4)
IMAGES = {"verilator": 32, "icarus": 8}
#: Icarus feeds conv0 (8 images: m = 512 GEMM rows) in 3 engine runs of at most 200 rows.
MAX_ROWS = {"verilator": None, "icarus": 200}


@pytest.fixture(scope="module")
def build_root(tmp_path_factory):
    return tmp_path_factory.mktemp("network_build")


@pytest.fixture(scope="module")
def digits():
    return load_digits_split()


@pytest.fixture(scope="module")
def graphs(digits):
    return {"mlp": digits_mlp(data=digits), "cnn": digits_cnn(data=digits)}


@pytest.mark.sim
@pytest.mark.parametrize("net", ["mlp", "cnn"])
@pytest.mark.parametrize("sim", toolchain.SIMULATORS)
def test_network_on_rtl(sim, net, build_root, digits, graphs):
    require_simulator(sim)
    graph, images = graphs[net], IMAGES[sim]
    x = digits[2] if net == "mlp" else digits[2].reshape(-1, 1, 8, 8)
    r = run_network(graph, x, sim=sim, config=CONFIG, build_root=build_root, images=images,
                    max_rows=MAX_ROWS[sim])
    # run_network raises on any mismatch; here, what it reports.
    golden = graph.forward(x[:images], rounding=CONFIG.rounding, acc_bits=CONFIG.acc_width)
    assert np.array_equal(r.predictions, np.argmax(golden[-1], axis=1))
    assert [lr.name for lr in r.layers] == [ly.name for ly in graph.layers]
    assert r.checked == sum(g.size for g in golden[1:])
    modes = {lr.name: lr.mode for lr in r.engine_layers}
    assert modes == ({"fc0": "2:4", "fc1": "dense"} if net == "mlp" else
                     {"conv0": "dense", "conv1": "2:4", "fc0": "dense"})
    for lr in r.engine_layers:
        assert lr.cycles == lr.model_cycles, lr          # the performance model is exact
        assert 0 < lr.utilization <= 1
    if net == "cnn":
        conv0 = r.layers[0]
        assert conv0.gemm == (images * 64, 9, 8)
        assert conv0.engine_runs == (3 if sim == "icarus" else 1)
        assert [lr.where for lr in r.layers] == ["rtl", "host", "rtl", "host", "host", "rtl"]
    assert r.cycles_per_inference == r.cycles / images
    assert f"{r.cycles}" in r.format_table()


@pytest.mark.sim
@pytest.mark.parametrize("sparsity", ["1:4", "dense"])
def test_network_dense_fallback_arrays(sparsity, build_root, digits, graphs):
    """The CNN's 2:4 layer runs in the dense fallback on a 1:4 array, and everything runs
    dense on the plain dense array; 16-row accumulators, so layers take many m-blocks."""
    require_simulator("icarus")
    cfg = Config.from_sparsity(4, 4, sparsity, acc_depth=16)
    r = run_network(graphs["cnn"], digits[2].reshape(-1, 1, 8, 8), sim="icarus", config=cfg,
                    build_root=build_root, images=2)
    assert {lr.mode for lr in r.engine_layers} == {"dense"}
    assert all(lr.cycles == lr.model_cycles for lr in r.engine_layers)


@pytest.mark.sim
def test_network_under_stalls(build_root, digits, graphs):
    """Random idle and backpressure cycles: still bit-exact, and slower than the model."""
    require_simulator("icarus")
    r = run_network(graphs["mlp"], digits[2], sim="icarus", config=CONFIG,
                    build_root=build_root, images=4, stalls=True, seed=3)
    assert all(lr.cycles > lr.model_cycles for lr in r.engine_layers)


class _CorruptGolden(IntGraph):
    """Its forward() result (what the simulation checks against) has one value changed."""

    def forward(self, x, **kwargs):
        outs = super().forward(x, **kwargs)
        outs[1][1, 7] = outs[1][1, 7] ^ 1
        return outs


@pytest.mark.sim
def test_network_mismatch_in_simulation(build_root, digits, graphs):
    """The scoreboard stops the simulation at the first engine run whose output differs from
    the golden rows, naming the layer, the GEMM and the value."""
    require_simulator("icarus")
    g = graphs["mlp"]
    bad = _CorruptGolden(g.input_shape, g.input_scale, g.input_zp, g.layers)
    with pytest.raises(runner.SimulationFailed, match=r"layer fc0 \(2x64x64 GEMM, N:M\), rows "
                       r"0\.\.1: model and golden_model disagree at \(1, 7\)"):
        run_network(bad, digits[2], sim="icarus", config=CONFIG, build_root=build_root,
                    images=2)


@pytest.mark.sim
@pytest.mark.parametrize("name", ["shufflenet_unit", "mobilenet_v2"])
def test_branching_network_on_rtl(name, build_root):
    """Residual and branching graphs with grouped and depthwise convolutions: every layer
    bit-exact on the RTL (the host runs Add, Concat, pooling, the reshapes), each engine
    layer's cycles equal to the performance model's, and to ``graph_estimate``'s."""
    from explore import zoo
    from sparsemac.importer import compress

    require_simulator("verilator")
    kwargs = {"width": 0.25} if name == "mobilenet_v2" else {}
    model = zoo.build(name, input_size=32, num_classes=10, seed=1, batch=None, **kwargs)
    x = np.random.default_rng(3).standard_normal((8, 3, 32, 32)).astype(np.float32)
    graph = compress(model, sparsity="2:4", x_calib=x).graph
    r = run_network(graph, x, sim="verilator", config=CONFIG, build_root=build_root, images=2)
    golden = graph.forward(x[:2], rounding=CONFIG.rounding, acc_bits=CONFIG.acc_width)
    assert r.checked == sum(g.size for g in golden[1:])
    est = graph_estimate(CONFIG, graph, batch=2)
    assert [lr.name for lr in r.engine_layers] == [ly.name for ly in est.engine_layers]
    assert [lr.cycles for lr in r.engine_layers] == [lr.model_cycles for lr in r.engine_layers] \
        == [ly.cycles for ly in est.engine_layers]
    grouped = [lr for lr, layer in zip(r.layers, graph.layers) if getattr(layer, "groups", 1) > 1]
    assert grouped and all(lr.gemms > 1 for lr in grouped)
    assert {lr.mode for lr in r.engine_layers} == {"2:4", "dense"}
    kinds = {lr.kind for lr in r.layers if lr.where == "host"}
    assert kinds >= ({"QConcat", "QAdd", "Transpose"} if name == "shufflenet_unit" else
                     {"QAdd", "QGlobalAvgPool"}), kinds


def test_engine_mode():
    """N:M when the declared pattern guarantees the array's; the dense fallback otherwise."""
    w = np.zeros((4, 16), np.int8)
    layer = QDense(w=w, bias=np.zeros(4, np.int32), multiplier=np.zeros(4, np.int64),
                   shift=np.zeros(4, np.int64), in_scale=1.0, in_zp=0, out_scale=1.0,
                   out_zp=0, act_min=-128, act_max=127, w_scale=np.ones(4, np.float32))
    cases = [((2, 4), Config.from_sparsity(4, 4, "2:4"), True),
             ((2, 4), Config.from_sparsity(4, 4, "1:4"), False),
             ((2, 4), Config.from_sparsity(4, 4, "dense"), False),
             ((2, 4), Config.from_sparsity(4, 4, "2:8"), False),
             ((1, 8), Config.from_sparsity(4, 4, "2:4"), True),
             ((1, 2), Config.from_sparsity(4, 4, "2:4"), True),
             ((1, 4), Config.from_sparsity(4, 4, "2:4"), True),
             ((4, 8), Config.from_sparsity(4, 4, "2:4"), False),
             (None, Config.from_sparsity(4, 4, "2:4"), False)]
    for sparsity, cfg, want in cases:
        layer.sparsity = sparsity
        assert engine_sparse(cfg, layer) is want, (sparsity, cfg.sparsity)


def test_mismatch_names_layer_index_and_values(digits, graphs):
    graph = graphs["cnn"]
    x = digits[2][:3].reshape(-1, 1, 8, 8)
    golden = graph.forward(x)
    outputs = [g.copy() for g in golden[1:]]
    assert check_outputs(graph, golden, outputs) == [g.size for g in golden[1:]]
    bad = [g.copy() for g in golden]
    i = (1, 5, 2, 3)
    bad[3][i] = 0 if golden[3][i] else 1                 # conv1's output (layer 2)
    with pytest.raises(NetworkMismatch, match=rf"^conv1: RTL and golden model differ at "
                       rf"index \(1, 5, 2, 3\) \(of shape \(3, 8, 4, 4\)\): golden "
                       rf"{int(bad[3][i])}, RTL {int(golden[3][i])} "
                       rf"\(1 of 384 values differ\)"):
        check_outputs(graph, bad, outputs)
    with pytest.raises(NetworkMismatch, match=r"^fc0: the RTL output has shape \(3, 9\)"):
        check_layer("fc0", golden[-1], golden[-1][:, :9])


def test_argument_errors(graphs):
    with pytest.raises(TypeError, match="graph must be"):
        run_network([], np.zeros((1, 64)))
    with pytest.raises(ValueError, match="images must be at least 1, not 0"):
        run_network(graphs["mlp"], np.zeros((1, 64)), images=0)
