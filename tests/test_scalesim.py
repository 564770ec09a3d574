"""The performance model against SCALE-Sim (weight-stationary), layer by layer.

Both sides have a closed form (``explore.scalesim_check``): SCALE-Sim takes
``P * (m + 2H + W - 2) - 1`` cycles for ``P`` folds on an ``H x W`` array, ours ``P * m + F``
when the passes run back to back, so there ``ours - scalesim = F + 1 - P * (2H + W - 2)``
exactly; with short passes ours lies in ``[P * m + F, P * m + F + bubble_bound]``.
"""

import itertools
import math
import re
from pathlib import Path

import pytest
from scalesim.memory import double_buffered_scratchpad_mem, read_buffer

from explore import scalesim_check as sc
from hdl.config import Config
from host.packing import plan_layer
from host.perf import layer_cycles

DOC = Path(__file__).resolve().parent.parent / "docs" / "perf" / "scalesim.md"


@pytest.fixture(scope="module")
def results():
    """Every layer of the table on every array, dense and N:M (SCALE-Sim runs cached)."""
    return {mode: sc.compare(sc.LAYERS, sc.ARRAYS, mode) for mode in sc.MODES}


def _runs(results):
    return [r for rows in results.values() for r in rows]


def test_scalesim_equals_its_closed_form(results):
    """SCALE-Sim never stalls here, its folds are our K tiles x N tiles, and its compute
    cycles are ``P * (m + 2H + W - 2) - 1`` on every run."""
    for r in _runs(results):
        s = r.scalesim
        assert s.stall_cycles == 0, r
        assert (s.height, s.width) == (r.rows * Config.from_sparsity(1, 1, r.sparsity).n,
                                       r.cols)
        folds = (math.ceil(sc.compressed_k(r.k, r.sparsity) / s.height)
                 * math.ceil(r.n / s.width))
        assert folds == r.folds, r
        assert r.theirs == r.folds * (r.m + 2 * s.height + s.width - 2) - 1, r
        assert r.theirs == sc.scalesim_formula(r.m, r.k, r.n, height=s.height, width=s.width,
                                               sparsity=r.sparsity)
        assert s.total_cycles >= r.theirs


def test_back_to_back_difference_is_exact(results):
    """Passes back to back: ours is ``P * m + F`` and the difference is
    ``F + 1 - P * (2H + W - 2)``, to the cycle."""
    for mode, rows in results.items():
        b2b = [r for r in rows if r.bubbles == 0]
        assert len(b2b) >= 16, mode
        for r in b2b:
            assert r.ours == r.folds * r.m + r.fill, r
            assert r.ours - r.theirs == r.explained, r
            assert r.ratio == pytest.approx(r.band[0], abs=0) and r.band[0] == r.band[1]


def test_fill_is_the_load_then_the_result_latency():
    """``F = max(rows + 3, cols) + rows + cols + 19`` (double rounding, PEs not pipelined):
    a single pass costs 25 cycles more than SCALE-Sim on a square dense array."""
    for rows, cols in ((4, 4), (8, 8), (16, 16), (4, 8), (8, 4)):
        cfg = Config.from_sparsity(rows, cols, "dense")
        assert sc.fill(cfg) == max(rows + 3, cols) + rows + cols + 19
    cfg = Config.from_sparsity(8, 8, "dense")
    assert sc.fill(cfg) + 1 - (2 * 8 + 8 - 2) == 25


def test_m_blocks_do_not_cost_cycles_on_long_blocks(results):
    """m = 1024 runs as two m-blocks of acc_depth = 512 rows (twice the passes, SCALE-Sim
    streams the 1024 rows per fold), and is still back to back."""
    rows = [r for r in _runs(results) if r.m == 1024]
    assert rows
    for r in rows:
        assert r.passes == 2 * r.folds and r.bubbles == 0 and r.ours == r.floor


def test_short_passes_stay_within_the_bound(results):
    """Passes shorter than ``rows + cols + 4`` rows wait for a weight bank: ours lies strictly
    above ``P * m + F`` and at most :func:`bubble_bound` above it."""
    short = [r for r in _runs(results) if r.bubbles > 0]
    assert len(short) >= 15
    for r in short:
        assert r.floor < r.ours <= r.floor + r.bubbles, r
        low, high = r.band
        assert low < r.ratio <= high, r


@pytest.mark.parametrize("rows, cols, sparsity, options", [
    (2, 2, "dense", {"acc_depth": 16}), (4, 8, "2:4", {"pipeline": True}),
    (8, 4, "1:4", {"rounding": "single", "acc_depth": 16}), (3, 5, "2:8", {})])
