"""Small float models trained in NumPy: the starting point of every compression flow.

Two networks written out by hand, forward and backward, so that the training-side techniques
hook into both passes: a multi-layer perceptron (:class:`MLP`) and a small convolutional
network (:class:`CNN`, im2col convolutions, ReLU, 2x2 max pooling). Both export the float
layers of :mod:`.graph` (:meth:`~MLP.to_layers`), which :func:`.graph.quantize_graph` turns
into the integer network the accelerator runs.

One training loop, :func:`train` (Adam on softmax cross-entropy, deterministic for a seed),
with options that combine freely in one run:

Masks kept applied
    ``model.masks[i]`` (bool like ``weights[i]``, or ``None``) is re-applied after every
    step, so pruned weights stay zero while the network is fine-tuned.
Pruning schedule (``pruning=``)
    :class:`GradualPruning`: magnitude masks recomputed at the update steps of a
    :class:`.prune.PruningSchedule` (Zhu & Gupta's cubic ramp), per layer or globally.
    :class:`NMPruning`: N:M masks along each layer's GEMM reduction axis (axis 1 of
    ``w.reshape(out, -1)``), computed once from the weights at the start and then held.
Quantization-aware training (``qat=True``)
    The forward pass fake-quantizes the weights (per output channel, symmetric, int8 narrow
    range [-127, 127], exactly as :func:`.graph.quantize_graph` quantizes them) and the
    network's input and every Dense/Conv2d output (affine int8, ranges from
    :class:`.calibration.MovingAverageMinMax` observers updated on every batch). The
    backward pass uses the straight-through estimator (:func:`.quant.ste_mask`): gradients
    pass where the value lies inside the quantization range and are zero where it is clipped.
    The learned ranges are returned (:attr:`TrainLog.act_ranges`) in the layout
    ``quantize_graph(..., act_ranges=...)`` takes.
    ``qat_bits=(w, a)`` lowers the bit widths (2..8 each) of the weight and activation fake
    quantizers (same schemes: symmetric narrow per channel, affine); ``(8, 8)`` is the above.
Gradient quantization (``grad_bits=``)
    Every parameter gradient (each weight and each bias tensor on its own) is replaced by
    ``codes * scale`` before the Adam step (:func:`quantize_gradient`): per-tensor symmetric
    codes of ``grad_bits`` bits (int8 narrow range for 8), ``scale = max|g| / 127``,
    stochastic rounding from a generator seeded by the training seed. Because the largest
    magnitude maps exactly to the largest code nothing is clipped and stochastic rounding is
    unbiased: ``E[codes * scale] = g``. The error signals propagated between layers stay float.
Knowledge distillation (``teacher_logits=``, ``distill=``)
    ``L = alpha * CE(labels, s) + beta * T^2 * KL(softmax(t / T) || softmax(s / T))``
    (Hinton et al. 2015), batch means, with the teacher's logits ``t`` given per sample
    (:func:`distillation_loss`); by default (:class:`Distillation`) with both logits
    z-scored in the KL term (logit standardization, Sun et al. 2024), so that the student
    learns the shape of the teacher's logits, not their scale.
Feature distillation (``teacher=`` with ``attention=`` and/or ``hint=``)
    :class:`AttentionTransfer` (Zagoruyko & Komodakis 2017): the L2-normalized spatial maps
    ``sum_c |A_c|^p`` of paired convolution layers are matched
    (:func:`attention_transfer_loss`). :class:`Hint` (FitNets, Romero et al. 2015): a
    linear regressor learned with the student maps its guided layer onto the teacher's hint
    layer (:func:`hint_loss`). The teacher's features are computed once over the training
    data; the terms' gradients enter the student's backward pass at its layers.

Sparse regularization (``regularization=``)
    :class:`SparseRegularization`: ``lambda_l1 * sum|w| + lambda_group * sum_g ||w_g||_2``
    over the weights (not biases) of chosen layers, groups being output neurons / filters
    (Wen et al. 2016), its (sub)gradient (:func:`sparsity_penalty`) added to the loss
    gradient before the optimizer step; its value is logged (:attr:`TrainLog.penalties`).

Quantization and pruning combined (``combined=``)
    :class:`CombinedLoss`: seed 000's ``L_total = alpha L_quant + beta L_prune +
    gamma L_finetune``: the task loss, the weights' quantization error at the QAT weight bits
    (:func:`quantization_error`) and the squared magnitude of the weights the pending masks
    remove (:func:`pruning_error`), each logged per epoch (:attr:`TrainLog.terms`).

Filter pruning that removes filters (:func:`prune_filters`): the lowest-scored filters (L1,
L2 or FPGM, :func:`.prune.filter_scores`) of a layer are deleted together with the matching
input channels of the next layer, giving a smaller dense model to fine-tune.
:func:`prune_neurons_by_gradient` removes the same way the units whose loss gradient stays
near zero over the data (:func:`gradient_neuron_scores`).

Importance from the loss's derivatives: :func:`weight_gradients` (loss and ``dL/dW`` of a
batch, by the network's own backward pass), :func:`taylor_importance` (first-order Taylor,
:func:`.prune.taylor_scores`) and :func:`obd_importance` (Optimal Brain Damage, with the
Hessian diagonal of :func:`hessian_diagonal`: Hutchinson's estimator over Hessian-vector
products by central differences of the gradient).

The data they train on is in :mod:`.datasets`, the reference networks of the demos and
regressions in :mod:`.networks`.
"""

import dataclasses
import math
import numbers
from dataclasses import dataclass, field

import numpy as np

from common.checks import (
    as_float_array,
    as_int_array,
    check_bool,
    check_choice,
    check_finite,
    check_int,
)

from .calibration import MovingAverageMinMax
from .graph import Conv2d, Dense, Flatten, MaxPool2d
from .kernels import im2col
from .prune import (
    PruningSchedule,
    filter_prune_mask,
    global_magnitude_masks,
    magnitude_mask,
    obd_filter_scores,
    obd_scores,
    prune_n_m,
    remove_neurons,
    score_mask,
    taylor_filter_scores,
    taylor_scores,
)
from .quant import fake_quantize, qparams, qparams_from_range, quantize, ste_mask

__all__ = [
    "accuracy", "softmax", "cross_entropy", "distillation_loss", "ensemble_logits",
    "attention_map",
    "attention_transfer_loss", "hint_loss", "quantize_gradient", "MLP", "CNN", "Distillation",
    "AttentionTransfer", "Hint", "GradualPruning", "NMPruning", "SparseRegularization",
    "sparsity_penalty", "CombinedLoss", "quantization_error", "pruning_error",
    "QAT_BITS_RANGE", "TrainLog", "train", "prune_filters", "remove_filters",
    "weight_gradients", "taylor_importance", "hessian_diagonal", "obd_importance",
    "gradient_neuron_scores", "prune_neurons_by_gradient",
    "LR_SCHEDULES", "PRUNING_SCOPES", "IMPORTANCE_UNITS",
]

#: Learning-rate schedules of :func:`train`.
LR_SCHEDULES = ("constant", "cosine")
#: Where :class:`GradualPruning` ranks the weights: each layer on its own, or all together.
PRUNING_SCOPES = ("layer", "global")
#: What :func:`taylor_importance` and :func:`obd_importance` score: each weight, or each filter.
IMPORTANCE_UNITS = ("weight", "filter")


# --- losses -----------------------------------------------------------------------------------

def accuracy(logits, labels):
    """Fraction of rows whose argmax equals the label."""
    return float(np.mean(np.argmax(logits, axis=1) == labels))


def softmax(z, temperature=1.0):
    """Row-wise softmax of ``z / temperature`` (numerically stable)."""
    z = z / temperature
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def _log_softmax(z):
    z = z - z.max(axis=1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=1, keepdims=True))


def _check_logits(z, name):
    z = check_finite(as_float_array(z, name), name)
    if z.ndim != 2 or z.shape[0] == 0 or z.shape[1] < 2:
        raise ValueError(f"{name} must be a 2-d array (samples, classes) with at least one "
                         f"sample and two classes, not shape {z.shape}")
    return z


def _check_labels(labels, n, classes, name="labels"):
    labels = as_int_array(labels, name)
    if labels.shape != (n,):
        raise ValueError(f"{name} must have shape ({n},), not {labels.shape}")
    if labels.size and (labels.min() < 0 or labels.max() >= classes):
        bad = labels[(labels < 0) | (labels >= classes)][0]
        raise ValueError(f"{name} must be class indices in [0, {classes - 1}], not {bad}")
    return labels


def cross_entropy(logits, labels):
    """Mean softmax cross-entropy and its gradient with respect to ``logits``.

    Returns ``(loss, grad)``; ``grad = (softmax(logits) - onehot(labels)) / batch`` in the
    logits' dtype.
    """
    z = _check_logits(logits, "logits")
    labels = _check_labels(labels, z.shape[0], z.shape[1])
    rows = np.arange(len(z))
    loss = -float(np.mean(_log_softmax(z.astype(np.float64))[rows, labels]))
    grad = softmax(z)
    grad[rows, labels] -= 1
    return loss, (grad / len(z)).astype(z.dtype)


def _real(value, name, *, lo, lo_open):
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, not {value!r}")
    value = float(value)
    if not math.isfinite(value) or (value <= lo if lo_open else value < lo):
        rule = "greater than" if lo_open else "at least"
        raise ValueError(f"{name} must be finite and {rule} {lo:g}, not {value!r}")
    return value


#: Floor of the variance in :func:`distillation_loss`'s standardization: ``sigma =
#: sqrt(var + STANDARDIZE_EPS)``, so equal logits give a uniform distribution, not 0 / 0.
STANDARDIZE_EPS = 1e-6


def _standardized(z):
    """Per-row z-scores ``(z - mean) / sigma``, ``sigma = sqrt(var + eps)``, and ``sigma``."""
    centred = z - z.mean(axis=1, keepdims=True)
    sigma = np.sqrt(np.mean(centred * centred, axis=1, keepdims=True) + STANDARDIZE_EPS)
    return centred / sigma, sigma


def distillation_loss(student_logits, teacher_logits, labels, *, temperature=4.0, alpha=0.5,
                      beta=0.5, standardize=False):
    """Hinton's knowledge-distillation loss and its gradient with respect to the student.

    ``L = alpha * CE(labels, s) + beta * T^2 * KL(softmax(t / T) || softmax(s / T))``, both
    terms averaged over the batch. The ``T^2`` factor keeps the soft term's gradient, which is
    ``beta * T * (softmax(s / T) - softmax(t / T)) / batch``, on the scale of the hard term's
    as ``T`` changes.

    With ``standardize`` the soft term compares z-scored logits (logit standardization, Sun et
    al. 2024): ``t`` and ``s`` are replaced in it by ``(z - mean(z)) / sigma(z)`` per sample,
    ``sigma = sqrt(var(z) + STANDARDIZE_EPS)`` (:data:`STANDARDIZE_EPS`), so the student is
    asked for the shape of the teacher's logits, not their scale; the gradient goes through
    the standardization, ``ds = (dz - mean(dz) - z_s * mean(dz * z_s)) / sigma_s``. The hard
    term always uses the raw logits.

    Without it, for a large ``T`` the soft term tends to ``beta * mean ||s - t||^2 / (2 K)``
    (``K`` classes, zero-mean logits): the student must reproduce the teacher's logit scale.
    A large teacher trained to zero training error has logits about twice the scale a small
    student reaches (the digits MLPs of :mod:`sparsemac.flows`: a per-sample standard
    deviation of 7.7 against 4.3), and a student pulled there fits the labels worse; see
    :class:`Distillation` for the measurements.

    Parameters
    ----------
    student_logits, teacher_logits : float arrays (samples, classes)
    labels : int array (samples,)
        True classes (used by the hard term; pass any valid labels when ``alpha == 0``).
    temperature : float
        ``T > 0``.
    alpha, beta : float
        Non-negative weights of the task and distillation terms.
    standardize : bool
        Z-score both logits in the soft term.

    Returns
    -------
    (loss, grad) : float and an array like ``student_logits`` (same dtype).

    Raises
    ------
    TypeError, ValueError
        Non-float logits, mismatched shapes, labels out of range, ``T <= 0``, a negative
        weight or a non-bool ``standardize``.
    """
    s = _check_logits(student_logits, "student_logits")
    t = _check_logits(teacher_logits, "teacher_logits")
    if t.shape != s.shape:
        raise ValueError(f"teacher_logits must have the student's shape {s.shape}, "
                         f"not {t.shape}")
    labels = _check_labels(labels, s.shape[0], s.shape[1])
    temp = _real(temperature, "temperature", lo=0.0, lo_open=True)
    alpha = _real(alpha, "alpha", lo=0.0, lo_open=False)
    beta = _real(beta, "beta", lo=0.0, lo_open=False)
    standardize = check_bool(standardize, "standardize")
    s64, t64 = s.astype(np.float64), t.astype(np.float64)
    n = len(s)
    rows = np.arange(n)
    ce = -np.mean(_log_softmax(s64)[rows, labels])
    soft_s, soft_t = s64, t64
    if standardize:
        soft_s, sigma_s = _standardized(s64)
        soft_t, _ = _standardized(t64)
    log_pt, log_ps = _log_softmax(soft_t / temp), _log_softmax(soft_s / temp)
    pt = np.exp(log_pt)
    kl = np.mean(np.sum(pt * (log_pt - log_ps), axis=1))
    loss = alpha * ce + beta * temp * temp * kl
    hard = np.exp(_log_softmax(s64))
    hard[rows, labels] -= 1
    soft = beta * temp * (np.exp(log_ps) - pt)
    if standardize:
        soft = (soft - soft.mean(axis=1, keepdims=True)
                - soft_s * np.mean(soft * soft_s, axis=1, keepdims=True)) / sigma_s
    grad = (alpha * hard + soft) / n
    return float(loss), grad.astype(s.dtype)


