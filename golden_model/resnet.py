"""A small residual network in NumPy: forward, backward, training, N:M masks, float graph.

The network (:class:`ResNet`) is the CIFAR-style ResNet of He et al., "Deep Residual
Learning for Image Recognition" (CVPR 2016, section 4.2), built of BasicBlocks::

    stem      conv 3x3 (C_0 channels, stride 1) - BN - ReLU
    stage s   B BasicBlocks of C_s channels, the first of stride S_s:
              y = ReLU(BN(conv3x3(ReLU(BN(conv3x3_S(x))))) + shortcut(x)),
              shortcut(x) = x, or BN(conv1x1_S(x)) where the stride or the width changes
              (the paper's projection shortcut, option B)
    head      global average pooling - Dense (classes)

The default (:meth:`ResNet.init`) for 28x28 digits: C = 8 / 16 / 32, S = 1 / 2 / 2, one
block per stage: feature maps 8x28x28, 16x14x14, 32x7x7; 9 convolutions and the classifier,
GEMM reduction lengths 9 (the stem), 72, 72, 72, 144, 8, 144, 288, 16 and 32.
Convolutions have no bias (the batch normalization after each supplies it); "same" padding
``kernel // 2``.

Batch normalization (Ioffe & Szegedy, ICML 2015), per channel over the ``m = N*H*W`` values
of a batch. Training mode::

    mu = mean(x),  var = mean((x - mu)^2),  xhat = (x - mu) / sqrt(var + eps),
    y = gamma * xhat + beta
    dx = gamma / (m * sqrt(var + eps)) * (m * dy - sum(dy) - xhat * sum(dy * xhat)),
    dgamma = sum(dy * xhat),  dbeta = sum(dy)

and the running statistics move as PyTorch's ``BatchNorm2d`` moves them,
``r <- (1 - momentum) * r + momentum * batch`` (:data:`BN_MOMENTUM`), the variance unbiased
(``var * m / (m - 1)``). Eval mode (inference, :meth:`ResNet.forward`) uses the running
statistics, so it is an affine map per channel that folds into the convolution before it
(:meth:`ResNet.folded`)::

    s = gamma / sqrt(running_var + eps),   w'[o] = s[o] * w[o],   b' = beta - s * running_mean

:meth:`ResNet.to_layers` exports the folded network as the float layers of :mod:`.graph`
(Conv2d with fused ReLU, Add with fused ReLU, GlobalAvgPool, Flatten, Dense), whose
:func:`.graph.float_forward` equals the eval-mode forward to float32 rounding, ready for
:func:`.graph.quantize_graph`. A folded row is its unfolded row times one scalar, so the
zeros of an N:M pruned weight stay where they are.

Training (:func:`train`): softmax cross-entropy, mini-batches, SGD with momentum in PyTorch's
form (``v <- mu * v + g + wd * w``, ``w <- w - lr * v``; Sutskever et al., ICML 2013), weight
decay on the convolution and dense weights only, the learning rate on a cosine from ``lr`` to
0 (Loshchilov & Hutter, "SGDR", ICLR 2017). ``net.masks`` (layer name -> bool array like its
weight) are held: masked gradients are zeroed and the masks re-applied after every step, so
pruned weights stay exactly zero while the network is fine-tuned. :meth:`ResNet.set_n_m_masks`
sets N:M masks along each layer's GEMM reduction axis (axis 1 of ``w.reshape(out, -1)``,
:func:`.prune.prune_n_m`); :func:`n_m_layers` names the layers the one rule of
:func:`.graph.n_m_layers` selects.
"""

import dataclasses
import math
import numbers

import numpy as np

from common.checks import as_float_array, as_int_array, check_finite, check_int

from .graph import Add, Conv2d, Dense, Flatten, GlobalAvgPool
from .graph import n_m_layers as graph_n_m_layers
from .prune import prune_n_m
from .train import cross_entropy

__all__ = ["BN_EPS", "BN_MOMENTUM", "ConvSpec", "BlockSpec", "ResNet", "TrainLog", "train",
           "n_m_layers"]

