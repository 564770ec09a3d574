"""Bad input to the command line, case by case (issue 16's table): one line on stderr naming
the problem and the value, exit status 2, nothing written, no traceback."""

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from sparsemac import cli


def _model(nodes, inits, in_shape=("N", 1, 8, 8), out_shape=("N", 2, "h", "w")):
    graph = helper.make_graph(
        nodes, "bad", [helper.make_tensor_value_info("x", TensorProto.FLOAT, list(in_shape))],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, list(out_shape))],
        initializer=inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], ir_version=8)


def _conv(**attrs):
    w = numpy_helper.from_array(np.ones((2, 1, 3, 3), np.float32), "w")
    return _model([helper.make_node("Conv", ["x", "w"], ["y"], name="c", **attrs)], [w])


def _pool_strides_zero():
    nodes = [helper.make_node("MaxPool", ["x"], ["p"], name="pool", kernel_shape=[2, 2],
                              strides=[0, 0]),
             helper.make_node("Conv", ["p", "w"], ["y"], name="c")]
    return _model(nodes, [numpy_helper.from_array(np.ones((2, 1, 1, 1), np.float32), "w")])


def _dtype(code):
    model = _conv()
    model.graph.initializer[0].data_type = code
    return model


def _bfloat16():
    model = _conv()
    t = model.graph.initializer[0]
    t.data_type = TensorProto.BFLOAT16
    t.ClearField("float_data")
    t.raw_data = b"\0\0" * 18
    return model


def _zero_width():
    inits = [numpy_helper.from_array(np.ones((64, 0), np.float32), "w0"),
             numpy_helper.from_array(np.ones((0, 10), np.float32), "w1")]
    nodes = [helper.make_node("MatMul", ["x", "w0"], ["h"], name="fc0"),
             helper.make_node("MatMul", ["h", "w1"], ["y"], name="fc1")]
    return _model(nodes, inits, ("N", 64), ("N", 10))


def _dangling():
    nodes = [helper.make_node("MatMul", ["x", "wmissing"], ["y"], name="fc0")]
    return _model(nodes, [], ("N", 64), ("N", 10))


def _write(tmp, model, name="m.onnx"):
    path = tmp / name
    path.write_bytes(model.SerializeToString())      # unchecked: the CLI must check it
    return path


def _external(tmp, location):
    model = _conv()
    onnx.save(model, tmp / "m.onnx", save_as_external_data=True, location="w.data",
              size_threshold=0)
    (tmp / "w.data").unlink()
    if location != "w.data":                          # point the tensor elsewhere
        model = onnx.load(tmp / "m.onnx", load_external_data=False)
        for entry in model.graph.initializer[0].external_data:
            if entry.key == "location":
                entry.value = location
        (tmp / "m.onnx").write_bytes(model.SerializeToString())
    return tmp / "m.onnx"


MODEL_CASES = {
    "conv strides 0": (lambda tmp: _write(tmp, _conv(strides=[0, 0])),
                       "Conv strides [0, 0] must be positive (node 'c')"),
    "maxpool strides 0": (lambda tmp: _write(tmp, _pool_strides_zero()),
                          "MaxPool strides [0, 0] must be positive (node 'pool')"),
    "unknown data type": (lambda tmp: _write(tmp, _dtype(999)),
                          "initializer 'w' cannot be read: data type unknown (999)"),
    "bfloat16 weights": (lambda tmp: _write(tmp, _bfloat16()),
                         "Conv weights must be a float constant, not bfloat16 (node 'c')"),
    "zero-width layer": (lambda tmp: _write(tmp, _zero_width()),
                         "MatMul node 'fc0': its output would have shape (N, 0), with no values"),
    "missing initializer": (lambda tmp: _write(tmp, _dangling()),
                            "MatMul node 'fc0' reads 'wmissing', which no node, initializer "
                            "or input provides"),
    "external data missing": (lambda tmp: _external(tmp, "w.data"),
                              "m.onnx': Data of TensorProto ( tensor name: w) should be stored "
                              "in"),
    "external data outside": (lambda tmp: _external(tmp, "../../etc/passwd"),
                              "m.onnx': Data of TensorProto ( tensor name: w) should be file "
                              "inside"),
    "a folder as the model": (lambda tmp: tmp, "it is a folder, not an ONNX file"),
}