def ensemble_logits(models, x):
    """The logits of an ensemble: the mean of its members' logits on ``x``.

    The soft targets of :class:`Distillation` taken from several teachers trained apart
    (different seeds), as Hinton et al. (2015, "Distilling the knowledge in a neural
    network", section 1) distil an ensemble into one network. Here three teachers helped the
    small students where one did not (:class:`Distillation`). Averaging logits, not
    probabilities: the mean is in the space :func:`distillation_loss` standardizes.

    Returns the members' dtype (float32 for :class:`MLP` and :class:`CNN`), averaged in
    float64.

    Raises
    ------
    ValueError
        When ``models`` is empty or the members' logits differ in shape.
    """
    models = list(models)
    if not models:
        raise ValueError("an ensemble needs at least one model, not none")
    logits = [np.asarray(m.forward(x)) for m in models]
    shapes = {z.shape for z in logits}
    if len(shapes) > 1:
        raise ValueError(f"the ensemble's models give logits of different shapes: "
                         f"{sorted(shapes)}")
    return np.mean(np.stack(logits).astype(np.float64), axis=0).astype(logits[0].dtype)


#: Floor of an attention map's norm in :func:`attention_map`: an all-zero map stays zero.
ATTENTION_EPS = 1e-12


def _check_maps(a, name):
    a = check_finite(as_float_array(a, name), name)
    if a.ndim != 4 or a.shape[0] == 0:
        raise ValueError(f"{name} must be a 4-d array (N, C, H, W) with at least one sample, "
                         f"not shape {a.shape}")
    return a


def _attention(a, p):
    """``(norm, q)`` of :func:`attention_map` in float64: ``norm = max(||Q||_2, eps)``."""
    big_q = (np.abs(a.astype(np.float64)) ** p).sum(axis=1).reshape(len(a), -1)
    norm = np.maximum(np.sqrt(np.sum(big_q * big_q, axis=1, keepdims=True)), ATTENTION_EPS)
    return norm, big_q / norm


def attention_map(a, *, p=2.0):
    """Spatial attention map of a convolution's activations (Zagoruyko & Komodakis 2017).

    ``Q = sum_c |a_c|^p`` over the channels, flattened per sample, then L2-normalized:
    ``q = Q / max(||Q||_2, ATTENTION_EPS)`` (:data:`ATTENTION_EPS`; an all-zero map stays
    zero).

    Parameters
    ----------
    a : float array (N, C, H, W)
    p : float
        Exponent, ``p >= 1`` (2 in the paper).

    Returns
    -------
    float64 array (N, H * W), rows of unit norm (or zero).

    Raises
    ------
    TypeError, ValueError
        ``a`` not a finite 4-d float array with a sample, or ``p < 1``.
    """
    a = _check_maps(a, "a")
    return _attention(a, _real(p, "p", lo=1.0, lo_open=False))[1]


def _attention_term(a_s, q_t, beta, p):
    """``beta / 2 * mean_n ||q_s - q_t||_2`` for one pair of layers and its gradient with
    respect to the student's activations ``a_s`` (float64); ``q_t`` is the teacher's map."""
    n = len(a_s)
    norm, q_s = _attention(a_s, p)
    d = q_s - q_t
    dist = np.sqrt(np.sum(d * d, axis=1, keepdims=True))
    # d ||d|| / d q = d / ||d||, the subgradient 0 where the maps are equal.
    g_q = np.divide(d, dist, out=np.zeros_like(d), where=dist > 0) * (beta / (2 * n))
    # Through q = Q / ||Q||: (g - q (q . g)) / ||Q||; where the norm is clamped, g / eps.
    radial = np.where(norm > ATTENTION_EPS, np.sum(q_s * g_q, axis=1, keepdims=True), 0.0)
    g_big_q = (g_q - q_s * radial) / norm
    a64 = a_s.astype(np.float64)
    slope = p * np.abs(a64) ** (p - 1) * np.sign(a64)      # d |a|^p / d a (0 at a = 0)
    return beta / 2 * float(dist.mean()), g_big_q.reshape(n, 1, *a_s.shape[2:]) * slope


def _check_map_pairs(student_maps, teacher_maps):
    pairs = []
    for name, maps in (("student_maps", student_maps), ("teacher_maps", teacher_maps)):
        if not isinstance(maps, (list, tuple)):
            raise TypeError(f"{name} must be a list of arrays (N, C, H, W), "
                            f"not {type(maps).__name__}")
        if not maps:
            raise ValueError(f"{name} must hold at least one array, not 0")
    if len(student_maps) != len(teacher_maps):
        raise ValueError(f"teacher_maps must pair the {len(student_maps)} student maps, "
                         f"not {len(teacher_maps)}")
    for j, (a_s, a_t) in enumerate(zip(student_maps, teacher_maps)):
        a_s = _check_maps(a_s, f"student_maps[{j}]")
        a_t = _check_maps(a_t, f"teacher_maps[{j}]")
        if (len(a_t), *a_t.shape[2:]) != (len(a_s), *a_s.shape[2:]):
            raise ValueError(f"teacher_maps[{j}] must have the student's samples and map size "
                             f"{(len(a_s), *a_s.shape[2:])}, not {(len(a_t), *a_t.shape[2:])}")
        pairs.append((a_s, a_t))
    return pairs


def attention_transfer_loss(student_maps, teacher_maps, *, beta=1.0, p=2.0):
    """Attention transfer (Zagoruyko & Komodakis 2017) and its gradient for the student.

    ``L = beta / 2 * sum_j mean_n || q_s^j - q_t^j ||_2`` over the pairs ``j`` of layers, with
    ``q = attention_map(A, p)`` (``Q = sum_c |A_c|^p``, L2-normalized per sample), the
    distance being the L2 norm (not squared, as in the paper's equation) averaged over the
    batch. The channel counts of a pair may differ, the map sizes may not. The gradient of the
    norm is taken as 0 where a sample's maps are equal.

    Parameters
    ----------
    student_maps, teacher_maps : lists of float arrays (N, C, H, W)
        The activations of the paired layers (after the ReLU), pair ``j`` with the same ``N``,
        ``H`` and ``W``.
    beta : float
        Weight, ``>= 0``.
    p : float
        Exponent of :func:`attention_map`, ``>= 1``.

    Returns
    -------
    (loss, grads) : float and the list of ``d loss / d student_maps[j]`` (arrays like them,
    same dtype).

    Raises
    ------
    TypeError, ValueError
        Not lists of finite 4-d float arrays, unpaired lists or map sizes, ``beta < 0`` or
        ``p < 1``.
    """
    pairs = _check_map_pairs(student_maps, teacher_maps)
    beta = _real(beta, "beta", lo=0.0, lo_open=False)
    p = _real(p, "p", lo=1.0, lo_open=False)
    loss, grads = 0.0, []
    for a_s, a_t in pairs:
        value, g = _attention_term(a_s, _attention(a_t, p)[1], beta, p)
        loss += value
        grads.append(g.astype(a_s.dtype))
    return loss, grads


def _as_rows(h):
    """Feature vectors as rows: (N, C) as is, (N, C, H, W) as (N*H*W, C)."""
    return h if h.ndim == 2 else h.transpose(0, 2, 3, 1).reshape(-1, h.shape[1])


def _from_rows(rows, like_shape):
    if len(like_shape) == 2:
        return rows
    n, _, hh, ww = like_shape
    return rows.reshape(n, hh, ww, -1).transpose(0, 3, 1, 2)


def hint_loss(student_features, teacher_features, regressor, *, weight=1.0):
    """FitNets hint loss (Romero et al. 2015) and its gradients.

    ``L = weight / 2 * mean_n || r(h_s) - h_t ||_2^2``: the squared distance summed over all
    the features of a sample, averaged over the batch, between the teacher's hint ``h_t`` and
    the student's guided features ``h_s`` mapped by the linear regressor
    ``r(h) = W h + b``. ``W`` (``C_t x C_s``) maps every feature vector: a dense layer's
    ``(N, C_s)`` outputs to ``(N, C_t)``, or a convolution's ``(N, C_s, H, W)`` maps pixel by
    pixel (a 1x1 convolution) to ``(N, C_t, H, W)``.

    Parameters
    ----------
    student_features, teacher_features : float arrays, both (N, C) or both (N, C, H, W)
        Same ``N`` (and ``H``, ``W``); the channel counts may differ.
    regressor : (W, b)
        Float arrays of shapes ``(C_t, C_s)`` and ``(C_t,)``.
    weight : float
        ``>= 0``.

    Returns
    -------
    (loss, grad_student, (grad_w, grad_b)) : float, ``d loss / d student_features`` and the
    gradients of ``W`` and ``b`` (arrays like their arguments, same dtypes).

    Raises
    ------
    TypeError, ValueError
        Non-float or non-finite arrays, mismatched shapes or a negative weight.
    """
    h_s = check_finite(as_float_array(student_features, "student_features"), "student_features")
    h_t = check_finite(as_float_array(teacher_features, "teacher_features"), "teacher_features")
    if h_s.ndim not in (2, 4) or h_s.shape[0] == 0:
        raise ValueError(f"student_features must be a 2-d (N, C) or 4-d (N, C, H, W) array "
                         f"with at least one sample, not shape {h_s.shape}")
    if h_t.ndim != h_s.ndim or (len(h_t), *h_t.shape[2:]) != (len(h_s), *h_s.shape[2:]):
        want = ", ".join([str(len(h_s)), "C_t", *map(str, h_s.shape[2:])])
        raise ValueError(f"teacher_features must have shape ({want}), not {h_t.shape}")
    if not isinstance(regressor, (list, tuple)) or len(regressor) != 2:
        raise TypeError(f"regressor must be a pair (W, b), not {type(regressor).__name__}")
    w = check_finite(as_float_array(regressor[0], "regressor W"), "regressor W")
    b = check_finite(as_float_array(regressor[1], "regressor b"), "regressor b")
    c_t, c_s = h_t.shape[1], h_s.shape[1]
    if w.shape != (c_t, c_s):
        raise ValueError(f"regressor W must have shape ({c_t}, {c_s}), not {w.shape}")
    if b.shape != (c_t,):
        raise ValueError(f"regressor b must have shape ({c_t},), not {b.shape}")
    weight = _real(weight, "weight", lo=0.0, lo_open=False)
    value, g_h, g_w, g_b = _hint_term(h_s, h_t, w, b, weight)
    return value, g_h.astype(h_s.dtype), (g_w.astype(w.dtype), g_b.astype(b.dtype))


def _hint_term(h_s, h_t, w, b, weight):
    """:func:`hint_loss` without the checks, in float64."""
    n = len(h_s)
    rows = _as_rows(h_s.astype(np.float64))
    d = rows @ w.astype(np.float64).T + b - _as_rows(h_t.astype(np.float64))
    g_r = weight * d / n
    g_h = _from_rows(g_r @ w.astype(np.float64), h_s.shape)
    return weight / 2 * float(np.sum(d * d)) / n, g_h, g_r.T @ rows, g_r.sum(axis=0)


def quantize_gradient(g, *, bits=8, rng=None):
    """Per-tensor symmetric integer codes of a gradient, rounded stochastically.

    ``scale = max|g| / qmax`` with ``qmax = 2^(bits-1) - 1`` (127 for int8, narrow range
    ``[-qmax, qmax]``); ``codes = clamp(floor(g / scale + u), -qmax, qmax)``, ``u ~ U[0, 1)``
    from ``rng``. The largest magnitude maps to ``qmax`` so nothing is clipped, and
    stochastic rounding makes ``codes * scale`` an unbiased estimate of ``g``. An all-zero
    gradient gives zero codes (scale 1.0, :data:`.quant.FALLBACK_SCALE`).

    Parameters
    ----------
    g : float array
        The gradient (any shape, finite, non-empty).
    bits : int
        Code width, 2 to 16.
    rng : int or numpy Generator
        Source of the rounding noise (required; a seed gives reproducible codes).

    Returns
    -------
    (codes, scale) : signed integer array shaped like ``g`` (int8 for ``bits <= 8``) and a
    float.

    Raises
    ------
    TypeError
        ``g`` not floating point, ``bits`` not an integer, ``rng`` neither a seed nor a
        Generator.
    ValueError
        ``g`` empty or not finite, ``bits`` out of range, ``rng`` missing or negative.
    """
    g = check_finite(as_float_array(g, "g"), "g")
    bits = check_int(bits, "bits", lo=2, hi=16)
    if rng is None or isinstance(rng, bool) or not isinstance(
            rng, (numbers.Integral, np.random.Generator)):
        raise (ValueError if rng is None else TypeError)(
            f"rng must be a seed or a numpy Generator, not {rng!r}")
    scale, _ = qparams(g, bits=bits, symmetric=True, narrow=True)
    qmax = (1 << (bits - 1)) - 1
    codes = quantize(g, scale, 0, qmin=-qmax, qmax=qmax, rounding="stochastic", rng=rng)
    return codes, float(scale)


# --- the networks ------------------------------------------------------------------------------

@dataclass(frozen=True)
class _Op:
    kind: str                  # "dense", "conv", "pool", "flatten"
    index: int = -1            # weight index of a dense/conv op
    relu: bool = False
    stride: int = 1
    padding: int = 0
    kernel: int = 2
    name: str = ""


class _Fixed:
    """Activation ranges fixed in advance (QAT inference, or gradients at given ranges)."""

    def __init__(self, ranges):
        self.ranges = ranges

    def __call__(self, point, value):
        return self.ranges[point]