def test_bubble_bound_brackets_the_model(rows, cols, sparsity, options):
    """Without SCALE-Sim, on every shape of a grid (short and long passes, many m-blocks,
    N:M mode and the dense fallback): ``P * m + F <= ours <= P * m + F + bubble_bound``, and
    ours is ``P * m + F`` exactly when the bound is 0."""
    cfg = Config.from_sparsity(rows, cols, sparsity, **options)
    for sparse in {False, cfg.sparse}:
        for m, k, n in itertools.product([1, 2, 5, 13, 17, 21, 50], [1, 7, 33, 130], [1, 5, 17]):
            est = layer_cycles(cfg, m, k, n, sparse=sparse)
            floor = est.beats + sc.fill(cfg)
            bound = sc.bubble_bound(cfg, m, k, n, sparse=sparse)
            assert floor <= est.cycles <= floor + bound, (m, k, n, sparse)
            assert (est.cycles == floor) == (bound == 0), (m, k, n, sparse)


def test_orientation_height_is_the_reduction():
    """On non-square arrays the folds are ceil(k / rows) x ceil(n / cols): SCALE-Sim's height
    is our rows, its width our cols (swapped, the closed form would be off)."""
    m, k, n = 24, 12, 24
    for r in sc.compare([(m, k, n)], [(4, 8), (8, 4)]):
        plan = plan_layer(Config.from_sparsity(r.rows, r.cols, "dense"), m, k, n, sparse=False)
        assert r.folds == plan.k_tiles * plan.n_tiles
        assert r.theirs == sc.scalesim_formula(m, k, n, height=r.rows, width=r.cols)
        assert r.theirs != sc.scalesim_formula(m, k, n, height=r.cols, width=r.rows)
        assert r.bubbles == 0 and r.ours - r.theirs == r.explained


@pytest.mark.parametrize("k", [7, 30, 32])
def test_nm_mode_is_a_dense_gemm_on_compressed_k(k):
    """SCALE-Sim's N:M mode runs the filter cut to its first N of every M rows: the cycles of
    a dense GEMM of m x ceil(k N / M) x n."""
    for sparsity in ("2:4", "1:4"):
        nm = sc.scalesim_gemm(5, k, 6, height=4, width=4, sparsity=sparsity)
        dense = sc.scalesim_gemm(5, sc.compressed_k(k, sparsity), 6, height=4, width=4)
        assert nm.compute_cycles == dense.compute_cycles
    assert sc.compressed_k(7, "2:4") == 4 and sc.compressed_k(32, "1:4") == 8


def test_scalesim_is_quiet_and_leaves_numpy_alone(capsys):
    run = sc.scalesim_gemm(3, 5, 2, height=2, width=2)
    assert run.compute_cycles == sc.scalesim_formula(3, 5, 2, height=2, width=2)
    out = capsys.readouterr()
    assert out.out == "" and out.err == ""
    assert not hasattr(read_buffer, "max") and not hasattr(double_buffered_scratchpad_mem, "max")


@pytest.mark.parametrize("call, message", [
    (lambda: sc.scalesim_gemm(0, 4, 4, height=4, width=4),
     "layer size m must be at least 1, not 0"),
    (lambda: sc.scalesim_gemm(4, 4, 4, height=0, width=4), "height must be at least 1, not 0"),
    (lambda: sc.scalesim_gemm(4, 4, 4, height=4, width=4, sparsity="3:5"),
     "M must be a power of two in {1, 2, 4, 8, 16}, not 5"),
    (lambda: sc.scalesim_formula(4, 4, 4, height=4, width=-1, sparsity="2:4"),
     "width must be at least 1, not -1"),
    (lambda: sc.compressed_k(4, "2-4"), "sparsity must be 'N:M' (e.g. '2:4') or 'dense', "
     "not '2-4'"),
    (lambda: sc.compare([(4, 4, 4)], [(0, 4)]), "rows must be at least 1, not 0"),
    (lambda: sc.compare([(4, 0, 4)], [(4, 4)]), "layer size k must be at least 1, not 0"),
])
def test_bad_arguments(call, message):
    with pytest.raises(ValueError) as info:
        call()
    assert str(info.value) == message


def test_markdown_is_the_checked_in_page(results):
    """``docs/perf/scalesim.md`` is what ``python -m explore.scalesim_check`` prints now."""
    text = sc.format_markdown(results)
    layer = re.compile(r"^\| [^|]+ \| \d+x\d+x\d+ \|")
    assert sum(bool(layer.match(line)) for line in text.splitlines()) == len(_runs(results))
    assert DOC.read_text() == text
