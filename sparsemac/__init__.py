"""The ``sparsemac`` command line: a thin front door over golden_model, hdl and sim."""
