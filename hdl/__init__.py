"""SparseMAC gateware: the Amaranth 0.5 generator of the int8 N:M sparse MAC array.

Gateware only: every block reproduces the golden model's arithmetic bit for bit (the tests
hold it to that), but nothing here imports it. :mod:`.layout` is the one definition of the
stream words and register widths that the host's encoder and the testbenches derive from.
"""
