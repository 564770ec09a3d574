"""Low-rank factorization of Dense and Conv2d layers by truncated SVD (seed 003).

A weighted layer's GEMM matrix ``W`` (``out x K``: ``K`` its in-features, or ``C*kh*kw`` of a
convolution, ``W = w.reshape(out, -1)``) is replaced by its best rank-``r`` approximation::

    W = U S V^T,   W_r = U_r S_r V_r^T = B A,
    A = sqrt(S_r) V_r^T  (r x K),   B = U_r sqrt(S_r)  (out x r)

and no matrix of rank ``r`` or less is closer (Eckart & Young 1936):
``||W - W_r||_F = sqrt(sum_{i > r} s_i^2)`` and ``||W - W_r||_2 = s_{r+1}``. The layer becomes
two layers, two GEMMs on the array:

Dense ``in -> out``
    Dense ``in -> r`` (weights ``A``, zero bias, no activation), then Dense ``r -> out``
    (weights ``B``, the layer's bias and activation).
Conv2d ``C -> O``, ``kh x kw``
    Conv2d ``C -> r`` (``A`` as ``(r, C, kh, kw)``: ``r`` basis filters, the layer's stride
    and padding, zero bias, no activation), then a 1x1 Conv2d ``r -> O`` (``B`` as
    ``(O, r, 1, 1)``, the bias and activation) that recombines them: every filter is a linear
    combination of ``r`` basis filters (Jaderberg et al. 2014), the basis found in closed form
    by the SVD of the flattened filters (Denton et al. 2014; the same k x k then 1 x 1 split
    as the channel decomposition of Zhang et al. 2016). Both factors run at the output
    resolution, so the MACs scale like the parameters.

Per sample a factorized layer costs ``r (K + out)`` weights and MACs (times the output pixels
of a convolution) instead of ``K out``: it saves only for ``r < K out / (K + out)``
(:func:`break_even_rank`). The first factor also stores a zero bias of ``r`` values (every
weighted graph layer carries one, and the array adds it for free); fine-tuning trains it.

Why ``S`` is split evenly (``sqrt`` on both sides) rather than left on one factor: any split
gives the same product, but the balanced one gives both factors the same singular values
``sqrt(s_i)`` (``A A^T = B^T B = S_r``). (1) int8: weights are quantized per output channel,
the intermediate activation ``t = A x`` per tensor. With ``S`` on ``A``, the rows of ``A``
carry ``s_i`` (harmless, per channel) but the channels of ``t`` span ``s_1 / s_r`` under one
scale; with ``S`` on ``B``, ``t`` is even but every row of ``B`` mixes columns scaled by
``s_1 ... s_r`` under one scale. The even split leaves ``sqrt(s_1 / s_r)`` on each side.
(2) fine-tuning: ``dL/dA = B^T G x^T`` and ``dL/dB = G (A x)^T`` are then on the same scale,
and gradient flow keeps a balanced pair balanced (``A A^T - B^T B`` is conserved; Arora et
al. 2018, Du et al. 2018).

Rank: explicit, or the smallest ``r`` retaining an energy fraction ``e`` of the spectrum,
``sum_{i <= r} s_i^2 / sum_i s_i^2 >= e`` (:func:`choose_rank`).

Representation of a factorized network (:class:`Sequential`). :class:`.train.MLP` puts a ReLU
after every hidden layer and :class:`.train.CNN` a ReLU and a pooling after every
convolution, so neither can hold a linear layer without activation or a 1x1 convolution.
Their forward, backward, masks, QAT and graph export are written once, in train.py's network
base class, over a list of operations (dense/conv with their own ReLU flag, stride and
padding; pool; flatten); MLP and CNN differ only in deriving that list from their weights.
:class:`Sequential` is that base class with the list stored explicitly: the least invasive
representation. :func:`.train.train` trains it (fine-tuning, pruning masks, QAT, KD), and its
``to_layers()`` is the float graph :func:`.graph.quantize_graph` takes, nothing in train.py
changed. The price: it leans on train.py's private ``_Network`` and ``_Op`` (operations are
copied from the model's own list with ``dataclasses.replace``, never built here).

:func:`factorize_graph` factorizes the float graph of any network (a ResNet's, an imported
one's) for post-training use; the second factor keeps the layer's name, since it produces
the layer's output tensor, so the wiring and per-layer settings keyed by it keep working.
"""

import dataclasses
import numbers

import numpy as np

from common.checks import as_float_array, check_finite, check_int

from .graph import Conv2d, Dense, tensor_shapes
from .train import _Network

