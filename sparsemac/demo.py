"""``sparsemac demo``: quantize and 2:4-prune a real network with the golden model.

Trains a 64-64-10 MLP on scikit-learn's bundled digits, calibrates its activations with each
calibrator, runs it integer-only (int8 activations and weights, int32 bias, TFLite double
rounding requantization with fused ReLU) and reports test accuracy, the hidden layer's
quantization error, and the weight bytes from float32 to int8 to 2:4-pruned int8.
"""

import numpy as np

import golden_model as gm
from golden_model import calibration as cal
from golden_model.train import MLP, accuracy, load_digits_split

__all__ = ["run_demo", "quantize_mlp", "int8_forward"]


def _act_range(x, method):
    """Calibrated range of an activation; non-negative data (after ReLU) keeps rmin = 0."""
    kwargs = {"symmetric": False} if method == "percentile" else {}
    lo, hi = cal.calibrate(x, method, **kwargs)
    if x.min() >= 0:
        lo = 0.0
    return lo, hi


def quantize_mlp(net, x_calib, *, method="minmax", per_channel=True):
    """Integer parameters of every layer of ``net``, activations calibrated on ``x_calib``.

    Returns a list of per-layer dicts with int8 weights, int32 bias, the requantization
    multiplier/shift per output channel, zero points and clamp bounds.
    """
    _, acts = net.forward(x_calib, keep=True)
    in_scale, in_zp = gm.qparams_from_range(*_act_range(acts[0], "minmax"))
    layers = []
    last = len(net.weights) - 1
    for i, (w, b) in enumerate(zip(net.weights, net.biases)):
        if per_channel:
            w_scale, _ = gm.qparams(w, axis=0, symmetric=True, narrow=True)
            wq = gm.quantize(w, w_scale, 0, qmin=-127, axis=0)
        else:
            s, _ = gm.qparams(w, symmetric=True, narrow=True)
            w_scale = np.full(w.shape[0], s)
            wq = gm.quantize(w, s, 0, qmin=-127)
        out_scale, out_zp = gm.qparams_from_range(*_act_range(acts[i + 1], method))
        w_scale32 = w_scale.astype(np.float32)
        mult, shift = gm.quantize_multiplier(
            gm.requant_scale(np.float32(in_scale), w_scale32, np.float32(out_scale)))
        act_min, act_max = gm.activation_bounds(None if i == last else "relu", out_scale,
                                                out_zp)
        layers.append({
            "w": wq, "bias": gm.quantize_bias(b, np.float32(in_scale), w_scale32),
            "in_scale": in_scale, "in_zp": in_zp, "out_scale": out_scale, "out_zp": out_zp,
            "multiplier": mult, "shift": shift, "act_min": act_min, "act_max": act_max,
        })
        in_scale, in_zp = out_scale, out_zp
    return layers


def int8_forward(layers, x):
    """Integer-only inference; returns the int8 output of every layer (input first)."""
    first = layers[0]
    q = gm.quantize(x.astype(np.float32), first["in_scale"], first["in_zp"])
    outs = [q]
    for layer in layers:
        q = gm.qlinear(q, layer["w"], layer["bias"], x_zero_point=layer["in_zp"],
                       multiplier=layer["multiplier"], shift=layer["shift"],
                       out_zero_point=layer["out_zp"], qmin=layer["act_min"],
                       qmax=layer["act_max"])
        outs.append(q)
    return outs


def _sqnr_db(ref, approx):
    noise = np.sum((ref - approx) ** 2)
    return float("inf") if noise == 0 else float(10 * np.log10(np.sum(ref ** 2) / noise))


def _evaluate(name, net, layers, x_test, y_test):
    outs = int8_forward(layers, x_test)
    _, acts = net.forward(x_test, keep=True)
    hidden = gm.dequantize(outs[1], layers[0]["out_scale"], layers[0]["out_zp"])
    return {"model": name, "accuracy": accuracy(outs[-1], y_test),
            "hidden_sqnr_db": _sqnr_db(acts[1], hidden)}


def run_demo(*, quick=False, out=None, seed=0):
    """Run the flow, print the report; write it as Markdown to ``out`` if given."""
    epochs = 10 if quick else 40
    x_train, y_train, x_test, y_test = load_digits_split(seed=seed)
    x_calib = x_train[:256]
    print(f"digits: {len(x_train)} train / {len(x_test)} test images (8x8), "
          f"MLP 64-64-10, {epochs} epochs")
    net = MLP.init([64, 64, 10], seed=seed).fit(x_train, y_train, epochs=epochs, seed=seed)
    rows = [{"model": "float32", "accuracy": accuracy(net.forward(x_test), y_test),
             "hidden_sqnr_db": float("inf")}]
    layers = quantize_mlp(net, x_calib, method="minmax", per_channel=False)
    rows.append(_evaluate("int8 per-tensor weights, min-max", net, layers, x_test, y_test))
    for method in cal.METHODS:
        layers = quantize_mlp(net, x_calib, method=method)
        rows.append(_evaluate(f"int8 per-channel weights, {method}", net, layers, x_test,
                              y_test))

    # 2:4 along the reduction (input) axis of every layer, then fine-tune with masks held.
    pruned = net.copy()
    pruned.masks = [gm.prune_n_m(w, 2, 4, axis=1) for w in pruned.weights]
    pruned.apply_masks()
    rows.append({"model": "2:4 float32, no fine-tuning",
                 "accuracy": accuracy(pruned.forward(x_test), y_test),
                 "hidden_sqnr_db": float("nan")})
    pruned.fit(x_train, y_train, epochs=max(epochs // 2, 5), lr=1e-3, seed=seed + 1)
    assert all(gm.is_n_m(w, 2, 4, axis=1) for w in pruned.weights)
    rows.append({"model": "2:4 float32, fine-tuned",
                 "accuracy": accuracy(pruned.forward(x_test), y_test),
                 "hidden_sqnr_db": float("nan")})
    layers = quantize_mlp(pruned, x_calib, method="minmax")
    assert all(gm.is_n_m(layer["w"], 2, 4, axis=1) for layer in layers)
    rows.append(_evaluate("2:4 int8 per-channel, min-max", pruned, layers, x_test, y_test))

    lines = ["## Accuracy (digits test split)", "",
             "| model | test accuracy | hidden-layer SQNR (dB) |", "|---|---:|---:|"]
    for r in rows:
        sq = r["hidden_sqnr_db"]
        sq_text = "-" if np.isnan(sq) or np.isinf(sq) else f"{sq:.1f}"
        lines.append(f"| {r['model']} | {100 * r['accuracy']:.2f} % | {sq_text} |")
    report = gm.compression_report({f"fc{i}": w for i, w in enumerate(pruned.weights)})
    lines += ["", "## Weight bytes (2:4 N:M compressed int8: values + 2-bit indices)", "",
              gm.format_report(report)]
    text = "\n".join(lines)
    print()
    print(text)
    if out is not None:
        from sparsemac.cli import write_atomic  # noqa: PLC0415

        write_atomic(out, "# SparseMAC demo report\n\n" + text + "\n")
    return 0