#: Batch normalization's ``eps`` (PyTorch's default).
BN_EPS = 1e-5
#: Weight of a batch's statistics in the running statistics (PyTorch's default).
BN_MOMENTUM = 0.1
#: Images per chunk of the eval-mode forward (bounds the im2col buffers to about 50 MB).
_EVAL_CHUNK = 250


def _real(value, name, *, lo=0.0, hi=None, lo_open=False):
    """A finite float in ``[lo, hi]`` (``(lo, hi]`` with ``lo_open``; no bound for None)."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, not {value!r}")
    value = float(value)
    above = lo < value if lo_open else lo <= value
    if not math.isfinite(value) or not above or (hi is not None and value > hi):
        if hi is None:
            rule = f"finite and {'greater than' if lo_open else 'at least'} {lo:g}"
        else:
            rule = f"in {'(' if lo_open else '['}{lo:g}, {hi:g}]"
        raise ValueError(f"{name} must be {rule}, not {value!r}")
    return value


# --- the operations, forward and backward --------------------------------------------------
#
# Activations are kept channel-major, CNHW, inside the network: the patch matrix of a
# convolution is then built, and scattered back, by one slice copy per kernel tap whose
# innermost runs are image rows, its GEMM's product is the next layer's CNHW activation with no
# transpose, and batch normalization reduces contiguous memory per channel (two to three times
# faster than NCHW im2col on one core).

def _im2col(x, spec):
    """Patch matrix ``(C*KH*KW, N*OH*OW)`` of a CNHW input, rows ordered as the OIHW weight's
    ``w.reshape(O, C*KH*KW)`` columns (c, i, j), zero padding; and ``(OH, OW)``."""
    c, n, h, w = x.shape
    k, s, p = spec.kernel, spec.stride, spec.padding
    oh, ow = (h + 2 * p - k) // s + 1, (w + 2 * p - k) // s + 1
    xp = np.pad(x, ((0, 0), (0, 0), (p, p), (p, p))) if p else x
    cols = np.empty((c, k, k, n, oh, ow), x.dtype)
    for i in range(k):
        for j in range(k):
            cols[:, i, j] = xp[:, :, i:i + s * (oh - 1) + 1:s, j:j + s * (ow - 1) + 1:s]
    return cols.reshape(c * k * k, n * oh * ow), (oh, ow)


def _col2im(dcols, shape, spec, ohw):
    """The adjoint of :func:`_im2col`: every patch gradient added back where it was read."""
    c, n, h, w = shape
    k, s, p = spec.kernel, spec.stride, spec.padding
    oh, ow = ohw
    d = dcols.reshape(c, k, k, n, oh, ow)
    dxp = np.zeros((c, n, h + 2 * p, w + 2 * p), dcols.dtype)
    for i in range(k):
        for j in range(k):
            dxp[:, :, i:i + s * (oh - 1) + 1:s, j:j + s * (ow - 1) + 1:s] += d[:, i, j]
    return dxp[:, :, p:p + h, p:p + w]


def _conv(x, w, spec):
    """Convolution of a CNHW input as one GEMM ``W A`` (``W = w.reshape(O, C*KH*KW)``, ``A``
    the patch matrix); returns the CNHW output and what its backward needs."""
    a, (oh, ow) = _im2col(x, spec)
    y = w.reshape(w.shape[0], -1) @ a
    return y.reshape(w.shape[0], x.shape[1], oh, ow), (a, x.shape, (oh, ow))


def _conv_backward(g, w, spec, cache, need_dx):
    """``(dx, dw)`` of :func:`_conv` (``dx`` None unless ``need_dx``): ``dW = G A^T``,
    ``dx = col2im(W^T G)``."""
    a, shape, ohw = cache
    g2 = g.reshape(g.shape[0], -1)
    dw = (g2 @ a.T).reshape(w.shape)
    if not need_dx:
        return None, dw
    return _col2im(w.reshape(w.shape[0], -1).T @ g2, shape, spec, ohw), dw


def _channel(v):
    """A per-channel vector shaped to broadcast over CNHW."""
    return v[:, None, None, None]


def _bn_train(y, gamma, beta):
    """Training-mode batch normalization of CNHW ``y``: output, backward cache, and the
    batch's mean and (biased) variance per channel."""
    mean = y.mean(axis=(1, 2, 3))
    var = y.var(axis=(1, 2, 3))
    inv = (1.0 / np.sqrt(var + BN_EPS)).astype(y.dtype)
    xhat = (y - _channel(mean)) * _channel(inv)
    return _channel(gamma) * xhat + _channel(beta), (xhat, inv), mean, var


