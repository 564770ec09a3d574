"""Fuzzing the file inputs (issue 16): random bytes and mutated valid ONNX models through
``sparsemac compress``, mutated graph folders through ``IntGraph.load`` and ``sparsemac
perf``. Seeded and bounded: every case must end in exit 0 or one line and exit 2, never a
traceback, and a failed compress writes nothing. The cases per run are printed (``-s``)."""

import copy
import json
import shutil

import numpy as np
import onnx
import pytest
from onnx import TensorProto

from explore import zoo
from golden_model.graph import GraphError, IntGraph
from sparsemac import cli

#: Cases per kind: a run stays within seconds (the suite's budget), the seeds vary them.
CASES = {"bytes": 40, "onnx": 160, "graph": 120}
SEED = 20261130


def _run(capsys, args):
    """``cli.main(args)``: its exit status and stderr lines; any exception fails the test."""
    code = cli.main([str(a) for a in args])
    captured = capsys.readouterr()
    err = captured.err.strip().splitlines()
    assert code in (0, 2), (args, code, err)
    if code == 2:
        assert len(err) == 1 and err[0].startswith("sparsemac: error: "), (args, err)
    return code


@pytest.fixture(scope="module")
def seed_model():
    """A small ShuffleNet stage: grouped convs, BN, Concat, Add, Reshape/Transpose, GAP."""
    return zoo.build("shufflenet_unit", input_size=32, num_classes=10, seed=1, batch=None)


@pytest.fixture(scope="module")
def seed_models(seed_model):
    """The float model, and its QDQ twin (compressed 2:4, written by the QDQ writer): the
    two readers."""
    from sparsemac.importer import compress
    from sparsemac.importer.qdq_writer import to_qdq_model

    x = np.random.default_rng(0).standard_normal((2, 3, 32, 32)).astype(np.float32)
    return {"float": seed_model,
            "qdq": to_qdq_model(compress(seed_model, sparsity="2:4", x_calib=x).graph)}


def _mutate_model(model, rng):
    """One random edit of a copy of ``model``: drop, duplicate or reorder a node, rewire an
    input, edit an attribute, change an initializer's dtype, dims or data, or an input's
    shape or type."""
    m = copy.deepcopy(model)
    g = m.graph
    kind = rng.integers(9)
    nodes = list(g.node)
    i = int(rng.integers(len(nodes)))
    if kind == 0:
        del g.node[i]
    elif kind == 1:
        g.node.insert(i, copy.deepcopy(nodes[i]))
    elif kind == 2:
        j = int(rng.integers(len(nodes)))
        a, b = copy.deepcopy(nodes[i]), copy.deepcopy(nodes[j])
        g.node[i].CopyFrom(b)
        g.node[j].CopyFrom(a)
    elif kind == 3 and nodes[i].input:
        k = int(rng.integers(len(nodes[i].input)))
        names = [o for n in nodes for o in n.output] + [t.name for t in g.initializer]
        g.node[i].input[k] = names[int(rng.integers(len(names)))]
    elif kind == 4 and nodes[i].attribute:
        attr = g.node[i].attribute[int(rng.integers(len(g.node[i].attribute)))]
        if attr.ints:
            attr.ints[int(rng.integers(len(attr.ints)))] = int(rng.integers(-3, 9))
        elif attr.type == onnx.AttributeProto.INT:
            attr.i = int(rng.integers(-3, 9))
        elif attr.type == onnx.AttributeProto.FLOAT:
            attr.f = float(rng.choice([0.0, -1.0, np.inf, np.nan, 1e30]))
    elif kind == 5 and g.initializer:
        t = g.initializer[int(rng.integers(len(g.initializer)))]
        t.data_type = int(rng.choice([TensorProto.INT8, TensorProto.FLOAT16, TensorProto.INT64,
                                      TensorProto.BFLOAT16, TensorProto.DOUBLE, 999]))
    elif kind == 6 and g.initializer:
        t = g.initializer[int(rng.integers(len(g.initializer)))]
        if t.dims:
            t.dims[int(rng.integers(len(t.dims)))] = int(rng.integers(0, 5))
    elif kind == 7 and g.initializer:
        t = g.initializer[int(rng.integers(len(g.initializer)))]
        raw = bytearray(t.raw_data or onnx.numpy_helper.to_array(t).tobytes())
        if raw:
            raw[int(rng.integers(len(raw)))] = int(rng.integers(256))
            t.ClearField("float_data")
            t.raw_data = bytes(raw[: int(rng.integers(len(raw) + 1))])
    else:
        dims = g.input[0].type.tensor_type.shape.dim
        dims[int(rng.integers(1, len(dims)))].dim_value = int(rng.integers(0, 40))
        if rng.random() < 0.3:
            g.input[0].type.tensor_type.elem_type = TensorProto.INT8
    return m