class _Observed:
    """Activation ranges from moving-average min-max observers, updated on every batch."""

    def __init__(self, momentum):
        self.momentum = momentum
        self.observers = {}

    def __call__(self, point, value):
        obs = self.observers.setdefault(point, MovingAverageMinMax(self.momentum))
        obs.update(value)
        lo, hi = obs.range
        return float(lo), float(hi)


def _fq_weight(w, bits=8):
    """Per-output-channel symmetric narrow fake quantization of ``bits`` bits (codes
    ``[-(2^(b-1) - 1), 2^(b-1) - 1]``, int8: [-127, 127]) and its STE mask."""
    wm = w.reshape(w.shape[0], -1)
    q = 2 ** (bits - 1) - 1
    scale, _ = qparams(wm, axis=0, bits=bits, symmetric=True, narrow=True)
    wq = fake_quantize(wm, scale, 0, qmin=-q, qmax=q, axis=0)
    ste = ste_mask(wm, scale, 0, qmin=-q, qmax=q, axis=0)
    return wq.reshape(w.shape), ste.reshape(w.shape)


def _fq_act(h, lo, hi, bits=8):
    """Affine fake quantization of ``bits`` bits over ``[lo, hi]`` (codes
    ``[-2^(b-1), 2^(b-1) - 1]``) and its STE mask."""
    qmin, qmax = -2 ** (bits - 1), 2 ** (bits - 1) - 1
    scale, zp = qparams_from_range(lo, hi, bits=bits)
    return (fake_quantize(h, scale, zp, qmin=qmin, qmax=qmax),
            ste_mask(h, scale, zp, qmin=qmin, qmax=qmax))


#: Bit widths :func:`train`'s ``qat_bits`` accepts for the weights and the activations.
QAT_BITS_RANGE = (2, 8)


def _check_qat_bits(qat_bits):
    """``(weight bits, activation bits)``, each an integer in :data:`QAT_BITS_RANGE`."""
    if not isinstance(qat_bits, (tuple, list)) or len(qat_bits) != 2:
        raise ValueError(f"qat_bits must be a pair (weight bits, activation bits), "
                         f"not {qat_bits!r}")
    lo, hi = QAT_BITS_RANGE
    return (check_int(qat_bits[0], "qat_bits[0] (weight bits)", lo=lo, hi=hi),
            check_int(qat_bits[1], "qat_bits[1] (activation bits)", lo=lo, hi=hi))


def _maxpool_forward(x, kernel, stride):
    h, w = x.shape[2:]
    oh, ow = (h - kernel) // stride + 1, (w - kernel) // stride + 1
    out = arg = None
    for t in range(kernel * kernel):
        i, j = divmod(t, kernel)
        tap = x[:, :, i:i + stride * oh:stride, j:j + stride * ow:stride]
        if out is None:
            out, arg = tap.copy(), np.zeros(tap.shape, np.int64)
        else:
            better = tap > out            # strict: the first maximum wins a tie
            out = np.where(better, tap, out)
            arg = np.where(better, t, arg)
    return out, arg


def _maxpool_backward(g, arg, shape, kernel, stride):
    dx = np.zeros(shape, g.dtype)
    oh, ow = g.shape[2:]
    for t in range(kernel * kernel):
        i, j = divmod(t, kernel)
        dx[:, :, i:i + stride * oh:stride, j:j + stride * ow:stride] += np.where(arg == t, g, 0)
    return dx


class _Network:
    """Forward, backward, masks and graph export shared by :class:`MLP` and :class:`CNN`.

    A subclass is a dataclass with ``weights``, ``biases`` and ``masks`` lists and an
    ``_arch()`` listing its operations.
    """

    # --- structure --------------------------------------------------------------------------

    def _arch(self):  # pragma: no cover (abstract)
        raise NotImplementedError

    @property
    def input_shape(self):  # pragma: no cover (abstract)
        raise NotImplementedError

    def layer_names(self):
        """Names of the weighted layers (``weights[i]`` belongs to ``layer_names()[i]``)."""
        return [op.name for op in self._arch() if op.index >= 0]

    def layer_index(self, name):
        """Index in ``weights`` of the weighted layer called ``name``."""
        names = self.layer_names()
        if name not in names:
            raise ValueError(f"layer must be one of {', '.join(map(repr, names))}, "
                             f"not {name!r}")
        return names.index(name)

    def to_layers(self):
        """The float graph (:mod:`.graph` layers, weights copied) of this network."""
        layers = []
        for op in self._arch():
            if op.kind == "dense":
                layers.append(Dense(self.weights[op.index].copy(), self.biases[op.index].copy(),
                                    relu=op.relu, name=op.name))
            elif op.kind == "conv":
                layers.append(Conv2d(self.weights[op.index].copy(),
                                     self.biases[op.index].copy(), stride=op.stride,
                                     padding=op.padding, relu=op.relu, name=op.name))
            elif op.kind == "pool":
                layers.append(MaxPool2d(op.kernel, op.stride, name=op.name))
            else:
                layers.append(Flatten(name=op.name))
        return layers

    def copy(self):
        return dataclasses.replace(
            self, weights=[w.copy() for w in self.weights],
            biases=[b.copy() for b in self.biases],
            masks=[None if m is None else m.copy() for m in self.masks])

    def full_masks(self):
        """``masks`` padded with ``None`` to one entry per weighted layer."""
        masks = list(self.masks) + [None] * (len(self.weights) - len(self.masks))
        return masks[:len(self.weights)]

    def apply_masks(self):
        for i, m in enumerate(self.masks):
            if m is not None:
                self.weights[i] *= m

    def sparsity(self):
        """Fraction of the weights (all weighted layers together) that are exactly zero."""
        total = sum(w.size for w in self.weights)
        return float(sum(int(np.count_nonzero(w == 0)) for w in self.weights) / total)

    def _check_x(self, x, name="x"):
        x = check_finite(as_float_array(x, name), name)
        if x.shape[1:] != tuple(self.input_shape) or x.ndim < 2:
            dims = ", ".join(map(str, self.input_shape))
            raise ValueError(f"{name} must have shape (N, {dims}), not {x.shape}")
        return x

    # --- passes -----------------------------------------------------------------------------

    def _forward(self, x, ranges=None, bits=(8, 8)):
        """Logits, every op's output (input first) and the tape for :meth:`_backward`.

        ``ranges(point, value) -> (lo, hi)`` turns on fake quantization (QAT): ``point`` 0 is
        the input, ``i + 1`` the output of op ``i``; ``bits`` = (weight bits, activation
        bits) of the fake quantizers.
        """
        wbits, abits = bits
        h = x
        if ranges is not None:
            h, _ = _fq_act(h, *ranges(0, h), abits)
        outs, tape = [h], []
        for op in self._arch():
            rec = {"op": op, "shape": h.shape}
            if op.kind in ("dense", "conv"):
                w, b = self.weights[op.index], self.biases[op.index]
                rec["wste"] = None
                if ranges is not None:
                    w, rec["wste"] = _fq_weight(w, wbits)
                wm = w.reshape(w.shape[0], -1)
                if op.kind == "dense":
                    rec["a"] = h
                    y = h @ wm.T + b
                else:
                    cols = im2col(h, w.shape[2:], stride=op.stride, padding=op.padding)
                    n, oh, ow = cols.shape[:3]
                    rec["a"] = cols.reshape(n * oh * ow, -1)
                    rec["ohw"] = (oh, ow)
                    y = (rec["a"] @ wm.T + b).reshape(n, oh, ow, -1).transpose(0, 3, 1, 2)
                rec["wm"] = wm
                if op.relu:
                    rec["pos"] = y > 0
                    y = np.maximum(y, 0)
                rec["ste"] = None
                if ranges is not None:
                    y, rec["ste"] = _fq_act(y, *ranges(len(outs), y), abits)
                h = np.ascontiguousarray(y)
            elif op.kind == "pool":
                h, rec["arg"] = _maxpool_forward(h, op.kernel, op.stride)
            else:
                h = h.reshape(h.shape[0], -1)
            outs.append(h)
            tape.append(rec)
        return h, outs, tape

    def _backward(self, tape, g, signals=None, inject=None):
        """``[(dW, db)]`` per weighted layer from d loss / d logits (STE through fake quant).

        A dict ``signals`` receives, for every weighted layer's index, its error signal
        ``d loss / d z`` (``z``: the pre-activation, so after the ReLU's gate), one row per
        sample (dense) or per sample and output pixel (convolution), one column per unit.
        A dict ``inject`` maps op positions ``k`` (in ``_arch()``) to a further
        ``d loss / d (output of op k)``, added where the pass reaches that output (a loss on
        hidden features).
        """
        grads = [None] * len(self.weights)
        for k in range(len(tape) - 1, -1, -1):
            rec = tape[k]
            op = rec["op"]
            if inject and k in inject:
                g = g + inject[k].astype(g.dtype)
            if op.kind in ("dense", "conv"):
                if rec["ste"] is not None:
                    g = g * rec["ste"]
                if op.relu:
                    g = g * rec["pos"]
                if op.kind == "conv":
                    g2 = g.transpose(0, 2, 3, 1).reshape(-1, g.shape[1])
                else:
                    g2 = g
                dw = (g2.T @ rec["a"]).reshape(self.weights[op.index].shape)
                if rec["wste"] is not None:
                    dw = dw * rec["wste"]
                grads[op.index] = (dw, g2.sum(axis=0))
                if signals is not None:
                    signals[op.index] = g2
                if k == 0:
                    break
                da = g2 @ rec["wm"]
                if op.kind == "dense":
                    g = da
                else:
                    g = _col2im(da, rec["shape"], self.weights[op.index].shape[2:], op.stride,
                                op.padding, rec["ohw"])
            elif op.kind == "pool":
                g = _maxpool_backward(g, rec["arg"], rec["shape"], op.kernel, op.stride)
            else:
                g = g.reshape(rec["shape"])
        return grads

    def forward(self, x, *, keep=False, act_ranges=None, qat_bits=(8, 8)):
        """Logits; with ``keep=True`` also every layer's output, input first (as
        :func:`.graph.float_forward`).

        ``act_ranges`` (one ``(lo, hi)`` per entry of that list, e.g.
        :attr:`TrainLog.act_ranges`) runs the fake-quantized network QAT trains, with
        ``qat_bits`` = (weight bits, activation bits) as :func:`train`'s.
        """
        x = self._check_x(x)
        bits = _check_qat_bits(qat_bits)
        ranges = None if act_ranges is None else _Fixed(self._check_ranges(act_ranges))
        logits, outs, _ = self._forward(x, ranges, bits)
        return (logits, outs) if keep else logits

    def gradients(self, x, grad_logits, *, act_ranges=None, grad_outputs=None):
        """``[(dW, db)]`` of every weighted layer given d loss / d logits at input ``x``.

        With ``act_ranges`` the pass is the fake-quantized one, differentiated with the
        straight-through estimator (what QAT steps with). ``grad_outputs`` maps weighted
        layer names to a further ``d loss / d (that layer's output)`` (after its ReLU, before
        any pooling, as :meth:`forward` with ``keep=True`` lists it), for a loss that also
        depends on hidden features (:func:`attention_transfer_loss`, :func:`hint_loss`).
        """
        x = self._check_x(x)
        ranges = None if act_ranges is None else _Fixed(self._check_ranges(act_ranges))
        logits, outs, tape = self._forward(x, ranges)
        g = check_finite(as_float_array(grad_logits, "grad_logits"), "grad_logits")
        if g.shape != logits.shape:
            raise ValueError(f"grad_logits must have the logits' shape {logits.shape}, "
                             f"not {g.shape}")
        inject = {}
        if grad_outputs is not None:
            if not isinstance(grad_outputs, dict):
                raise TypeError(f"grad_outputs must be a dict of layer name -> array, not "
                                f"{type(grad_outputs).__name__}")
            for name, go in grad_outputs.items():
                k = self._op_position(name)
                where = f"grad_outputs[{name!r}]"
                go = check_finite(as_float_array(go, where), where)
                if go.shape != outs[k + 1].shape:
                    raise ValueError(f"{where} must have the layer output's shape "
                                     f"{outs[k + 1].shape}, not {go.shape}")
                inject[k] = go
        return self._backward(tape, g.astype(logits.dtype), inject=inject)

    def _op_position(self, name):
        """Position in ``_arch()`` of the weighted layer ``name`` (its output is
        ``outs[position + 1]`` of :meth:`_forward`)."""
        self.layer_index(name)
        return [op.name for op in self._arch()].index(name)

    def _check_ranges(self, act_ranges):
        n = len(self._arch()) + 1
        if not isinstance(act_ranges, (list, tuple)) or len(act_ranges) != n:
            got = len(act_ranges) if isinstance(act_ranges, (list, tuple)) else act_ranges
            raise ValueError(f"act_ranges must be a list of {n} (lo, hi) pairs (input and "
                             f"every layer), not {got!r}")
        return [(float(lo), float(hi)) for lo, hi in act_ranges]

    def fit(self, x, y, *, epochs=30, lr=3e-3, batch=64, seed=0, loss_grad=None, **options):
        """:func:`train` this network in place; returns ``self`` (the log is dropped)."""
        train(self, x, y, epochs=epochs, lr=lr, batch=batch, seed=seed, loss_grad=loss_grad,
              **options)
        return self


