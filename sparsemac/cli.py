"""``sparsemac``: one console script, one subcommand per job.

Bad input gives one line on stderr (``sparsemac: error: ...``), a non-zero exit and no
partial output files; tracebacks are kept for genuine bugs. Only :class:`.errors.UserError`
is caught: each command validates what the user gave first, in :func:`.errors.user_input`
blocks, and the work that follows keeps its exceptions.
"""

import argparse
import json
import sys
from pathlib import Path

from common.checks import check_int
from common.outputs import OutputError

from .errors import UserError, user_input
from .files import check_out_file, check_out_folder, write_atomic, write_folder

__all__ = ["main", "build_parser"]


def _int_arg(lo):
    """An argparse type: an integer of at least ``lo``, checked by :func:`common.checks.check_int`
    (argparse prefixes the option's name to the message)."""
    def parse(text):
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be an integer, not {text!r}") from None
        try:
            return check_int(value, "value", lo=lo)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc).removeprefix("value ")) from None
    return parse


_positive_int = _int_arg(1)
_natural_int = _int_arg(0)


def _cmd_gemm_bench(args):
    from explore.gemm_bench import format_gemm_bench, run_gemm_bench  # noqa: PLC0415 (lazy: a command loads only what it runs)

    if args.json:
        check_out_file(args.json)           # before the run, not after
    result = run_gemm_bench(size=args.size, repeat=args.repeat, seed=args.seed)
    print(format_gemm_bench(result))
    if not (result["exact_vs_onnxruntime"] and result["exact_vs_int64_reference"]):
        print("sparsemac: gemm-bench: the golden GEMM differs from ONNX Runtime or the int64 "
              "reference", file=sys.stderr)
        return 1
    if args.json:
        write_atomic(args.json, json.dumps(result, indent=2) + "\n")
    return 0


def _cmd_generate(args):
    from hdl.config import Config  # noqa: PLC0415 (lazy: a command loads only what it runs)
    from hdl.generate import check_name, generate  # noqa: PLC0415 (lazy: a command loads only what it runs)

    with user_input():
        config = Config.from_sparsity(args.rows, args.cols, args.sparsity,
                                      acc_width=args.acc_width, rounding=args.rounding,
                                      pipeline=args.pipeline, acc_depth=args.acc_depth,
                                      mult=args.mult, target=args.target)
        check_name(args.name)
    check_out_folder(args.out)
    for path in generate(config, args.out, args.name):
        print(path)
    return 0


def _cmd_bench(args):
    from explore.bench import format_table, layer_config, run_bench  # noqa: PLC0415 (lazy: a command loads only what it runs)

    def progress(msg):
        print(f"[bench] {msg}", file=sys.stderr, flush=True)

    layer = None
    if args.layer is not None:
        if args.quick:
            raise UserError("bench: --layer measures one layer; it does not go with --quick")
        if args.driver != "bulk":
            raise UserError(f"bench: --layer runs on the bulk driver, not --driver {args.driver}")
        with user_input():
            layer = layer_config(args.array or "8x8", args.sparsity or "2:4", args.layer)
    elif args.array is not None or args.sparsity is not None:
        raise UserError("bench: --array and --sparsity go with --layer")
    if args.json:
        check_out_file(args.json)           # before minutes of simulation, not after
    runs = run_bench(sim=args.sim, quick=args.quick, progress=progress, driver=args.driver,
                     layer=layer, pgo=not args.no_pgo)
    print(format_table(runs))
    if args.json:
        write_atomic(args.json, json.dumps(runs, indent=2) + "\n")
    return 0


