"""The compression flows: every technique of the golden model applied to a trained network.

Each flow starts from a model trained on scikit-learn's bundled 8x8 digits (a
64-128-64-10 :class:`~golden_model.train.MLP` or a small :class:`~golden_model.train.CNN`),
compresses it, turns it into the integer network the accelerator runs
(:func:`golden_model.graph.quantize_graph`) and measures it on the fixed test split. One row
per (model, flow):

``model``
    ``"mlp"`` or ``"cnn"``.
``key``, ``flow``
    The flow's key (:data:`FLOWS`) and its human name.
``float_acc``
    Test accuracy of the float network the row's graph was made from (after pruning and
    fine-tuning, after QAT: its float weights without fake quantization).
``int8_acc``
    Test accuracy of the integer graph (``None`` for the float baseline).
``bytes``
    ``graph.total_bytes()``: int8 weights (N:M layers: kept values plus packed 2-bit or
    larger indices), int32 biases, 5 bytes of requantization per output channel, exact. For
    the float baseline: float32 weights and biases, 4 bytes each.
``sparsity``
    Fraction of the float weights of all weighted layers that are exactly zero (pruned).
``int8_sparsity``
    The same over the graph's int8 codes (quantization rounds more weights to 0).
``n_m``
    The graph's ``sparsity`` dict: ``{layer name: (n, m)}`` of the layers the hardware runs
    in N:M sparse mode; every other layer runs in its dense fallback.
``graph``
    The :class:`~golden_model.graph.IntGraph` (``None`` for the float baseline), to be run
    on the RTL.
``net``
    The float network (:class:`~golden_model.train.MLP` or :class:`~golden_model.train.CNN`)
    the graph was made from; the PTQ rows share the baseline's object: do not modify it.

Everything is deterministic: fixed data split, fixed seeds, one recipe (:data:`FULL`, or
:data:`QUICK` for tests: fewer epochs and flows). No choice depends on the test split: the
calibration data is the first :attr:`Recipe.calib` training images.

N:M layers: every weighted layer whose GEMM reduction length (``C*KH*KW`` or in-features) is a
multiple of M, except the classifier (the last layer). The CNN's first convolution
(reduction 1*3*3 = 9) and the classifier stay dense.
"""

import dataclasses

import numpy as np
from threadpoolctl import threadpool_limits

from common.checks import check_int
from golden_model.datasets import as_images, load_digits_split
from golden_model.graph import n_m_layers as graph_n_m_layers
from golden_model.graph import quantize_graph
from golden_model.prune import PruningSchedule
from golden_model.train import (
    CNN,
    MLP,
    Distillation,
    GradualPruning,
    NMPruning,
    accuracy,
    prune_filters,
    train,
)

__all__ = ["MODELS", "FLOWS", "QUICK_FLOWS", "Recipe", "FULL", "QUICK", "flow_plan", "check_run",
           "run_flows", "n_m_layers", "evaluate_graph", "format_rows"]

MODELS = ("mlp", "cnn")

#: Every flow, key -> human name, in run order.
FLOWS = {
    "float": "float32 baseline",
    "ptq_minmax": "PTQ int8 per-channel, min-max",
    "ptq_percentile": "PTQ int8 per-channel, percentile",
    "ptq_mse": "PTQ int8 per-channel, MSE",
    "ptq_kl": "PTQ int8 per-channel, KL",
    "ptq_per_tensor": "PTQ int8 per-tensor, min-max",
    "ptq_pot": "PTQ power-of-two weights (4-bit codes), min-max",
    "qat": "QAT int8 (fake quant + STE, learned ranges)",
    "magnitude_50": "magnitude pruning 50 % (gradual, global) + fine-tune, int8",
    "magnitude_75": "magnitude pruning 75 % (gradual, global) + fine-tune, int8",
    "magnitude_90": "magnitude pruning 90 % (gradual, global) + fine-tune, int8",
    "nm_2_4": "2:4 N:M + fine-tune, int8",
    "nm_1_4": "1:4 N:M + fine-tune, int8",
    "filter_l1": "filter pruning L1 50 % (removed) + fine-tune, int8",
    "filter_fpgm": "filter pruning FPGM 50 % (removed) + fine-tune, int8",
    "kd_teacher": "KD teacher (larger network), int8",
    "student": "small student alone (no KD), int8",
    "kd_student": "small student + KD, int8",
    "kd_qat_2_4": "KD + QAT + 2:4 in one loss, int8",
    "grad_int8": "trained with int8 stochastic-rounded gradients, int8",
}

