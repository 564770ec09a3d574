"""SparseMAC gateware: the Amaranth 0.5 generator of the int8 N:M sparse MAC array.

Builds on ``golden_model``, whose arithmetic every block reproduces bit for bit.
"""