def _cmd_explore(args):
    from explore import sweep  # noqa: PLC0415 (lazy: a command loads only what it runs)

    if not args.freq > 0 or args.freq == float("inf"):
        raise UserError(f"explore: --freq must be a positive number of MHz, not {args.freq:g}")
    with user_input():
        rows = sweep.parse_list(args.rows, int, "Rows")
        cols = sweep.parse_list(args.cols, int, "Cols")
        sparsities = sweep.parse_list(args.sparsity, str, "Sparsity")
        points = sweep.build_points(rows, cols, sparsities, args.device,
                                    freq_mhz=args.freq, pipeline=args.pipeline,
                                    mults=sweep.parse_list(args.mult, str, "Mult"),
                                    speed=args.speed, router=args.router, pnr=not args.no_pnr,
                                    target=args.target)
        for p in points:                  # every configuration is valid before any work starts
            p.config()
    if args.out.exists() and not args.out.is_dir():
        raise UserError(f"output {str(args.out)!r} exists and is not a folder")
    workload = _explore_workload(args.workload, [p.config().sparsity for p in points])
    cache = None if args.no_cache else (args.cache or sweep.default_cache())
    records = sweep.run_sweep(points, workload, executor=args.executor, address=args.address,
                              jobs=args.jobs, cache_dir=cache, timeout=args.timeout)
    for path in sweep.write_outputs(records, args.out):
        print(path)
    failed = [r for r in records if r["status"] != "ok"]
    for r in failed:
        print(f"failed: {r['rows']}x{r['cols']} {r['sparsity']} on {r['device']}: {r['error']}",
              file=sys.stderr)
    if len(failed) == len(records):
        print(f"sparsemac: error: explore: every point failed ({len(records)})",
              file=sys.stderr)
        return 1
    return 0


def _explore_workload(text, sparsities):
    """``--workload``: ``MxKxN`` (one GEMM), a graph folder (``sparsemac compress --out``: one
    graph for every array) or an ONNX model (compressed once per N:M pattern of the sweep,
    calibrated on random inputs: the cycles depend on the shapes and the pattern only)."""
    import numpy as np  # noqa: PLC0415 (lazy: a command loads only what it runs)

    from explore.workload import Network, parse_gemm  # noqa: PLC0415 (lazy: a command loads only what it runs)
    from golden_model.graph import GraphError  # noqa: PLC0415 (lazy: a command loads only what it runs)
    from sparsemac import importer  # noqa: PLC0415 (lazy: a command loads only what it runs)

    with user_input():
        gemm = parse_gemm(text)
    if gemm is not None:
        return gemm
    path = Path(text)
    if path.is_dir():
        return Network(path.name, {"*": _load_graph(path)})
    if not path.is_file():
        raise UserError(f"Workload must be MxKxN with positive integers (e.g. 256x128x64), an "
                        f"ONNX model or a graph folder, not {text!r} (no such file or folder)")
    graphs = {}
    try:
        imported = importer.import_model(path)
        x = None
        if imported.kind == "float":
            x = np.random.default_rng(0).standard_normal((2, *imported.input_shape))
        for sparsity in dict.fromkeys(sparsities):
            graphs[sparsity] = importer.compress(path, sparsity=sparsity,
                                                 x_calib=None if x is None else
                                                 x.astype(np.float32)).graph
    except GraphError as exc:               # the model file is the user's input
        raise UserError(str(exc)) from None
    return Network(path.name, graphs)


def _load_array(path, what="calibration data"):
    """The array of the ``.npy`` file ``path``, its header checked before any data is read:
    another format, pickled objects or a shape larger than the file are one-line errors."""
    import math  # noqa: PLC0415 (lazy: a command loads only what it runs)

    import numpy as np  # noqa: PLC0415 (lazy: a command loads only what it runs)

    where = f"{what} {str(path)!r}"
    try:
        with open(path, "rb") as f:
            head = f.read(6)
            if head[:2] == b"PK":
                raise UserError(f"{where} must be one array (.npy), not an .npz archive")
            if head != b"\x93NUMPY":
                raise UserError(f"{where} is not a .npy file (NumPy's format, np.save)")
            f.seek(0)
            major, _ = np.lib.format.read_magic(f)
            read = (np.lib.format.read_array_header_1_0 if major == 1 else
                    np.lib.format.read_array_header_2_0)
            shape, _, dtype = read(f)
            held = Path(path).stat().st_size - f.tell()
    except OSError as exc:
        raise UserError(f"cannot read {where}: {exc.strerror or exc}") from None
    except ValueError as exc:
        raise UserError(f"cannot read {where}: {exc}") from None
    if dtype.hasobject:
        raise UserError(f"{where} holds Python objects (pickled data), which are not read")
    needed = math.prod(shape) * dtype.itemsize
    if needed > held:
        raise UserError(f"{where} is truncated: its header says shape {tuple(shape)} of "
                        f"{dtype} ({needed:,} bytes), the file holds {held:,}")
    try:
        return np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError) as exc:
        raise UserError(f"cannot read {where}: {exc}") from None