@pytest.mark.parametrize("kind", ["float", "qdq"])
def test_fuzz_compress(seed_models, kind, tmp_path, capsys):
    seed_model = seed_models[kind]
    rng = np.random.default_rng(SEED + (kind == "qdq"))
    np.save(tmp_path / "calib.npy", rng.standard_normal((2, 3, 32, 32)).astype(np.float32))
    calib = ["--calib", tmp_path / "calib.npy"] if kind == "float" else []
    valid = seed_model.SerializeToString()
    ok = failed = 0
    for case in range(CASES["bytes"] + CASES["onnx"]):
        path, out = tmp_path / "m.onnx", tmp_path / f"out{case}"
        if case < CASES["bytes"]:                     # random bytes, or a valid file cut
            data = (rng.bytes(int(rng.integers(0, 400))) if case % 2 else
                    valid[: int(rng.integers(len(valid)))])
            path.write_bytes(data)
        else:
            path.write_bytes(_mutate_model(seed_model, rng).SerializeToString())
        code = _run(capsys, ["compress", path, "--sparsity", "2:4", *calib, "--out", out])
        if code == 2:
            assert not out.exists(), case
            failed += 1
        else:
            ok += 1
            shutil.rmtree(out)
    print(f"fuzz compress ({kind}): {ok + failed} cases, {ok} compressed, {failed} refused in "
          "one line")
    assert failed > CASES["bytes"] // 2                # the fuzzer does reach the errors


def _mutate_graph(folder, rng):
    """One random edit of ``folder``'s graph.json (a field set to a hostile value, a layer
    dropped, duplicated or swapped) or graph.npz (an array's dtype, shape or values)."""
    manifest = json.loads((folder / "graph.json").read_text())
    layers = manifest["layers"]
    kind = rng.integers(5)
    if kind == 0:
        layer = layers[int(rng.integers(len(layers)))]
        key = list(layer)[int(rng.integers(len(layer)))]
        layer[key] = [None, -1, 0, 1e300, "x", [], {}, [1, 2], True, -1000, 2**40][
            int(rng.integers(11))]
    elif kind == 1:
        key = list(manifest)[int(rng.integers(len(manifest)))]
        manifest[key] = [None, 99, -1, "x", [], [1, 2, 3], {}][int(rng.integers(7))]
    elif kind == 2 and len(layers) > 1:
        i, j = (int(v) for v in rng.choice(len(layers), 2, replace=False))
        op = rng.integers(3)
        if op == 0:
            layers[i], layers[j] = layers[j], layers[i]
        elif op == 1:
            del layers[i]
        else:
            layers.insert(i, copy.deepcopy(layers[j]))
    if kind <= 2:
        (folder / "graph.json").write_text(json.dumps(manifest))
        return
    with np.load(folder / "graph.npz") as f:
        arrays = {k: f[k] for k in f.files}
    key = list(arrays)[int(rng.integers(len(arrays)))]
    a = arrays[key]
    if kind == 3:
        with np.errstate(over="ignore", invalid="ignore"):
            arrays[key] = a.astype(rng.choice([np.float32, np.int64, np.uint8, np.float16]))
    else:
        flat = a.reshape(-1).copy()
        if flat.size and rng.random() < 0.5:
            flat[int(rng.integers(flat.size))] = (np.nan if a.dtype.kind == "f" else
                                                  np.iinfo(a.dtype).max)
            arrays[key] = flat.reshape(a.shape)
        else:
            arrays[key] = flat[: int(rng.integers(flat.size + 1))]
    np.savez(folder / "graph.npz", **arrays)


def test_fuzz_graph_files(seed_model, tmp_path, capsys):
    rng = np.random.default_rng(SEED + 2)
    np.save(tmp_path / "calib.npy", rng.standard_normal((2, 3, 32, 32)).astype(np.float32))
    onnx.save(seed_model, tmp_path / "m.onnx")
    good = tmp_path / "good"
    assert _run(capsys, ["compress", tmp_path / "m.onnx", "--sparsity", "2:4", "--calib",
                         tmp_path / "calib.npy", "--out", good]) == 0
    x = rng.standard_normal((2, 3, 32, 32)).astype(np.float32)
    loaded = refused = 0
    for case in range(CASES["graph"]):
        folder = tmp_path / f"g{case}"
        shutil.copytree(good, folder)
        _mutate_graph(folder, rng)
        try:
            graph = IntGraph.load(folder)
        except GraphError as exc:
            assert "\n" not in str(exc)
            refused += 1
        else:
            graph.forward(x)                          # what loads, runs
            loaded += 1
        _run(capsys, ["perf", folder, "--rows", "4", "--cols", "4", "--sparsity", "2:4"])
        shutil.rmtree(folder)
    print(f"fuzz graph files: {loaded + refused} cases, {loaded} loaded and ran, {refused} "
          "refused in one line")
    assert refused > CASES["graph"] // 2