def _col2im(da, shape, kernel, stride, padding, ohw):
    """Adjoint of im2col: scatter-add patch gradients ``(N*OH*OW, C*KH*KW)`` into NCHW."""
    n, c, h, w = shape
    kh, kw = kernel
    oh, ow = ohw
    cols = da.reshape(n, oh, ow, c, kh, kw)
    dxp = np.zeros((n, c, h + 2 * padding, w + 2 * padding), da.dtype)
    for i in range(kh):
        for j in range(kw):
            dxp[:, :, i:i + stride * oh:stride, j:j + stride * ow:stride] += \
                cols[:, :, :, :, i, j].transpose(0, 3, 1, 2)
    return dxp[:, :, padding:padding + h, padding:padding + w]


def _check_sizes(sizes, name):
    if not isinstance(sizes, (list, tuple)):
        raise TypeError(f"{name} must be a list of integers, not {type(sizes).__name__}")
    return [check_int(s, "layer width", lo=1) for s in sizes]


@dataclass
class MLP(_Network):
    """``x -> relu(x W0^T + b0) -> ... -> logits``; weights are (out, in) like PyTorch.

    Layers are named ``fc0``, ``fc1``, ...; ReLU after every layer but the last.
    ``masks[i]`` (optional, bool like ``weights[i]``) is re-applied after every update, so a
    pruned weight stays zero while the network is fine-tuned.
    """

    weights: list
    biases: list
    masks: list = field(default_factory=list)

    @classmethod
    def init(cls, sizes, seed=0):
        """He-initialized MLP with layer widths ``sizes`` (input first, classes last)."""
        if isinstance(sizes, (list, tuple)) and len(sizes) < 2:
            raise ValueError(f"sizes must list at least an input and an output width, "
                             f"not {sizes!r}")
        sizes = _check_sizes(sizes, "sizes")
        rng = np.random.default_rng(seed)
        weights = [(rng.standard_normal((o, i)) * np.sqrt(2.0 / i)).astype(np.float32)
                   for i, o in zip(sizes[:-1], sizes[1:])]
        biases = [np.zeros(o, np.float32) for o in sizes[1:]]
        return cls(weights, biases)

    @property
    def input_shape(self):
        return (self.weights[0].shape[1],)

    def _arch(self):
        last = len(self.weights) - 1
        return [_Op("dense", i, relu=i < last, name=f"fc{i}") for i in range(len(self.weights))]

    def backward(self, acts, grad_logits):
        """Gradients ``[(dW, db)]`` of each layer from ``forward(x, keep=True)``'s outputs."""
        tape = [{"op": op, "shape": acts[op.index].shape, "a": acts[op.index],
                 "wm": self.weights[op.index], "wste": None, "ste": None,
                 "pos": acts[op.index + 1] > 0} for op in self._arch()]
        return self._backward(tape, grad_logits)


@dataclass
class CNN(_Network):
    """Convolutions then dense layers, NCHW input.

    Every 4-d weight (OIHW) is a ``conv{i}``: stride 1, "same" padding ``kh // 2``, ReLU, then
    ``pool x pool`` max pooling with stride ``pool``; then a flatten (C order) and the dense
    layers ``fc{j}`` (ReLU after all but the last). The default (:meth:`init`) for the 8x8
    digits: conv0 1->8 3x3, pool, conv1 8->16 3x3, pool, flatten (64), fc0 64->32, fc1 32->10;
    GEMM reduction lengths 9, 72, 64 and 32.
    """

    weights: list
    biases: list
    masks: list = field(default_factory=list)
    input_shape: tuple = (1, 8, 8)
    pool: int = 2

    @classmethod
    def init(cls, channels=(8, 16), hidden=(32,), classes=10, *, input_shape=(1, 8, 8),
             kernel=3, pool=2, seed=0):
        """He-initialized CNN: ``channels`` of the convolutions, ``hidden`` dense widths."""
        channels = _check_sizes(channels, "channels")
        hidden = _check_sizes(hidden, "hidden")
        classes = check_int(classes, "classes", lo=2)
        kernel = check_int(kernel, "kernel", lo=1)
        pool = check_int(pool, "pool", lo=1)
        if not isinstance(input_shape, (list, tuple)) or len(input_shape) != 3:
            raise ValueError(f"input_shape must be (C, H, W), not {input_shape!r}")
        input_shape = tuple(check_int(v, "input_shape entry", lo=1) for v in input_shape)
        rng = np.random.default_rng(seed)
        weights, c = [], input_shape[0]
        for o in channels:
            fan_in = c * kernel * kernel
            weights.append((rng.standard_normal((o, c, kernel, kernel)) * np.sqrt(2.0 / fan_in)
                            ).astype(np.float32))
            c = o
        h, w = input_shape[1:]
        for _ in channels:
            h, w = (h - pool) // pool + 1, (w - pool) // pool + 1
            if h < 1 or w < 1:
                raise ValueError(f"input_shape {input_shape} is too small for "
                                 f"{len(channels)} pooling stages of {pool}")
        sizes = [c * h * w, *hidden, classes]
        for i, o in zip(sizes[:-1], sizes[1:]):
            weights.append((rng.standard_normal((o, i)) * np.sqrt(2.0 / i)).astype(np.float32))
        biases = [np.zeros(wt.shape[0], np.float32) for wt in weights]
        return cls(weights, biases, input_shape=input_shape, pool=pool)

    def _arch(self):
        ops = []
        convs = [i for i, w in enumerate(self.weights) if w.ndim == 4]
        for k, i in enumerate(convs):
            pad = self.weights[i].shape[2] // 2
            ops.append(_Op("conv", i, relu=True, padding=pad, name=f"conv{k}"))
            ops.append(_Op("pool", kernel=self.pool, stride=self.pool, name=f"pool{k}"))
        ops.append(_Op("flatten", name="flatten"))
        dense = [i for i, w in enumerate(self.weights) if w.ndim == 2]
        for k, i in enumerate(dense):
            ops.append(_Op("dense", i, relu=k < len(dense) - 1, name=f"fc{k}"))
        return ops

    def feature_shape(self):
        """``(C, H, W)`` of the last pooling stage's output (what the flatten sees)."""
        c, h, w = self.input_shape
        for wt in self.weights:
            if wt.ndim == 4:
                c = wt.shape[0]
                h, w = (h - self.pool) // self.pool + 1, (w - self.pool) // self.pool + 1
        return c, h, w


# --- training ------------------------------------------------------------------------------

def _check_names(model, layers, what):
    names = model.layer_names()
    if layers is None:
        return list(names)
    if isinstance(layers, str) or not isinstance(layers, (list, tuple)):
        raise TypeError(f"{what} layers must be a list of layer names, not {layers!r}")
    for name in layers:
        if name not in names:
            raise ValueError(f"{what} layers must name layers among "
                             f"{', '.join(map(repr, names))}, not {name!r}")
    return list(layers)


@dataclass(frozen=True)
class Distillation:
    """Weights, temperature and logit standardization of :func:`distillation_loss` for
    :func:`train`.

    The defaults are logit-standardized distillation (Sun et al. 2024) at ``T = 1`` with the
    soft term weighted 0.9 and the task term 0.1, not Hinton's plain form of
    :func:`distillation_loss`'s defaults (``T = 4``, 0.5 / 0.5, which were these defaults
    before issue 18). The plain form asks the student for the teacher's logit scale (see
    :func:`distillation_loss`), and a small student trained alongside to fit the labels
    ends up worse than trained alone. Measured on the digits flows of
    :mod:`sparsemac.flows` (training split less its 10 % holdout, 60 epochs, Adam 3e-3 cosine,
    test accuracy of the float student, paired over seeds, mean +- standard deviation of the
    per-seed difference, seeds won / tied / lost):

    - MLP 64-32-10 from a 64-512-256-10 teacher, 30 seeds: plain ``T = 4``, 0.5 / 0.5
      -0.63 +- 0.40 points against the student alone (1 / 2 / 27); these defaults
      +0.01 +- 0.51 (10 / 10 / 10; int8 +0.05 +- 0.60), within noise. The soft term alone
      (``alpha = 0``) does better here (+0.24 +- 0.67) but worse on the CNN.
    - CNN (4, 8) + 16 from (32, 64) + 128, 20 seeds: plain +0.23 +- 1.09, these defaults
      -0.04 +- 1.63 (int8 +0.08 +- 1.56), both within noise.
    - Both students underfit at that learning rate; at 1e-2 for the student alone and
      distilled, these defaults gain +0.14 +- 0.72 points on the MLP (30 seeds) and
      +0.87 points on the CNN (20 seeds), the plain form -0.01 and +0.85.
    - KD + QAT + 2:4 fine-tuning of the 64-128-64-10 MLP against the same fine-tuning on the
      labels alone, 30 seeds: these defaults +0.14 +- 0.45, plain -0.03 +- 0.43.
    - The flows' other MLP students: MNIST-1D (10 seeds) plain -2.45 +- 1.83 (1 / 0 / 9),
      these defaults -0.06 +- 1.62; MNIST (6 seeds) plain -0.10, these defaults +0.38.

    - The flows' five students again (issue 18, a later session), float test accuracy, the
      distilled student minus the student alone at the same learning rate, 10 seeds each,
      at 3e-3 / 1e-2: digits MLP +0.07 +- 0.24 / +0.00 +- 0.76, digits CNN -0.29 +- 1.81 /
      +1.20 +- 1.04, MNIST MLP +0.43 +- 0.56 / +0.57 +- 0.77, MNIST CNN +0.56 +- 1.53 /
      +1.67 +- 3.27, MNIST-1D MLP +0.15 +- 1.84 / -0.51 +- 1.65. The students alone score
      higher on the held-out slice at 1e-2 on all five, and distillation then helps the
      CNNs (the digits CNN beyond noise) but not the MLPs. On the MLPs nothing else tried
      did either, at 1e-2: ``T`` 2 or 4, the soft term alone, Hinton's 0.5 / 0.5 at ``T = 4``
      (digits -0.24 to +0.38, MNIST-1D -1.66 to -0.24, 10 seeds); an early-stopped teacher
      (a third or 15 % of the epochs; MNIST-1D -0.64 to +0.43); function matching (the
      teacher run on mixup blends of the batch; digits -0.07 at 3e-3, -0.63 at 1e-2).

    - What did help (issue 18, a later session; same measure, 10 seeds): soft targets
      averaged over three teachers trained from different seeds
      (:func:`ensemble_logits`), against one teacher in the same runs, at 3e-3 / 1e-2:
      digits MLP +0.16 +- 0.43 / +0.20 +- 0.44 (one teacher +0.07 / +0.00), MNIST-1D MLP
      -0.29 +- 1.86 / +0.21 +- 0.99 (one teacher +0.15 / -0.51); at 1e-2 with three times
      the epochs for both arms, +0.60 +- 0.43 (8 seeds won, none lost) and +0.93 +- 1.21
      (7 won, 2 lost), one teacher +0.47 and -0.21. The digits CNN at 1e-2, 3 seeds:
      +0.15 +- 0.13 (one teacher +0.74). :mod:`sparsemac.flows` therefore trains its
      students at 1e-2 (what the students alone score best at on the held-out slice) and
      distils from three teachers; its demo measures the result, int8, over 5 seeds.

    The teacher fitting its training data at 100 % is not the cause: its logits are hardly
    sharper there than on the test split (mean top-two margin 12.1 against 11.5, 5 seeds),
    and cross-fitted soft targets (5 folds, each sample's logits from a teacher that did not
    see it; 10 seeds on the whole training split) did worse (-0.71 +- 0.44 points with the
    plain form), their teachers being weaker and wrong on 2.2 % of the samples.

    Members
    -------
    temperature : float
        ``T > 0``.
    alpha, beta : float
        Non-negative weights of the task and distillation terms.
    standardize : bool
        Z-score both logits in the distillation term.
    """

    temperature: float = 1.0
    alpha: float = 0.1
    beta: float = 0.9
    standardize: bool = True

    def __post_init__(self):
        object.__setattr__(self, "temperature",
                           _real(self.temperature, "temperature", lo=0.0, lo_open=True))
        object.__setattr__(self, "alpha", _real(self.alpha, "alpha", lo=0.0, lo_open=False))
        object.__setattr__(self, "beta", _real(self.beta, "beta", lo=0.0, lo_open=False))
        object.__setattr__(self, "standardize", check_bool(self.standardize, "standardize"))


def _layer_name(value, name):
    if not isinstance(value, str):
        raise TypeError(f"{name} must be a layer name, not {value!r}")
    return value


@dataclass(frozen=True)
class AttentionTransfer:
    """Attention transfer (Zagoruyko & Komodakis 2017) for :func:`train` (``attention=``).

    Adds :func:`attention_transfer_loss` between the student's and the teacher's outputs of
    paired convolution layers (after the ReLU, before the pooling; with QAT the student's
    fake-quantized output) to the training loss. MLPs have no analogue here: a dense layer's
    units have no spatial layout that aligns a student's units with a teacher's of another
    width, so :func:`train` refuses dense layers (use :class:`Hint`, whose regressor learns
    the alignment).

    Members
    -------
    layers : tuple, optional
        The pairs ``(student layer, teacher layer)`` of convolution layer names (a single name
        pairs the layers of that name in both networks); ``None`` pairs every convolution of
        the student with the teacher's of the same name. Paired layers must have maps of one
        size.
    beta : float
        Weight ``>= 0`` of the term.
    p : float
        Exponent ``>= 1`` of :func:`attention_map`.
    """

    layers: tuple = None
    beta: float = 1.0
    p: float = 2.0

    def __post_init__(self):
        if self.layers is not None:
            if isinstance(self.layers, str) or not isinstance(self.layers, (list, tuple)):
                raise TypeError(f"attention layers must be a list of layer names or (student, "
                                f"teacher) pairs, not {self.layers!r}")
            pairs = []
            for item in self.layers:
                if isinstance(item, str):
                    item = (item, item)
                if not isinstance(item, (list, tuple)) or len(item) != 2:
                    raise TypeError(f"attention layers must be layer names or (student, "
                                    f"teacher) pairs, not {item!r}")
                pairs.append((_layer_name(item[0], "attention student layer"),
                              _layer_name(item[1], "attention teacher layer")))
            object.__setattr__(self, "layers", tuple(pairs))
        object.__setattr__(self, "beta", _real(self.beta, "beta", lo=0.0, lo_open=False))
        object.__setattr__(self, "p", _real(self.p, "p", lo=1.0, lo_open=False))


