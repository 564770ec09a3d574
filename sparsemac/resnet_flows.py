"""The compression flows of the residual network on real MNIST digits.

The network is :class:`golden_model.resnet.ResNet`'s default (stem 8, stages 8 / 16 / 32 of
one BasicBlock each, strides 1 / 2 / 2, global average pooling, Dense 10), trained with SGD
on the first 3,600 of the 4,000 training images of
:func:`golden_model.datasets.load_mnist_split` (the last :attr:`Recipe.holdout`, 400, are
held out: the scoring data of ``block_reduction``) and measured on its 1,000 test images (100
per class: one image is 0.1 points, and the binomial standard error of a 97 % accuracy is
0.54 points). One row per flow, in the layout of
:mod:`sparsemac.flows` (``model`` is ``"resnet"``):

``float``
    The float baseline: the eval-mode network (BN with running statistics), its ``bytes``
    4 per float32 weight and bias of the BN-folded float graph (what would be deployed).
``ptq_minmax`` (``ptq_percentile``, ``ptq_mse``, ``ptq_kl`` when asked)
    The same network, BN folded, quantized by :func:`golden_model.graph.quantize_graph`:
    weights int8 per output channel, every activation calibrated with the named method on
    the first :attr:`Recipe.calib` training images.
``nm_2_4``, ``nm_1_4``
    A copy of the baseline whose N:M layers (:func:`golden_model.resnet.n_m_layers`: every
    weighted layer whose GEMM reduction length is a multiple of 4, the classifier kept dense
    unless :attr:`Recipe.dense_last` is False; the stem, reduction 9, always dense) are
    pruned N:M by magnitude, fine-tuned with the masks held, then quantized as
    ``ptq_minmax`` and declared N:M in the graph (``n_m``).
``block_reduction``
    The residual block with an identity shortcut whose branch contributes least on the
    held-out training images (:func:`golden_model.reduction.reduce_blocks`, criterion
    ``"branch"``: ``||F(x)|| / ||x||``) removed, the rest fine-tuned as the N:M flows are,
    then quantized as ``ptq_minmax``; the row's ``removed`` names it. With the default
    network only the first stage's block (8 channels, stride 1) has an identity shortcut.

Every int8 accuracy is :meth:`~golden_model.graph.IntGraph.predict` in ``"tflite"`` mode
(integer multiplier and shift, double rounding: what the hardware does). The rows have the
fields of :mod:`sparsemac.flows` (``dataset`` ``"mnist"``, ``seed``, ``correct``,
``nonzero``, ...) and ``train_seconds``: the wall time spent training its float network (the
baseline's for ``float`` and the PTQ rows, the baseline's plus the fine-tuning for the
others), the one field that is not deterministic.

Everything else is deterministic for a seed: fixed split, fixed recipe (:data:`FULL`, or
:data:`QUICK` for the tests), BLAS on one thread. No choice depends on the test split.

Measured with :data:`FULL` over seeds 0-4, trained on the 3,600 images left by the holdout
(mean ± sample standard deviation; ``python -m sparsemac.resnet_flows 5 float ptq_minmax
ptq_percentile ptq_mse ptq_kl nm_2_4 nm_1_4 block_reduction``; one BLAS thread on a 2-core
machine shared with other jobs, so the seconds are upper bounds):

=================================  ============  ============  =====  ==========
flow                               float acc %   int8 acc %    bytes  train s
=================================  ============  ============  =====  ==========
float32 baseline (BN folded)       97.58 ± 0.20  -             78568  39.9 ± 5.9
PTQ int8 per-channel, min-max      97.58 ± 0.20  97.68 ± 0.28  21066  39.9 ± 5.9
PTQ int8 per-channel, percentile   97.58 ± 0.20  97.62 ± 0.26  21066  39.9 ± 5.9
PTQ int8 per-channel, MSE          97.58 ± 0.20  97.60 ± 0.27  21066  39.9 ± 5.9
PTQ int8 per-channel, KL           97.58 ± 0.20  24.04 ± 9.61  21066  39.9 ± 5.9
2:4 N:M + fine-tune, int8          97.72 ± 0.20  97.68 ± 0.20  13914  52.3 ± 6.3
1:4 N:M + fine-tune, int8          97.18 ± 0.26  97.12 ± 0.24  7954   52.4 ± 6.0
block reduction + fine-tune, int8  97.62 ± 0.22  97.58 ± 0.23  19770  47.0 ± 6.2
=================================  ============  ============  =====  ==========

Min-max, percentile and MSE calibration agree to within one test image on the mean, so the
default is min-max. KL calibration (TensorRT's entropy criterion) collapses the graph: after
every ReLU half or more of the values are exactly 0, a point mass that the criterion fits by
clipping the range to a fraction of the data's (measured before the holdout and the one-sided
calibration of ReLU outputs, when KL fell to chance, 10.7 %: the stem's output clipped to 0.5
of 5.2, the last block's to 3.8 of 20.5; the mechanism :mod:`sparsemac.flows` notes for the
digits CNN). Removing the first stage's block (the only one with an identity shortcut: 1,152
fewer weights, 1,296 bytes) and fine-tuning 5 epochs costs nothing measurable. Before the
holdout, pruning the classifier too (``dense_last=False``, 120 bytes fewer) measured 2:4
97.74 ± 0.29 and 1:4 97.36 ± 0.25 int8, the same within noise.
"""

