"""``sparsemac demo`` end to end: every flow, three graphs per model bit-exact on the RTL.

One quick run on Verilator (4x4 arrays, 24 test images) through the command line, its report,
plots and runs checked against the rows it returned; one quick run with ``--sim none`` (the
performance model only), whose cycles must equal the RTL's; the errors that must stop the
demo before any work, and the all-or-nothing output folder.
"""

import contextlib
import io
import struct

import numpy as np
import pytest
from conftest import require_simulator

from golden_model.datasets import as_images, load_digits_split, load_mnist_split
from sparsemac import cli, demo
from sparsemac import flows as fl
from sparsemac import resnet_flows as rf
from sparsemac.stats import within

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def run_main(args, build_root):
    """``cli.main(args)`` in this process; returns (exit code, stdout, run_demo's result)."""
    result = {}
    real = demo.run_demo

    def spy(**kwargs):
        result["demo"] = real(**kwargs, build_root=build_root, bars=False)
        return result["demo"]

    stdout = io.StringIO()
    with pytest.MonkeyPatch.context() as mp, contextlib.redirect_stdout(stdout):
        mp.setattr(demo, "run_demo", spy)
        code = cli.main(args)
    return code, stdout.getvalue(), result.get("demo")


@pytest.fixture(scope="module")
def digits():
    return load_digits_split()


@pytest.fixture(scope="module")
def mnist():
    return load_mnist_split()


def sizes(digits, mnist):
    """Each model's test split size."""
    return {"mlp": len(digits[2]), "cnn": len(digits[2]), "resnet": len(mnist[2])}


@pytest.fixture(scope="module")
def quick(tmp_path_factory):
    require_simulator("verilator")
    out = tmp_path_factory.mktemp("demo") / "out"
    code, stdout, result = run_main(["demo", "--quick", "--out", str(out)],
                                    tmp_path_factory.mktemp("demo_build"))
    assert code == 0
    return out, stdout, result