def _bn_backward(g, gamma, cache):
    """``(dy, dgamma, dbeta)`` of :func:`_bn_train` (module docstring)."""
    xhat, inv = cache
    m = g.size // g.shape[0]
    dbeta = g.sum(axis=(1, 2, 3))
    dgamma = (g * xhat).sum(axis=(1, 2, 3))
    dy = _channel(gamma * inv / m) * (m * g - _channel(dbeta) - xhat * _channel(dgamma))
    return dy, dgamma, dbeta


def _bn_scale_shift(gamma, beta, mean, var):
    """Eval-mode batch normalization as ``y * s + t`` per channel (float64)."""
    s = gamma.astype(np.float64) / np.sqrt(var.astype(np.float64) + BN_EPS)
    return s, beta.astype(np.float64) - s * mean.astype(np.float64)


# --- the network -----------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class ConvSpec:
    """A convolution without bias followed by batch normalization.

    Members
    -------
    name : str
        The layer's name (in the float graph too); its parameters are ``"<name>.w"`` (OIHW),
        ``"<name>.gamma"``, ``"<name>.beta"``, its running statistics ``"<name>.mean"``,
        ``"<name>.var"``.
    cin, cout, kernel, stride : int
        Channels in and out, square kernel, stride; padding is ``kernel // 2``.
    """

    name: str
    cin: int
    cout: int
    kernel: int = 3
    stride: int = 1

    @property
    def padding(self):
        return self.kernel // 2

    @property
    def shape(self):
        """The weight's OIHW shape."""
        return (self.cout, self.cin, self.kernel, self.kernel)


@dataclasses.dataclass(frozen=True)
class BlockSpec:
    """A BasicBlock: ``conv1`` (3x3, the block's stride) - BN - ReLU - ``conv2`` (3x3) - BN,
    plus the input through ``shortcut`` (1x1 strided convolution - BN; ``None``: identity),
    then ReLU. ``name`` is the name of its Add in the float graph."""

    name: str
    conv1: ConvSpec
    conv2: ConvSpec
    shortcut: ConvSpec = None

    def convs(self):
        return [self.conv1, self.conv2] + ([self.shortcut] if self.shortcut else [])


def _he(rng, shape, fan_in):
    return (rng.standard_normal(shape) * np.sqrt(2.0 / fan_in)).astype(np.float32)