__all__ = ["singular_values", "choose_rank", "truncation_error", "svd_factors",
           "break_even_rank", "factorize_layer", "factorize_graph", "Sequential", "factorize",
           "network_cost", "cost_report"]


# --- the matrix ---------------------------------------------------------------------------------

def _gemm_matrix(w, name="w"):
    w = check_finite(as_float_array(w, name), name)
    if w.ndim not in (2, 4) or 0 in w.shape:
        raise ValueError(f"{name} must be a non-empty (out, in) or OIHW weight, not shape "
                         f"{w.shape}")
    return w, w.reshape(w.shape[0], -1).astype(np.float64)


def singular_values(w):
    """Singular values (descending, float64) of the GEMM matrix ``w.reshape(out, -1)``.

    Raises ``TypeError`` / ``ValueError`` for a non-float, non-finite, empty or not 2-d / 4-d
    weight.
    """
    return np.linalg.svd(_gemm_matrix(w)[1], compute_uv=False)


def _check_energy(energy):
    if isinstance(energy, (bool, np.bool_)) or not isinstance(energy, numbers.Real):
        raise TypeError(f"energy must be a real number, not {energy!r}")
    if not 0.0 < float(energy) <= 1.0:
        raise ValueError(f"energy must be in (0, 1], not {energy!r}")
    return float(energy)


def choose_rank(s, energy):
    """The smallest rank retaining the energy fraction ``energy`` of a spectrum.

    ``r = min{r >= 1 : sum_{i <= r} s_i^2 >= energy * sum_i s_i^2}``, the sums taken by one
    cumulative sum (so ``energy = 1`` gives the numerical rank: trailing zero singular values
    are dropped). An all-zero spectrum gives 1.

    Parameters
    ----------
    s : float array, 1-d, non-empty
        Singular values in descending order (:func:`singular_values`).
    energy : float
        In ``(0, 1]``.

    Raises
    ------
    TypeError, ValueError
        ``s`` not a non-empty 1-d float array of finite non-negative values, or ``energy`` not
        a real number in ``(0, 1]``.
    """
    s = check_finite(as_float_array(s, "s"), "s")
    if s.ndim != 1 or s.size == 0 or (s < 0).any():
        raise ValueError(f"s must be a non-empty 1-d array of non-negative singular values, "
                         f"not shape {s.shape}")
    energy = _check_energy(energy)
    cum = np.cumsum(np.square(s.astype(np.float64)))
    return max(1, min(s.size, int(np.count_nonzero(cum < energy * cum[-1])) + 1))


def _rank(rank, shape, name="rank"):
    return check_int(rank, name, lo=1, hi=min(shape[0], int(np.prod(shape[1:]))))


def truncation_error(w, rank):
    """``sqrt(sum_{i > rank} s_i^2)``: the Frobenius error ``||W - W_r||_F`` of the best
    rank-``rank`` approximation (Eckart & Young 1936), from the singular values alone.

    Raises ``ValueError`` for a rank outside ``[1, min(out, K)]``.
    """
    s = singular_values(w)
    rank = _rank(rank, (s.size, s.size))
    return float(np.sqrt(np.sum(np.square(s[rank:]))))


def svd_factors(w, rank=None, *, energy=None):
    """The balanced factors ``(A, B)`` of the truncated SVD of ``W = w.reshape(out, -1)``.

    ``A = sqrt(S_r) V_r^T`` (``r x K``) and ``B = U_r sqrt(S_r)`` (``out x r``), so
    ``B A = W_r``, the best rank-``r`` approximation (module docstring); computed in float64
    and returned in ``w``'s dtype.

    Parameters
    ----------
    w : float array, ``(out, in)`` or OIHW
    rank : int, optional
        ``r`` in ``[1, min(out, K)]``.
    energy : float, optional
        Instead of ``rank``: the retained energy fraction of :func:`choose_rank`.

    Returns
    -------
    (A, B) : 2-d arrays ``(r, K)`` and ``(out, r)``.

    Raises
    ------
    TypeError, ValueError
        A bad weight, neither or both of ``rank`` and ``energy``, a rank out of range or an
        energy outside ``(0, 1]``.
    """
    w, wm = _gemm_matrix(w)
    u, s, vt = np.linalg.svd(wm, full_matrices=False)
    r = _rank_or_energy(rank, energy, wm.shape, s)
    root = np.sqrt(s[:r])
    return (root[:, None] * vt[:r]).astype(w.dtype), (u[:, :r] * root).astype(w.dtype)


def _rank_or_energy(rank, energy, shape, s, name="rank"):
    if (rank is None) == (energy is None):
        raise ValueError(f"give exactly one of rank and energy, not rank={rank!r} and "
                         f"energy={energy!r}")
    return _rank(rank, shape, name) if rank is not None else choose_rank(s, energy)


