"""Layer reduction: whole hidden layers of an MLP, residual blocks of a ResNet (seeds 000, 002).

Dense layers (:class:`.train.MLP`, and the dense layers of a :class:`.train.CNN`). Hidden
layer ``i`` computes ``h_i = relu(z_i)``, ``z_i = W_i h_{i-1} + b_i``. It is taken out in one
of two ways, and the result is again an MLP (CNN), trainable by :func:`.train.train`:

drop (:func:`drop_layer`, square layers: ``in == out``)
    ``h_i := h_{i-1}``: the next layer reads the previous output directly. Exact when the
    layer is the identity on the data: ``W_i = I``, ``b_i = 0`` and ``h_{i-1} >= 0`` (true of
    a ReLU output; the network's input must be non-negative when ``i = 0``).
merge (:func:`merge_layers`, any shapes; the default of :func:`remove_layers`)
    Layers ``i`` and ``i + 1`` become one: ``W' = W_{i+1} W_i``, ``b' = W_{i+1} b_i +
    b_{i+1}``, with layer ``i + 1``'s activation, the ReLU between them dropped. Two linear
    maps compose into one linear map exactly; with a ReLU between them they do not (that
    ReLU is what makes the depth worth having): the merged pre-activation differs from
    ``z_{i+1}`` by ``W_{i+1} (z_i - relu(z_i)) = -W_{i+1} relu(-z_i)``, so the merge is exact
    on the samples where every ``z_i >= 0`` (the ReLU passes everything) and an approximation
    elsewhere that fine-tuning has to absorb. It saves weights only when
    ``in * out < h (in + out)`` (``h`` the merged-away width): merging a bottleneck's two
    sides grows the model.

:func:`remove_layers` merges (``how="merge"``), drops (``"drop"``, square layers only), or
drops the square layers and merges the others (``"auto"``). Merging is the default: it keeps
the layer's linear map and loses only a ReLU, where dropping replaces a trained layer by the
identity. On the digits (a 64-64-64-32-10 MLP trained on 1,000 training images, 96.4 %
test accuracy), dropping the square ``fc1`` raised the loss on the other 347 by 3.14 and
merging it by 0.07 (tests/test_reduction.py checks this relation); removing ``fc1`` and
``fc2`` then fine-tuning three epochs gave 52 % test accuracy with ``fc1`` dropped (and the
non-square ``fc2`` merged), 94 % with both merged. Dropping suits layers near the identity
(what a residual block is built to be).

Residual blocks (:class:`.resnet.ResNet`). A BasicBlock with an identity shortcut computes
``y = relu(F(x) + x)``, and its input ``x`` is a ReLU output (the stem's or the previous
block's), so ``x >= 0``: removing the block (:func:`remove_blocks`) leaves ``relu(x) = x``, exact
when the residual branch ``F`` outputs 0 (e.g. its last BN has ``gamma = beta = 0``, the
zero-init of Goyal et al. 2017). A block with a projection shortcut changes the shape and is
not removable this way. Trained residual networks lose little when single blocks are removed
(Veit et al. 2016, "Residual networks behave like ensembles of relatively shallow
networks"): the ground for removing blocks and fine-tuning (:func:`.resnet.train`).

Importance (:func:`layer_importance`, :func:`block_importance`; higher = more important), on
held-out training data ``x`` (labels ``y`` for ``"loss"``):

``"loss"``
    ``L(reduced) - L(model)``, the mean cross-entropy's increase when the layer or block alone
    is removed (negative when removing it helps).
``"logits"``
    ``||f_reduced(x) - f(x)||_F / ||f(x)||_F``: the relative change of the logits, label-free.
``"branch"`` (blocks only)
    ``||F(x)||_F / ||x||_F`` over the data: the residual branch's output relative to the
    block's input, from one forward pass of the float graph.

:func:`reduce_layers` and :func:`reduce_blocks` remove the ``k`` least important together:
the scores are those of each one removed alone from the given model, not re-scored after each
removal (for a greedy reduction call them repeatedly with ``k = 1``); equal scores go in the
network's order, the earlier first.
"""

import numpy as np

from common.checks import as_int_array, check_choice, check_int

from .graph import float_forward
from .resnet import ResNet
from .train import CNN, MLP, cross_entropy

