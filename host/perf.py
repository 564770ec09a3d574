"""Performance model: cycles, utilization and GOPS of a layer or a network on an array.

The model replays the engine's scheduling rules pass by pass (:func:`hdl.engine.timing`): a
pass starts when the previous one has ended, its weight tile is loaded (tiles load in order,
each into the bank the pass two before it used, ``drain`` cycles after that pass ended) and,
for the first pass of an m-block, its requantization parameters are loaded (in order, into
the bank the block two before used, ``param_drain`` cycles after it ended). Streams are
assumed always ready, as in ``sparsemac bench``; cycles count from the first input transfer
to the last output transfer. ``tests/test_perf.py`` holds it to the RTL's cycle counts.
"""

import dataclasses

from hdl.config import Config
from hdl.engine import timing
from host.packing import plan_layer

__all__ = ["LayerEstimate", "layer_cycles", "network_cycles"]


@dataclasses.dataclass(frozen=True)
class LayerEstimate:
    config: Config
    m: int
    k: int
    n: int
    sparse: bool
    cycles: int
    beats: int
    passes: int

    @property
    def dense_equiv_macs(self):
        return self.m * self.k * self.n

    @property
    def peak_macs_per_cycle(self):
        return self.config.peak_macs_sparse if self.sparse else self.config.peak_macs_dense

    @property
    def utilization(self):
        return self.dense_equiv_macs / (self.cycles * self.peak_macs_per_cycle)

    def gops(self, fmax_mhz):
        """Dense-equivalent giga-operations per second (2 per MAC) at ``fmax_mhz``."""
        return 2 * self.dense_equiv_macs / (self.cycles / (fmax_mhz * 1e6)) / 1e9


def layer_cycles(config, m, k, n, *, sparse, m_block=None):
    """Model the cycles of one ``m x k x n`` layer (see the module docstring)."""
    plan = plan_layer(config, m, k, n, sparse=sparse, m_block=m_block)
    t = timing(config)
    rows, cols = config.rows, config.cols
    blocks = [min(plan.m_block, m - b) for b in range(0, m, plan.m_block)]
    passes = [(blk, kt) for _ in range(plan.n_tiles) for blk in range(len(blocks))
              for kt in range(plan.k_tiles)]
    # Weight loader: tile q starts when the loader is free and bank q % 2 is free.
    ends = []                       # last-beat cycle of each pass
    tile_ready = []
    loader_free = 0                 # first cycle the weight loader may transfer
    # Parameter loader: one packet of cols words per block, in order.
    q_ready, q_loader_free, block_ends = [], 0, []
    group = -1
    start = None
    for q, (blk, kt) in enumerate(passes):
        bank_free = 0 if q < 2 else ends[q - 2] + t["drain"] + 2
        load_start = max(loader_free, bank_free)
        loader_free = load_start + rows
        tile_ready.append(load_start + rows + t["load_to_use"])
        earliest = tile_ready[q] if not ends else max(ends[-1] + 1, tile_ready[q])
        if kt == 0:
            group += 1
            qbank_free = 0 if group < 2 else block_ends[group - 2] + t["param_drain"] + 2
            q_start = max(q_loader_free, qbank_free)
            q_loader_free = q_start + cols
            q_ready.append(q_start + cols)
            earliest = max(earliest, q_ready[group])
        start = earliest if start is None else start
        ends.append(earliest + blocks[blk] - 1)
        if kt == plan.k_tiles - 1:
            block_ends.append(ends[-1])
    cycles = ends[-1] + t["result"] + 1
    return LayerEstimate(config, m, k, n, sparse, cycles, plan.n_tiles * plan.k_tiles * m,
                         len(passes))


def network_cycles(config, layers):
    """Estimates of a list of layers ``(m, k, n, sparse)``, run one after the other."""
    return [layer_cycles(config, m, k, n, sparse=sparse) for m, k, n, sparse in layers]