@pytest.mark.parametrize("case", MODEL_CASES)
def test_compress_bad_model(case, tmp_path, capsys):
    make, message = MODEL_CASES[case]
    model = make(tmp_path)
    np.save(tmp_path / "c.npy", np.zeros((2, 1, 8, 8), np.float32))
    out = tmp_path / "out"
    code = cli.main(["compress", str(model), "--sparsity", "dense", "--calib",
                     str(tmp_path / "c.npy"), "--out", str(out)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and err[0].startswith("sparsemac: error: "), err
    assert message in err[0], err[0]
    assert not out.exists()


def _huge_header(path):
    header = b"{'descr': '<f4', 'fortran_order': False, 'shape': (100000000000, 64), }"
    header += b" " * (118 - len(header)) + b"\n"
    path.write_bytes(b"\x93NUMPY\x01\x00" + len(header).to_bytes(2, "little") + header +
                     b"\0" * 64)


CALIB_CASES = {
    "a 23 TiB header": (_huge_header, "is truncated: its header says shape (100000000000, 64) "
                        "of float32 (25,600,000,000,000 bytes), the file holds 64"),
    "a CSV": (lambda p: np.savetxt(p, np.zeros((3, 64)), delimiter=","),
              "is not a .npy file (NumPy's format, np.save)"),
    "pickled objects": (lambda p: np.save(p, np.array([{}], dtype=object), allow_pickle=True),
                        "holds Python objects (pickled data), which are not read"),
    "a folder": (lambda p: p.mkdir(), "Is a directory"),
}


@pytest.mark.parametrize("case", CALIB_CASES)
def test_compress_bad_calibration(case, tmp_path, capsys):
    make, message = CALIB_CASES[case]
    make(tmp_path / "calib.npy")
    onnx.save(_conv(), tmp_path / "m.onnx")
    out = tmp_path / "out"
    code = cli.main(["compress", str(tmp_path / "m.onnx"), "--sparsity", "dense", "--calib",
                     str(tmp_path / "calib.npy"), "--out", str(out)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1, err
    assert err[0].startswith("sparsemac: error: ") and message in err[0], err[0]
    assert not out.exists()


@pytest.mark.parametrize("command", [["bench", "--quick"], ["gemm-bench", "--size", "8"],
                                     ["perf", "{g}", "--rows", "2", "--cols", "2",
                                      "--sparsity", "2:4"]])
@pytest.mark.parametrize("where, message", [("missing/out.json", "does not exist"),
                                            (".", "is a folder, not a file")])
def test_json_outputs_are_checked_before_the_run(command, where, message, tmp_path, capsys):
    """issue 16, row 13: a --json that cannot be written fails at once (in well under a
    second here; the bench would run for minutes first), one line, exit 2."""
    import time

    g = tmp_path / "g"
    if "{g}" in command:
        onnx.save(_conv(), tmp_path / "m.onnx")
        np.save(tmp_path / "c.npy", np.zeros((2, 1, 8, 8), np.float32))
        assert cli.main(["compress", str(tmp_path / "m.onnx"), "--sparsity", "dense",
                         "--calib", str(tmp_path / "c.npy"), "--out", str(g)]) == 0
        capsys.readouterr()
    t0 = time.perf_counter()
    code = cli.main([a.format(g=g) for a in command] + ["--json", str(tmp_path / where)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and message in err[0], err
    assert time.perf_counter() - t0 < 60            # not after the run (bench: minutes)


def test_digits_shaped_model_that_is_not_a_classifier(tmp_path, capsys):
    """A 1x8x8 input whose output is not 10 scores compresses without a digits accuracy
    (it used to crash comparing feature maps with the labels)."""
    onnx.save(_conv(), tmp_path / "m.onnx")
    assert cli.main(["compress", str(tmp_path / "m.onnx"), "--sparsity", "dense",
                     "--out", str(tmp_path / "g")]) == 0
    assert "digits test accuracy" not in capsys.readouterr().out
