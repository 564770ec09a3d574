"""``sparsemac demo`` end to end: every flow over seeds, three graphs per model bit-exact on the
RTL.

One quick run with ``--sim none`` (the performance model only) through the command line: the
flows of two seeds on the digits and a subset of MNIST-1D, and the residual network's on
MNIST; its report, summaries and plots checked against the rows it returned. One quick run on
Verilator (4x4 arrays, 24 test images) through the command line on the same rows (the flows
are deterministic, tests/test_flows.py; training them twice would double the time): its RTL
runs bit-exact, its cycles equal to the model-only run's. The errors that must stop the demo
before any work, and the all-or-nothing output folder.
"""

import contextlib
import io
import re
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


@pytest.fixture(scope="module")
def model_only(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo_none") / "out"
    code, stdout, result = run_main(["demo", "--quick", "--sim", "none", "--out", str(out)],
                                    tmp_path_factory.mktemp("demo_none_build"))
    assert code == 0
    return out, stdout, result


@pytest.fixture(scope="module")
def quick(tmp_path_factory, model_only):
    require_simulator("verilator")
    out = tmp_path_factory.mktemp("demo") / "out"
    with pytest.MonkeyPatch.context() as mp:
        reuse_rows(mp, model_only[2]["rows"])
        code, stdout, result = run_main(["demo", "--quick", "--out", str(out)],
                                        tmp_path_factory.mktemp("demo_build"))
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


def test_quick_demo_rows_cover_every_flow_and_seed(model_only):
    _, _, result = model_only
    rows = result["rows"]
    plan = demo.demo_plan(quick=True)
    assert [(r["dataset"], r["model"], r["key"], r["seed"]) for r in rows] == plan
    assert {(d, m) for d, m, _, _ in plan} == {("digits", "mlp"), ("digits", "cnn"),
                                                ("mnist1d", "mlp"), ("mnist", "resnet")}
    assert demo.QUICK_SEEDS == (0, 1) and {s for *_, s in plan} == {0, 1}
    keys = {k for d, _, k, _ in plan if d == "digits"}
    assert keys == {*fl.QUICK_FLOWS, "nm_1_4"}
    assert {k for d, _, k, _ in plan if d == "mnist"} == set(demo.RESNET_FLOWS)
    for r in rows:
        first = r["seed"] == demo.QUICK_SEEDS[0]
        # The first seed keeps its networks (the RTL runs use them); the others only numbers.
        assert (r["net"] is not None) == first
        if r["graph"] is not None:
            assert r["bytes"] == r["graph"].total_bytes()
        assert r["int8_acc"] is None or r["int8_acc"] == float(np.mean(r["correct"]))
    assert len({len(r["correct"]) for r in rows if r["dataset"] == "mnist1d"} | {500}) == 1


def test_quick_demo_summaries_and_noise_verdicts(model_only):
    out, stdout, result = model_only
    report = (out / "report.md").read_text()
    rows, summaries = result["rows"], result["summaries"]
    assert [(s["dataset"], s["model"], s["key"]) for s in summaries] == list(dict.fromkeys(
        (r["dataset"], r["model"], r["key"]) for r in rows))
    for s in summaries:
        mine = [r for r in rows if (r["dataset"], r["model"], r["key"]) ==
                (s["dataset"], s["model"], s["key"])]
        assert s["seeds"] == (0, 1)
        accs = [r["float_acc"] if r["int8_acc"] is None else r["int8_acc"] for r in mine]
        assert s["acc"][0] == pytest.approx(np.mean(accs))
        assert s["acc"][1] == pytest.approx(np.std(accs, ddof=1))
        if s["key"] != "float":
            assert s["vs_float"] is not None and s["vs_float"].seeds == 2
    table = fl.format_summary(summaries)
    assert table in stdout
    for line in table.splitlines()[2:]:
        assert line in report                     # in the report's per-dataset tables
    # The report says how many comparisons are within noise, and lists the others.
    counted = [c for s in summaries for c in (s["vs_float"], s["vs_reference"]) if c]
    inside = sum(c.within_noise for c in counted)
    assert f"{inside} of {len(counted)} comparisons are within noise" in report
    assert "within noise" in table and "95 % interval" in table
    for dataset in ("digits", "mnist1d", "mnist"):
        assert f"### {dataset}" in report


def test_quick_demo_tables_are_the_rows(quick):
    out, stdout, result = quick
    report = (out / "report.md").read_text()
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
    by = {(r["dataset"], r["model"], r["key"]): r for r in result["rows"] if r["seed"] == 0}
    runs = result["runs"]
    assert demo.MODELS == ("mlp", "cnn", "resnet")
    assert [(r["dataset"], r["model"], r["key"], r["array"]) for r in runs] == [
        (dataset, model, key, f"4x4 {sp}") for dataset, model in demo.RTL_MODELS
        for key, _, sp in demo.RTL_FLOWS]
    for run in runs:
        graph = by[(run["dataset"], run["model"], run["key"])]["graph"]
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
    rows = result["rows"]
    assert targets == demo.check_targets(rows, result["runs"])
    groups = [("digits", "mlp"), ("digits", "cnn"), ("mnist1d", "mlp"), ("mnist", "resnet")]

    def mean(dataset, model, key, field):
        return float(np.mean([r[field] for r in rows
                              if (r["dataset"], r["model"], r["key"]) == (dataset, model, key)]))

    # The accuracy targets are claims on the means over the seeds up to the test set's noise
    # (sparsemac.stats), computed from the rows; test_flows.py tests them over more seeds.
    for t, (key, limit) in zip(targets, (("ptq_minmax", demo.PTQ_TARGET),
                                         ("nm_2_4", demo.NM_TARGET))):
        claims = [within(mean(d, m, key, "int8_acc"), mean(d, m, "float", "float_acc"),
                         2 * (500 if d == "mnist1d" else len(digits[2]) if d == "digits"
                              else len(mnist[2])), limit) for d, m in groups]
        assert t["holds"] == all(c.holds for c in claims)
        for (d, m), c in zip(groups, claims):
            assert f"{d} {m}: " in t["measured"]
            assert f"noise margin {100 * c.margin:.2f}" in t["measured"]
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
    monkeypatch.setattr(fl, "run_seeds", lambda **kw: pytest.fail("the flows started"))
    monkeypatch.setattr(rf, "run_resnet_flows", lambda **kw: pytest.fail("the flows started"))
    code = cli.main(["demo", "--quick", "--out", str(tmp_path / "out"), *args])
    captured = capsys.readouterr()
    assert code == 2
    assert captured.err.strip().splitlines() == [f"sparsemac: error: {message}"]
    assert captured.out == ""
    assert list(tmp_path.iterdir()) == []


def test_out_that_is_a_file_stops_before_any_work(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(fl, "run_seeds", lambda **kw: pytest.fail("the flows started"))
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
    """The flows return ``rows`` (the MLPs' and CNNs', and the residual network's of each
    seed) at once."""
    monkeypatch.setattr(fl, "run_seeds",
                        lambda **kw: [r for r in rows if r["model"] != rf.MODEL])
    monkeypatch.setattr(rf, "run_resnet_flows", lambda **kw: [
        r for r in rows if r["model"] == rf.MODEL and r["seed"] == kw["seed"]])


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


@pytest.mark.parametrize("seeds, exc, message", [
    ([1, 1], ValueError, "seeds must be distinct, not 1 twice"),
    ([], ValueError, "seeds must hold at least one seed, not []"),
    ([-2], ValueError, "seeds must be at least 0, not -2"),
])
def test_bad_seeds_stop_before_any_work(seeds, exc, message, tmp_path, monkeypatch):
    monkeypatch.setattr(fl, "run_seeds", lambda **kw: pytest.fail("the flows started"))
    with pytest.raises(exc, match=re.escape(message)):
        demo.run_demo(quick=True, sim="none", out=tmp_path / "out", seeds=seeds, bars=False)
    assert list(tmp_path.iterdir()) == []
