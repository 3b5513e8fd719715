"""Load the compiled kernels with OpenMP's passive wait policy (unless the user chose one).

The multi-tensor kernels run OpenMP parallel regions. By default libgomp lets its idle
threads spin after a region; on a machine whose cores are busy with other processes a
spinning thread loses its scheduling priority, so the next region waits for a time slice:
measured here (2 shared cores), a 2-thread Adam step on 65536 float32 elements took 16 ms
instead of 45 us, and 1e6 elements 11 ms instead of 0.4 ms (bench/PERFORMANCE.md). With
``OMP_WAIT_POLICY=passive`` idle threads sleep and the same calls take 0.05 and 0.43 ms.

libgomp reads the policy once, when it is loaded, so it is set only around the first import
of :mod:`fastoptim.kernels` and removed again: child processes and libraries that read the
environment later do not see it. A user's own ``OMP_WAIT_POLICY`` is left alone, and if
another library loaded libgomp first, its setting stands.
"""
import os

_KEY = "OMP_WAIT_POLICY"

if _KEY in os.environ:
    from . import kernels  # noqa: F401
else:
    os.environ[_KEY] = "passive"
    try:
        from . import kernels  # noqa: F401
    finally:
        del os.environ[_KEY]