__all__ = ["LAYER_CRITERIA", "BLOCK_CRITERIA", "REMOVALS", "parameter_count", "drop_layer",
           "merge_layers", "remove_layers", "layer_importance", "reduce_layers", "remove_blocks",
           "block_importance", "reduce_blocks"]

#: Importance criteria of :func:`layer_importance`.
LAYER_CRITERIA = ("loss", "logits")
#: Importance criteria of :func:`block_importance`.
BLOCK_CRITERIA = ("loss", "logits", "branch")
#: How :func:`remove_layers` takes a dense layer out.
REMOVALS = ("merge", "drop", "auto")


def parameter_count(model):
    """Trainable parameters: weights and biases of an MLP or CNN; every array of a ResNet's
    ``params`` (convolution weights, BN ``gamma`` and ``beta``, the classifier)."""
    if isinstance(model, ResNet):
        return int(sum(v.size for v in model.params.values()))
    _check_dense_model(model)
    return int(sum(w.size + b.size for w, b in zip(model.weights, model.biases)))


# --- dense layers -----------------------------------------------------------------------------

def _check_dense_model(model):
    if not isinstance(model, (MLP, CNN)):
        raise TypeError(f"model must be an MLP or a CNN, not {type(model).__name__}")


def _hidden_dense(model):
    """Names of the dense layers that are not the last (the classifier)."""
    ops = [op for op in model._arch() if op.kind == "dense"]
    return [op.name for op in ops[:-1]]


def _hidden_index(model, name):
    hidden = _hidden_dense(model)
    if name not in hidden:
        rule = (f"a hidden dense layer among {', '.join(map(repr, hidden))}" if hidden
                else "a hidden dense layer (this model has none)")
        raise ValueError(f"layer must be {rule}, not {name!r}")
    return model.layer_index(name)


def drop_layer(model, name):
    """A copy of ``model`` without the square hidden dense layer ``name``.

    The next layer reads the previous layer's output (module docstring: exact when the layer
    is the identity on non-negative inputs). Masks of the other layers are kept.

    Raises
    ------
    TypeError, ValueError
        Not an MLP or CNN, ``name`` not a hidden dense layer (the classifier is refused), or
        the layer not square.
    """
    _check_dense_model(model)
    i = _hidden_index(model, name)
    w = model.weights[i]
    if w.shape[0] != w.shape[1]:
        raise ValueError(f"layer {name!r} must have as many outputs as inputs to be dropped, "
                         f"not {w.shape[0]} and {w.shape[1]} (merge it instead)")
    new = model.copy()
    new.masks = new.full_masks()
    for seq in (new.weights, new.biases, new.masks):
        del seq[i]
    return new


def merge_layers(model, name):
    """A copy of ``model`` with hidden dense layer ``name`` merged into the next one.

    ``W' = W_next W``, ``b' = W_next b + b_next`` (float64, cast back), the ReLU between them
    dropped (module docstring: exact where it passes everything); the merged layer takes
    ``name``'s place (an MLP's layers are named by position) and is dense (no mask).

    Raises
    ------
    TypeError, ValueError
        Not an MLP or CNN, or ``name`` not a hidden dense layer.
    """
    _check_dense_model(model)
    i = _hidden_index(model, name)
    new = model.copy()
    new.masks = new.full_masks()
    w, b = new.weights[i].astype(np.float64), new.biases[i].astype(np.float64)
    w_next = new.weights[i + 1].astype(np.float64)
    dtype = new.weights[i].dtype
    new.weights[i] = (w_next @ w).astype(dtype)
    new.biases[i] = (w_next @ b + new.biases[i + 1]).astype(dtype)
    new.masks[i] = None
    for seq in (new.weights, new.biases, new.masks):
        del seq[i + 1]
    return new


def _check_names(names, allowed, what):
    if isinstance(names, str) or not isinstance(names, (list, tuple)):
        raise TypeError(f"{what} must be a list of names, not {names!r}")
    for name in names:
        if name not in allowed:
            rule = ", ".join(map(repr, allowed)) if allowed else "(none here)"
            raise ValueError(f"{what} must be among {rule}, not {name!r}")
    if len(set(names)) != len(names):
        raise ValueError(f"{what} must not repeat a name, not {list(names)!r}")
    return list(names)