@dataclass(frozen=True)
class Hint:
    """A FitNets hint (Romero et al. 2015) for :func:`train` (``hint=``).

    Adds :func:`hint_loss` between the output of the student's *guided* layer, mapped by a
    linear regressor ``r`` learned with the student, and the output of the teacher's *hint*
    layer (outputs after the ReLU, before any pooling; with QAT the student's fake-quantized
    output) to the training loss. Both layers must be dense, or both convolutions with maps of
    one size (the regressor then acts per pixel, a 1x1 convolution). The regressor is
    initialized ``W ~ N(0, 1 / C_s)``, ``b = 0`` from the training seed, trained by the same
    Adam steps, and returned in :attr:`TrainLog.hint_regressor`; it is not part of the
    student.

    Members
    -------
    student_layer : str
        The student's guided layer.
    teacher_layer : str
        The teacher's hint layer.
    weight : float
        Weight ``>= 0`` of the term.
    """

    student_layer: str
    teacher_layer: str
    weight: float = 1.0

    def __post_init__(self):
        _layer_name(self.student_layer, "hint student_layer")
        _layer_name(self.teacher_layer, "hint teacher_layer")
        object.__setattr__(self, "weight", _real(self.weight, "weight", lo=0.0, lo_open=False))


@dataclass(frozen=True)
class GradualPruning:
    """Magnitude masks recomputed following a cubic :class:`.prune.PruningSchedule`.

    At every update step of ``schedule`` (counted in optimizer steps from 0) the masks of
    ``layers`` (names; ``None`` for every weighted layer) are recomputed so that the fraction
    ``schedule.sparsity(step)`` of their weights is zero: within each layer
    (``scope="layer"``) or ranked across all of them (``scope="global"``). Already-pruned
    weights are zero, hence the smallest, so the masks only grow.
    """

    schedule: PruningSchedule
    layers: tuple = None
    scope: str = "layer"

    def __post_init__(self):
        if not isinstance(self.schedule, PruningSchedule):
            raise TypeError(f"schedule must be a PruningSchedule, not "
                            f"{type(self.schedule).__name__}")
        check_choice(self.scope, "scope", PRUNING_SCOPES)


@dataclass(frozen=True)
class NMPruning:
    """N:M masks of ``layers`` along the GEMM reduction axis, set at the start and held.

    In every group of ``m`` consecutive weights of a row of ``w.reshape(out, -1)`` the ``n``
    largest magnitudes are kept (:func:`.prune.prune_n_m`, axis 1); each named layer's
    reduction length must be a multiple of ``m``.

    ``start_step`` (default 0: at the start) delays the masks to that optimizer step, where
    they are computed from the weights reached by then; before it, a :class:`CombinedLoss`
    prune term pushes the weights the N:M masks of the current weights would remove towards
    zero, so the cut removes little. It must be less than the number of training steps.
    """

    n: int
    m: int
    layers: tuple
    start_step: int = 0

    def __post_init__(self):
        object.__setattr__(self, "n", check_int(self.n, "N", lo=1))
        object.__setattr__(self, "m", check_int(self.m, "M", lo=1))
        object.__setattr__(self, "start_step", check_int(self.start_step, "start_step", lo=0))
        prune_n_m(np.zeros((1, self.m)), self.n, self.m, axis=1)   # validates N and M


@dataclass(frozen=True)
class SparseRegularization:
    """Sparsity-inducing penalty :func:`train` adds to the loss (:func:`sparsity_penalty`).

    ``R(W) = sum_layers lambda_l1 * sum|w| + lambda_group * sum_g ||w_g||_2``, over the
    weights (not the biases) of ``layers``, the groups ``g`` being the output neurons / filters
    (rows of ``w.reshape(out, -1)``): L1 drives single weights to zero (seeds 001 and 003,
    "sparse regularization"), the group lasso whole filters (Wen et al. 2016, "Learning
    Structured Sparsity in Deep Neural Networks").

    Members
    -------
    lambda_l1, lambda_group : float
        Finite, non-negative strengths (0 turns a term off).
    layers : tuple of str, optional
        Names of the regularized layers; ``None`` for every weighted layer but the output
        layer, whose groups are the classes (the layers :func:`prune_filters` prunes).
    """

    lambda_l1: float = 0.0
    lambda_group: float = 0.0
    layers: tuple = None

    def __post_init__(self):
        for name in ("lambda_l1", "lambda_group"):
            object.__setattr__(self, name, _real(getattr(self, name), name, lo=0.0,
                                                 lo_open=False))


def sparsity_penalty(w, *, lambda_l1=0.0, lambda_group=0.0):
    """Value and (sub)gradient of L1 plus group-lasso regularization of one weight tensor.

    ``R = lambda_l1 * sum_i |w_i| + lambda_group * sum_g ||w_g||_2`` with the groups ``g``
    the slices along axis 0 (output neurons / filters; Wen et al. 2016), and
    ``dR/dw = lambda_l1 * sign(w) + lambda_group * w_g / ||w_g||_2``: the subgradient 0 at a
    zero weight and at a zero group. Computed in float64.

    Parameters
    ----------
    w : float array, at least 1-d
        Weights, ``(out, in)`` or OIHW.
    lambda_l1, lambda_group : float
        Finite, non-negative strengths.

    Returns
    -------
    (value, grad) : float and an array like ``w`` (same dtype).

    Raises
    ------
    TypeError
        ``w`` not floating point, or a strength not a real number.
    ValueError
        ``w`` 0-d or not finite, or a strength negative or not finite.
    """
    w = check_finite(as_float_array(w, "w"), "w")
    if w.ndim < 1:
        raise ValueError("w must have at least 1 dimension, not 0")
    lambda_l1 = _real(lambda_l1, "lambda_l1", lo=0.0, lo_open=False)
    lambda_group = _real(lambda_group, "lambda_group", lo=0.0, lo_open=False)
    rows = w.astype(np.float64).reshape(w.shape[0], -1)
    norms = np.sqrt(np.square(rows).sum(axis=1, keepdims=True))
    unit = np.divide(rows, norms, out=np.zeros_like(rows), where=norms > 0)
    value = lambda_l1 * np.abs(rows).sum() + lambda_group * norms.sum()
    grad = lambda_l1 * np.sign(rows) + lambda_group * unit
    return float(value), grad.reshape(w.shape).astype(w.dtype)


@dataclass(frozen=True)
class CombinedLoss:
    """Seed 000's joint objective ``L_total = gamma * L_finetune + alpha * L_quant +
    beta * L_prune`` (quantization and pruning combined), a :func:`train` option.

    ``L_finetune``
        The task loss :func:`train` would use anyway: cross-entropy, or the distillation loss
        with ``teacher_logits`` (plus attention / hint terms with a ``teacher``).
    ``L_quant``
        The weights' quantization error, ``sum_layers mean((w - fq(w))^2)``
        (:func:`quantization_error`), ``fq`` the per-channel symmetric fake quantizer at the
        QAT weight bits (``qat_bits[0]``, 8 by default; with or without ``qat``).
    ``L_prune``
        The squared magnitude of the weights the pruning will remove,
        ``sum_layers mean(((1 - keep) * w)^2)`` (:func:`pruning_error`) over the masks
        *pending* at each step: with a :class:`GradualPruning` the magnitude masks at the
        schedule's final sparsity (its scope) of the current weights; with an
        :class:`NMPruning` before its ``start_step`` the N:M masks of the current weights;
        otherwise ``model.masks``. Masks already applied hold their weights at zero, so the
        term is 0 there; it is 0 when there is no mask at all. It drives the weights about to
        be pruned to zero before the mask cuts them.

    The gradients (STE convention): ``dL_quant/dw = 2 (w - fq(w)) / n`` with ``fq(w)``
    treated as a constant (exact away from rounding ties except at each channel's largest
    magnitude, through which the scale depends on ``w``); ``dL_prune/dw =
    2 (1 - keep) w / n`` with the masks constant. They are added, times ``alpha`` and
    ``beta``, to ``gamma`` times the task gradient before any :class:`SparseRegularization`
    penalty, ``grad_bits`` quantization and the optimizer step; the biases get ``gamma``
    times theirs. :attr:`TrainLog.losses` logs ``L_total``, :attr:`TrainLog.terms` the
    unweighted terms. ``CombinedLoss(alpha=0, beta=0, gamma=1)`` trains exactly as without.

    Members
    -------
    alpha, beta : float
        Finite, non-negative weights of the quantization and pruning terms.
    gamma : float
        Finite, positive weight of the task loss.
    """

    alpha: float = 0.0
    beta: float = 0.0
    gamma: float = 1.0

    def __post_init__(self):
        for name in ("alpha", "beta"):
            object.__setattr__(self, name, _real(getattr(self, name), name, lo=0.0,
                                                 lo_open=False))
        object.__setattr__(self, "gamma", _real(self.gamma, "gamma", lo=0.0, lo_open=True))


def quantization_error(w, *, bits=8):
    """``mean((w - fq(w))^2)`` and its STE gradient ``2 (w - fq(w)) / w.size``.

    ``fq``: per-output-channel (axis 0) symmetric narrow fake quantization of ``bits`` bits,
    the weights' quantizer of QAT. ``fq(w)`` is held constant in the gradient (the
    straight-through convention): exact wherever a small change of ``w`` moves no value across
    a rounding boundary and leaves the channel's scale alone, i.e. everywhere but at each
    channel's largest magnitude (whose error is 0). Computed in float64.

    Returns
    -------
    (value, grad) : float and an array like ``w`` (same dtype).

    Raises
    ------
    TypeError, ValueError
        ``w`` not a finite float array of at least 1 dimension, or ``bits`` not in 2..8.
    """
    w = check_finite(as_float_array(w, "w"), "w")
    if w.ndim < 1:
        raise ValueError("w must have at least 1 dimension, not 0")
    bits = check_int(bits, "bits", lo=QAT_BITS_RANGE[0], hi=QAT_BITS_RANGE[1])
    w64 = w.astype(np.float64)
    d = w64 - _fq_weight(w64, bits)[0]
    return float(np.mean(d * d)), (2.0 * d / w.size).astype(w.dtype)


def pruning_error(w, keep):
    """``mean(((1 - keep) * w)^2)`` and its gradient ``2 (1 - keep) w / w.size``.

    ``keep`` is the bool mask of the weights that stay (``None``: all stay, value 0); the
    term measures the weights the mask removes. Computed in float64.

    Raises
    ------
    TypeError, ValueError
        ``w`` not a finite float array, or ``keep`` not a bool array of ``w``'s shape.
    """
    w = check_finite(as_float_array(w, "w"), "w")
    if keep is None:
        return 0.0, np.zeros_like(w)
    if not isinstance(keep, np.ndarray) or keep.dtype != np.bool_ or keep.shape != w.shape:
        got = f"{keep.dtype} {keep.shape}" if isinstance(keep, np.ndarray) else \
            type(keep).__name__
        raise ValueError(f"keep must be None or a bool array of shape {w.shape}, not {got}")
    d = np.where(keep, 0.0, w.astype(np.float64))
    return float(np.mean(d * d)), (2.0 * d / max(w.size, 1)).astype(w.dtype)


def _pending_masks(model, pruning, names, step):
    """The keep-masks :class:`CombinedLoss`'s prune term measures at ``step`` (one per
    weighted layer, ``None`` for none)."""
    masks = model.full_masks()
    if isinstance(pruning, GradualPruning):
        idx = [model.layer_index(n) for n in names]
        final = float(pruning.schedule.final)
        if pruning.scope == "global":
            new = global_magnitude_masks([model.weights[i] for i in idx], final)
        else:
            new = [magnitude_mask(model.weights[i], amount=final) for i in idx]
        for i, m in zip(idx, new):
            masks[i] = m if masks[i] is None else m & masks[i]
    elif isinstance(pruning, NMPruning) and step < pruning.start_step:
        masks = _n_m_masks(model, pruning, names)
    return masks


def _add_combined(model, combined, wbits, masks, grads):
    """Scale ``grads`` (``[dW0, db0, dW1, ..., extra]``, in place) by ``gamma`` and add the
    quantization and prune terms' gradients; return the terms' values ``(quant, prune)``."""
    if combined.gamma != 1.0:
        for k, gp in enumerate(grads):
            grads[k] = gp * gp.dtype.type(combined.gamma)
    quant = prune = 0.0
    for i, (w, keep) in enumerate(zip(model.weights, masks)):
        vq, gq = quantization_error(w, bits=wbits)
        vp, gp = pruning_error(w, keep)
        quant += vq
        prune += vp
        if combined.alpha:
            grads[2 * i] = grads[2 * i] + gq * gq.dtype.type(combined.alpha)
        if combined.beta and keep is not None:
            grads[2 * i] = grads[2 * i] + gp * gp.dtype.type(combined.beta)
    return quant, prune


def _add_penalty(model, regularization, idx, grads):
    """Add the penalty's gradient of the layers ``idx`` to ``grads`` (``[dW0, db0, dW1, ...]``,
    in place); return the penalty's value."""
    total = 0.0
    for i in idx:
        value, g = sparsity_penalty(model.weights[i], lambda_l1=regularization.lambda_l1,
                                    lambda_group=regularization.lambda_group)
        grads[2 * i] = grads[2 * i] + g
        total += value
    return total


