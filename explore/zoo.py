"""A zoo of well-known CNNs as ONNX files, written the way PyTorch's exporter writes them.

The graphs are built in-process with :mod:`onnx.helper` (PyTorch is not a dependency and
nothing is downloaded): the published architectures with random weights, for the ONNX
importer's tests and the README's performance tables. Every builder returns an
:class:`onnx.ModelProto` that passed ``onnx.checker.check_model(model, full_check=True)``.

Models
------
``resnet18``, ``resnet50``
    ``torchvision.models.resnet`` (``ResNet`` with ``BasicBlock`` [2, 2, 2, 2] and
    ``Bottleneck`` [3, 4, 6, 3], the v1.5 Bottleneck with its stride on the 3x3 conv): 7x7/2
    stem conv, BN, ReLU, 3x3/2 MaxPool (pads 1); stride-2 downsampling with a 1x1 conv + BN on
    the shortcut; ``Add`` then ``Relu``; ``GlobalAveragePool`` (``avgpool``), ``Flatten``,
    ``Gemm`` (``fc``, transB=1). 11,689,512 and 25,557,032 parameters at full size.
``mobilenet_v2``
    ``torchvision.models.mobilenetv2`` (``MobileNetV2`` of ``InvertedResidual`` blocks and
    ``Conv2dNormActivation``): 1x1 expansion, depthwise 3x3 conv (group = channels), linear
    1x1 projection, residual ``Add`` without activation; ReLU6 as ``Clip(x, min, max)`` with
    ``Constant`` min 0 and max 6 (the opset >= 11 form); 1x1 conv to 1280, GAP, Flatten, Gemm.
    ``width`` is torchvision's ``width_mult`` (channels rounded to multiples of 8 by its
    ``_make_divisible``). 3,504,872 parameters at full size.
``squeezenet1_1``
    ``torchvision.models.squeezenet`` (``SqueezeNet(version="1_1")``, ``Fire``): squeeze 1x1,
    expand 1x1 and 3x3 joined by ``Concat`` (axis 1); MaxPool 3x3/2 with ceil_mode=1; the
    classifier 1x1 conv, ReLU, ``AdaptiveAvgPool2d(1)`` exported as ``GlobalAveragePool``,
    Flatten. Convs have biases, no BN. 1,235,496 parameters at full size.
``vgg16``
    ``torchvision.models.vgg`` (``vgg16``, configuration "D", no BN): 13 3x3 convs with ReLU,
    5 MaxPools 2x2/2, Flatten, three Gemm (ReLU between). 138,357,544 parameters at 224.
``densenet_block``
    The stem and first dense block of ``torchvision.models.densenet`` (``densenet121``:
    ``_DenseLayer``, ``_DenseBlock``, ``_Transition``): each layer concatenates every earlier
    feature map (``torch.cat(inputs, 1)``, a ``Concat``), then pre-activation BN -> ReLU -> 1x1
    conv (``bn_size * growth_rate``) -> BN -> ReLU -> 3x3 conv (``growth_rate``); the block
    ends with the ``Concat`` of all of them; then the transition BN -> ReLU -> 1x1 conv (half
    the channels) -> AveragePool 2x2/2, and the head BN (``norm5``) -> ReLU -> GAP -> Flatten
    -> Gemm. The BatchNormalization nodes read a ``Concat`` (or a pool), not a conv: they
    cannot be folded into a preceding conv, which is the point of this model.
``shufflenet_unit``
    One ShuffleNet v1 stage (Zhang et al., 2018, g = 3: stage 2, 240 channels, 4 units; not in
    torchvision) after the paper's stem (3x3/2 conv to 24, BN, ReLU, MaxPool 3x3/2): grouped
    1x1 conv -> BN -> ReLU -> channel shuffle -> depthwise 3x3 conv -> BN -> grouped 1x1 conv ->
    BN. The channel shuffle is ``torchvision.models.shufflenetv2.channel_shuffle``'s:
    ``view(n, g, c/g, h, w)`` -> ``transpose(1, 2)`` -> ``view(n, -1, h, w)``, i.e. Reshape ->
    Transpose perm (0, 2, 1, 3, 4) -> Reshape. The first unit has stride 2 on the depthwise
    conv and joins an AveragePool 3x3/2 (pads 1) shortcut by ``Concat`` then ReLU; the later
    units join by ``Add`` then ReLU; then GAP, Flatten, Gemm.

Conventions (as ``torch.onnx.export`` of the TorchScript exporter writes them)
-------------------------------------------------------------------------------
* NCHW float32, graph input ``input`` of shape (batch, 3, s, s), output ``output`` of shape
  (batch, num_classes); ``batch=None`` makes the batch dimension symbolic (``"N"``, as
  ``dynamic_axes``).
* Node names from the module path (``/layer1/layer1.0/conv1/Conv``, a module called a second
  time gets ``_1``: ``/layer1/layer1.0/relu_1/Relu``), node outputs ``<node>_output_0``,
  initializers named as the ``state_dict`` (``layer1.0.conv1.weight``,
  ``layer1.0.bn1.running_var``); constants (Clip bounds, Gather indices, Unsqueeze axes,
  shapes) as ``Constant`` nodes. Conv attributes dilations, group, kernel_shape, pads, strides;
  Gemm alpha 1, beta 1, transB 1; BatchNormalization epsilon 1e-5, momentum 0.9.
* Weights: convs and Gemm He-initialized (normal, std sqrt(2 / fan_in)) from
  ``np.random.default_rng(seed)``, biases uniform in +-1/sqrt(fan_in); BatchNormalization
  with gamma in [0.5, 1.5] (in [0.2, 0.5] for the last BN of a residual branch, so that
  untrained blocks do not double the variance at every ``Add``: ResNet-50's logits are tens,
  not thousands), beta and mean normal (std 0.1), variance in [0.5, 1.5]. The same arguments
  give the same model, byte for byte. ``weights="zeros"`` allocates zero weights
  (BN as the identity: gamma 1, beta 0, mean 0, var 1) for when only the shapes matter.
* ``torch.flatten(x, 1)`` is ``Flatten(axis=1)``; ``reshape_style="shape_chain"`` writes
  what older exporters wrote for ``x.view(x.size(0), -1)``: Shape -> Gather(0) -> Unsqueeze
  -> Concat with a constant -1 -> Reshape (Unsqueeze axes an attribute before opset 13, an
  input from 13). The ShuffleNet reshapes are ``Constant`` shapes ((n, g, c/g, h, w) and
  (n, c, h, w), n = -1 when the batch is symbolic) or, with "shape_chain", built from
  ``Shape`` / ``Gather`` / ``Unsqueeze`` / ``Concat`` as torch writes ``x.size()``.
* ``width`` scales channels (and VGG's hidden 4096), rounded to multiples of 8 as
  torchvision's ``_make_divisible`` (ShuffleNet: to what its groups need). Opset 11 to the
  installed onnx's newest; the IR version is the lowest that opset needs.

What differs from torchvision's export, and why
------------------------------------------------
* BatchNormalization stays a node after each Conv. ``torch.onnx.export`` in eval mode folds
  Conv + BN into one Conv (its ``eval_peephole`` pass); the importer must do that folding
  itself, so these models leave it to it (as an export with ``training=PRESERVE`` or
  ``do_constant_folding=False`` would).
* Dropout (MobileNetV2, SqueezeNet, VGG classifiers) is absent: eval-mode exports drop it.
* VGG-16: torchvision's ``AdaptiveAvgPool2d((7, 7))`` is left out. At 224 the features are
  already 7x7 and torch writes it as an identity AveragePool (kernel 1, stride 1); at other
  sizes it would resample to 7x7 (not expressible as one pool unless the size divides). Here
  Flatten follows the last MaxPool and the first Gemm has ``512 * (s // 32) ** 2`` inputs (at
  32: 512, at 64: 2048), which is torchvision's 25088 at 224.
* DenseNet block: the first dense layer's ``torch.cat`` of a one-element list is a Concat
  with one input, as torch writes it.
* ShuffleNet v1: the first unit's first 1x1 conv is not grouped (the paper: the 24 stem
  channels are too few); ``width`` scales the stage's channels (240 at 1.0) to multiples of
  4 * groups and the stem's to multiples of ``groups``.
* Parameter counts (:func:`parameter_count`) are torchvision's ``sum(p.numel() for p in
  model.parameters())``: every float initializer except BN's running mean and variance.
"""