def remove_layers(model, names, *, how="merge"):
    """A copy of ``model`` without the hidden dense layers ``names``.

    ``how``: ``"merge"`` each into its successor (:func:`merge_layers`), ``"drop"`` each
    (:func:`drop_layer`, square layers only), or ``"auto"``: drop the square ones, merge the
    others. Applied from the last to the first, so every name refers to the given model; a
    layer merged into a removed successor composes with what that successor became.

    Raises
    ------
    TypeError, ValueError
        Not an MLP or CNN, ``names`` not a list of distinct hidden dense layer names, a bad
        ``how``, or ``"drop"`` of a layer that is not square.
    """
    _check_dense_model(model)
    names = _check_names(names, _hidden_dense(model), "layers")
    check_choice(how, "how", REMOVALS)
    new = model.copy()
    for name in sorted(names, key=model.layer_index, reverse=True):
        # Removing later layers renames none of the earlier ones (names follow positions).
        w = new.weights[new.layer_index(name)]
        drop = how == "drop" or (how == "auto" and w.shape[0] == w.shape[1])
        new = drop_layer(new, name) if drop else merge_layers(new, name)
    return new


def _check_y(y, n, classes):
    y = as_int_array(y, "y")
    if y.shape != (n,):
        raise ValueError(f"y must have shape ({n},), not {y.shape}")
    if y.size and (y.min() < 0 or y.max() >= classes):
        bad = y[(y < 0) | (y >= classes)][0]
        raise ValueError(f"y must be class indices in [0, {classes - 1}], not {bad}")
    return y


def _scorer(criterion, criteria, y, logits, classes):
    """``score(reduced logits)`` for ``criterion`` given the model's own ``logits``."""
    check_choice(criterion, "criterion", criteria)
    if criterion == "loss":
        if y is None:
            raise ValueError("y must be given for criterion 'loss', not None")
        y = _check_y(y, len(logits), classes)
        base = cross_entropy(logits, y)[0]
        return lambda z: cross_entropy(z, y)[0] - base
    if y is not None:
        _check_y(y, len(logits), classes)
    norm = float(np.linalg.norm(logits.astype(np.float64)))
    return lambda z: float(np.linalg.norm(z.astype(np.float64) - logits)) / max(norm, 1e-300)


def layer_importance(model, x, y=None, *, criterion="loss", how="merge"):
    """Importance of every hidden dense layer: how much removing it alone
    (:func:`remove_layers` with ``how``) changes the network on ``x`` (module docstring).
    With ``how="drop"`` only the square layers are scored.

    Parameters
    ----------
    model : MLP or CNN
    x : float array ``(n, *model.input_shape)``
        Held-out training data.
    y : int array ``(n,)``, optional
        Labels (required by ``"loss"``).
    criterion : {"loss", "logits"}
    how : {"merge", "drop", "auto"}

    Returns
    -------
    dict of name -> float, in the network's order.

    Raises
    ------
    TypeError, ValueError
        A bad model, data, labels, criterion or ``how``, or ``"loss"`` without labels.
    """
    _check_dense_model(model)
    check_choice(how, "how", REMOVALS)
    logits = model.forward(x)
    score = _scorer(criterion, LAYER_CRITERIA, y, logits, model.weights[-1].shape[0])
    names = [n for n in _hidden_dense(model) if how != "drop" or _square(model, n)]
    return {name: float(score(remove_layers(model, [name], how=how).forward(x)))
            for name in names}


def _square(model, name):
    w = model.weights[model.layer_index(name)]
    return w.shape[0] == w.shape[1]


def _least(scores, k):
    k = check_int(k, "k", lo=0, hi=len(scores))
    names = list(scores)
    order = sorted(range(len(names)), key=lambda j: (scores[names[j]], j))
    return [names[j] for j in order[:k]]