def _regularized_layers(model, regularization):
    """Indices of the layers ``regularization`` applies to (``None`` without one)."""
    if regularization is None:
        return None
    if regularization.layers is None:
        return list(range(len(model.weights) - 1))
    names = _check_names(model, regularization.layers, "regularization")
    return [model.layer_index(n) for n in names]


@dataclass
class TrainLog:
    """What :func:`train` learned besides the weights.

    Members
    -------
    steps : int
        Optimizer steps taken.
    losses : list of float
        Mean training loss of every epoch (NaN with a custom ``loss_grad``), the attention
        and hint terms included.
    act_ranges : list of (float, float) or None
        With QAT: the learned range of the input and of every layer's output, in
        :func:`.graph.quantize_graph`'s ``act_ranges`` layout (a pooling or flatten output
        repeats its input's range). ``None`` without QAT.
    pruning : list of (step, sparsity)
        Every mask update of a :class:`GradualPruning` schedule: the step and the fraction of
        the pruned layers' weights that is zero after it.
    penalties : list of float
        With a :class:`SparseRegularization`: the mean penalty ``R(W)`` of every epoch (at the
        weights each step starts from; ``losses`` stay the data loss alone). Empty without.
    hint_regressor : (W, b) or None
        With a :class:`Hint`: the learned regressor (:func:`hint_loss`). ``None`` without.
    terms : dict of str -> list of float
        With a :class:`CombinedLoss`: ``{"finetune": [...], "quant": [...], "prune": [...]}``,
        the epoch means of the unweighted terms (``losses`` is then their weighted sum,
        ``L_total``). Empty without.
    """

    steps: int = 0
    losses: list = field(default_factory=list)
    act_ranges: list = None
    pruning: list = field(default_factory=list)
    penalties: list = field(default_factory=list)
    hint_regressor: tuple = None
    terms: dict = field(default_factory=dict)


def _update_gradual(model, pruning, step, names):
    target = pruning.schedule.sparsity(step)
    idx = [model.layer_index(n) for n in names]
    masks = model.full_masks()
    if pruning.scope == "global":
        new = global_magnitude_masks([model.weights[i] for i in idx], float(target))
    else:
        new = [magnitude_mask(model.weights[i], amount=float(target)) for i in idx]
    for i, m in zip(idx, new):
        masks[i] = m
    model.masks = masks
    model.apply_masks()
    zeros = sum(int(np.count_nonzero(model.weights[i] == 0)) for i in idx)
    return zeros / sum(model.weights[i].size for i in idx)


def _set_n_m(model, pruning, names):
    model.masks = _n_m_masks(model, pruning, names)


def _n_m_masks(model, pruning, names):
    """``model.full_masks()`` with the N:M masks of the current weights joined in."""
    masks = model.full_masks()
    for name in names:
        i = model.layer_index(name)
        w = model.weights[i]
        k = w[0].size
        if k % pruning.m:
            raise ValueError(f"layer {name}'s reduction length must be a multiple of "
                             f"M = {pruning.m}, not {k}")
        keep = prune_n_m(w.reshape(w.shape[0], -1), pruning.n, pruning.m, axis=1)
        keep = keep.reshape(w.shape)
        masks[i] = keep if masks[i] is None else keep & masks[i]
    return masks


def _act_range_list(model, observed):
    ranges, last = [], None
    for point in range(len(model._arch()) + 1):
        if point in observed.observers:
            lo, hi = observed.observers[point].range
            last = (float(lo), float(hi))
        ranges.append(last)
    return ranges