#: The flows of quick mode (tests): one of each kind.
QUICK_FLOWS = ("float", "ptq_minmax", "ptq_kl", "ptq_per_tensor", "ptq_pot", "qat",
               "magnitude_75", "nm_2_4", "filter_fpgm", "kd_student", "kd_qat_2_4",
               "grad_int8")


@dataclasses.dataclass(frozen=True)
class Recipe:
    """Epochs and learning rates of the flows (Adam, batch 64, cosine decay).

    Members
    -------
    epochs, lr : training from scratch (baseline, teacher, student, int8 gradients).
    finetune_epochs, finetune_lr : after pruning (magnitude, N:M, filters; KD + QAT + 2:4).
    qat_epochs, qat_lr : QAT from the baseline.
    calib : number of training images used for calibration.
    prune_end : fraction of the fine-tuning steps over which gradual pruning ramps up.
    filter_amount : fraction of the filters removed from every layer but the classifier.
    kd : the distillation loss's temperature and weights.
    flows : the flow keys run.
    """

    epochs: int = 60
    lr: float = 3e-3
    finetune_epochs: int = 30
    finetune_lr: float = 1e-3
    qat_epochs: int = 10
    qat_lr: float = 2e-4
    calib: int = 512
    prune_end: float = 0.6
    filter_amount: float = 0.5
    kd: Distillation = dataclasses.field(default_factory=Distillation)   # T 4, 0.5 / 0.5
    flows: tuple = tuple(FLOWS)


FULL = Recipe()
QUICK = Recipe(epochs=12, finetune_epochs=5, qat_epochs=2, flows=QUICK_FLOWS)

_BATCH = 64


# --- models -----------------------------------------------------------------------------------

def _build(model, size, seed):
    """A fresh network: ``size`` "base", "teacher" (larger) or "student" (smaller)."""
    if model == "mlp":
        sizes = {"base": [64, 128, 64, 10], "teacher": [64, 512, 256, 10],
                 "student": [64, 32, 10]}[size]
        return MLP.init(sizes, seed=seed)
    channels, hidden = {"base": ((16, 32), (64,)), "teacher": ((32, 64), (128,)),
                        "student": ((4, 8), (16,))}[size]
    return CNN.init(channels, hidden, seed=seed)


def n_m_layers(net, m):
    """Names of the layers of ``net`` pruned N:M with group size ``m``: every weighted layer
    but the last whose GEMM reduction length is a multiple of ``m``
    (:func:`golden_model.graph.n_m_layers`, the one rule)."""
    return graph_n_m_layers(net.to_layers(), m, dense_last=True)[0]


def evaluate_graph(graph, x, y):
    """Test accuracy of an integer graph (TFLite double-rounding requantization)."""
    return float(np.mean(graph.predict(x) == y))