def break_even_rank(shape):
    """The largest rank at which factorizing a weight of ``shape`` saves weights and MACs:
    the largest ``r`` with ``r (K + out) < K out`` (``K`` the product of ``shape[1:]``); 0 when
    no rank saves.

    Raises ``ValueError`` for a shape that is not 2-d or 4-d of positive sizes.
    """
    if not isinstance(shape, (tuple, list)) or len(shape) not in (2, 4):
        raise ValueError(f"shape must be (out, in) or OIHW, not {shape!r}")
    shape = [check_int(v, "shape entry", lo=1) for v in shape]
    out, k = shape[0], int(np.prod(shape[1:]))
    return (k * out - 1) // (k + out)


# --- float graph layers -----------------------------------------------------------------------

def _factor_pair(layer, a, b):
    """The two graph layers of ``layer`` with GEMM factors ``a`` (r, K) and ``b`` (out, r)."""
    r = a.shape[0]
    first = dict(b=np.zeros(r, layer.b.dtype), relu=False, name=f"{layer.name}.v",
                 inputs=tuple(layer.inputs))
    second = dict(b=layer.b.copy(), relu=layer.relu, relu6=layer.relu6, name=layer.name,
                  inputs=())
    if isinstance(layer, Dense):
        return [Dense(a, **first), Dense(b, **second)]
    return [Conv2d(a.reshape(r, *layer.w.shape[1:]), stride=layer.stride,
                   padding=layer.padding, **first),
            Conv2d(b.reshape(b.shape[0], r, 1, 1), **second)]


def _check_graph_layer(layer):
    if type(layer) not in (Dense, Conv2d):
        raise TypeError(f"layer must be a float Dense or Conv2d, not {type(layer).__name__}")
    if isinstance(layer, Conv2d) and layer.groups != 1:
        raise ValueError(f"{layer.label()}: groups must be 1 to factorize, not "
                         f"{layer.groups}")
    if not layer.name:
        raise ValueError("layer must have a name to factorize (its factors are named after "
                         "it), not ''")


def factorize_layer(layer, rank=None, *, energy=None):
    """A float :class:`.graph.Dense` or :class:`.graph.Conv2d` as its two low-rank factors.

    Dense: ``[Dense(A) "<name>.v", Dense(B) "<name>"]``; Conv2d: ``[Conv2d(A) "<name>.v"``
    (k x k, the layer's stride and padding), ``Conv2d(B) "<name>"`` (1x1)``]`` (module
    docstring). The first reads the layer's inputs and has a zero bias and no activation; the
    second keeps the name, the bias and the activation (ReLU or ReLU6).

    Parameters
    ----------
    layer : Dense or Conv2d (``groups == 1``, named)
    rank, energy : as :func:`svd_factors`

    Raises
    ------
    TypeError, ValueError
        Another layer, a grouped convolution, an unnamed layer, or a bad rank or energy.
    """
    _check_graph_layer(layer)
    rank = None if rank is None else _rank(rank, layer.w.shape, f"rank of {layer.label()}")
    a, b = svd_factors(layer.w, rank, energy=energy)
    return _factor_pair(layer, a, b)


def _check_names(names, allowed, what="layers"):
    if isinstance(names, str) or not isinstance(names, (list, tuple)):
        raise TypeError(f"{what} must be a list of layer names, not {names!r}")
    for name in names:
        if name not in allowed:
            raise ValueError(f"{what} must name layers among {', '.join(map(repr, allowed))}, "
                             f"not {name!r}")
    if len(set(names)) != len(names):
        raise ValueError(f"{what} must not repeat a name, not {list(names)!r}")
    return list(names)


def _targets(rank, energy, layers, allowed, what="layers"):
    """``{name: rank or None}`` of the layers to factorize (None: chosen by ``energy``)."""
    if isinstance(rank, dict):
        if layers is not None:
            raise ValueError(f"{what} must be None when rank is a dict (its keys name the "
                             f"layers), not {layers!r}")
        if energy is not None:
            raise ValueError(f"give exactly one of rank and energy, not rank={rank!r} and "
                             f"energy={energy!r}")
        _check_names(list(rank), allowed, "rank keys")
        return dict(rank)
    names = allowed if layers is None else _check_names(layers, allowed, what)
    if (rank is None) == (energy is None):
        raise ValueError(f"give exactly one of rank and energy, not rank={rank!r} and "
                         f"energy={energy!r}")
    if energy is not None:
        _check_energy(energy)
    return dict.fromkeys(names, rank)