import dataclasses
import time

import numpy as np
from threadpoolctl import threadpool_limits

from common.checks import check_choice
from golden_model import resnet
from golden_model.calibration import METHODS
from golden_model.datasets import load_mnist_split
from golden_model.graph import quantize_graph
from golden_model.layers import WEIGHTED
from golden_model.reduction import reduce_blocks
from golden_model.train import accuracy

from .flows import check_run, holdout_split

__all__ = ["MODEL", "DATASET", "FLOWS", "DEFAULT_FLOWS", "Recipe", "FULL", "QUICK",
           "load_split", "run_resnet_flows", "summarize"]

MODEL = "resnet"
#: The dataset of its rows (:mod:`sparsemac.flows`' name).
DATASET = "mnist"

#: Every flow, key -> human name, in run order.
FLOWS = {
    "float": "float32 baseline (BN folded)",
    "ptq_minmax": "PTQ int8 per-channel, min-max",
    "ptq_percentile": "PTQ int8 per-channel, percentile",
    "ptq_mse": "PTQ int8 per-channel, MSE",
    "ptq_kl": "PTQ int8 per-channel, KL",
    "nm_2_4": "2:4 N:M + fine-tune, int8",
    "nm_1_4": "1:4 N:M + fine-tune, int8",
    "block_reduction": "residual block reduction: least important block removed + fine-tune, "
                       "int8",
}

#: The flows run unless others are asked for.
DEFAULT_FLOWS = ("float", "ptq_minmax", "nm_2_4", "nm_1_4")


@dataclasses.dataclass(frozen=True)
class Recipe:
    """How the flows train (SGD with momentum, cosine learning rate, :func:`resnet.train`).

    Members
    -------
    epochs, lr : the baseline's training from scratch.
    finetune_epochs, finetune_lr : the N:M fine-tuning from the baseline, masks held.
    batch, momentum, weight_decay : of both.
    train_images : only the first this many training images are used (None: all 4,000).
    holdout : fraction of those held out of training (the last ones): the scoring data.
    calib : number of training images the activations are calibrated on.
    dense_last : keep the classifier dense in the N:M flows (the rule of
        :mod:`sparsemac.flows`); False prunes it too (reduction 32).
    flows : the flow keys run.
    """

    epochs: int = 15
    lr: float = 0.1
    finetune_epochs: int = 5
    finetune_lr: float = 0.05
    batch: int = 32
    momentum: float = 0.9
    weight_decay: float = 5e-4
    train_images: int = None
    holdout: float = 0.1
    calib: int = 512
    dense_last: bool = True
    flows: tuple = DEFAULT_FLOWS