def reduce_layers(model, k, x, y=None, *, criterion="loss", how="merge"):
    """Remove the ``k`` least important hidden dense layers (:func:`layer_importance` and
    :func:`remove_layers` with ``how``, module docstring); fine-tune the result with
    :func:`.train.train`.

    Returns
    -------
    (model, removed) : the reduced copy and the removed names (least important first).

    Raises
    ------
    TypeError, ValueError
        As :func:`layer_importance`, or ``k`` not in ``[0, layers scored]``.
    """
    scores = layer_importance(model, x, y, criterion=criterion, how=how)
    removed = _least(scores, k)
    return remove_layers(model, removed, how=how), removed


# --- residual blocks --------------------------------------------------------------------------

def _check_resnet(net):
    if not isinstance(net, ResNet):
        raise TypeError(f"net must be a ResNet, not {type(net).__name__}")


def _identity_blocks(net):
    return [blk.name for blk in net.blocks if blk.shortcut is None]


def remove_blocks(net, names):
    """A copy of ``net`` without the residual blocks ``names`` (identity shortcuts only): each
    block's input passes straight to what followed it (module docstring), and its
    convolutions' parameters, running statistics and masks go with it.

    Raises
    ------
    TypeError, ValueError
        Not a ResNet, or ``names`` not a list of distinct names of blocks with an identity
        shortcut (a block with a projection shortcut is refused by name).
    """
    _check_resnet(net)
    projection = [blk.name for blk in net.blocks if blk.shortcut is not None]
    if isinstance(names, (list, tuple)):
        for name in names:
            if name in projection:
                raise ValueError(f"blocks must have an identity shortcut to be removed, not "
                                 f"{name!r} (a projection shortcut changes the shape)")
    names = _check_names(names, _identity_blocks(net), "blocks")
    new = net.copy()
    gone = [cv.name for blk in net.blocks if blk.name in names for cv in blk.convs()]
    for conv in gone:
        for key in ("w", "gamma", "beta"):
            del new.params[f"{conv}.{key}"]
        for key in ("mean", "var"):
            del new.stats[f"{conv}.{key}"]
        new.masks.pop(conv, None)
    new.blocks = tuple(blk for blk in net.blocks if blk.name not in names)
    return new


def _branch_ratios(net, x):
    """``||F(x)||_F / ||x||_F`` of every identity block, from the float graph."""
    layers = net.to_layers()
    outs = float_forward(layers, x)
    index = {layer.name: i + 1 for i, layer in enumerate(layers)}
    ratios, prev = {}, net.stem.name
    for blk in net.blocks:
        if blk.shortcut is None:
            branch = np.linalg.norm(outs[index[blk.conv2.name]].astype(np.float64))
            base = np.linalg.norm(outs[index[prev]].astype(np.float64))
            ratios[blk.name] = float(branch / max(base, 1e-300))
        prev = blk.name
    return ratios


def block_importance(net, x, y=None, *, criterion="branch"):
    """Importance of every residual block with an identity shortcut (module docstring), on
    ``x`` with the eval-mode network.

    Parameters
    ----------
    net : ResNet
    x : float array ``(n, *net.input_shape)``
        Held-out training data.
    y : int array ``(n,)``, optional
        Labels (required by ``"loss"``).
    criterion : {"branch", "loss", "logits"}

    Returns
    -------
    dict of block name -> float, in the network's order.

    Raises
    ------
    TypeError, ValueError
        A bad network, data, labels or criterion, or ``"loss"`` without labels.
    """
    _check_resnet(net)
    logits = net.forward(x)
    if criterion == "branch":
        _scorer("logits", BLOCK_CRITERIA, y, logits, net.classes)   # validates y if given
        return _branch_ratios(net, x)
    score = _scorer(criterion, BLOCK_CRITERIA, y, logits, net.classes)
    return {name: float(score(remove_blocks(net, [name]).forward(x)))
            for name in _identity_blocks(net)}


def reduce_blocks(net, k, x, y=None, *, criterion="branch"):
    """Remove the ``k`` least important residual blocks (:func:`block_importance`); fine-tune
    the result with :func:`.resnet.train`.

    Returns
    -------
    (net, removed) : the reduced copy and the removed names (least important first).

    Raises
    ------
    TypeError, ValueError
        As :func:`block_importance`, or ``k`` not in ``[0, blocks with identity shortcut]``.
    """
    scores = block_importance(net, x, y, criterion=criterion)
    removed = _least(scores, k)
    return remove_blocks(net, removed), removed