def _load_calibration(path):
    return _load_array(path)


def _load_graph(folder):
    """The integer graph in ``folder`` (``sparsemac compress``'s output); a bad folder is the
    user's input."""
    from golden_model.graph import GraphError, IntGraph  # noqa: PLC0415 (lazy: a command loads only what it runs)

    try:
        return IntGraph.load(folder)
    except GraphError as exc:
        raise UserError(str(exc)) from None


def _array_config(rows, cols, sparsity):
    from hdl.config import Config  # noqa: PLC0415 (lazy: a command loads only what it runs)

    with user_input():
        return Config.from_sparsity(rows, cols, sparsity)


def _network_input(graph, path):
    """The float batch of ``path`` for ``graph``: (N, *input) or flat samples, finite."""
    import numpy as np  # noqa: PLC0415 (lazy: a command loads only what it runs)

    x = _load_array(path, "input")
    where = f"input {str(path)!r}"
    if x.dtype.kind != "f":
        raise UserError(f"{where} must hold floats (the network's float input), not {x.dtype}")
    shape = tuple(graph.input_shape)
    if x.ndim == 2 and len(shape) > 1 and x.shape[1] == int(np.prod(shape)):
        x = x.reshape(-1, *shape)
    if x.shape[1:] != shape or x.shape[0] < 1:
        raise UserError(f"{where} must have shape (N, {', '.join(map(str, shape))}) with N >= 1, "
                        f"not {x.shape}")
    if not np.isfinite(x).all():
        raise UserError(f"{where} holds NaN or infinite values")
    return x.astype(np.float32)


def _cmd_run(args):
    import io  # noqa: PLC0415 (lazy: a command loads only what it runs)

    import numpy as np  # noqa: PLC0415 (lazy: a command loads only what it runs)

    from golden_model.quant import dequantize  # noqa: PLC0415 (lazy: a command loads only what it runs)

    graph = _load_graph(args.graph)
    x = _network_input(graph, args.input)
    if args.on == "rtl":
        if args.requant != "tflite":
            raise UserError("run: --on rtl runs the hardware's arithmetic (--requant tflite), "
                            f"not --requant {args.requant}")
        config = _array_config(args.rows or 8, args.cols or 8, args.sparsity or "2:4")
    elif any(v is not None for v in (args.rows, args.cols, args.sparsity, args.sim)):
        raise UserError("run: --rows, --cols, --sparsity and --sim go with --on rtl")
    check_out_file(args.out)
    if args.on == "rtl":
        from common.paths import cache_dir  # noqa: PLC0415 (lazy: a command loads only what it runs)
        from sim.network import run_network  # noqa: PLC0415 (lazy: the simulator stack only for RTL runs)

        result = run_network(graph, x, sim=args.sim or "verilator", config=config,
                             build_root=cache_dir("run"),
                             progress=lambda msg: print(f"[run] {msg}", file=sys.stderr,
                                                        flush=True))
        print(result.format_table())
        print(f"every layer bit-exact with the golden model: {result.checked:,} values")
    codes = graph.forward(x, requant=args.requant)[-1]   # (the RTL's, when it ran: checked)
    scale, zp = graph.tensor_qparams()[-1]
    y = dequantize(codes, scale, zp)
    buf = io.BytesIO()
    np.save(buf, y, allow_pickle=False)
    write_atomic(args.out, buf.getvalue())
    print(f"{len(x)} inputs through {len(graph.layers)} layers ({args.requant} arithmetic, "
          f"on {'the RTL' if args.on == 'rtl' else 'the golden model'}): output "
          f"{y.shape} float32, dequantized with scale {scale:.6g} and zero point {zp}")
    print(args.out)
    return 0