import math

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from common.checks import check_choice, check_int

__all__ = ["resnet18", "resnet50", "mobilenet_v2", "squeezenet1_1", "vgg16", "densenet_block",
           "shufflenet_unit", "ZOO", "TORCHVISION_PARAMETERS", "build", "parameter_count"]

#: torchvision's published parameter counts at full size (224, 1000 classes, width 1).
TORCHVISION_PARAMETERS = {
    "resnet18": 11_689_512,
    "resnet50": 25_557_032,
    "mobilenet_v2": 3_504_872,
    "squeezenet1_1": 1_235_496,
    "vgg16": 138_357_544,
}

RESHAPE_STYLES = ("constant", "shape_chain")
WEIGHTS = ("random", "zeros")
BN_EPSILON = 1e-5
BN_MOMENTUM = 0.9
#: gamma of the last BN of a residual branch: smaller, so that the sum of branch and identity
#: does not double the variance at every block (ResNet-50's 16 blocks would grow it 2**16-fold
#: with weights that are not trained), in the spirit of torchvision's ``zero_init_residual``.
RESIDUAL_GAMMA = (0.2, 0.5)


def _make_divisible(v, divisor=8, min_value=None):
    """torchvision's ``_make_divisible``: ``v`` rounded to a multiple of ``divisor``, never
    more than 10 % below ``v``."""
    min_value = divisor if min_value is None else min_value
    new_v = max(min_value, int(v + divisor / 2) // divisor * divisor)
    if new_v < 0.9 * v:
        new_v += divisor
    return new_v


def _scaled(channels, width):
    return channels if width == 1.0 else _make_divisible(channels * width)


def _pool_out(size, kernel, stride, pad, ceil=False):
    """Output size of a conv or pool as PyTorch computes it (with ceil_mode, the last window
    must start inside the input or its left padding)."""
    span = size + 2 * pad - kernel
    if span < 0:
        raise ValueError(f"input_size too small: a {kernel}x{kernel} window does not fit {size}")
    out = (-(-span // stride) if ceil else span // stride) + 1
    if ceil and (out - 1) * stride >= size + pad:
        out -= 1
    return out


class _Graph:
    """Nodes, initializers and the (C, H, W) of every tensor of one model being built."""

    def __init__(self, *, input_size, seed, batch, opset, reshape_style, weights):
        self.rng = np.random.default_rng(seed)
        self.batch, self.opset = batch, opset
        self.reshape_style, self.weights = reshape_style, weights
        self.nodes, self.initializers = [], []
        self.shapes = {"input": (3, input_size, input_size)}
        self._used = {}

    # --- naming and plumbing --------------------------------------------------------------

    def node(self, op_type, inputs, scope, shape, **attrs):
        """Append one node named as torch names it; its output's name."""
        base = f"{scope}/{op_type}"
        n = self._used.get(base, 0)
        self._used[base] = n + 1
        name = base if n == 0 else f"{base}_{n}"
        out = f"{name}_output_0"
        self.nodes.append(helper.make_node(op_type, list(inputs), [out], name=name, **attrs))
        if shape is not None:
            self.shapes[out] = shape
        return out

    def constant(self, scope, value):
        tensor = numpy_helper.from_array(np.asarray(value))
        return self.node("Constant", [], scope, None, value=tensor)

    def init(self, name, array):
        self.initializers.append(numpy_helper.from_array(array, name))
        return name

    def he(self, shape, fan_in):
        if self.weights == "zeros":
            return np.zeros(shape, np.float32)
        w = self.rng.standard_normal(shape, dtype=np.float32)
        w *= np.float32(math.sqrt(2.0 / fan_in))
        return w

    def bias(self, n, fan_in):
        if self.weights == "zeros":
            return np.zeros(n, np.float32)
        bound = 1.0 / math.sqrt(fan_in)
        return self.rng.uniform(-bound, bound, n).astype(np.float32)

    # --- layers ---------------------------------------------------------------------------

    def conv(self, x, scope, prefix, out_ch, kernel, stride=1, pad=0, group=1, bias=False):
        c, h, w = self.shapes[x]
        fan_in = c // group * kernel * kernel
        inputs = [x, self.init(f"{prefix}.weight",
                               self.he((out_ch, c // group, kernel, kernel), fan_in))]
        if bias:
            inputs.append(self.init(f"{prefix}.bias", self.bias(out_ch, fan_in)))
        shape = (out_ch, _pool_out(h, kernel, stride, pad), _pool_out(w, kernel, stride, pad))
        return self.node("Conv", inputs, scope, shape, dilations=[1, 1], group=group,
                         kernel_shape=[kernel, kernel], pads=[pad] * 4, strides=[stride] * 2)

    def bn(self, x, scope, prefix, gamma=(0.5, 1.5)):
        c = self.shapes[x][0]
        if self.weights == "zeros":
            gamma, beta = np.ones(c, np.float32), np.zeros(c, np.float32)
            mean, var = np.zeros(c, np.float32), np.ones(c, np.float32)
        else:
            gamma = self.rng.uniform(*gamma, c).astype(np.float32)
            beta = (0.1 * self.rng.standard_normal(c)).astype(np.float32)
            mean = (0.1 * self.rng.standard_normal(c)).astype(np.float32)
            var = self.rng.uniform(0.5, 1.5, c).astype(np.float32)
        inputs = [x] + [self.init(f"{prefix}.{k}", a) for k, a in
                        (("weight", gamma), ("bias", beta), ("running_mean", mean),
                         ("running_var", var))]
        return self.node("BatchNormalization", inputs, scope, self.shapes[x],
                         epsilon=BN_EPSILON, momentum=BN_MOMENTUM)

    def relu(self, x, scope):
        return self.node("Relu", [x], scope, self.shapes[x])

    def relu6(self, x, scope):
        lo = self.constant(scope, np.float32(0.0))
        hi = self.constant(scope, np.float32(6.0))
        return self.node("Clip", [x, lo, hi], scope, self.shapes[x])

    def _pool(self, op_type, x, scope, kernel, stride, pad, ceil=False, **attrs):
        c, h, w = self.shapes[x]
        shape = (c, *(_pool_out(n, kernel, stride, pad, ceil) for n in (h, w)))
        return self.node(op_type, [x], scope, shape, ceil_mode=int(ceil),
                         kernel_shape=[kernel, kernel], pads=[pad] * 4, strides=[stride] * 2,
                         **attrs)

    def maxpool(self, x, scope, kernel, stride, pad=0, ceil=False):
        return self._pool("MaxPool", x, scope, kernel, stride, pad, ceil)

    def avgpool(self, x, scope, kernel, stride, pad=0):
        # F.avg_pool2d / nn.AvgPool2d: count_include_pad=True.
        return self._pool("AveragePool", x, scope, kernel, stride, pad, count_include_pad=1)

    def gap(self, x, scope):
        return self.node("GlobalAveragePool", [x], scope, (self.shapes[x][0], 1, 1))

    def add(self, a, b, scope):
        return self.node("Add", [a, b], scope, self.shapes[a])

    def concat(self, xs, scope):
        c = sum(self.shapes[x][0] for x in xs)
        return self.node("Concat", xs, scope, (c, *self.shapes[xs[0]][1:]), axis=1)

    def unsqueeze0(self, x, scope):
        if self.opset < 13:
            return self.node("Unsqueeze", [x], scope, None, axes=[0])
        axes = self.constant(scope, np.array([0], np.int64))
        return self.node("Unsqueeze", [x, axes], scope, None)

    def dims(self, x, scope, indices):
        """``x.size(i)`` for each ``i``, as torch writes it: Shape -> Gather -> Unsqueeze."""
        shape = self.node("Shape", [x], scope, None)
        out = []
        for i in indices:
            index = self.constant(scope, np.int64(i))
            out.append(self.unsqueeze0(self.node("Gather", [shape, index], scope, None,
                                                 axis=0), scope))
        return out

    def flatten(self, x, scope=""):
        c, h, w = self.shapes[x]
        if self.reshape_style == "constant":
            return self.node("Flatten", [x], scope, (c * h * w,), axis=1)
        (n,) = self.dims(x, scope, [0])
        shape = self.node("Concat", [n, self.constant(scope, np.array([-1], np.int64))],
                          scope, None, axis=0)
        return self.node("Reshape", [x, shape], scope, (c * h * w,))

    def channel_shuffle(self, x, scope, groups):
        """torchvision's ``channel_shuffle``: Reshape -> Transpose -> Reshape."""
        c, h, w = self.shapes[x]
        if self.reshape_style == "constant":
            n = -1 if self.batch is None else self.batch
            split = self.constant(scope, np.array([n, groups, c // groups, h, w], np.int64))
            merge = self.constant(scope, np.array([n, c, h, w], np.int64))
        else:
            n, hd, wd = self.dims(x, scope, [0, 2, 3])
            parts = [self.constant(scope, np.array([v], np.int64)) for v in (groups, c // groups)]
            split = self.node("Concat", [n, *parts, hd, wd], scope, None, axis=0)
        y = self.node("Reshape", [x, split], scope, None)
        y = self.node("Transpose", [y], scope, None, perm=[0, 2, 1, 3, 4])
        if self.reshape_style == "shape_chain":
            minus1 = self.constant(scope, np.array([-1], np.int64))
            merge = self.node("Concat", [n, minus1, hd, wd], scope, None, axis=0)
        return self.node("Reshape", [y, merge], scope, self.shapes[x])

    def gemm(self, x, scope, prefix, out_features):
        (k,) = self.shapes[x]
        w = self.init(f"{prefix}.weight", self.he((out_features, k), k))
        b = self.init(f"{prefix}.bias", self.bias(out_features, k))
        return self.node("Gemm", [x, w, b], scope, (out_features,), alpha=1.0, beta=1.0,
                         transB=1)

    # --- the model ------------------------------------------------------------------------

    def model(self, output, name):
        last = self.nodes[-1]
        if last.output[0] != output:
            raise AssertionError(f"{output} is not the last node's output")
        last.output[0] = "output"
        batch = "N" if self.batch is None else self.batch
        graph = helper.make_graph(
            self.nodes, name,
            [helper.make_tensor_value_info("input", TensorProto.FLOAT,
                                           [batch, *self.shapes["input"]])],
            [helper.make_tensor_value_info("output", TensorProto.FLOAT,
                                           [batch, *self.shapes[output]])],
            initializer=self.initializers)
        opsets = [helper.make_opsetid("", self.opset)]
        model = helper.make_model(graph, opset_imports=opsets,
                                  ir_version=helper.find_min_ir_version_for(opsets),
                                  producer_name="sparsemac.explore.zoo")
        onnx.checker.check_model(model, full_check=True)
        return model


def _start(input_size, num_classes, seed, batch, opset, width, reshape_style, weights,
           min_size=32):
    """Validate the common arguments; a fresh :class:`_Graph`."""
    check_int(input_size, "input_size", lo=min_size)
    check_int(num_classes, "num_classes", lo=1)
    check_int(seed, "seed", lo=0)
    if batch is not None:
        check_int(batch, "batch", lo=1)
    check_int(opset, "opset", lo=11, hi=onnx.defs.onnx_opset_version())
    if not (isinstance(width, (int, float)) and not isinstance(width, bool) and width > 0):
        raise ValueError(f"width must be a positive number, not {width!r}")
    check_choice(reshape_style, "reshape_style", RESHAPE_STYLES)
    check_choice(weights, "weights", WEIGHTS)
    return _Graph(input_size=input_size, seed=seed, batch=batch, opset=opset,
                  reshape_style=reshape_style, weights=weights)


# --- ResNet -------------------------------------------------------------------------------

def _downsample(g, x, scope, prefix, out_ch, stride):
    if stride == 1 and g.shapes[x][0] == out_ch:
        return x
    x = g.conv(x, f"{scope}/downsample/downsample.0", f"{prefix}.downsample.0", out_ch, 1, stride)
    return g.bn(x, f"{scope}/downsample/downsample.1", f"{prefix}.downsample.1")


def _basic_block(g, x, scope, prefix, planes, stride):
    y = g.conv(x, f"{scope}/conv1", f"{prefix}.conv1", planes, 3, stride, 1)
    y = g.relu(g.bn(y, f"{scope}/bn1", f"{prefix}.bn1"), f"{scope}/relu")
    y = g.conv(y, f"{scope}/conv2", f"{prefix}.conv2", planes, 3, 1, 1)
    y = g.bn(y, f"{scope}/bn2", f"{prefix}.bn2", RESIDUAL_GAMMA)
    identity = _downsample(g, x, scope, prefix, planes, stride)
    return g.relu(g.add(y, identity, scope), f"{scope}/relu_1")


def _bottleneck(g, x, scope, prefix, planes, stride):
    y = g.conv(x, f"{scope}/conv1", f"{prefix}.conv1", planes, 1)
    y = g.relu(g.bn(y, f"{scope}/bn1", f"{prefix}.bn1"), f"{scope}/relu")
    y = g.conv(y, f"{scope}/conv2", f"{prefix}.conv2", planes, 3, stride, 1)
    y = g.relu(g.bn(y, f"{scope}/bn2", f"{prefix}.bn2"), f"{scope}/relu_1")
    y = g.conv(y, f"{scope}/conv3", f"{prefix}.conv3", planes * 4, 1)
    y = g.bn(y, f"{scope}/bn3", f"{prefix}.bn3", RESIDUAL_GAMMA)
    identity = _downsample(g, x, scope, prefix, planes * 4, stride)
    return g.relu(g.add(y, identity, scope), f"{scope}/relu_2")


def _resnet(name, block, layers, *, input_size, num_classes, seed, batch, opset, width,
            reshape_style, weights):
    g = _start(input_size, num_classes, seed, batch, opset, width, reshape_style, weights)
    x = g.conv("input", "/conv1", "conv1", _scaled(64, width), 7, 2, 3)
    x = g.relu(g.bn(x, "/bn1", "bn1"), "/relu")
    x = g.maxpool(x, "/maxpool", 3, 2, 1)
    for i, (blocks, planes) in enumerate(zip(layers, (64, 128, 256, 512)), start=1):
        for j in range(blocks):
            stride = 2 if i > 1 and j == 0 else 1
            x = block(g, x, f"/layer{i}/layer{i}.{j}", f"layer{i}.{j}", _scaled(planes, width),
                      stride)
    x = g.flatten(g.gap(x, "/avgpool"))
    return g.model(g.gemm(x, "/fc", "fc", num_classes), name)


def resnet18(*, input_size=224, num_classes=1000, seed=0, batch=1, opset=13, width=1.0,
             reshape_style="constant", weights="random"):
    """torchvision's ``resnet18``: BasicBlock stages [2, 2, 2, 2]."""
    return _resnet("resnet18", _basic_block, (2, 2, 2, 2), input_size=input_size,
                   num_classes=num_classes, seed=seed, batch=batch, opset=opset, width=width,
                   reshape_style=reshape_style, weights=weights)


def resnet50(*, input_size=224, num_classes=1000, seed=0, batch=1, opset=13, width=1.0,
             reshape_style="constant", weights="random"):
    """torchvision's ``resnet50``: Bottleneck (v1.5) stages [3, 4, 6, 3]."""
    return _resnet("resnet50", _bottleneck, (3, 4, 6, 3), input_size=input_size,
                   num_classes=num_classes, seed=seed, batch=batch, opset=opset, width=width,
                   reshape_style=reshape_style, weights=weights)


# --- MobileNetV2 --------------------------------------------------------------------------

def _conv_bn_relu6(g, x, scope, prefix, out_ch, kernel, stride=1, group=1):
    """torchvision's ``Conv2dNormActivation`` with ReLU6: ``.0`` conv, ``.1`` BN, ``.2``."""
    x = g.conv(x, f"{scope}/{scope.rsplit('/', 1)[1]}.0", f"{prefix}.0", out_ch, kernel, stride,
               (kernel - 1) // 2, group)
    x = g.bn(x, f"{scope}/{scope.rsplit('/', 1)[1]}.1", f"{prefix}.1")
    return g.relu6(x, f"{scope}/{scope.rsplit('/', 1)[1]}.2")


def _inverted_residual(g, x, scope, prefix, out_ch, stride, expand_ratio):
    in_ch = g.shapes[x][0]
    hidden = int(round(in_ch * expand_ratio))
    y, k = x, 0
    if expand_ratio != 1:
        y = _conv_bn_relu6(g, y, f"{scope}/conv/conv.0", f"{prefix}.conv.0", hidden, 1)
        k = 1
    y = _conv_bn_relu6(g, y, f"{scope}/conv/conv.{k}", f"{prefix}.conv.{k}", hidden, 3, stride,
                       group=hidden)
    y = g.conv(y, f"{scope}/conv/conv.{k + 1}", f"{prefix}.conv.{k + 1}", out_ch, 1)
    residual = stride == 1 and in_ch == out_ch
    y = g.bn(y, f"{scope}/conv/conv.{k + 2}", f"{prefix}.conv.{k + 2}",
             RESIDUAL_GAMMA if residual else (0.5, 1.5))
    return g.add(x, y, scope) if residual else y


def mobilenet_v2(*, input_size=224, num_classes=1000, seed=0, batch=1, opset=13, width=1.0,
                 reshape_style="constant", weights="random"):
    """torchvision's ``mobilenet_v2`` (``width`` is its ``width_mult``)."""
    g = _start(input_size, num_classes, seed, batch, opset, width, reshape_style, weights)
    settings = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1),
                (6, 160, 3, 2), (6, 320, 1, 1))
    x = _conv_bn_relu6(g, "input", "/features/features.0", "features.0",
                       _make_divisible(32 * width), 3, 2)
    i = 1
    for t, c, n, s in settings:
        for j in range(n):
            x = _inverted_residual(g, x, f"/features/features.{i}", f"features.{i}",
                                   _make_divisible(c * width), s if j == 0 else 1, t)
            i += 1
    x = _conv_bn_relu6(g, x, f"/features/features.{i}", f"features.{i}",
                       _make_divisible(1280 * max(1.0, width)), 1)
    x = g.flatten(g.gap(x, ""))
    return g.model(g.gemm(x, "/classifier/classifier.1", "classifier.1", num_classes),
                   "mobilenet_v2")


# --- SqueezeNet 1.1 -----------------------------------------------------------------------

def _fire(g, x, index, squeeze, expand):
    scope, prefix = f"/features/features.{index}", f"features.{index}"
    s = g.relu(g.conv(x, f"{scope}/squeeze", f"{prefix}.squeeze", squeeze, 1, bias=True),
               f"{scope}/squeeze_activation")
    e1 = g.relu(g.conv(s, f"{scope}/expand1x1", f"{prefix}.expand1x1", expand, 1, bias=True),
                f"{scope}/expand1x1_activation")
    e3 = g.relu(g.conv(s, f"{scope}/expand3x3", f"{prefix}.expand3x3", expand, 3, pad=1,
                       bias=True), f"{scope}/expand3x3_activation")
    return g.concat([e1, e3], scope)


def squeezenet1_1(*, input_size=224, num_classes=1000, seed=0, batch=1, opset=13, width=1.0,
                  reshape_style="constant", weights="random"):
    """torchvision's ``squeezenet1_1`` (``width`` scales every conv's channels)."""
    g = _start(input_size, num_classes, seed, batch, opset, width, reshape_style, weights)
    x = g.conv("input", "/features/features.0", "features.0", _scaled(64, width), 3, 2,
               bias=True)
    x = g.relu(x, "/features/features.1")
    fires = {3: (16, 64), 4: (16, 64), 6: (32, 128), 7: (32, 128), 9: (48, 192),
             10: (48, 192), 11: (64, 256), 12: (64, 256)}
    for i in range(2, 13):
        if i in fires:
            squeeze, expand = fires[i]
            x = _fire(g, x, i, _scaled(squeeze, width), _scaled(expand, width))
        else:
            x = g.maxpool(x, f"/features/features.{i}", 3, 2, ceil=True)
    x = g.conv(x, "/classifier/classifier.1", "classifier.1", num_classes, 1, bias=True)
    x = g.gap(g.relu(x, "/classifier/classifier.2"), "/classifier/classifier.3")
    return g.model(g.flatten(x), "squeezenet1_1")


# --- VGG-16 -------------------------------------------------------------------------------

def vgg16(*, input_size=224, num_classes=1000, seed=0, batch=1, opset=13, width=1.0,
          reshape_style="constant", weights="random"):
    """torchvision's ``vgg16`` without its AdaptiveAvgPool2d((7, 7)) (the identity at 224):
    the first Gemm takes ``C * (input_size // 32) ** 2`` features. ``width`` scales the convs'
    channels and the classifier's hidden 4096."""
    g = _start(input_size, num_classes, seed, batch, opset, width, reshape_style, weights)
    cfg = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M",
           512, 512, 512, "M")
    x, i = "input", 0
    for v in cfg:
        if v == "M":
            x = g.maxpool(x, f"/features/features.{i}", 2, 2)
            i += 1
        else:
            x = g.conv(x, f"/features/features.{i}", f"features.{i}", _scaled(v, width), 3,
                       pad=1, bias=True)
            x = g.relu(x, f"/features/features.{i + 1}")
            i += 2
    x = g.flatten(x)
    hidden = _scaled(4096, width)
    x = g.relu(g.gemm(x, "/classifier/classifier.0", "classifier.0", hidden),
               "/classifier/classifier.1")
    x = g.relu(g.gemm(x, "/classifier/classifier.3", "classifier.3", hidden),
               "/classifier/classifier.4")
    return g.model(g.gemm(x, "/classifier/classifier.6", "classifier.6", num_classes), "vgg16")


# --- DenseNet block -----------------------------------------------------------------------

def densenet_block(*, input_size=224, num_classes=1000, seed=0, batch=1, opset=13, width=1.0,
                   reshape_style="constant", weights="random", num_layers=6, growth_rate=32,
                   bn_size=4, num_init_features=64):
    """DenseNet-121's stem, first dense block (``num_layers`` layers) and first transition,
    then its head (``norm5``, ReLU, GAP, Flatten, Gemm). ``width`` scales ``growth_rate`` and
    ``num_init_features``."""
    g = _start(input_size, num_classes, seed, batch, opset, width, reshape_style, weights)
    check_int(num_layers, "num_layers", lo=1)
    growth = _scaled(check_int(growth_rate, "growth_rate", lo=1), width)
    bottleneck = check_int(bn_size, "bn_size", lo=1) * growth
    x = g.conv("input", "/features/conv0", "features.conv0",
               _scaled(check_int(num_init_features, "num_init_features", lo=1), width), 7, 2, 3)
    x = g.relu(g.bn(x, "/features/norm0", "features.norm0"), "/features/relu0")
    features = [g.maxpool(x, "/features/pool0", 3, 2, 1)]
    for i in range(1, num_layers + 1):
        scope = f"/features/denseblock1/denselayer{i}"
        prefix = f"features.denseblock1.denselayer{i}"
        y = g.concat(features, scope)
        y = g.relu(g.bn(y, f"{scope}/norm1", f"{prefix}.norm1"), f"{scope}/relu1")
        y = g.conv(y, f"{scope}/conv1", f"{prefix}.conv1", bottleneck, 1)
        y = g.relu(g.bn(y, f"{scope}/norm2", f"{prefix}.norm2"), f"{scope}/relu2")
        features.append(g.conv(y, f"{scope}/conv2", f"{prefix}.conv2", growth, 3, pad=1))
    x = g.concat(features, "/features/denseblock1")
    scope, prefix = "/features/transition1", "features.transition1"
    x = g.relu(g.bn(x, f"{scope}/norm", f"{prefix}.norm"), f"{scope}/relu")
    x = g.conv(x, f"{scope}/conv", f"{prefix}.conv", g.shapes[x][0] // 2, 1)
    x = g.avgpool(x, f"{scope}/pool", 2, 2)
    x = g.relu(g.bn(x, "/features/norm5", "features.norm5"), "")
    x = g.flatten(g.gap(x, ""))
    return g.model(g.gemm(x, "/classifier", "classifier", num_classes), "densenet_block")


# --- ShuffleNet v1 stage ------------------------------------------------------------------

def _shuffle_unit(g, x, scope, prefix, out_ch, groups, first):
    in_ch = g.shapes[x][0]
    mid = out_ch // 4
    y = g.conv(x, f"{scope}/conv1", f"{prefix}.conv1", mid, 1, group=1 if first else groups)
    y = g.relu(g.bn(y, f"{scope}/bn1", f"{prefix}.bn1"), f"{scope}/relu")
    y = g.channel_shuffle(y, scope, groups)
    y = g.conv(y, f"{scope}/conv2", f"{prefix}.conv2", mid, 3, 2 if first else 1, 1, group=mid)
    y = g.bn(y, f"{scope}/bn2", f"{prefix}.bn2")
    y = g.conv(y, f"{scope}/conv3", f"{prefix}.conv3", out_ch - in_ch if first else out_ch, 1,
               group=groups)
    y = g.bn(y, f"{scope}/bn3", f"{prefix}.bn3", (0.5, 1.5) if first else RESIDUAL_GAMMA)
    if first:
        y = g.concat([g.avgpool(x, f"{scope}/avgpool", 3, 2, 1), y], scope)
    else:
        y = g.add(x, y, scope)
    return g.relu(y, f"{scope}/relu_1")


def shufflenet_unit(*, input_size=224, num_classes=1000, seed=0, batch=1, opset=13, width=1.0,
                    reshape_style="constant", weights="random", groups=3, units=4):
    """ShuffleNet v1's stem and stage 2 (``units`` units, the first with stride 2), then GAP,
    Flatten, Gemm. ``groups`` 3 gives the paper's 240 channels (1: 144, 2: 200, 4: 272,
    8: 384), scaled by ``width``."""
    g = _start(input_size, num_classes, seed, batch, opset, width, reshape_style, weights)
    stage2 = {1: 144, 2: 200, 3: 240, 4: 272, 8: 384}
    check_choice(groups, "groups", tuple(stage2))
    check_int(units, "units", lo=1)
    stem = _make_divisible(24 * width, groups, 2 * groups) if width != 1.0 else 24
    out_ch = _make_divisible(stage2[groups] * width, 4 * groups) if width != 1.0 \
        else stage2[groups]
    x = g.conv("input", "/conv1", "conv1", stem, 3, 2, 1)
    x = g.relu(g.bn(x, "/bn1", "bn1"), "/relu")
    x = g.maxpool(x, "/maxpool", 3, 2, 1)
    for j in range(units):
        x = _shuffle_unit(g, x, f"/stage2/stage2.{j}", f"stage2.{j}", out_ch, groups, j == 0)
    x = g.flatten(g.gap(x, ""))
    return g.model(g.gemm(x, "/fc", "fc", num_classes), "shufflenet_unit")


# --- registry -----------------------------------------------------------------------------

ZOO = {
    "resnet18": resnet18,
    "resnet50": resnet50,
    "mobilenet_v2": mobilenet_v2,
    "squeezenet1_1": squeezenet1_1,
    "vgg16": vgg16,
    "densenet_block": densenet_block,
    "shufflenet_unit": shufflenet_unit,
}


def build(name, **kwargs):
    """The model ``name`` of :data:`ZOO` built with ``kwargs``."""
    if name not in ZOO:
        raise ValueError(f"unknown model {name!r}: the zoo has {', '.join(ZOO)}")
    return ZOO[name](**kwargs)


def parameter_count(model):
    """Trainable parameters as torchvision counts them: the elements of every float
    initializer except BatchNormalization's running mean and variance (read from the
    initializers' dims, not their data)."""
    stats = {name for node in model.graph.node if node.op_type == "BatchNormalization"
             for name in node.input[3:5]}
    floats = (TensorProto.FLOAT, TensorProto.FLOAT16, TensorProto.DOUBLE, TensorProto.BFLOAT16)
    return sum(math.prod(t.dims) for t in model.graph.initializer
               if t.data_type in floats and t.name not in stats)