def factorize_graph(layers, rank=None, *, energy=None, names=None):
    """A float graph with chosen Dense/Conv2d layers replaced by their factors
    (:func:`factorize_layer`); other layers are kept (the same objects).

    Parameters
    ----------
    layers : list of float graph layers
    rank : int or dict of name -> int, optional
        One rank for every chosen layer, or a rank per layer (its keys choose the layers).
    energy : float, optional
        Instead of ``rank``: each layer's rank by :func:`choose_rank`.
    names : list of str, optional
        The layers to factorize (default: every Dense and ungrouped Conv2d).

    Raises
    ------
    TypeError, ValueError
        As :func:`factorize_layer`, or a name that is not such a layer of the graph.
    """
    if not isinstance(layers, (list, tuple)):
        raise TypeError(f"layers must be a list of graph layers, not {type(layers).__name__}")
    allowed = [ly.name for ly in layers if type(ly) in (Dense, Conv2d) and ly.name
               and getattr(ly, "groups", 1) == 1]
    targets = _targets(rank, energy, names, allowed, "names")
    out = []
    for layer in layers:
        if layer.name in targets:
            out += factorize_layer(layer, targets[layer.name], energy=energy)
        else:
            out.append(layer)
    return out


# --- the trainable network ------------------------------------------------------------------

@dataclasses.dataclass
class Sequential(_Network):
    """A network of :mod:`.train`'s operations listed explicitly (module docstring).

    ``ops[k]`` is train.py's operation record: ``kind`` ("dense", "conv", "pool", "flatten"),
    ``index`` (its weight in ``weights``, -1 for pool and flatten), ``relu``, ``stride``,
    ``padding``, ``kernel`` (pooling), ``name``. Everything an :class:`.train.MLP` or
    :class:`.train.CNN` does, it does: ``forward``, ``gradients``, ``to_layers``, ``copy``,
    ``fit``, and :func:`.train.train` with any of its options.

    Members
    -------
    weights, biases, masks : lists as :class:`.train.MLP`'s, in the order of ``ops``.
    ops : tuple of operation records
        Built by :meth:`from_model` and :func:`factorize`, never by hand.
    input_shape : tuple
        One sample's shape.

    Raises
    ------
    ValueError
        (On construction) weighted operations not numbered ``0, 1, ...`` in order, weights and
        biases of other lengths, or two layers of one name.
    """

    weights: list
    biases: list
    masks: list = dataclasses.field(default_factory=list)
    ops: tuple = ()
    input_shape: tuple = None

    def __post_init__(self):
        self.ops = tuple(self.ops)
        indices = [op.index for op in self.ops if op.kind in ("dense", "conv")]
        if indices != list(range(len(self.weights))) or len(self.biases) != len(self.weights):
            raise ValueError(f"ops must number their weighted layers 0 to "
                             f"{len(self.weights) - 1} in order, one bias each, not "
                             f"{indices} with {len(self.biases)} biases")
        names = [op.name for op in self.ops]
        dup = next((n for n in names if names.count(n) > 1), None)
        if dup is not None:
            raise ValueError(f"layer names must be unique, not {dup!r} twice")
        if not isinstance(self.input_shape, tuple):
            raise ValueError(f"input_shape must be a tuple, not {self.input_shape!r}")

    @classmethod
    def from_model(cls, model):
        """A :class:`Sequential` computing exactly what ``model`` (an MLP, CNN or Sequential)
        computes, arrays copied."""
        _check_model(model)
        new = model.copy()
        return cls(new.weights, new.biases, new.full_masks(), tuple(model._arch()),
                   tuple(model.input_shape))

    def _arch(self):
        return list(self.ops)

    def feature_shape(self):
        """The shape the flatten sees (what :func:`.train.prune_filters` needs to remove a
        convolution's filters from the dense layer after the flatten)."""
        kinds = [op.kind for op in self.ops]
        if "flatten" not in kinds:
            raise ValueError("feature_shape needs a network with a flatten, not one without")
        return tensor_shapes(self.to_layers(), self.input_shape)[kinds.index("flatten")]


def _check_model(model):
    if not isinstance(model, _Network):
        raise TypeError(f"model must be an MLP, a CNN or a Sequential, not "
                        f"{type(model).__name__}")