class _Bench:
    """One model's data, baseline and teacher, trained lazily and shared by its flows."""

    def __init__(self, model, recipe, seed, data):
        self.model, self.recipe, self.seed = model, recipe, seed
        x_train, self.y_train, x_test, self.y_test = data
        if model == "cnn":
            x_train, x_test = as_images(x_train), as_images(x_test)
        self.x_train, self.x_test = x_train, x_test
        self.x_calib = x_train[:recipe.calib]
        self._cache = {}

    def fit(self, net, **options):
        kw = {"epochs": self.recipe.epochs, "lr": self.recipe.lr, "batch": _BATCH,
              "seed": self.seed, "lr_schedule": "cosine"}
        kw.update(options)
        return train(net, self.x_train, self.y_train, **kw)

    def finetune(self, net, **options):
        kw = {"epochs": self.recipe.finetune_epochs, "lr": self.recipe.finetune_lr,
              "seed": self.seed + 1}
        kw.update(options)
        return self.fit(net, **kw)

    def trained(self, size):
        if size not in self._cache:
            net = _build(self.model, size, self.seed)
            self.fit(net)
            self._cache[size] = net
        return self._cache[size]

    @property
    def baseline(self):
        return self.trained("base")

    @property
    def teacher_logits(self):
        if "teacher_logits" not in self._cache:
            self._cache["teacher_logits"] = self.trained("teacher").forward(self.x_train)
        return self._cache["teacher_logits"]

    @property
    def steps_per_epoch(self):
        return -(-len(self.x_train) // _BATCH)

    def row(self, key, net, *, method="minmax", weights="per_channel", n_m=None,
            act_ranges=None):
        graph = quantize_graph(net.to_layers(), net.input_shape, self.x_calib, method=method,
                               weights=weights, sparsity=n_m, act_ranges=act_ranges)
        codes = [layer.w for layer in graph.weighted()]
        return {"model": self.model, "key": key, "flow": FLOWS[key],
                "float_acc": accuracy(net.forward(self.x_test), self.y_test),
                "int8_acc": evaluate_graph(graph, self.x_test, self.y_test),
                "bytes": graph.total_bytes(), "sparsity": net.sparsity(),
                "int8_sparsity": float(sum(int(np.count_nonzero(c == 0)) for c in codes)
                                       / sum(c.size for c in codes)),
                "n_m": dict(n_m or {}), "graph": graph, "net": net}


# --- the flows --------------------------------------------------------------------------------

def _float(b, key):
    net = b.baseline
    params = sum(w.size + bias.size for w, bias in zip(net.weights, net.biases))
    return {"model": b.model, "key": key, "flow": FLOWS[key],
            "float_acc": accuracy(net.forward(b.x_test), b.y_test), "int8_acc": None,
            "bytes": 4 * params, "sparsity": net.sparsity(), "int8_sparsity": None,
            "n_m": {}, "graph": None, "net": net}


def _ptq(method, weights="per_channel"):
    def flow(b, key):
        return b.row(key, b.baseline, method=method, weights=weights)
    return flow


def _qat(b, key):
    net = b.baseline.copy()
    log = b.fit(net, epochs=b.recipe.qat_epochs, lr=b.recipe.qat_lr, seed=b.seed + 2,
                qat=True)
    return b.row(key, net, act_ranges=log.act_ranges)


def _magnitude(final):
    def flow(b, key):
        net = b.baseline.copy()
        steps = b.recipe.finetune_epochs * b.steps_per_epoch
        end = max(1, int(b.recipe.prune_end * steps))
        schedule = PruningSchedule(initial=0.0, final=final, begin_step=0, end_step=end,
                                   frequency=max(1, b.steps_per_epoch // 2))
        b.finetune(net, pruning=GradualPruning(schedule, scope="global"))
        return b.row(key, net)
    return flow


def _n_m(n, m):
    def flow(b, key):
        net = b.baseline.copy()
        names = n_m_layers(net, m)
        b.finetune(net, pruning=NMPruning(n, m, names))
        return b.row(key, net, n_m={name: (n, m) for name in names})
    return flow


def _filters(criterion):
    def flow(b, key):
        net, _ = prune_filters(b.baseline, b.recipe.filter_amount, criterion=criterion)
        b.finetune(net)
        return b.row(key, net)
    return flow


def _teacher(b, key):
    return b.row(key, b.trained("teacher"))


def _student(b, key):
    return b.row(key, b.trained("student"))


def _kd_student(b, key):
    net = _build(b.model, "student", b.seed)
    b.fit(net, teacher_logits=b.teacher_logits, distill=b.recipe.kd)
    return b.row(key, net)


def _kd_qat_2_4(b, key):
    net = b.baseline.copy()
    names = n_m_layers(net, 4)
    log = b.finetune(net, pruning=NMPruning(2, 4, names), qat=True,
                     teacher_logits=b.teacher_logits, distill=b.recipe.kd)
    return b.row(key, net, n_m={name: (2, 4) for name in names}, act_ranges=log.act_ranges)


def _grad_int8(b, key):
    net = _build(b.model, "base", b.seed)
    b.fit(net, grad_bits=8)
    return b.row(key, net)


_RUNNERS = {
    "float": _float, "ptq_minmax": _ptq("minmax"), "ptq_percentile": _ptq("percentile"),
    "ptq_mse": _ptq("mse"), "ptq_kl": _ptq("kl"), "ptq_per_tensor": _ptq("minmax", "per_tensor"),
    "ptq_pot": _ptq("minmax", "pot"), "qat": _qat, "magnitude_50": _magnitude(0.5),
    "magnitude_75": _magnitude(0.75), "magnitude_90": _magnitude(0.9), "nm_2_4": _n_m(2, 4),
    "nm_1_4": _n_m(1, 4), "filter_l1": _filters("l1"), "filter_fpgm": _filters("fpgm"),
    "kd_teacher": _teacher, "student": _student, "kd_student": _kd_student,
    "kd_qat_2_4": _kd_qat_2_4, "grad_int8": _grad_int8,
}


def _check_selection(values, name, allowed):
    if isinstance(values, str) or not isinstance(values, (list, tuple)):
        raise TypeError(f"{name} must be a list of names, not {values!r}")
    for v in values:
        if v not in allowed:
            raise ValueError(f"{name} must be among {', '.join(map(repr, allowed))}, "
                             f"not {v!r}")
    return tuple(values)


def flow_plan(*, quick=False, models=MODELS, flows=None):
    """The ``(model, flow key)`` pairs :func:`run_flows` runs, in order (e.g. for a progress
    bar's total)."""
    recipe = QUICK if quick else FULL
    models = _check_selection(models, "models", MODELS)
    flows = recipe.flows if flows is None else _check_selection(flows, "flows", tuple(FLOWS))
    return [(model, key) for model in models for key in FLOWS if key in flows]


def check_run(quick, recipe, seed, progress, *, quick_recipe, full_recipe):
    """The common arguments of a flow runner (this module's, :mod:`.resnet_flows`'):
    ``(recipe, seed)``, the recipe ``quick`` picks unless one of ``full_recipe``'s type is
    given; a bad flag, recipe, seed or progress raises TypeError / ValueError."""
    if not isinstance(quick, (bool, np.bool_)):
        raise TypeError(f"quick must be a bool, not {quick!r}")
    kind = type(full_recipe)
    if recipe is None:
        recipe = quick_recipe if quick else full_recipe
    elif not isinstance(recipe, kind):
        raise TypeError(f"recipe must be a {kind.__name__}, not {type(recipe).__name__}")
    seed = check_int(seed, "seed", lo=0)
    if progress is not None and not callable(progress):
        raise TypeError(f"progress must be callable, not {type(progress).__name__}")
    return recipe, seed


def run_flows(*, quick=False, models=MODELS, flows=None, seed=0, progress=None, recipe=None):
    """Run the flows; returns one row dict per ``(model, flow)`` (module docstring).

    Parameters
    ----------
    quick : bool
        :data:`QUICK` recipe (few epochs, :data:`QUICK_FLOWS`) instead of :data:`FULL`.
    models : list of str
        Among :data:`MODELS`.
    flows : list of str, optional
        Flow keys among :data:`FLOWS` (default: the recipe's); run in :data:`FLOWS` order.
    seed : int
        Seed of every initialization and shuffle.
    progress : callable, optional
        ``progress(done, total, row)`` after every flow (``row`` just finished).
    recipe : Recipe, optional
        Overrides the epochs and rates of ``quick`` (its ``flows`` are the default flows).

    Raises
    ------
    TypeError, ValueError
        An unknown model or flow, a bad seed or a non-callable progress.
    """
    recipe, seed = check_run(quick, recipe, seed, progress, quick_recipe=QUICK,
                             full_recipe=FULL)
    models = _check_selection(models, "models", MODELS)
    flows = recipe.flows if flows is None else _check_selection(flows, "flows", tuple(FLOWS))
    plan = [(model, key) for model in models for key in FLOWS if key in flows]
    data = load_digits_split()
    benches = {model: _Bench(model, recipe, seed, data) for model in models}
    rows = []
    # One BLAS thread: the matrices are tiny, so threads only add synchronization (ten times
    # slower on a loaded 2-core machine), and the sums then do not depend on the core count.
    with threadpool_limits(limits=1, user_api="blas"):
        for model, key in plan:
            row = _RUNNERS[key](benches[model], key)
            rows.append(row)
            if progress is not None:
                progress(len(rows), len(plan), row)
    return rows


def _fmt(v):
    return "-" if v is None else f"{100 * v:.2f}"


def format_rows(rows):
    """Markdown table of :func:`run_flows` rows."""
    lines = ["| model | flow | float acc % | int8 acc % | bytes | sparsity % |",
             "|---|---|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['model']} | {r['flow']} | {_fmt(r['float_acc'])} | "
                     f"{_fmt(r['int8_acc'])} | {r['bytes']} | {100 * r['sparsity']:.1f} |")
    return "\n".join(lines)