FULL = Recipe()
QUICK = Recipe(epochs=2, finetune_epochs=1, flows=("float", "ptq_minmax", "nm_2_4"))


def load_split(recipe=None):
    """The residual network's data under ``recipe`` (default :data:`FULL`):
    ``(x_fit, y_fit, x_score, y_score, x_test, y_test)``, MNIST's training split (its first
    ``recipe.train_images``) cut into what the network trains on and the last
    ``recipe.holdout`` of it, held out (the scoring data), and the test split.

    Raises
    ------
    ValueError
        A holdout that leaves no image on one side.
    """
    recipe = FULL if recipe is None else recipe
    x_train, y_train, x_test, y_test = load_mnist_split()
    x_train, y_train = x_train[:recipe.train_images], y_train[:recipe.train_images]
    return (*holdout_split(x_train, y_train, recipe.holdout), x_test, y_test)


class _Bench:
    """The data and the baseline of one seed, trained lazily and shared by the flows."""

    def __init__(self, recipe, seed, split):
        self.recipe, self.seed = recipe, seed
        (self.x_train, self.y_train, self.x_score, self.y_score, self.x_test,
         self.y_test) = split
        self.x_calib = self.x_train[:recipe.calib]
        self._baseline = None

    def fit(self, net, epochs, lr, seed):
        r = self.recipe
        start = time.perf_counter()
        resnet.train(net, self.x_train, self.y_train, epochs=epochs, lr=lr, batch=r.batch,
                     momentum=r.momentum, weight_decay=r.weight_decay, seed=seed)
        return time.perf_counter() - start

    @property
    def baseline(self):
        """``(net, seconds)`` of the baseline."""
        if self._baseline is None:
            net = resnet.ResNet.init(seed=self.seed)
            self._baseline = net, self.fit(net, self.recipe.epochs, self.recipe.lr, self.seed)
        return self._baseline

    def row(self, key, net, seconds, *, method="minmax", n_m=None):
        layers = net.to_layers()
        logits = net.forward(self.x_test)
        row = {"dataset": DATASET, "seed": self.seed, "model": MODEL, "key": key,
               "flow": FLOWS[key], "float_acc": accuracy(logits, self.y_test),
               "sparsity": net.sparsity(),
               "nonzero": int(sum(np.count_nonzero(net.weight(n)) for n in net.layer_names())),
               "n_m": dict(n_m or {}), "net": net, "train_seconds": seconds}
        if key == "float":
            params = sum(ly.w.size + ly.b.size for ly in layers if isinstance(ly, WEIGHTED))
            return {**row, "int8_acc": None, "bytes": 4 * params, "int8_sparsity": None,
                    "graph": None, "correct": np.argmax(logits, axis=1) == self.y_test}
        graph = quantize_graph(layers, net.input_shape, self.x_calib, method=method,
                               sparsity=n_m)
        correct = graph.predict(self.x_test) == self.y_test
        codes = [q.w for q in graph.weighted()]
        return {**row, "int8_acc": float(np.mean(correct)), "correct": correct,
                "bytes": graph.total_bytes(), "graph": graph,
                "int8_sparsity": float(sum(int(np.count_nonzero(c == 0)) for c in codes)
                                       / sum(c.size for c in codes))}


def _float(b, key):
    return b.row(key, *b.baseline)


def _ptq(method):
    def flow(b, key):
        return b.row(key, *b.baseline, method=method)
    return flow


def _n_m(n, m):
    def flow(b, key):
        base, seconds = b.baseline
        net = base.copy()
        names = resnet.n_m_layers(net, m, dense_last=b.recipe.dense_last)
        net.set_n_m_masks(n, m, names)
        seconds += b.fit(net, b.recipe.finetune_epochs, b.recipe.finetune_lr, b.seed + 1)
        return b.row(key, net, seconds, n_m={name: (n, m) for name in names})
    return flow


