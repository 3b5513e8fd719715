r"""Data-parallel training over MPI (mpi4py): gradient averaging and ZeRO-1 sharded state.

Every process (rank) holds the whole model, computes the gradients of its shard of the
mini-batch, and steps through a :class:`DistributedOptimizer`, which averages the gradients
over the communicator before the update, so that every rank takes the same step::

    from mpi4py import MPI
    import fastoptim
    from fastoptim.distributed import DistributedOptimizer, broadcast_parameters

    broadcast_parameters(parameters)              # rank 0's initialisation everywhere
    opt = DistributedOptimizer(fastoptim.Adam(parameters, lr=1e-3), shard_state=True)
    for X_t, Y_t in batches:                      # this rank's shard of each mini-batch
        opt.step(gradients(X_t, Y_t))             # averaged over the ranks, then stepped

Run it with ``mpiexec -n 4 python train.py``. This module imports :mod:`mpi4py` (the
``fastoptim[mpi]`` extra: ``mpi4py`` and the ``mpich`` wheel, which brings ``mpiexec``);
``import fastoptim`` never does.

How a step communicates (``N`` ranks, ``n`` elements of one dtype):

* ``shard_state=False``: the gradients are packed into one preallocated flat buffer per
  dtype, summed in place by ``Allreduce`` on buckets of at most ``bucket_bytes``, divided
  by ``N``; then the wrapped optimizer steps with views of that buffer.
* ``shard_state=True`` (ZeRO stage 1): the flat gradient is ``Reduce_scatter``\ ed, so rank
  ``r`` receives the average of its contiguous shard (``n // N`` or ``n // N + 1``
  elements); it steps only that shard of the parameters and keeps only that shard of the
  state buffers (state memory per rank ``≈ 1/N``); then ``Allgatherv`` of the parameters
  puts the whole update on every rank. Element-wise rules (every registry kernel) are cut
  anywhere; LAMB and Muon, whose update needs whole arrays, are cut at array boundaries only
  (torch's ``ZeroRedundancyOptimizer`` way), each rank's range ending at the boundary
  nearest ``(r + 1) n / N``; Adafactor's factored state is not sharded (it raises).

Reductions that span arrays are global: the non-finite check of ``skip_nonfinite`` and the
norm of ``step(grads, max_norm=...)`` see the averaged gradient of every rank, so every rank
takes the same decision. One small ``Allreduce`` per step first lets every rank learn
whether another one failed its checks (a bad gradient raises the same error on every rank
instead of leaving the others waiting in a collective forever).

Modules: ``optimizer`` (:class:`DistributedOptimizer`: its steps and consolidated
checkpoints), ``functions`` (:func:`broadcast_parameters`, :func:`clip_grad_norm`),
``_layout`` (the flat buffers, buckets and shards), ``_mpi`` (the communicator argument,
datatypes, and the agreement that raises one rank's error on every rank).
"""
from __future__ import annotations

try:
    from mpi4py import MPI
except ImportError as exc:      # pragma: no cover - the optional extra is missing
    raise ImportError("fastoptim.distributed needs mpi4py: pip install '.[mpi]' (from a "
                      "checkout; 'fastoptim[mpi]' once published) "
                      "(mpi4py and the mpich wheel, which provides mpiexec)") from exc

from .functions import broadcast_parameters, clip_grad_norm
from .optimizer import DEFAULT_BUCKET_BYTES, DistributedOptimizer, _elementwise  # noqa: F401

__all__ = ["DistributedOptimizer", "broadcast_parameters", "clip_grad_norm", "MPI"]
