"""A process created by fork() after a parallel step must not hang (issue: libgomp's thread
pool does not survive fork, and Numba's OpenMP layer terminates such a child).

fastoptim's at-fork handlers make every forked child run its kernels on one thread, with the
same results bit for bit. Each scenario runs in a subprocess with a timeout, so that a
regression fails instead of hanging the suite.
"""
import os
import subprocess
import sys
import textwrap

import pytest

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork()")

PRELUDE = textwrap.dedent("""
    import multiprocessing, os, sys
    import numpy as np
    import fastoptim as fo
    from fastoptim import kernels

    N = 1_500_000          # above the parallel crossover for float32 Adam

    def arrays():
        p = np.linspace(-1, 1, N, dtype=np.float32)
        g = np.cos(np.arange(N, dtype=np.float32))
        return p, g, np.zeros(N, np.float32), np.zeros(N, np.float32)

    def step(how):
        p, g, m, v = arrays()
        for t in (1, 2):
            if how == "multi":
                c = kernels.coefficients_adam(t, 1e-2, 0.9, 0.999, 1e-8, 0.0, False, False)
                kernels.adam_multi([p], [g], [m], [v], None, c, num_threads=2)
            elif how == "optimizer":
                if t == 1:
                    opt = fo.Adam([p], lr=1e-2)
                opt.step([g])
            else:
                fo.adam_step(p, g, m, v, step=t, lr=1e-2, backend=how)
        return p

    fo.set_num_threads(2)
""")


def run(body, timeout=120):
    code = PRELUDE + textwrap.dedent(body)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=timeout)
    assert out.returncode == 0, (out.stdout + out.stderr)[-3000:]
    return out.stdout


HOWS = ["auto", "multi", "optimizer", "numba"]


@pytest.mark.parametrize("how", HOWS)
def test_os_fork_child_runs_a_parallel_sized_step(how):
    out = run(f"""
        expected = step({how!r})                 # the parent uses its thread pool first
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:
            ok = np.array_equal(step({how!r}), expected) and fo.get_num_threads() == 1
            os.write(w, b"same" if ok else b"diff")
            os._exit(0)
        os.close(w)
        answer = os.read(r, 16)
        _, status = os.waitpid(pid, 0)
        assert status == 0, status
        assert np.array_equal(step({how!r}), expected)   # the parent still runs in parallel
        print(answer.decode())
    """)
    assert out.strip() == "same"


@pytest.mark.parametrize("how", ["auto", "numba"])
def test_multiprocessing_fork_pool(how):
    out = run(f"""
        def work(_):
            return step({how!r}).tobytes()

        expected = step({how!r}).tobytes()
        with multiprocessing.get_context("fork").Pool(2) as pool:
            results = pool.map(work, range(2), chunksize=1)
        print(all(r == expected for r in results))
    """, timeout=180)
    assert out.strip() == "True"


def test_in_forked_child_is_reported():
    out = run("""
        step("auto")
        pid = os.fork()
        if pid == 0:
            fo.set_num_threads(2)      # asked for, but a forked child stays on one thread
            ok = (fo._threads.in_forked_child() and kernels.in_forked_child()
                  and fo.get_num_threads() == 1)
            os._exit(0 if ok else 7)
        _, status = os.waitpid(pid, 0)
        print(status, fo._threads.in_forked_child(), fo.get_num_threads())
    """)
    assert out.split() == ["0", "False", "2"]
