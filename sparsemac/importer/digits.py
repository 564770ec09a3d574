"""The bundled digits data set, which calibrates and scores models of its shape."""

__all__ = ["DIGITS_SHAPES", "digits_split"]

#: Input shapes (one sample) that the bundled digits data fits: calibration and test
#: accuracy need no data file for these.
DIGITS_SHAPES = ((64,), (1, 8, 8))


def digits_split():
    """``(x_train, y_train, x_test, y_test)``, flat 64-feature samples in [0, 1]."""
    from golden_model.datasets import load_digits_split  # noqa: PLC0415 (scikit-learn import)

    return load_digits_split()