@dataclasses.dataclass
class ResNet:
    """A residual network of BasicBlocks (module docstring), NCHW input.

    Members
    -------
    stem : ConvSpec
    blocks : tuple of BlockSpec
    classes : int
    input_shape : tuple
        ``(C, H, W)`` of one image.
    params : dict
        Trainable arrays by name: each convolution's ``.w``, ``.gamma``, ``.beta`` and the
        classifier's ``"fc.w"`` (out, in) and ``"fc.b"``.
    stats : dict
        Running statistics by name: each convolution's ``.mean`` and ``.var``.
    masks : dict
        Layer name -> bool array shaped like its weight: the weights kept (held by
        :func:`train`).
    """

    stem: ConvSpec
    blocks: tuple
    classes: int
    input_shape: tuple
    params: dict
    stats: dict
    masks: dict = dataclasses.field(default_factory=dict)

    @classmethod
    def init(cls, channels=(8, 16, 32), strides=(1, 2, 2), blocks=1, classes=10, *,
             input_shape=(1, 28, 28), seed=0):
        """A He-initialized network: one stage per entry of ``channels`` (its width) and
        ``strides`` (its first block's stride), ``blocks`` BasicBlocks per stage, the stem as
        wide as the first stage. BN: ``gamma = 1``, ``beta = 0``, running mean 0 and variance
        1; the classifier ``N(0, 1 / in)``, bias 0.

        Raises
        ------
        TypeError, ValueError
            A width, stride or count that is not a positive integer, or ``channels`` and
            ``strides`` of different lengths.
        """
        if not isinstance(channels, (list, tuple)) or not isinstance(strides, (list, tuple)):
            raise TypeError(f"channels and strides must be lists of integers, not "
                            f"{channels!r} and {strides!r}")
        channels = [check_int(c, "channels entry", lo=1) for c in channels]
        strides = [check_int(s, "strides entry", lo=1) for s in strides]
        if not channels or len(channels) != len(strides):
            raise ValueError(f"channels and strides must be non-empty and of equal lengths, "
                             f"not {len(channels)} and {len(strides)}")
        blocks = check_int(blocks, "blocks", lo=1)
        classes = check_int(classes, "classes", lo=2)
        if not isinstance(input_shape, (list, tuple)) or len(input_shape) != 3:
            raise ValueError(f"input_shape must be (C, H, W), not {input_shape!r}")
        input_shape = tuple(check_int(v, "input_shape entry", lo=1) for v in input_shape)
        stem = ConvSpec("stem", input_shape[0], channels[0])
        specs, c = [], channels[0]
        for s, (width, stride) in enumerate(zip(channels, strides)):
            for b in range(blocks):
                name, st = f"layer{s + 1}.{b}", stride if b == 0 else 1
                short = (ConvSpec(f"{name}.downsample", c, width, kernel=1, stride=st)
                         if st != 1 or c != width else None)
                specs.append(BlockSpec(name, ConvSpec(f"{name}.conv1", c, width, stride=st),
                                       ConvSpec(f"{name}.conv2", width, width), short))
                c = width
        rng = np.random.default_rng(seed)
        params, stats = {}, {}
        for spec in [stem] + [cv for blk in specs for cv in blk.convs()]:
            params[f"{spec.name}.w"] = _he(rng, spec.shape, spec.cin * spec.kernel ** 2)
            params[f"{spec.name}.gamma"] = np.ones(spec.cout, np.float32)
            params[f"{spec.name}.beta"] = np.zeros(spec.cout, np.float32)
            stats[f"{spec.name}.mean"] = np.zeros(spec.cout, np.float32)
            stats[f"{spec.name}.var"] = np.ones(spec.cout, np.float32)
        params["fc.w"] = (rng.standard_normal((classes, c)) / np.sqrt(c)).astype(np.float32)
        params["fc.b"] = np.zeros(classes, np.float32)
        return cls(stem, tuple(specs), classes, input_shape, params, stats)

    # --- structure ---------------------------------------------------------------------------

    def convs(self):
        """Every :class:`ConvSpec`, in the float graph's order."""
        return [self.stem] + [cv for blk in self.blocks for cv in blk.convs()]

    def layer_names(self):
        """Names of the weighted layers: the convolutions in order, then ``"fc"``."""
        return [cv.name for cv in self.convs()] + ["fc"]

    def weight(self, name):
        """The weight array of layer ``name`` (the live array, not a copy)."""
        if name not in self.layer_names():
            raise ValueError(f"layer must be one of {', '.join(map(repr, self.layer_names()))},"
                             f" not {name!r}")
        return self.params[f"{name}.w"]

    def copy(self):
        return self.astype(None)

    def astype(self, dtype):
        """A deep copy with every parameter and statistic cast to ``dtype`` (None: kept)."""
        def cast(d):
            return {k: (v.copy() if dtype is None else v.astype(dtype)) for k, v in d.items()}
        return dataclasses.replace(self, params=cast(self.params), stats=cast(self.stats),
                                   masks={k: v.copy() for k, v in self.masks.items()})

    def sparsity(self):
        """Fraction of the weights of all weighted layers that are exactly zero."""
        ws = [self.weight(n) for n in self.layer_names()]
        return float(sum(int(np.count_nonzero(w == 0)) for w in ws) / sum(w.size for w in ws))

    # --- masks -------------------------------------------------------------------------------

    def apply_masks(self):
        """Zero the masked weights (in place)."""
        for name, mask in self.masks.items():
            self.weight(name)[...] *= mask

    def set_n_m_masks(self, n, m, layers):
        """Add N:M masks of ``layers`` (names) along their GEMM reduction axis: in every
        group of ``m`` consecutive weights of a row of ``w.reshape(out, -1)`` the ``n`` of
        largest magnitude are kept (:func:`.prune.prune_n_m`), joined with any mask the layer
        has, and applied. Raises ``ValueError`` for an unknown layer or a reduction length
        that is not a multiple of ``m``."""
        n, m = check_int(n, "N", lo=1), check_int(m, "M", lo=1)
        if isinstance(layers, str) or not isinstance(layers, (list, tuple)):
            raise TypeError(f"layers must be a list of layer names, not {layers!r}")
        for name in layers:
            w = self.weight(name)
            k = w[0].size
            if k % m:
                raise ValueError(f"layer {name}'s reduction length must be a multiple of "
                                 f"M = {m}, not {k}")
            keep = prune_n_m(w.reshape(w.shape[0], -1), n, m, axis=1).reshape(w.shape)
            self.masks[name] = keep & self.masks[name] if name in self.masks else keep
        self.apply_masks()

    # --- passes ------------------------------------------------------------------------------

    def _check_x(self, x):
        x = check_finite(as_float_array(x, "x"), "x")
        if x.ndim != 4 or x.shape[1:] != self.input_shape:
            dims = ", ".join(map(str, self.input_shape))
            raise ValueError(f"x must have shape (N, {dims}), not {x.shape}")
        return x

    def _conv_bn(self, x, spec, train, batch_stats, need_dx=True):
        """Convolution then BN; returns the output and its backward (training mode only),
        ``backward(g, grads) -> dx`` filling ``grads``."""
        w = self.params[f"{spec.name}.w"]
        gamma, beta = self.params[f"{spec.name}.gamma"], self.params[f"{spec.name}.beta"]
        y, conv_cache = _conv(x, w, spec)
        if not train:
            s, t = _bn_scale_shift(gamma, beta, self.stats[f"{spec.name}.mean"],
                                   self.stats[f"{spec.name}.var"])
            return y * _channel(s.astype(y.dtype)) + _channel(t.astype(y.dtype)), None
        out, bn_cache, mean, var = _bn_train(y, gamma, beta)
        batch_stats[spec.name] = (mean, var, y.size // y.shape[0])

        def backward(g, grads):
            dy, grads[f"{spec.name}.gamma"], grads[f"{spec.name}.beta"] = _bn_backward(
                g, gamma, bn_cache)
            dx, grads[f"{spec.name}.w"] = _conv_backward(dy, w, spec, conv_cache, need_dx)
            return dx

        return out, backward

    def _block(self, x, blk, train, batch_stats):
        h, back1 = self._conv_bn(x, blk.conv1, train, batch_stats)
        pos1 = h > 0
        h, back2 = self._conv_bn(h * pos1, blk.conv2, train, batch_stats)
        short, back_short = x, None
        if blk.shortcut is not None:
            short, back_short = self._conv_bn(x, blk.shortcut, train, batch_stats)
        out = np.maximum(h + short, 0)

        def backward(g, grads):
            g = g * (out > 0)
            dx = back1(back2(g, grads) * pos1, grads)
            return dx + (g if back_short is None else back_short(g, grads))

        return out, backward

    def _run(self, x, train):
        """Logits of NCHW ``x``, the backward ``backward(d loss / d logits) -> {name:
        gradient}`` (training mode) and the batch statistics ``{conv: (mean, var, m)}``."""
        batch_stats = {}
        x = np.ascontiguousarray(x.transpose(1, 0, 2, 3))
        h, back_stem = self._conv_bn(x, self.stem, train, batch_stats, need_dx=False)
        stem_pos = h > 0
        h = h * stem_pos
        backs = []
        for blk in self.blocks:
            h, back = self._block(h, blk, train, batch_stats)
            backs.append(back)
        features = h.mean(axis=(2, 3)).T
        w, b = self.params["fc.w"], self.params["fc.b"]
        logits = features @ w.T + b

        def backward(g):
            grads = {"fc.w": g.T @ features, "fc.b": g.sum(axis=0)}
            dh = np.broadcast_to((g @ w).T[:, :, None, None] / (h.shape[2] * h.shape[3]),
                                 h.shape)
            for back in reversed(backs):
                dh = back(dh, grads)
            back_stem(dh * stem_pos, grads)
            return grads

        return logits, backward, batch_stats

    def forward(self, x, *, train=False):
        """Logits ``(N, classes)``: eval mode (running statistics, in chunks of images), or
        with ``train=True`` training mode (this batch's statistics; nothing is updated)."""
        x = self._check_x(x)
        if train:
            return self._run(x, True)[0]
        if not len(x):
            return np.zeros((0, self.classes), x.dtype)
        return np.concatenate([self._run(x[i:i + _EVAL_CHUNK], False)[0]
                               for i in range(0, len(x), _EVAL_CHUNK)])

    def gradients(self, x, grad_logits):
        """``{parameter name: d loss / d parameter}`` of the training-mode forward of batch
        ``x``, given ``d loss / d logits``."""
        x = self._check_x(x)
        logits, backward, _ = self._run(x, True)
        g = check_finite(as_float_array(grad_logits, "grad_logits"), "grad_logits")
        if g.shape != logits.shape:
            raise ValueError(f"grad_logits must have the logits' shape {logits.shape}, "
                             f"not {g.shape}")
        return backward(g.astype(logits.dtype))

    def update_running_stats(self, batch_stats, momentum=BN_MOMENTUM):
        """Move the running statistics toward a batch's (module docstring), in place."""
        for name, (mean, var, m) in batch_stats.items():
            for key, value in ((f"{name}.mean", mean), (f"{name}.var", var * m / max(m - 1, 1))):
                r = self.stats[key]
                r *= 1 - momentum
                r += (momentum * value).astype(r.dtype)

    # --- export ------------------------------------------------------------------------------

    def folded(self, name):
        """``(w, b)`` float32 of convolution ``name`` with its eval-mode BN folded in."""
        spec = next((cv for cv in self.convs() if cv.name == name), None)
        if spec is None:
            names = ", ".join(repr(cv.name) for cv in self.convs())
            raise ValueError(f"convolution must be one of {names}, not {name!r}")
        s, t = _bn_scale_shift(self.params[f"{name}.gamma"], self.params[f"{name}.beta"],
                               self.stats[f"{name}.mean"], self.stats[f"{name}.var"])
        w = self.params[f"{name}.w"].astype(np.float64) * s[:, None, None, None]
        return w.astype(np.float32), t.astype(np.float32)

    def _conv_layer(self, spec, relu, inputs):
        w, b = self.folded(spec.name)
        return Conv2d(w, b, stride=spec.stride, padding=spec.padding, relu=relu,
                      name=spec.name, inputs=inputs)

    def to_layers(self):
        """The float graph (:mod:`.graph` layers, BN folded, weights copied): ``stem``; per
        block ``<block>.conv1`` (ReLU), ``<block>.conv2``, ``<block>.downsample`` when it
        has one (reading the block's input), the Add ``<block>`` (ReLU); then ``gap``
        (GlobalAvgPool), ``flatten`` and the Dense ``fc``."""
        layers = [self._conv_layer(self.stem, True, ())]
        prev = self.stem.name
        for blk in self.blocks:
            layers.append(self._conv_layer(blk.conv1, True, (prev,)))
            layers.append(self._conv_layer(blk.conv2, False, ()))
            other = prev
            if blk.shortcut is not None:
                layers.append(self._conv_layer(blk.shortcut, False, (prev,)))
                other = blk.shortcut.name
            layers.append(Add(relu=True, name=blk.name, inputs=(blk.conv2.name, other)))
            prev = blk.name
        layers += [GlobalAvgPool(name="gap"), Flatten(name="flatten"),
                   Dense(self.params["fc.w"].copy(), self.params["fc.b"].copy(), name="fc")]
        return layers


def n_m_layers(net, m, *, dense_last=True):
    """Names of the layers of ``net`` pruned N:M with group size ``m``: every weighted layer
    whose GEMM reduction length ``C * KH * KW`` (in-features) is a multiple of ``m``, but the
    classifier with ``dense_last`` (:func:`.graph.n_m_layers`, the one rule). The default
    network's stem (reduction 9) always stays dense."""
    return graph_n_m_layers(net.to_layers(), m, dense_last=dense_last)[0]


# --- training --------------------------------------------------------------------------------

@dataclasses.dataclass
class TrainLog:
    """What :func:`train` did: ``steps`` taken and the mean training loss of every epoch."""

    steps: int = 0
    losses: list = dataclasses.field(default_factory=list)


def _sgd_step(net, grads, velocity, rate, momentum, weight_decay):
    """One SGD step with momentum (module docstring); masked gradients are zeroed first."""
    for key, p in net.params.items():
        g = grads[key]
        layer = key[:-2] if key.endswith(".w") else None
        if layer is not None:
            g = g + weight_decay * p
            if layer in net.masks:
                g = g * net.masks[layer]
        v = velocity[key]
        v *= momentum
        v += g
        p -= (rate * v).astype(p.dtype)


def train(net, x, y, *, epochs=10, lr=0.1, batch=128, momentum=0.9, weight_decay=5e-4,
          seed=0, bn_momentum=BN_MOMENTUM):
    """Train ``net`` in place with SGD and momentum on softmax cross-entropy.

    Parameters
    ----------
    net : ResNet
    x : float array ``(n, *net.input_shape)``
    y : int array ``(n,)``
        Class labels.
    epochs : int
        Passes over the data, each in an order drawn from ``numpy.random.default_rng(seed)``.
    lr : float
        Peak learning rate; step ``t`` of ``T`` uses ``lr * (1 + cos(pi * t / T)) / 2``.
    batch : int
        Mini-batch size (the last batch of an epoch may be smaller).
    momentum, weight_decay : float
        SGD's momentum and the L2 weight decay of the convolution and dense weights.
    seed : int
        Same seed, same result.
    bn_momentum : float
        Weight of each batch in the running statistics.

    Returns
    -------
    TrainLog

    Raises
    ------
    TypeError, ValueError
        A bad argument, with the rule it breaks.
    """
    if not isinstance(net, ResNet):
        raise TypeError(f"net must be a ResNet, not {type(net).__name__}")
    x = net._check_x(x)
    y = as_int_array(y, "y")
    if y.shape != (len(x),) or (y.size and (y.min() < 0 or y.max() >= net.classes)):
        raise ValueError(f"y must hold {len(x)} class indices in [0, {net.classes - 1}], "
                         f"not shape {y.shape}")
    epochs = check_int(epochs, "epochs", lo=0)
    batch = check_int(batch, "batch", lo=2)
    seed = check_int(seed, "seed", lo=0)
    lr = _real(lr, "lr", lo_open=True)
    momentum = _real(momentum, "momentum", hi=1.0)
    weight_decay = _real(weight_decay, "weight_decay")
    bn_momentum = _real(bn_momentum, "bn_momentum", hi=1.0, lo_open=True)
    rng = np.random.default_rng(seed)
    velocity = {k: np.zeros_like(v) for k, v in net.params.items()}
    total = epochs * -(-len(x) // batch)
    log = TrainLog()
    net.apply_masks()
    for _ in range(epochs):
        order = rng.permutation(len(x))
        losses = []
        for start in range(0, len(x), batch):
            idx = order[start:start + batch]
            logits, backward, batch_stats = net._run(x[idx], True)
            loss, g = cross_entropy(logits, y[idx])
            losses.append(loss)
            rate = lr * 0.5 * (1 + math.cos(math.pi * log.steps / total))
            _sgd_step(net, backward(g), velocity, rate, momentum, weight_decay)
            net.update_running_stats(batch_stats, bn_momentum)
            net.apply_masks()
            log.steps += 1
        log.losses.append(float(np.mean(losses)))
    return log
