"""The flat layout of :mod:`fastoptim.distributed`: the arrays of one dtype end to end in
one buffer, its buckets, and each rank's contiguous shard."""
from __future__ import annotations

from typing import List, Sequence, Tuple

import numpy as np

from ._mpi import _MPI_TYPES


def _flat(a: np.ndarray) -> np.ndarray:
    """The 1-D view of a contiguous array in memory order (never a copy)."""
    out = a.reshape(-1, order="F" if a.flags.f_contiguous and not a.flags.c_contiguous
                    else "C")
    assert np.shares_memory(out, a) or a.size == 0
    return out


def _view_like(buffer: np.ndarray, offset: int, like: np.ndarray) -> np.ndarray:
    """A view of ``buffer[offset:offset + like.size]`` with ``like``'s shape and layout."""
    order = "F" if like.flags.f_contiguous and not like.flags.c_contiguous else "C"
    return np.ndarray(like.shape, like.dtype, buffer=buffer,
                      offset=offset * buffer.itemsize, order=order)


def _shard_bounds(n: int, size: int) -> List[Tuple[int, int]]:
    """Rank r's contiguous range of ``n`` elements: the first ``n % size`` ranks one more."""
    base, extra = divmod(n, size)
    out, lo = [], 0
    for r in range(size):
        hi = lo + base + (r < extra)
        out.append((lo, hi))
        lo = hi
    return out


def _whole_array_bounds(sizes: Sequence[int], size: int) -> List[Tuple[int, int]]:
    """Rank r's contiguous range of the arrays of ``sizes`` laid end to end, cut only at
    array boundaries (for update rules that need whole arrays): rank r's range ends at the
    boundary nearest ``(r + 1) * n / size`` (the smaller one on a tie), never before its
    start; the last rank's at ``n``."""
    ends = np.cumsum(np.asarray(sizes, np.int64)).tolist()
    n = ends[-1] if ends else 0
    out, lo = [], 0
    for r in range(size):
        if r == size - 1:
            hi = n
        else:
            target = (r + 1) * n / size
            hi = min((e for e in ends if e >= lo), key=lambda e: (abs(e - target), e),
                     default=lo)
        out.append((lo, hi))
        lo = hi
    return out


def _describe_arrays(names: Sequence[str], arrays: Sequence[np.ndarray]) -> List[str]:
    out = []
    for name, a in zip(names, arrays):
        layout = "C" if a.flags.c_contiguous else "F" if a.flags.f_contiguous else "strided"
        out.append(f"{name} of shape {a.shape}, dtype {a.dtype}, {layout}-order")
    return out


class _Flat:
    """The arrays of one dtype laid end to end (the optimizer's order): one gradient buffer,
    the views of each array in it, the buckets, and (sharded) each rank's shard."""

    def __init__(self, dtype, index: List[int], params: List[np.ndarray], size: int,
                 rank: int, bucket_elems: int, sharded: bool,
                 whole_arrays: bool = False) -> None:
        self.dtype = dtype
        self.mpi = _MPI_TYPES[dtype]
        self.index = index                      # the optimizer's indices of these arrays
        self.offsets, n = [], 0
        for i in index:
            self.offsets.append(n)
            n += params[i].size
        self.n = n
        self.buffer = np.zeros(n, dtype)        # the packed gradient; (sharded) the params
        self.views = [_view_like(self.buffer, off, params[i])
                      for off, i in zip(self.offsets, index)]
        self.bounds = (_whole_array_bounds([params[i].size for i in index], size)
                       if whole_arrays else _shard_bounds(n, size))
        self.lo, self.hi = self.bounds[rank]
        self.buckets = [(b, min(b + bucket_elems, n)) for b in range(0, n, bucket_elems)]
        self.allreduce = [[self.buffer[b0:b1], self.mpi] for b0, b1 in self.buckets]
        if not sharded:
            return
        self.reduce_scatter, self.allgather = [], []
        if size == 1:                   # the whole buffer is the shard: nothing to move
            self.shard = self.buffer
            return
        self.shard = np.zeros(self.hi - self.lo, dtype)     # this rank's averaged gradient
        for b0, b1 in self.buckets:
            counts = [max(0, min(hi, b1) - max(lo, b0)) for lo, hi in self.bounds]
            displs = [max(lo, b0) - b0 if c else 0 for (lo, _), c in zip(self.bounds, counts)]
            # (a rank with nothing in the bucket: displacement 0, count 0)
            mine = (max(self.lo, b0) - self.lo, max(self.lo, b0) - self.lo + counts[rank])
            self.reduce_scatter.append(([self.buffer[b0:b1], self.mpi],
                                        [self.shard[mine[0]:mine[1]], self.mpi], counts))
            self.allgather.append([self.buffer[b0:b1], (counts, displs), self.mpi])

    def piece(self, j: int) -> Tuple[int, int]:
        """The range of array ``index[j]`` (in its own flat order) inside this rank's shard;
        empty ``(0, 0)`` when the shard does not reach it."""
        off, size = self.offsets[j], self.views[j].size
        a, b = max(self.lo, off), min(self.hi, off + size)
        return (a - off, b - off) if a < b else (0, 0)
