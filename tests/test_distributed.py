"""fastoptim.distributed over MPI: the checks of tests/mpi_scripts/checks.py, run under
``mpiexec -n 1``, ``-n 2`` and ``-n 3`` (one launch each, a few seconds), and ``fastoptim
train --distributed``. Every launch is a subprocess with a timeout that kills the whole
process group, so a hung collective fails the test instead of hanging the suite.

What the checks assert (see the module docstring of checks.py for the tolerances): every
optimizer class, replicated and sharded (ZeRO-1), equals single-process training on the
mean gradient (bit for bit with 1 and 2 ranks; within rtol 2e-5 float32 / 1e-10 float64 with
3, where MPI may add the three gradients in another order); the parameters are bit-identical
on every rank after every step; sharded equals replicated and holds 1/N of the state;
global decisions (non-finite skip, clipping) are the same on every rank; checkpoints round
trip both ways (distributed <-> single process) and resume bit for bit; mismatched
parameters and bad arguments raise the same error on every rank; a step allocates nothing.
"""
import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest

import fastoptim

pytest.importorskip("mpi4py")

HERE = Path(__file__).parent
SCRIPT = HERE / "mpi_scripts" / "checks.py"
CHECKS = re.findall(r"^@check\ndef (\w+)\(", SCRIPT.read_text(), re.M)
TIMEOUT = 120        # seconds per launch; a launch takes 1-5 s on 2 loaded cores


def _mpiexec():
    """The mpiexec of this environment (the mpich wheel puts it next to python)."""
    here = Path(sys.executable).parent / "mpiexec"
    if here.exists():
        return str(here)
    from shutil import which
    return which("mpiexec")


MPIEXEC = _mpiexec()
pytestmark = pytest.mark.skipif(MPIEXEC is None, reason="no mpiexec (pip install mpich)")


def _env():
    """This process's environment, with the fastoptim being tested first on the path."""
    env = dict(os.environ)
    src = str(Path(fastoptim.__file__).resolve().parent.parent)
    env["PYTHONPATH"] = os.pathsep.join([src, env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    env.setdefault("OMP_NUM_THREADS", "1")      # N ranks on few cores: no oversubscription
    return env


def launch(n, args, timeout=TIMEOUT):
    """Run ``mpiexec -n n python args...``; kill every rank if it outlives ``timeout``.

    ``-launcher fork``: start the ranks as local child processes (hydra's default may look
    for ssh in a container)."""
    cmd = [MPIEXEC, "-launcher", "fork", "-n", str(n), sys.executable, *map(str, args)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=_env(), start_new_session=True)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        pytest.fail(f"mpiexec -n {n} {args} did not finish in {timeout} s (a hang)\n"
                    f"{out[-3000:]}\n{err[-3000:]}")
    return proc.returncode, out, err


_RESULTS = {}


def results(n, tmp_path_factory):
    if n not in _RESULTS:
        tmp = tmp_path_factory.mktemp(f"mpi{n}")
        code, out, err = launch(n, [SCRIPT, tmp])
        line = next((l for l in out.splitlines() if l.startswith("MPI-CHECKS ")), None)
        assert code == 0 and line is not None, f"exit {code}\n{out[-3000:]}\n{err[-3000:]}"
        _RESULTS[n] = json.loads(line[len("MPI-CHECKS "):])
    return _RESULTS[n]


def test_the_checks_were_found():
    assert len(CHECKS) >= 10, CHECKS


@pytest.mark.parametrize("name", CHECKS)
@pytest.mark.parametrize("n", [1, 2, 3])
def test_mpi_check(n, name, tmp_path_factory):
    outcomes = results(n, tmp_path_factory)[name]
    if outcomes == ["SKIP"]:
        pytest.skip("compares what differs between ranks: needs 2 or more")
    assert len(outcomes) == n
    failed = {rank: tb for rank, tb in enumerate(outcomes) if tb is not None}
    assert not failed, "\n".join(f"rank {r}:\n{tb}" for r, tb in failed.items())


def test_import_fastoptim_does_not_import_mpi4py():
    code = ("import sys, fastoptim, fastoptim.cli, fastoptim.train.command, "
            "fastoptim.train.trainer; "
            "assert 'mpi4py' not in sys.modules, 'mpi4py imported'; "
            "import fastoptim.distributed; assert 'mpi4py' in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True, env=_env(), timeout=TIMEOUT)


_DRIFT = re.compile(r"largest relative difference (\d\.\d+e[+-]\d+)")


@pytest.mark.parametrize("n, extra", [(2, []), (3, ["--shard-state"])])
def test_train_distributed_equals_single_process(n, extra):
    """The README's command: each rank a share of every mini-batch; the cost curve equals
    the single-process run on whole batches (the naive comparison run) to rounding."""
    code, out, err = launch(n, ["-m", "fastoptim", "train", "--distributed", *extra,
                                "--optimizer", "adam", "--epochs", "20", "--no-progress"])
    assert code == 0, err[-3000:]
    assert f"distributed: {n} MPI ranks" in out, out
    assert out.count("adam ") == 1, out          # one table: only rank 0 prints
    drift = float(_DRIFT.search(out).group(1))
    assert drift < 1e-12, out                    # (float64: the batch split's rounding)


def test_train_shard_state_needs_distributed():
    proc = subprocess.run([sys.executable, "-m", "fastoptim", "train", "--shard-state",
                           "--epochs", "1"], capture_output=True, text=True, env=_env(),
                          timeout=TIMEOUT)
    assert proc.returncode == 2 and "--distributed" in proc.stderr