@pytest.fixture(scope="module")
def model_only(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo_none") / "out"
    code, stdout, result = run_main(["demo", "--quick", "--sim", "none", "--out", str(out)],
                                    tmp_path_factory.mktemp("demo_none_build"))
    assert code == 0
    return out, stdout, result


def png_size(path):
    data = path.read_bytes()
    assert data[:8] == PNG_SIGNATURE, path
    assert data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


def test_quick_demo_writes_the_report_and_plots(quick):
    out, _, result = quick
    assert sorted(p.name for p in out.iterdir()) == sorted(["report.md", *demo.PLOTS])
    assert sorted(result["paths"]) == sorted(out / name for name in ["report.md", *demo.PLOTS])
    assert [p.name for p in out.parent.iterdir()] == ["out"]      # no temporary folder left
    for name in demo.PLOTS:
        width, height = png_size(out / name)
        assert width > 400 and height > 300
    assert (out / "report.md").read_text() == result["report"]


def test_quick_demo_tables_are_the_rows(quick):
    out, stdout, result = quick
    report = (out / "report.md").read_text()
    rows = result["rows"]
    keys = [(r["model"], r["key"]) for r in rows]
    assert keys == fl.flow_plan(quick=True, flows=[*fl.QUICK_FLOWS, "nm_1_4"]) + [
        ("resnet", key) for key in demo.RESNET_FLOWS]
    table = fl.format_rows(rows)
    assert table in report and table in stdout
    for r in rows:
        if r["graph"] is not None:
            assert r["bytes"] == r["graph"].total_bytes()
        int8 = "-" if r["int8_acc"] is None else f"{100 * r['int8_acc']:.2f}"
        assert (f"| {r['model']} | {r['flow']} | {100 * r['float_acc']:.2f} | {int8} | "
                f"{r['bytes']} |") in report
    runs = demo.format_rtl_runs(result["runs"])
    assert runs in report and runs in stdout
    for run in result["runs"]:
        # The byte table of every graph run: its layers' nbytes() and the graph's total.
        for b in run["graph"].nbytes():
            assert (f"| {run['model']} | {run['graph_name']} | {b['layer']} | "
                    f"{'x'.join(map(str, b['shape']))} |") in report
            assert (f"| {b['weights']} | {b['metadata']} | {b['bias']} | {b['requant']} | "
                    f"{b['total']} | yes |") in report
        assert (f"| {run['model']} | {run['graph_name']} | **total** |" in report
                and f"**{run['graph'].total_bytes()}**" in report)
        assert (f"| {run['model']} | {run['graph_name']} | {run['array']} "
                f"({run['multipliers']}) | {demo._modes(run)} | {run['bytes']} | "
                f"{run['cycles_per_inference']:.1f} |") in report


def test_quick_demo_rtl_runs_are_bit_exact(quick, digits, mnist):
    _, _, result = quick
    by = {(r["model"], r["key"]): r for r in result["rows"]}
    runs = result["runs"]
    assert demo.MODELS == ("mlp", "cnn", "resnet")
    assert [(r["model"], r["key"], r["array"]) for r in runs] == [
        (model, key, f"4x4 {sp}") for model in demo.MODELS for key, _, sp in demo.RTL_FLOWS]
    for run in runs:
        graph = by[(run["model"], run["key"])]["graph"]
        assert run["graph"] is graph
        data = mnist if run["model"] == "resnet" else digits
        x_test, y_test = data[2][:demo.QUICK_IMAGES], data[3][:demo.QUICK_IMAGES]
        x = as_images(x_test) if run["model"] == "cnn" else x_test
        golden = graph.forward(x)
        res = run["result"]
        assert res.sim == "verilator" and res.images == demo.QUICK_IMAGES
        assert np.array_equal(res.predictions, np.argmax(golden[-1], axis=1))
        assert run["checked"] == res.checked == sum(g.size for g in golden[1:])
        assert run["bit_exact"] is True
        assert run["rtl_acc"] == run["golden_acc"] == float(np.mean(graph.predict(x) == y_test))
        # Dense graph: every layer in the dense fallback; N:M graphs: every declared layer in
        # the array's sparse mode (the classifier and the CNN's conv0 stay dense).
        modes = {ly["name"]: ly["mode"] for ly in run["layers"]}
        declared = {ly.name: ly.sparsity for ly in graph.weighted()}
        assert modes == {name: "dense" if sp is None else f"{sp[0]}:{sp[1]}"
                         for name, sp in declared.items()}
        assert all(ly["cycles"] == ly["model_cycles"] > 0 for ly in run["layers"])
        assert run["cycles"] == res.cycles
    dense = {r["model"]: r["cycles"] for r in runs if r["key"] == "ptq_minmax"}
    for run in runs:
        if run["key"] != "ptq_minmax":
            assert run["cycles"] < dense[run["model"]]           # N:M runs faster


def test_quick_demo_targets(quick, digits, mnist):
    out, stdout, result = quick
    report = (out / "report.md").read_text()
    targets = result["targets"]
    assert demo.format_targets(targets) in report and demo.format_targets(targets) in stdout
    test_images = sizes(digits, mnist)
    assert targets == demo.check_targets(result["rows"], result["runs"],
                                         test_images=test_images)
    by = {(r["model"], r["key"]): r for r in result["rows"]}
    # The accuracy targets are claims up to the test set's noise (sparsemac.stats), computed
    # from the rows; their statistical test over several seeds is test_flows.py's.
    for t, (key, limit) in zip(targets, (("ptq_minmax", demo.PTQ_TARGET),
                                         ("nm_2_4", demo.NM_TARGET))):
        claims = [within(by[(m, key)]["int8_acc"], by[(m, "float")]["float_acc"],
                         test_images[m], limit) for m in demo.MODELS]
        assert t["holds"] == all(c.holds for c in claims)
        assert [f"noise margin {100 * c.margin:.2f}" in t["measured"] for c in claims] \
            == [True, True, True]
    holds = {t["target"]: t["holds"] for t in targets}
    assert list(holds.values()) == [True, True, True, None, True]
    bit_exact = targets[3]
    assert bit_exact["status"] == "on the images run only"
    assert (f"mlp {demo.QUICK_IMAGES} of {len(digits[2])}, cnn {demo.QUICK_IMAGES} of "
            f"{len(digits[2])}, resnet {demo.QUICK_IMAGES} of {len(mnist[2])}"
            in bit_exact["measured"])
    assert f"{sum(r['checked'] for r in result['runs'])} values checked" in bit_exact["measured"]


def test_model_only_cycles_equal_the_rtl(model_only, quick):
    out, stdout, result = model_only
    report = (out / "report.md").read_text()
    assert sorted(p.name for p in out.iterdir()) == sorted(["report.md", *demo.PLOTS])
    assert "not run (--sim none)" in report and "the RTL was not run" in report
    assert demo.format_rtl_runs(result["runs"]) in stdout
    rtl = {(r["model"], r["key"]): r for r in quick[2]["runs"]}
    for run in result["runs"]:
        assert run["result"] is None and run["cycles"] is None and run["checked"] == 0
        assert run["bit_exact"] is None and run["rtl_acc"] is None
        other = rtl[(run["model"], run["key"])]
        assert [(ly["name"], ly["gemm"], ly["mode"], ly["model_cycles"]) for ly in run["layers"]] \
            == [(ly["name"], ly["gemm"], ly["mode"], ly["cycles"]) for ly in other["layers"]]
        assert run["utilization"] == pytest.approx(other["utilization"])
        assert run["bytes"] == other["bytes"]
    assert [r["bytes"] for r in result["rows"]] == [r["bytes"] for r in quick[2]["rows"]]


def test_model_only_needs_no_simulator(model_only):
    _, _, result = model_only
    assert all(r["sim"] == "none" for r in result["runs"])
    holds = [t["holds"] for t in result["targets"]]
    assert holds == [True, True, True, None]


@pytest.mark.parametrize("args, message", [
    (["--images", "0"], "argument --images: must be at least 1, not 0"),
    (["--images", "450"], "images must be between 1 and 449 (the digits test split), not 450"),
    (["--images", "x"], "argument --images: must be an integer, not 'x'"),
])
def test_bad_images_stop_before_any_work(args, message, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(fl, "run_flows", lambda **kw: pytest.fail("the flows started"))
    monkeypatch.setattr(rf, "run_resnet_flows", lambda **kw: pytest.fail("the flows started"))
    code = cli.main(["demo", "--quick", "--out", str(tmp_path / "out"), *args])
    captured = capsys.readouterr()
    assert code == 2
    assert captured.err.strip().splitlines() == [f"sparsemac: error: {message}"]
    assert captured.out == ""
    assert list(tmp_path.iterdir()) == []


def test_out_that_is_a_file_stops_before_any_work(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(fl, "run_flows", lambda **kw: pytest.fail("the flows started"))
    monkeypatch.setattr(rf, "run_resnet_flows", lambda **kw: pytest.fail("the flows started"))
    target = tmp_path / "report"
    target.write_text("keep me")
    code = cli.main(["demo", "--quick", "--sim", "none", "--out", str(target)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert err == [f"sparsemac: error: output {str(target)!r} exists and is not a folder"]
    assert target.read_text() == "keep me"
    assert list(tmp_path.iterdir()) == [target]


def reuse_rows(monkeypatch, rows):
    """The flows return ``rows`` (the digits models' and the residual network's) at once."""
    monkeypatch.setattr(fl, "run_flows", lambda **kw: [r for r in rows if r["model"] in fl.MODELS])
    monkeypatch.setattr(rf, "run_resnet_flows",
                        lambda **kw: [r for r in rows if r["model"] == rf.MODEL])


def test_failure_while_writing_leaves_nothing(model_only, tmp_path, monkeypatch):
    reuse_rows(monkeypatch, model_only[2]["rows"])

    def broken(*args, **kwargs):
        raise RuntimeError("plot failed")

    monkeypatch.setattr(demo, "_plot_cycles", broken)
    with pytest.raises(RuntimeError, match="plot failed"):
        demo.run_demo(quick=True, sim="none", out=tmp_path / "new", bars=False)
    assert list(tmp_path.iterdir()) == []
    old = tmp_path / "old"
    old.mkdir()
    (old / "report.md").write_text("previous")
    with pytest.raises(RuntimeError, match="plot failed"):
        demo.run_demo(quick=True, sim="none", out=old, bars=False)
    assert list(tmp_path.iterdir()) == [old]
    assert [p.name for p in old.iterdir()] == ["report.md"]
    assert (old / "report.md").read_text() == "previous"


def test_existing_folder_keeps_other_files(model_only, tmp_path, monkeypatch, capsys):
    reuse_rows(monkeypatch, model_only[2]["rows"])
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    (out / "report.md").write_text("stale")
    result = demo.run_demo(quick=True, sim="none", out=out, bars=False)
    assert sorted(p.name for p in out.iterdir()) == sorted(["notes.txt", "report.md",
                                                            *demo.PLOTS])
    assert (out / "notes.txt").read_text() == "mine"
    assert (out / "report.md").read_text() == result["report"] == model_only[2]["report"]
    assert [p.name for p in tmp_path.iterdir()] == ["out"]
