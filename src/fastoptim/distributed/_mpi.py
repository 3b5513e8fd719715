"""MPI plumbing of :mod:`fastoptim.distributed`: the communicator argument, the datatypes,
and the collective agreement that turns an error on one rank into the same error on every
rank (instead of the others waiting in a collective forever)."""
from __future__ import annotations

import hashlib
from typing import List, Optional

import numpy as np
from mpi4py import MPI

_MPI_TYPES = {np.dtype(np.float32): MPI.FLOAT, np.dtype(np.float64): MPI.DOUBLE}
_ERRORS = {"TypeError": TypeError, "ValueError": ValueError, "KeyError": KeyError,
           "NotImplementedError": NotImplementedError, "OverflowError": OverflowError,
           "FileNotFoundError": FileNotFoundError, "PermissionError": PermissionError,
           "IsADirectoryError": IsADirectoryError}
_CODE_MASK = (1 << 62) - 1


def _world(f: str, comm):
    """``comm``, or ``MPI.COMM_WORLD`` for ``None``; an intra-communicator."""
    if comm is None:
        return MPI.COMM_WORLD
    if not isinstance(comm, MPI.Intracomm):
        raise TypeError(f"{f}: comm must be an mpi4py intra-communicator (MPI.Comm), got "
                        f"{type(comm).__name__}")
    return comm


def _code(text: str) -> int:
    """A 62-bit fingerprint of ``text``, the same in every process."""
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(),
                          "little") & _CODE_MASK


def _agree(comm, f: str, error: Optional[BaseException], code: int = 0,
           buf: Optional[np.ndarray] = None) -> bool:
    """Collective: raise the same error on every rank if any rank has one (the first
    failing rank's type and message); otherwise return whether every rank passed the same
    ``code``. One ``Allreduce`` of three integers when all is well."""
    if buf is None:
        buf = np.empty(3, np.int64)
    buf[0] = error is not None
    buf[1] = code
    buf[2] = -code
    if comm.size > 1:
        comm.Allreduce(MPI.IN_PLACE, [buf, MPI.INT64_T], op=MPI.MAX)
    if buf[0]:
        mine = None if error is None else (type(error).__name__, str(error))
        everyone = comm.allgather(mine)
        rank, (name, message) = next((r, e) for r, e in enumerate(everyone) if e is not None)
        cls = _ERRORS.get(name, RuntimeError)
        text = message if cls is not RuntimeError else f"{name}: {message}"
        if comm.size > 1:
            text += f" [raised on rank {rank} of {comm.size}; the same error on every rank]"
        raise cls(text) from error
    return buf[1] == -buf[2]


def _first_difference(comm, f: str, mine: List[str], what: str) -> str:
    """Collective (the error path only): a message naming the first rank whose
    description differs from rank 0's and the first item that differs; the same text on
    every rank."""
    everyone = comm.allgather(mine)
    base = everyone[0]
    for rank, other in enumerate(everyone[1:], 1):
        if other == base:
            continue
        j = next((j for j, (a, b) in enumerate(zip(base, other)) if a != b),
                 min(len(base), len(other)))
        a = base[j] if j < len(base) else "nothing more"
        b = other[j] if j < len(other) else "nothing more"
        return (f"{f}: {what} differ between ranks: rank 0 has {a}, rank {rank} has {b}")
    return f"{f}: {what} differ between ranks"      # (fingerprint collision: unreachable)