def factorize(model, rank=None, *, energy=None, layers=None):
    """A :class:`Sequential` copy of ``model`` with chosen layers low-rank factorized.

    Each chosen dense (convolution) layer ``name`` becomes ``name.v`` (``in -> r``, or k x k
    ``C -> r`` with the layer's stride and padding; zero bias, no ReLU) followed by ``name``
    (``r -> out``, or 1x1 ``r -> O``; the layer's bias and ReLU), as :func:`factorize_layer`;
    everything else is copied. The factors are dense: a layer's pruning mask is dropped. Fine-
    tune the result with :func:`.train.train`; export it with ``to_layers()``.

    Parameters
    ----------
    model : MLP, CNN or Sequential
    rank : int or dict of name -> int, optional
        One rank for every chosen layer, or a rank per layer (its keys choose the layers).
    energy : float, optional
        Instead of ``rank``: each layer's rank by :func:`choose_rank`.
    layers : list of str, optional
        The layers to factorize (default: every weighted layer, the classifier included).

    Returns
    -------
    Sequential

    Raises
    ------
    TypeError, ValueError
        Another model, an unknown layer, neither or both of ``rank`` and ``energy``, a rank
        outside ``[1, min(out, K)]`` of its layer (named), or an energy outside ``(0, 1]``.
    """
    _check_model(model)
    targets = _targets(rank, energy, layers, model.layer_names())
    src = Sequential.from_model(model)
    ops, weights, biases, masks = [], [], [], []

    def add(op, w, b, m, **changes):
        ops.append(dataclasses.replace(op, index=len(weights), **changes))
        weights.append(w)
        biases.append(b)
        masks.append(m)

    for op in src.ops:
        if op.index < 0:
            ops.append(op)
            continue
        w, b, m = src.weights[op.index], src.biases[op.index], src.masks[op.index]
        if op.name not in targets:
            add(op, w, b, m)
            continue
        r = targets[op.name]
        r = None if r is None else _rank(r, w.shape, f"rank of layer {op.name!r}")
        a, bf = svd_factors(w, r, energy=energy)
        k = a.shape[0]
        if op.kind == "dense":
            add(op, a, np.zeros(k, b.dtype), None, relu=False, name=f"{op.name}.v")
            add(op, bf, b, None)
        else:
            add(op, a.reshape(k, *w.shape[1:]), np.zeros(k, b.dtype), None, relu=False,
                name=f"{op.name}.v")
            add(op, bf.reshape(bf.shape[0], k, 1, 1), b, None, stride=1, padding=0)
    return Sequential(weights, biases, masks, tuple(ops), src.input_shape)


# --- cost -------------------------------------------------------------------------------------

def network_cost(model, input_shape=None):
    """Parameters and MACs per sample of every Dense/Conv2d of a network's float graph.

    ``params = w.size + b.size`` (the bias every weighted graph layer stores); ``macs`` of a
    layer ``= prod(output shape) * w[0].size`` (each output value is one dot product of the
    reduction length ``in`` or ``C/groups * kh * kw``): the MACs the array runs.

    Parameters
    ----------
    model : MLP, CNN, Sequential, ResNet (anything with ``to_layers()`` and ``input_shape``),
        or a list of float graph layers
    input_shape : tuple
        One sample's shape; only (and then required) for a list of layers.

    Returns
    -------
    dict
        ``{"params": int, "macs": int, "layers": {name: {"params": int, "macs": int}}}``.

    Raises
    ------
    TypeError, ValueError
        Neither a model nor a list with an ``input_shape``.
    """
    if isinstance(model, (list, tuple)):
        if input_shape is None:
            raise ValueError("input_shape must be given with a list of layers, not None")
        layers = list(model)
    elif hasattr(model, "to_layers") and hasattr(model, "input_shape"):
        layers, input_shape = model.to_layers(), model.input_shape
    else:
        raise TypeError(f"model must be a network or a list of graph layers, not "
                        f"{type(model).__name__}")
    shapes = tensor_shapes(layers, tuple(input_shape))
    rows = {}
    for i, layer in enumerate(layers):
        if isinstance(layer, (Dense, Conv2d)):
            rows[layer.name or f"layer{i}"] = {
                "params": int(layer.w.size + layer.b.size),
                "macs": int(np.prod(shapes[i + 1])) * int(layer.w[0].size)}
    return {"params": sum(r["params"] for r in rows.values()),
            "macs": sum(r["macs"] for r in rows.values()), "layers": rows}


def cost_report(before, after):
    """Totals of :func:`network_cost` of two networks (e.g. a model and its factorized or
    reduced copy): ``{"params": (before, after), "macs": (before, after),
    "params_ratio": after / before, "macs_ratio": after / before}``."""
    b, a = network_cost(before), network_cost(after)
    return {"params": (b["params"], a["params"]), "macs": (b["macs"], a["macs"]),
            "params_ratio": a["params"] / b["params"], "macs_ratio": a["macs"] / b["macs"]}