def _cmd_zoo(args):
    import io  # noqa: PLC0415 (lazy: a command loads only what it runs)

    import numpy as np  # noqa: PLC0415 (lazy: a command loads only what it runs)

    from explore import zoo  # noqa: PLC0415 (lazy: a command loads only what it runs)

    if args.calib is not None and args.calib_samples < 1:
        raise UserError(f"zoo: --calib-samples must be at least 1, not {args.calib_samples}")
    with user_input():
        model = zoo.build(args.name, input_size=args.input_size, num_classes=args.classes,
                          seed=args.seed, batch=None, width=args.width)
    check_out_file(args.out)
    if args.calib is not None:
        check_out_file(args.calib)
    write_atomic(args.out, model.SerializeToString())
    print(f"{args.name}: {zoo.parameter_count(model):,} parameters, input (N, 3, "
          f"{args.input_size}, {args.input_size}), random weights (seed {args.seed})")
    print(args.out)
    if args.calib is not None:
        rng = np.random.default_rng(args.seed)
        x = rng.standard_normal((args.calib_samples, 3, args.input_size, args.input_size))
        buf = io.BytesIO()
        np.save(buf, x.astype(np.float32), allow_pickle=False)
        write_atomic(args.calib, buf.getvalue())
        print(args.calib)
    return 0


def _cmd_perf(args):
    from host.perf import format_graph_report, graph_report  # noqa: PLC0415 (lazy: a command loads only what it runs)

    graph = _load_graph(args.graph)
    config = _array_config(args.rows, args.cols, args.sparsity)
    if not args.freq > 0 or args.freq == float("inf"):
        raise UserError(f"perf: --freq must be a positive number of MHz, not {args.freq:g}")
    if args.json:
        check_out_file(args.json)
    report = graph_report(config, graph, batch=args.batch, freq_mhz=args.freq)
    print(format_graph_report(report))
    if args.json:
        write_atomic(args.json, json.dumps(report, indent=2) + "\n")
    return 0


def _write_graph_folder(out, graph, extra):
    """``graph.save`` plus ``extra`` files (name: text or bytes) into ``out``, all or
    nothing."""
    check_out_folder(out)

    def fill(tmp):
        graph.save(tmp)
        for name, data in extra.items():
            if isinstance(data, bytes):
                (tmp / name).write_bytes(data)
            else:
                (tmp / name).write_text(data)

    return write_folder(out, fill)


def _cmd_compress(args):
    from golden_model.graph import GraphError  # noqa: PLC0415 (lazy: a command loads only what it runs)
    from sparsemac import importer  # noqa: PLC0415 (lazy: a command loads only what it runs)
    from sparsemac.importer.qdq_writer import to_qdq_model  # noqa: PLC0415 (lazy: a command loads only what it runs)

    with user_input():
        sparsity = importer.parse_sparsity(args.sparsity)
        importer.check_options(method=args.method, weights=args.weights)
    x_calib = None if args.calib is None else _load_calibration(args.calib)
    check_out_folder(args.out)             # before the work, not only before the writing
    try:
        result = importer.compress(args.model, sparsity=sparsity, x_calib=x_calib,
                                   method=args.method, weights=args.weights,
                                   dense_first_last=args.dense_first_last, output=args.output)
    except GraphError as exc:               # the model file is the user's input
        raise UserError(str(exc)) from None
    accuracy = importer.digits_accuracy(result)
    summary = importer.summary_markdown(result, args.model, accuracy)
    files = {"summary.md": summary}
    try:
        files["model.qdq.onnx"] = to_qdq_model(result.graph).SerializeToString()
    except GraphError as exc:               # the graph holds what ORT cannot run as we do
        result.notes.append(f"model.qdq.onnx not written: {exc}")
    paths = _write_graph_folder(args.out, result.graph, files)
    g = result.graph
    print(f"{args.model}: {result.imported.kind} model, input (N, "
          f"{', '.join(map(str, g.input_shape))}) quantized with scale {g.input_scale:.6g}, "
          f"zero point {g.input_zp}")
    print(importer.format_table(g))
    if accuracy is not None:
        float_acc, int_acc = accuracy
        print("digits test accuracy: " +
              (f"float {100 * float_acc:.2f} %, " if float_acc is not None else "") +
              f"int8 {100 * int_acc:.2f} %")
    for note in result.notes:
        print(f"note: {note}")
    for path in paths:
        print(path)
    return 0