def train(model, x, y, *, epochs=30, lr=3e-3, batch=64, seed=0, lr_schedule="constant",
          pruning=None, qat=False, act_momentum=0.01, grad_bits=None, teacher_logits=None,
          distill=None, loss_grad=None, regularization=None, teacher=None, attention=None,
          hint=None, qat_bits=(8, 8), combined=None):
    """Train ``model`` (an :class:`MLP` or :class:`CNN`) in place with Adam.

    Parameters
    ----------
    model : MLP or CNN
    x : float array ``(n, *model.input_shape)``
    y : int array ``(n,)``
        Class labels.
    epochs : int
        Passes over the data (shuffled by a generator seeded with ``seed``).
    lr : float
        Adam's learning rate (betas 0.9, 0.999, eps 1e-8).
    batch : int
        Mini-batch size (the last batch of an epoch may be smaller).
    seed : int
        Seeds the shuffling and the gradient rounding noise: same seed, same result.
    lr_schedule : {"constant", "cosine"}
        ``cosine``: ``lr * (1 + cos(pi * step / steps)) / 2``.
    pruning : GradualPruning or NMPruning, optional
        Masks computed during training (they join ``model.masks``, applied after every step).
        A :class:`GradualPruning` schedule must end before the last step.
    qat : bool
        Quantization-aware training (module docstring); the learned activation ranges are
        returned in :attr:`TrainLog.act_ranges`.
    qat_bits : (int, int)
        Bit widths (weights, activations), each 2..8, of QAT's fake quantizers: weights
        symmetric narrow per channel (codes ``[-(2^(b-1) - 1), 2^(b-1) - 1]``), activations
        affine (``[-2^(b-1), 2^(b-1) - 1]``). ``(8, 8)`` is the int8 QAT of ``qat=True``
        alone. The weight bits also set a :class:`CombinedLoss`'s quantizer; anything but
        ``(8, 8)`` needs ``qat`` or ``combined``.
    act_momentum : float
        Momentum of the QAT range observers, in (0, 1] (PyTorch's default 0.01).
    grad_bits : int, optional
        Quantize every parameter gradient to this many bits with stochastic rounding
        (:func:`quantize_gradient`) before the optimizer step.
    teacher_logits : float array ``(n, classes)``, optional
        The teacher's logits for every sample of ``x``: trains on :func:`distillation_loss`.
    distill : Distillation, optional
        Its temperature and weights (``Distillation()`` when only ``teacher_logits`` is given).
    loss_grad : callable, optional
        ``loss_grad(logits, idx) -> d loss / d logits`` replaces the loss (not with
        distillation).
    regularization : SparseRegularization, optional
        L1 / group-lasso penalty on the weights: its gradient (:func:`sparsity_penalty`) is
        added to the loss gradient before ``grad_bits`` quantization and the optimizer step;
        its value is logged in :attr:`TrainLog.penalties`.
    teacher : MLP or CNN, optional
        The network whose hidden features ``attention`` and ``hint`` match (run once over
        ``x``, float, before training); it must take the student's input shape.
    attention : AttentionTransfer, optional
        Adds attention transfer between paired convolution layers to the loss
        (:func:`attention_transfer_loss`); its gradient joins the backward pass at the
        student's layers.
    hint : Hint, optional
        Adds a FitNets hint to the loss (:func:`hint_loss`), with a regressor learned along
        (returned in :attr:`TrainLog.hint_regressor`).
    combined : CombinedLoss, optional
        Trains on ``gamma * L_finetune + alpha * L_quant + beta * L_prune`` (seed 000);
        the terms are logged in :attr:`TrainLog.terms`.

    Returns
    -------
    TrainLog

    Raises
    ------
    TypeError, ValueError
        A bad argument, with the rule it breaks.
    """
    x, y, epochs, batch, seed, lr, act_momentum, grad_bits, distill = _check_train_args(
        model, x, y, epochs=epochs, lr=lr, batch=batch, seed=seed, lr_schedule=lr_schedule,
        pruning=pruning, qat=qat, act_momentum=act_momentum, grad_bits=grad_bits,
        teacher_logits=teacher_logits, distill=distill, loss_grad=loss_grad,
        regularization=regularization, teacher=teacher, attention=attention, hint=hint)
    qat_bits = _check_combined_args(qat, qat_bits, combined)
    features = None if teacher is None else _FeatureTerms(model, teacher, x, attention, hint,
                                                          seed)
    if teacher_logits is not None:
        teacher_logits = check_finite(as_float_array(teacher_logits, "teacher_logits"),
                                      "teacher_logits")
    steps_per_epoch = -(-len(x) // batch)
    total = epochs * steps_per_epoch
    log = TrainLog()
    names = _setup_pruning(model, pruning, epochs, total)
    reg_idx = _regularized_layers(model, regularization)

    rng = np.random.default_rng(seed)
    grad_rng = np.random.default_rng([seed, 1])
    observed = _Observed(act_momentum) if qat else None
    params = [p for wb in zip(model.weights, model.biases) for p in wb]
    adam = _Adam(params + ([] if features is None else features.regressor))
    model.apply_masks()
    step = 0
    for _ in range(epochs):
        order = rng.permutation(len(x))
        losses, penalties, terms = [], [], []
        for s in range(0, len(x), batch):
            _pruning_step(model, pruning, names, step, log)
            idx = order[s:s + batch]
            loss, grads = _step_gradients(model, x, y, idx, observed, loss_grad,
                                          teacher_logits, distill, features, qat_bits)
            if combined is not None:
                quant, prune = _add_combined(
                    model, combined, qat_bits[0],
                    _pending_masks(model, pruning, names, step), grads)
                terms.append((loss, quant, prune))
                loss = combined.gamma * loss + combined.alpha * quant + combined.beta * prune
            losses.append(loss)
            if reg_idx is not None:
                penalties.append(_add_penalty(model, regularization, reg_idx, grads))
            if grad_bits is not None:
                for i, gp in enumerate(grads):
                    codes, scale = quantize_gradient(gp, bits=grad_bits, rng=grad_rng)
                    grads[i] = (codes.astype(gp.dtype) * gp.dtype.type(scale))
            rate = lr if lr_schedule == "constant" else \
                lr * 0.5 * (1 + math.cos(math.pi * step / total))
            adam.step(grads, rate)
            model.apply_masks()
            step += 1
        log.losses.append(float(np.mean(losses)))
        if reg_idx is not None:
            log.penalties.append(float(np.mean(penalties)))
        _log_terms(log, combined, terms)
    log.steps = step
    if features is not None and features.regressor:
        log.hint_regressor = tuple(p.copy() for p in features.regressor)
    if qat and observed.observers:
        log.act_ranges = _act_range_list(model, observed)
    return log


def _check_combined_args(qat, qat_bits, combined):
    """:func:`train`'s ``qat_bits`` normalized, checked with ``qat`` and ``combined``."""
    qat_bits = _check_qat_bits(qat_bits)
    if combined is not None and not isinstance(combined, CombinedLoss):
        raise TypeError(f"combined must be a CombinedLoss, not {type(combined).__name__}")
    if qat_bits != (8, 8) and not qat and combined is None:
        raise ValueError(f"qat_bits needs qat=True or combined, not {qat_bits!r} with "
                         f"neither")
    return qat_bits


def _setup_pruning(model, pruning, epochs, total):
    """Check ``pruning`` against the model and the ``total`` steps, set N:M masks that start
    at step 0; return the pruned layers' names (``None`` without pruning)."""
    if isinstance(pruning, GradualPruning):
        names = _check_names(model, pruning.layers, "pruning")
        if epochs and pruning.schedule.end_step >= total:
            raise ValueError(f"pruning end_step must be less than the number of training "
                             f"steps ({total}), not {pruning.schedule.end_step}")
        return names
    if isinstance(pruning, NMPruning):
        names = _check_names(model, pruning.layers, "pruning")
        masks = _n_m_masks(model, pruning, names)          # validates the layers
        if pruning.start_step == 0:
            model.masks = masks
        elif epochs and pruning.start_step >= total:
            raise ValueError(f"pruning start_step must be less than the number of training "
                             f"steps ({total}), not {pruning.start_step}")
        return names
    return None


def _pruning_step(model, pruning, names, step, log):
    """The mask updates due at ``step`` (a gradual update, or delayed N:M masks)."""
    if isinstance(pruning, GradualPruning) and pruning.schedule.should_prune(step):
        log.pruning.append((step, _update_gradual(model, pruning, step, names)))
    if isinstance(pruning, NMPruning) and pruning.start_step and step == pruning.start_step:
        _set_n_m(model, pruning, names)
        model.apply_masks()


def _log_terms(log, combined, terms):
    """Append the epoch means of the ``(finetune, quant, prune)`` rows ``terms``."""
    if combined is None:
        return
    for k, key in enumerate(("finetune", "quant", "prune")):
        values = log.terms.setdefault(key, [])
        if terms:
            values.append(float(np.mean([t[k] for t in terms])))


def _step_gradients(model, x, y, idx, observed, loss_grad, teacher_logits, distill,
                    features, qat_bits=(8, 8)):
    """``(loss, [dW0, db0, dW1, ...])`` of the batch ``idx`` (the hint regressor's ``dW, db``
    last, with a hint): the loss on the logits plus the feature terms."""
    logits, outs, tape = model._forward(x[idx], observed, qat_bits)
    loss, g = _loss_gradient(logits, y, idx, loss_grad, teacher_logits, distill)
    inject, extra = None, []
    if features is not None:
        value, inject, extra = features.terms(outs, idx)
        loss += value
    return loss, [gp for gw in model._backward(tape, g, inject=inject) for gp in gw] + extra


def _loss_gradient(logits, y, idx, loss_grad, teacher_logits, distill):
    """``(loss, d loss / d logits)`` of one batch: a custom ``loss_grad`` (loss NaN),
    distillation, or cross-entropy."""
    if loss_grad is not None:
        return float("nan"), np.asarray(loss_grad(logits, idx), dtype=logits.dtype)
    if teacher_logits is not None:
        return distillation_loss(logits, teacher_logits[idx], y[idx],
                                 temperature=distill.temperature, alpha=distill.alpha,
                                 beta=distill.beta, standardize=distill.standardize)
    return cross_entropy(logits, y[idx])


class _Adam:
    """Adam (betas 0.9, 0.999, eps 1e-8) updating ``params`` in place."""

    B1, B2, EPS = 0.9, 0.999, 1e-8

    def __init__(self, params):
        self.params = params
        self.m1 = [np.zeros_like(p) for p in params]
        self.m2 = [np.zeros_like(p) for p in params]
        self.t = 0

    def step(self, grads, rate):
        self.t += 1
        b1, b2, eps, t = self.B1, self.B2, self.EPS, self.t
        for p, gp, a, v in zip(self.params, grads, self.m1, self.m2):
            a *= b1
            a += (1 - b1) * gp
            v *= b2
            v += (1 - b2) * gp * gp
            p -= (rate * (a / (1 - b1 ** t)) / (np.sqrt(v / (1 - b2 ** t)) + eps)
                  ).astype(p.dtype)


def _check_data(model, x, y):
    """``(x, y)`` checked for ``model``: inputs of its input shape, one integer label each."""
    if not isinstance(model, _Network):
        raise TypeError(f"model must be an MLP or a CNN, not {type(model).__name__}")
    x = model._check_x(x)
    y = as_int_array(y, "y")
    if y.shape != (len(x),):
        raise ValueError(f"y must have shape ({len(x)},), not {y.shape}")
    return x, y


def _check_train_args(model, x, y, *, epochs, lr, batch, seed, lr_schedule, pruning, qat,
                      act_momentum, grad_bits, teacher_logits, distill, loss_grad,
                      regularization, teacher, attention, hint):
    """Validate :func:`train`'s arguments; returns the normalized
    ``(x, y, epochs, batch, seed, lr, act_momentum, grad_bits, distill)``."""
    x, y = _check_data(model, x, y)
    epochs = check_int(epochs, "epochs", lo=0)
    batch = check_int(batch, "batch", lo=1)
    seed = check_int(seed, "seed", lo=0)
    lr = _real(lr, "lr", lo=0.0, lo_open=True)
    check_choice(lr_schedule, "lr_schedule", LR_SCHEDULES)
    if not isinstance(qat, (bool, np.bool_)):
        raise TypeError(f"qat must be a bool, not {qat!r}")
    act_momentum = _real(act_momentum, "act_momentum", lo=0.0, lo_open=True)
    if act_momentum > 1:
        raise ValueError(f"act_momentum must be at most 1, not {act_momentum!r}")
    if grad_bits is not None:
        grad_bits = check_int(grad_bits, "grad_bits", lo=2, hi=16)
    if pruning is not None and not isinstance(pruning, (GradualPruning, NMPruning)):
        raise TypeError(f"pruning must be a GradualPruning or an NMPruning, not "
                        f"{type(pruning).__name__}")
    if regularization is not None and not isinstance(regularization, SparseRegularization):
        raise TypeError(f"regularization must be a SparseRegularization, not "
                        f"{type(regularization).__name__}")
    distill = _check_distillation(model, x, teacher_logits, distill, loss_grad)
    _check_feature_args(model, teacher, attention, hint)
    if loss_grad is not None and not callable(loss_grad):
        raise TypeError(f"loss_grad must be callable, not {type(loss_grad).__name__}")
    for i, (w, m) in enumerate(zip(model.weights, model.full_masks())):
        if m is not None and (not isinstance(m, np.ndarray) or m.dtype != np.bool_
                              or m.shape != w.shape):
            got = f"{m.dtype} {m.shape}" if isinstance(m, np.ndarray) else type(m).__name__
            raise ValueError(f"masks[{i}] must be None or a bool array of shape {w.shape}, "
                             f"not {got}")
    return x, y, epochs, batch, seed, lr, act_momentum, grad_bits, distill


def _check_distillation(model, x, teacher_logits, distill, loss_grad):
    """The :class:`Distillation` to train with (``None`` without a teacher)."""
    if distill is not None and not isinstance(distill, Distillation):
        raise TypeError(f"distill must be a Distillation, not {type(distill).__name__}")
    if distill is not None and teacher_logits is None:
        raise ValueError("distill needs teacher_logits, not None")
    if teacher_logits is None:
        return None
    if loss_grad is not None:
        raise ValueError("loss_grad must be None when distilling, not a callable")
    teacher_logits = check_finite(as_float_array(teacher_logits, "teacher_logits"),
                                  "teacher_logits")
    classes = model.weights[-1].shape[0]
    if teacher_logits.shape != (len(x), classes):
        raise ValueError(f"teacher_logits must have shape ({len(x)}, {classes}), "
                         f"not {teacher_logits.shape}")
    return distill or Distillation()


def _check_feature_args(model, teacher, attention, hint):
    """Types and presence of :func:`train`'s ``teacher``, ``attention`` and ``hint``."""
    if attention is not None and not isinstance(attention, AttentionTransfer):
        raise TypeError(f"attention must be an AttentionTransfer, not "
                        f"{type(attention).__name__}")
    if hint is not None and not isinstance(hint, Hint):
        raise TypeError(f"hint must be a Hint, not {type(hint).__name__}")
    for name, value in (("attention", attention), ("hint", hint)):
        if value is not None and teacher is None:
            raise ValueError(f"{name} needs teacher, not None")
    if teacher is None:
        return
    if not isinstance(teacher, _Network):
        raise TypeError(f"teacher must be an MLP or a CNN, not {type(teacher).__name__}")
    if attention is None and hint is None:
        raise ValueError("teacher needs attention or hint, not None for both")
    if tuple(teacher.input_shape) != tuple(model.input_shape):
        raise ValueError(f"teacher must take the student's input shape "
                         f"{tuple(model.input_shape)}, not {tuple(teacher.input_shape)}")


def _feature_layer(net, name, what):
    """Op position of the weighted layer ``name`` of ``net`` (``what`` names it in errors)."""
    names = net.layer_names()
    if name not in names:
        raise ValueError(f"{what} must be one of {', '.join(map(repr, names))}, not {name!r}")
    return net._op_position(name)


class _FeatureTerms:
    """The attention and hint terms of one :func:`train` run: layers resolved and checked,
    the teacher's targets computed once over all of ``x`` (in chunks), the hint regressor."""

    CHUNK = 256

    def __init__(self, model, teacher, x, attention, hint, seed):
        self.attention, self.hint = attention, hint
        shape_s = [o.shape[1:] for o in model._forward(x[:1])[1]]
        shape_t = [o.shape[1:] for o in teacher._forward(x[:1].astype(
            teacher.weights[0].dtype))[1]]
        self.pairs = []
        if attention is not None:
            pairs = attention.layers
            if pairs is None:
                pairs = tuple((n, n) for n, w in zip(model.layer_names(), model.weights)
                              if w.ndim == 4)
                if not pairs:
                    raise ValueError("attention transfer needs convolution layers (spatial "
                                     "attention maps), and the student has none: an MLP's "
                                     "units have no spatial layout to align with the "
                                     "teacher's")
            for s_name, t_name in pairs:
                ks = _feature_layer(model, s_name, "attention student layer")
                kt = _feature_layer(teacher, t_name, "attention teacher layer")
                for net, name in ((model, s_name), (teacher, t_name)):
                    if net.weights[net.layer_index(name)].ndim != 4:
                        who = "student" if net is model else "teacher"
                        raise ValueError(f"attention layers must be convolutions (attention "
                                         f"maps are spatial), not the {who}'s dense layer "
                                         f"{name!r}")
                if shape_s[ks + 1][1:] != shape_t[kt + 1][1:]:
                    raise ValueError(f"attention layers ({s_name!r}, {t_name!r}) must have "
                                     f"maps of one size, not {shape_s[ks + 1][1:]} for the "
                                     f"student and {shape_t[kt + 1][1:]} for the teacher")
                self.pairs.append((ks, kt))
        self.regressor = []
        if hint is not None:
            ks = _feature_layer(model, hint.student_layer, "hint student_layer")
            kt = _feature_layer(teacher, hint.teacher_layer, "hint teacher_layer")
            fs, ft = shape_s[ks + 1], shape_t[kt + 1]
            if len(fs) != len(ft) or fs[1:] != ft[1:]:
                raise ValueError(f"hint layers must both be dense or both convolutions with "
                                 f"maps of one size, not student {hint.student_layer!r} {fs} "
                                 f"and teacher {hint.teacher_layer!r} {ft}")
            self.hint_layers = (ks, kt)
            dtype = model.weights[0].dtype
            rng = np.random.default_rng([seed, 2])
            self.regressor = [
                (rng.standard_normal((ft[0], fs[0])) / np.sqrt(fs[0])).astype(dtype),
                np.zeros(ft[0], dtype)]
        n = len(x)
        self.q_t = [np.empty((n, int(np.prod(shape_t[kt + 1][1:])))) for _, kt in self.pairs]
        self.h_t = None if hint is None else np.empty((n, *shape_t[self.hint_layers[1] + 1]),
                                                      teacher.weights[0].dtype)
        for s in range(0, n, self.CHUNK):
            outs = teacher._forward(x[s:s + self.CHUNK].astype(teacher.weights[0].dtype))[1]
            for q, (_, kt) in zip(self.q_t, self.pairs):
                q[s:s + self.CHUNK] = _attention(outs[kt + 1], attention.p)[1]
            if hint is not None:
                self.h_t[s:s + self.CHUNK] = outs[self.hint_layers[1] + 1]

    def terms(self, outs, idx):
        """``(value, inject, regressor grads)`` of the batch ``idx`` whose student outputs are
        ``outs``: the terms' sum, ``{op position: d value / d output}`` for
        :meth:`_Network._backward` and ``[dW, db]`` of the regressor (empty without a hint)."""
        value, inject, extra = 0.0, {}, []
        for (ks, _), q_t in zip(self.pairs, self.q_t):
            v, g = _attention_term(outs[ks + 1], q_t[idx], self.attention.beta,
                                   self.attention.p)
            value += v
            inject[ks] = inject.get(ks, 0.0) + g
        if self.hint is not None:
            ks = self.hint_layers[0]
            w, b = self.regressor
            v, g, g_w, g_b = _hint_term(outs[ks + 1], self.h_t[idx], w, b, self.hint.weight)
            value += v
            inject[ks] = inject.get(ks, 0.0) + g
            extra = [g_w.astype(w.dtype), g_b.astype(b.dtype)]
        return value, inject, extra


# --- filter pruning that removes filters ---------------------------------------------------

def remove_filters(model, keeps):
    """A smaller copy of ``model`` without the output channels (filters, neurons) that
    ``keeps[name]`` (bool, one per channel) marks False, and the next layers' inputs: the
    removal of :func:`prune_filters`, for masks from any score (e.g. :func:`.prune.score_mask`
    of :func:`taylor_importance` with ``per="filter"``)."""
    if not isinstance(model, _Network):
        raise TypeError(f"model must be an MLP or a CNN, not {type(model).__name__}")
    for name in _prunable_layers(model, list(keeps), "filter removal"):
        n = model.weights[model.layer_index(name)].shape[0]
        keep = np.asarray(keeps[name])
        if keep.dtype != np.bool_ or keep.shape != (n,):
            raise ValueError(f"keeps[{name!r}] must be a bool array of shape ({n},), not "
                             f"dtype {keep.dtype} and shape {keep.shape}")
        if not keep.any():
            raise ValueError(f"keeps[{name!r}] must keep at least one channel, not none")
    return _remove_filters(model, {k: np.asarray(v) for k, v in keeps.items()})


def prune_filters(model, amount, *, criterion="l1", layers=None):
    """A smaller copy of ``model`` without the lowest-scored filters of ``layers``.

    For every named layer (default: every weighted layer but the last, whose outputs are the
    classes) the ``prune_count(amount, filters)`` filters (output channels; neurons of a dense
    layer) of lowest :func:`.prune.filter_scores` (``"l1"``, ``"l2"`` or ``"fpgm"``, computed on
    the original weights) are removed with their biases, and so are the matching input
    channels of the next weighted layer (through the flatten: the ``H*W`` columns of each
    removed channel). The removed filters' ReLU outputs would be ``relu(0) = 0`` once zeroed,
    so the smaller model computes exactly what the original computes with those filters and
    biases zeroed. Masks are sliced along.

    Returns
    -------
    (model, keep) : the new model and ``{name: bool keep-mask over its filters}``.

    Raises
    ------
    TypeError, ValueError
        A bad model, amount, criterion or layer name (the last layer cannot be pruned), or a
        prune that would leave a layer without filters.
    """
    if not isinstance(model, _Network):
        raise TypeError(f"model must be an MLP or a CNN, not {type(model).__name__}")
    targets = _prunable_layers(model, layers, "filter pruning")
    keeps = {name: _leaves_a_filter(
        filter_prune_mask(model.weights[model.layer_index(name)], amount, criterion=criterion),
        name, amount) for name in targets}
    return _remove_filters(model, keeps), keeps


def _prunable_layers(model, layers, what):
    """The layers named for removal (default: all but the output layer, which is refused)."""
    names = model.layer_names()
    targets = _check_names(model, layers if layers is not None else names[:-1], what)
    if names[-1] in targets:
        raise ValueError(f"{what} layers must not include the output layer "
                         f"{names[-1]!r}, whose filters are the classes")
    return targets


def _leaves_a_filter(keep, name, amount):
    if not keep.any():
        raise ValueError(f"amount must leave at least one filter of layer {name!r}, "
                         f"not {amount!r}")
    return keep


def _remove_filters(model, keeps):
    """A copy of ``model`` without the filters ``keeps[name]`` marks ``False`` (with
    :func:`.prune.remove_neurons`, through the flatten when a convolution feeds a dense
    layer); masks are sliced along."""
    new = model.copy()
    new.masks = new.full_masks()
    for name, keep in keeps.items():
        i = new.layer_index(name)
        feature_hw = None
        if new.weights[i].ndim == 4 and new.weights[i + 1].ndim == 2:
            feature_hw = int(np.prod(new.feature_shape()[1:]))
        w_next = new.weights[i + 1]
        m_next = new.masks[i + 1]
        if feature_hw is not None:
            w_next = w_next.reshape(w_next.shape[0], -1, feature_hw)
            m_next = None if m_next is None else m_next.reshape(w_next.shape)
        wt, bt, wn = remove_neurons(new.weights[i], new.biases[i], w_next, keep)
        if new.masks[i] is not None:
            new.masks[i] = new.masks[i][keep]
        if m_next is not None:
            m_next = m_next[:, keep]
        if feature_hw is not None:
            wn = wn.reshape(wn.shape[0], -1)
            m_next = None if m_next is None else m_next.reshape(wn.shape)
        new.weights[i], new.biases[i], new.weights[i + 1] = wt, bt, wn
        new.masks[i + 1] = m_next
    return new


# --- gradients and importance scores --------------------------------------------------------

def _check_scoring_data(model, x, y, batch):
    """``(x, y, batch)`` checked for scoring: at least one sample, labels among the classes."""
    x, y = _check_data(model, x, y)
    if len(x) == 0:
        raise ValueError("x must hold at least one sample, not 0")
    _check_labels(y, len(x), model.weights[-1].shape[0], "y")
    return x, y, check_int(batch, "batch", lo=1)


def _batch_gradients(model, x, y, signals=None):
    """Mean cross-entropy of the batch and its ``dL/dW`` per weighted layer (biases dropped),
    by the network's backward pass; ``signals`` as in :meth:`_Network._backward`."""
    logits, _, tape = model._forward(x)
    loss, g = cross_entropy(logits, y)
    return loss, [dw for dw, _ in model._backward(tape, g, signals)]


def _batch_mean(fn, x, y, batch):
    """``sum_b (n_b / n) * fn(x_b, y_b)`` over the consecutive batches (``fn`` returns a list of
    arrays): the mean over the samples of a per-batch mean."""
    total = None
    for s in range(0, len(x), batch):
        xb, yb = x[s:s + batch], y[s:s + batch]
        weight = len(xb) / len(x)
        part = [weight * np.asarray(p, np.float64) for p in fn(xb, yb)]
        total = part if total is None else [t + p for t, p in zip(total, part)]
    return total


def weight_gradients(model, x, y):
    """Mean cross-entropy of the batch ``(x, y)`` and its gradient w.r.t. every weight tensor.

    ``L = -mean_n log softmax(f(x_n))[y_n]`` and ``dL/dW`` of every weighted layer, computed by
    the network's own backward pass (float, no fake quantization). Pruned weights get their
    gradient too (training keeps them zero by re-applying the masks, not by the gradient).

    Parameters
    ----------
    model : MLP or CNN
    x : float array ``(n, *model.input_shape)``, ``n >= 1``
    y : int array ``(n,)``
        Class labels.

    Returns
    -------
    (loss, grads) : float and ``{layer name: dL/dW}`` (arrays like the weights, same dtype),
    in :meth:`~_Network.layer_names` order.

    Raises
    ------
    TypeError, ValueError
        A bad model, inputs of the wrong shape, no sample, or labels out of range.
    """
    x, y, _ = _check_scoring_data(model, x, y, 1)
    loss, grads = _batch_gradients(model, x, y)
    return loss, dict(zip(model.layer_names(), grads))


def taylor_importance(model, x, y, *, per="weight", squared=False, batch=64):
    """First-order Taylor importance (Molchanov et al. 2017, 2019) of every weight or filter.

    Per batch ``b`` of ``batch`` consecutive samples the score of :func:`.prune.taylor_scores`
    (``per="weight"``: ``|w g_b|``, or ``(w g_b)^2`` with ``squared``) or of
    :func:`.prune.taylor_filter_scores` (``per="filter"``: ``sum_F |w g_b|``, or
    ``(sum_F w g_b)^2``) is taken with the batch's gradient ``g_b`` (:func:`weight_gradients`),
    and the scores are averaged over the batches, weighted by their sizes.

    The mean of per-batch scores, not the score of the mean gradient: at the minimum a trained
    model sits at, the data's mean gradient vanishes and ``|w * mean g|`` keeps only noise,
    while the per-batch magnitudes keep measuring how much the loss depends on ``w`` (their
    squares are the empirical Fisher information, an approximation of the Hessian diagonal);
    Molchanov et al. average over mini-batches the same way. The price: the scores depend on
    ``batch`` (smaller batches, noisier gradients, larger scores), so compare scores computed
    with the same ``batch``.

    Parameters
    ----------
    model : MLP or CNN
    x, y : the data (as :func:`weight_gradients`)
    per : {"weight", "filter"}
        Score every weight, or every output channel (neuron) of every layer.
    squared : bool
        Molchanov et al. 2019's squared criterion.
    batch : int
        Batch size, >= 1.

    Returns
    -------
    dict of layer name -> ndarray of float64
        Shaped like the weights (``per="weight"``) or ``(out,)`` (``per="filter"``); pass them
        to :func:`.prune.score_mask` or ``prune_n_m(..., scores=)``.

    Raises
    ------
    TypeError, ValueError
        As :func:`weight_gradients`, or a bad ``per``, ``squared`` or ``batch``.
    """
    x, y, batch = _check_scoring_data(model, x, y, batch)
    check_choice(per, "per", IMPORTANCE_UNITS)
    squared = check_bool(squared, "squared")
    score = taylor_scores if per == "weight" else taylor_filter_scores

    def batch_scores(xb, yb):
        _, grads = _batch_gradients(model, xb, yb)
        return [score(w, g, squared=squared) for w, g in zip(model.weights, grads)]

    return dict(zip(model.layer_names(), _batch_mean(batch_scores, x, y, batch)))


def _float64_copy(model):
    new = model.copy()
    new.weights = [w.astype(np.float64) for w in new.weights]
    new.biases = [b.astype(np.float64) for b in new.biases]
    return new


def _check_hessian_args(samples, eps, seed):
    return (check_int(samples, "samples", lo=1), _real(eps, "eps", lo=0.0, lo_open=True),
            check_int(seed, "seed", lo=0))


def hessian_diagonal(model, x, y, *, samples=64, eps=1e-5, seed=0, batch=256):
    """Hutchinson estimate of the diagonal of the Hessian of the mean cross-entropy.

    ``diag(H) ~ (1/S) sum_s v_s * (H v_s)`` over ``S = samples`` Rademacher vectors ``v_s``
    (entries +-1 with probability 1/2; Hutchinson 1990, the diagonal form of Bekas et al.
    2007), each Hessian-vector product by central differences of the exact gradient,
    ``H v ~ (g(W + eps v) - g(W - eps v)) / (2 eps)``, with ``g`` the gradient of the loss
    over all of ``x`` (:func:`weight_gradients` batch by batch, weighted by batch size). The
    Hessian is taken w.r.t. the weights of all layers together, the biases held fixed; the
    computation runs in float64 on a copy of the model.

    Accuracy: the estimate of ``h_ii`` is unbiased with variance ``sum_{j != i} H_ij^2 / S``
    (the off-diagonal mass of row ``i``), so its error falls as ``1 / sqrt(S)``. The central
    difference adds ``O(eps^2)`` (from the third derivatives) plus rounding
    ``~ 1e-16 |g| / eps``; ``eps = 1e-5`` keeps both near ``1e-10`` relative. The loss of a
    ReLU network is not twice differentiable where a ReLU's input is 0: a pre-activation
    within about ``eps * sum|input|`` of 0 spoils that sample's product. Weights pruned by
    ``model.masks`` are not perturbed (``v = 0`` there, so a pruned neuron whose inputs are all
    zero stays exactly off); their entry of the result is 0.

    Parameters
    ----------
    model : MLP or CNN
    x, y : the data (as :func:`weight_gradients`)
    samples : int
        Number of probe vectors ``S``, >= 1.
    eps : float
        Finite-difference step, > 0.
    seed : int
        Seeds the probe vectors: same seed, same estimate.
    batch : int
        Samples per forward/backward pass (memory only; the result does not depend on it
        beyond rounding).

    Returns
    -------
    dict of layer name -> ndarray of float64 shaped like the weights

    Raises
    ------
    TypeError, ValueError
        As :func:`weight_gradients`, or a bad ``samples``, ``eps``, ``seed`` or ``batch``.
    """
    x, y, batch = _check_scoring_data(model, x, y, batch)
    samples, eps, seed = _check_hessian_args(samples, eps, seed)
    net, x = _float64_copy(model), x.astype(np.float64)
    base = [w.copy() for w in net.weights]
    masks = [np.ones(w.shape) if m is None else m for w, m in zip(base, net.full_masks())]
    rng = np.random.default_rng(seed)

    def gradient_at(v, step):
        net.weights = [w + step * vi for w, vi in zip(base, v)]
        return _batch_mean(lambda xb, yb: _batch_gradients(net, xb, yb)[1], x, y, batch)

    total = [np.zeros_like(w) for w in base]
    for _ in range(samples):
        v = [(2.0 * rng.integers(0, 2, w.shape) - 1.0) * m for w, m in zip(base, masks)]
        for t, vi, hi, lo in zip(total, v, gradient_at(v, eps), gradient_at(v, -eps)):
            t += vi * (hi - lo) / (2 * eps)
    return {name: t / samples for name, t in zip(model.layer_names(), total)}


def obd_importance(model, x, y, *, per="weight", samples=64, eps=1e-5, seed=0, batch=256):
    """Optimal Brain Damage saliency (LeCun et al. 1990) of every weight or filter.

    ``s_i = h_ii w_i^2 / 2`` (:func:`.prune.obd_scores`; ``per="filter"``: summed over each
    output channel, :func:`.prune.obd_filter_scores`), with ``h_ii`` from
    :func:`hessian_diagonal` (its arguments ``samples``, ``eps``, ``seed``, ``batch``). OBD
    assumes a trained model (gradient ~ 0), where the second-order term is the loss change.

    Returns
    -------
    dict of layer name -> ndarray of float64
        Shaped like the weights (``per="weight"``) or ``(out,)`` (``per="filter"``).

    Raises
    ------
    TypeError, ValueError
        As :func:`hessian_diagonal`, or a bad ``per``.
    """
    check_choice(per, "per", IMPORTANCE_UNITS)
    h = hessian_diagonal(model, x, y, samples=samples, eps=eps, seed=seed, batch=batch)
    score = obd_scores if per == "weight" else obd_filter_scores
    return {name: score(w, h[name]) for name, w in zip(model.layer_names(), model.weights)}


def gradient_neuron_scores(model, x, y, *, batch=64):
    """Mean magnitude of every unit's loss gradient over the data (seed 000's criterion).

    ``score_j = mean_{n, p} |d l_n / d z_{n,p,j}|``: ``z`` is unit ``j``'s pre-activation (its
    output before the ReLU, at output pixel ``p`` of a convolution), ``l_n`` the cross-entropy
    of sample ``n`` alone; so ``d l_n / d z`` is the error signal behind the unit's incoming
    weight gradient, ``dL/dW_j = mean_n sum_p (d l_n / d z_{n,p,j}) a_{n,p}``, and it is zero
    where the ReLU is off. A unit whose gradient stays near zero (a dead unit, or one the
    loss does not depend on) scores near 0: the network does not learn through it. Independent
    of ``batch`` (the samples' losses are independent).

    Parameters
    ----------
    model : MLP or CNN
    x, y : the data (as :func:`weight_gradients`)
    batch : int
        Samples per backward pass, >= 1.

    Returns
    -------
    dict of layer name -> ndarray of float64, shape ``(out,)``
        Every weighted layer, the output layer included.

    Raises
    ------
    TypeError, ValueError
        As :func:`weight_gradients`, or a bad ``batch``.
    """
    x, y, batch = _check_scoring_data(model, x, y, batch)

    def batch_scores(xb, yb):
        signals = {}
        _batch_gradients(model, xb, yb, signals)
        # The batch loss is the mean of the samples' losses: times len(xb), d l_n / d z.
        return [len(xb) * np.abs(signals[i].astype(np.float64)).mean(axis=0)
                for i in range(len(model.weights))]

    return dict(zip(model.layer_names(), _batch_mean(batch_scores, x, y, batch)))


def prune_neurons_by_gradient(model, x, y, amount, *, layers=None, batch=64):
    """A smaller copy of ``model`` without the units of lowest :func:`gradient_neuron_scores`.

    In every named layer (default: every weighted layer but the output layer) the
    ``prune_count(amount, units)`` units of smallest score are removed (ties: the lower index
    is kept, :func:`.prune.score_mask`) with their biases and the next layer's matching input
    columns (:func:`.prune.remove_neurons`, as :func:`prune_filters` removes filters). The
    scores are computed once, on the original model.

    Returns
    -------
    (model, keep) : the new model and ``{name: bool keep-mask over its units}``.

    Raises
    ------
    TypeError, ValueError
        As :func:`gradient_neuron_scores` and :func:`prune_filters` (a bad amount or layer
        name, the output layer, or no unit left).
    """
    x, y, batch = _check_scoring_data(model, x, y, batch)
    targets = _prunable_layers(model, layers, "neuron pruning")
    scores = gradient_neuron_scores(model, x, y, batch=batch)
    keeps = {name: _leaves_a_filter(score_mask(scores[name], amount), name, amount)
             for name in targets}
    return _remove_filters(model, keeps), keeps