def _block_reduction(b, key):
    base, seconds = b.baseline
    net, removed = reduce_blocks(base, 1, b.x_score, b.y_score)
    seconds += b.fit(net, b.recipe.finetune_epochs, b.recipe.finetune_lr, b.seed + 1)
    return {**b.row(key, net, seconds), "removed": removed}


_RUNNERS = {"float": _float, **{f"ptq_{m}": _ptq(m) for m in METHODS},
            "nm_2_4": _n_m(2, 4), "nm_1_4": _n_m(1, 4), "block_reduction": _block_reduction}


def run_resnet_flows(*, quick=False, seed=0, flows=None, recipe=None, progress=None):
    """Run the flows of one seed; returns one row dict per flow (module docstring), in
    :data:`FLOWS` order.

    Parameters
    ----------
    quick : bool
        :data:`QUICK` (2 epochs, one epoch of fine-tuning, the float, min-max PTQ and 2:4
        flows; about 15 s on one core) instead of :data:`FULL` (15 and 5 epochs).
    seed : int
        Seed of the initialization and the shuffles (the fine-tuning uses ``seed + 1``).
    flows : list of str, optional
        Keys among :data:`FLOWS` (default: the recipe's).
    recipe : Recipe, optional
        Replaces the recipe ``quick`` picks.
    progress : callable, optional
        ``progress(done, total, row)`` after every flow.

    Raises
    ------
    TypeError, ValueError
        A bad flag, seed, flow key, recipe or progress.
    """
    recipe, seed = check_run(quick, recipe, seed, progress, quick_recipe=QUICK,
                             full_recipe=FULL)
    flows = recipe.flows if flows is None else flows
    if isinstance(flows, str) or not isinstance(flows, (list, tuple)):
        raise TypeError(f"flows must be a list of flow keys, not {flows!r}")
    for key in flows:
        check_choice(key, "flow", tuple(FLOWS))
    plan = [key for key in FLOWS if key in flows]
    bench = _Bench(recipe, seed, load_split(recipe))
    rows = []
    # One BLAS thread: the GEMMs are small, threads only add synchronization on a shared
    # machine, and the sums then do not depend on the core count.
    with threadpool_limits(limits=1, user_api="blas"):
        for key in plan:
            rows.append(_RUNNERS[key](bench, key))
            if progress is not None:
                progress(len(rows), len(plan), rows[-1])
    return rows


def summarize(runs):
    """Markdown table of several seeds' rows (a list of :func:`run_resnet_flows` results, one
    per seed): per flow the mean and sample standard deviation of the float and int8
    accuracies and of the training time, and the bytes."""
    by_key = {}
    for rows in runs:
        for r in rows:
            by_key.setdefault(r["key"], []).append(r)

    def stat(values, scale=100.0):
        v = scale * np.asarray(values, dtype=float)
        spread = v.std(ddof=1) if len(v) > 1 else 0.0
        return f"{v.mean():.2f} ± {spread:.2f}"

    lines = [f"| flow ({len(runs)} seeds) | float acc % | int8 acc % | bytes | train s |",
             "|---|---:|---:|---:|---:|"]
    for rows in by_key.values():
        int8 = [r["int8_acc"] for r in rows]
        lines.append(f"| {rows[0]['flow']} | {stat([r['float_acc'] for r in rows])} | "
                     f"{'-' if None in int8 else stat(int8)} | {rows[0]['bytes']} | "
                     f"{stat([r['train_seconds'] for r in rows], 1.0)} |")
    return "\n".join(lines)


if __name__ == "__main__":   # python -m sparsemac.resnet_flows [seeds] [flow ...]
    import sys

    count = int(sys.argv[1]) if len(sys.argv) > 1 else 5
    print(summarize([run_resnet_flows(seed=s, flows=sys.argv[2:] or None)
                     for s in range(count)]))