def _cmd_demo(args):
    from sparsemac.demo import check_arguments, run_demo  # noqa: PLC0415 (lazy: a command loads only what it runs)

    with user_input():
        check_arguments(quick=args.quick, out=args.out, sim=args.sim, images=args.images)
    run_demo(quick=args.quick, out=args.out, sim=args.sim, images=args.images)
    return 0


class _Parser(argparse.ArgumentParser):
    """argparse with the one-line error of every other bad input (no usage block)."""

    def error(self, message):
        self.exit(2, f"sparsemac: error: {message}\n")


def build_parser():
    parser = _Parser(
        prog="sparsemac",
        description="From float weights to a verified int8 N:M sparse MAC array.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    _add_demo(sub)
    _add_generate(sub)
    _add_compress(sub)
    _add_run(sub)
    _add_perf(sub)
    _add_zoo(sub)
    _add_bench(sub)
    _add_explore(sub)
    _add_gemm_bench(sub)
    return parser


def _add_demo(sub):
    p = sub.add_parser("demo", help="compress an MLP and a CNN with every technique, run "
                                    "dense, 2:4 and 1:4 graphs bit-exact on the RTL; report")
    p.add_argument("--quick", action="store_true",
                   help="short training, fewer flows, 4x4 arrays, 24 images (for tests)")
    p.add_argument("--out", type=Path, default=Path("build/demo"),
                   help="output folder: report.md and plots (default build/demo)")
    p.add_argument("--sim", choices=["verilator", "icarus", "none"], default="verilator",
                   help="simulator of the RTL runs; none: performance-model cycles only")
    p.add_argument("--images", type=_positive_int, default=None,
                   help="test images run on the RTL (default: the whole test split; 24 with "
                        "--quick)")
    p.set_defaults(func=_cmd_demo)


def _add_generate(sub):
    p = sub.add_parser("generate", help="write the Verilog, manifest and FuseSoC core of an "
                                        "array")
    p.add_argument("--rows", type=int, required=True, help="PE rows (input groups per pass)")
    p.add_argument("--cols", type=int, required=True, help="PE columns (outputs per pass)")
    p.add_argument("--sparsity", required=True, help="N:M (e.g. 2:4, 1:4, 2:8) or dense")
    p.add_argument("--acc-width", type=int, default=32, help="accumulator bits (16..32)")
    p.add_argument("--rounding", default="double", help="requantization: double | single")
    p.add_argument("--pipeline", action="store_true",
                   help="register operands and products in every PE (faster clock, +2 cycles)")
    p.add_argument("--mult", default="dsp",
                   help="PE multipliers: dsp (inferred, DSP blocks) | lut (Booth, in logic)")
    p.add_argument("--acc-depth", type=int, default=512,
                   help="accumulator rows: the largest m-block (power of two)")
    p.add_argument("--target", default="generic",
                   help="generic (portable Verilog, the default) | ecp5 (Lattice DP16KD and "
                        "MULT18X18D primitives with their registers; simulation models "
                        "written beside the Verilog)")
    p.add_argument("--name", default="sparsemac", help="Verilog module and file name")
    p.add_argument("--out", type=Path, required=True, help="output folder")
    p.set_defaults(func=_cmd_generate)


def _add_compress(sub):
    p = sub.add_parser("compress", help="read a float or QDQ ONNX model; write the N:M-pruned "
                                        "int8 graph the accelerator loads")
    p.add_argument("model", type=Path, help="the .onnx file (float, or QDQ-quantized int8)")
    p.add_argument("--sparsity", required=True,
                   help="N:M (e.g. 2:4) for every layer whose reduction length M divides, "
                        "or dense")
    p.add_argument("--method", default=None,
                   help="activation calibration of float models: minmax (default), "
                        "percentile, mse, kl")
    p.add_argument("--weights", default=None,
                   help="weight quantization of float models: per_channel (default), "
                        "per_tensor, pot")
    p.add_argument("--calib", type=Path, default=None,
                   help="calibration data of float models, a .npy of shape (N, *input) "
                        "(default: the digits training split, for digits-shaped inputs)")
    p.add_argument("--dense-first-last", action="store_true",
                   help="keep the first and the last weighted layers dense")
    p.add_argument("--output", default=None, metavar="NAME",
                   help="the model output to compile, for models with several (default: "
                        "the one the network computes, not a post-processing op's)")
    p.add_argument("--out", type=Path, required=True,
                   help="output folder: graph.json, graph.npz, summary.md, model.qdq.onnx")
    p.set_defaults(func=_cmd_compress)


def _add_run(sub):
    p = sub.add_parser("run", help="run a compressed integer graph on a batch (golden model, "
                                   "or its GEMM layers on the simulated RTL)")
    p.add_argument("graph", type=Path, help="the graph folder (sparsemac compress --out)")
    p.add_argument("input", type=Path, help="a .npy of float inputs, shape (N, *input)")
    p.add_argument("--out", type=Path, required=True,
                   help="the .npy to write: the final tensor, dequantized to float32")
    p.add_argument("--requant", choices=["tflite", "onnx"], default="tflite",
                   help="arithmetic: tflite (integer multiplier and shift, the hardware's; "
                        "default) or onnx (ONNX Runtime's float requantization, what "
                        "model.qdq.onnx gives)")
    p.add_argument("--on", choices=["golden", "rtl"], default="golden",
                   help="golden: the NumPy golden model (default); rtl: the GEMM layers on "
                        "the simulated accelerator, the rest on the host, every layer checked")
    p.add_argument("--rows", type=_positive_int, default=None,
                   help="with --on rtl: PE rows (default 8)")
    p.add_argument("--cols", type=_positive_int, default=None,
                   help="with --on rtl: PE columns (default 8)")
    p.add_argument("--sparsity", default=None, help="with --on rtl: the array's N:M or dense "
                                                    "(default 2:4)")
    p.add_argument("--sim", choices=["verilator", "icarus"], default=None,
                   help="with --on rtl: the simulator (default verilator)")
    p.set_defaults(func=_cmd_run)


def _add_perf(sub):
    p = sub.add_parser("perf", help="cycles, utilization and inferences/s of a compressed "
                                    "graph on an array (the cycle-exact performance model)")
    p.add_argument("graph", type=Path, help="the graph folder (sparsemac compress --out)")
    p.add_argument("--rows", type=_positive_int, required=True, help="PE rows")
    p.add_argument("--cols", type=_positive_int, required=True, help="PE columns")
    p.add_argument("--sparsity", required=True, help="the array's N:M (e.g. 2:4) or dense")
    p.add_argument("--freq", type=float, default=100.0,
                   help="clock for inferences/s, MHz (default 100)")
    p.add_argument("--batch", type=_positive_int, default=1,
                   help="inputs per engine run of each layer (default 1)")
    p.add_argument("--json", type=Path, default=None, help="also write the report as JSON")
    p.set_defaults(func=_cmd_perf)


def _add_zoo(sub):
    p = sub.add_parser("zoo", help="write a well-known CNN (ResNet, MobileNetV2, ...) as the "
                                   "ONNX file PyTorch's exporter would, random weights")
    p.add_argument("name", help="resnet18, resnet50, mobilenet_v2, squeezenet1_1, vgg16, "
                                "densenet_block or shufflenet_unit")
    p.add_argument("--out", type=Path, required=True, help="the .onnx file to write")
    p.add_argument("--input-size", type=_positive_int, default=224,
                   help="input height and width (default 224; at least 32)")
    p.add_argument("--classes", type=_positive_int, default=1000, help="default 1000")
    p.add_argument("--width", type=float, default=1.0,
                   help="channel multiplier (torchvision's width_mult; default 1)")
    p.add_argument("--seed", type=_natural_int, default=0, help="weights' seed (default 0)")
    p.add_argument("--calib", type=Path, default=None,
                   help="also write random normal calibration inputs to this .npy")
    p.add_argument("--calib-samples", type=int, default=4,
                   help="samples in --calib (default 4)")
    p.set_defaults(func=_cmd_zoo)


def _add_bench(sub):
    p = sub.add_parser("bench", help="RTL throughput of generated arrays (cycles, "
                                     "utilization, N:M speedup over dense)")
    p.add_argument("--sim", choices=["icarus", "verilator"], default="verilator")
    p.add_argument("--quick", action="store_true",
                   help="the 8x8 2:4 and 1:4 arrays only (no 2:8, no 16x16)")
    p.add_argument("--layer", default=None, metavar="MxKxN",
                   help="measure this one GEMM layer (a conv: its im2col shape, e.g. "
                        "3136x2304x256 for VGG-16 conv3_2) on --array, bit-exact")
    p.add_argument("--array", default=None, metavar="RxC",
                   help="with --layer: the array (default 8x8)")
    p.add_argument("--sparsity", default=None, metavar="N:M|dense",
                   help="with --layer: the array's sparsity, the layer's mode (default 2:4)")
    p.add_argument("--driver", choices=["bulk", "axi", "both"], default="bulk",
                   help="bulk: layers played by the HDL from memories (default); axi: "
                        "cocotbext-axi drives every cycle from Python; both: each, and the "
                        "ratio of their rates")
    p.add_argument("--no-pgo", action="store_true",
                   help="plain Verilator builds (by default the bulk driver's Verilator models "
                        "are profile-guided: a second compile from a short training run)")
    p.add_argument("--json", type=Path, default=None, help="also write the runs as JSON")
    p.set_defaults(func=_cmd_bench)


def _add_explore(sub):
    p = sub.add_parser("explore", help="sweep array configurations: synthesis, place and "
                                       "route, performance model, plots")
    p.add_argument("--rows", required=True, help="comma-separated, e.g. 2,4,8")
    p.add_argument("--cols", required=True, help="comma-separated, e.g. 2,4,8")
    p.add_argument("--sparsity", required=True, help="comma-separated, e.g. dense,2:4,1:4")
    p.add_argument("--device", required=True,
                   help="ecp5-25k, ecp5-45k, ecp5-85k, ice40-up5k or ice40-hx8k")
    p.add_argument("--workload", default="256x256x64",
                   help="what each array runs: a layer MxKxN (default 256x256x64), an ONNX "
                        "model (compressed with each array's N:M) or a graph folder "
                        "(sparsemac compress --out)")
    p.add_argument("--no-pnr", action="store_true",
                   help="synthesis only: resources and fit, throughput at --freq (marked as "
                        "an assumed clock), for arrays whose place and route takes too long")
    p.add_argument("--freq", type=float, default=150.0, help="target clock for P&R (MHz)")
    p.add_argument("--speed", type=int, default=None,
                   help="ECP5 speed grade: 6 (default, slowest), 7 or 8 (fastest)")
    p.add_argument("--router", default="router1",
                   help="nextpnr router: router1 (default, better Fmax) or router2 (much "
                        "faster on large, congested arrays)")
    p.add_argument("--pipeline", action="store_true", help="pipelined PEs")
    p.add_argument("--mult", default="dsp", help="comma-separated PE multiplier styles: dsp, lut")
    p.add_argument("--target", default="generic",
                   help="generator target: generic (default) or ecp5 (ECP5 primitives)")
    p.add_argument("--jobs", type=_positive_int, default=None, help="parallel points")
    p.add_argument("--executor", choices=["local", "ray"], default="local")
    p.add_argument("--address", default=None, help="Ray cluster address (default: start a "
                                                    "local Ray instance)")
    p.add_argument("--timeout", type=_positive_int, default=1800,
                   help="seconds per tool run")
    p.add_argument("--cache", type=Path, default=None, help="result cache folder")
    p.add_argument("--no-cache", action="store_true")
    p.add_argument("--out", type=Path, required=True, help="output folder")
    p.set_defaults(func=_cmd_explore)


def _add_gemm_bench(sub):
    p = sub.add_parser("gemm-bench",
                       help="golden int8 GEMM throughput vs ONNX Runtime MatMulInteger")
    p.add_argument("--size", type=_positive_int, default=1024, help="m = k = n (default 1024)")
    p.add_argument("--repeat", type=_positive_int, default=7, help="timed runs of each")
    p.add_argument("--seed", type=_natural_int, default=0, help="operands' seed (default 0)")
    p.add_argument("--json", type=Path, default=None, help="also write the figures as JSON")
    p.set_defaults(func=_cmd_gemm_bench)


def main(argv=None):
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:             # --help, or a bad argument (one line printed)
        return exc.code
    try:
        return args.func(args)
    except (UserError, OutputError) as exc:    # the user's input, or where they asked to write
        print(f"sparsemac: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
