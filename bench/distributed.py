"""Data-parallel step time over MPI: measured for 1 and 2 ranks, modelled for 1..1024.

    python bench/distributed.py                 # measure (mpiexec -n 1, -n 2), fit, plot
    python bench/distributed.py --n 1e7 --rounds 15 --out bench/results

1. **Measure** (each rank count in its own ``mpiexec`` launch): the step of a
   :class:`fastoptim.distributed.DistributedOptimizer` around ``Adam`` on ``--n`` float32
   parameters, replicated and sharded (ZeRO-1), and the collectives alone on the same
   buffers (bucketed ``Allreduce``; ``Reduce_scatter`` + ``Allgatherv``), in interleaved
   rounds; medians. The communication share is the collectives' time over the step's.
   Also the three collectives on messages of 1 KiB .. 64 MiB between 2 ranks, and the local
   costs per element (the Adam update, a copy).
2. **Fit** an alpha-beta model per collective to those messages: ``T = alpha + beta * bytes``
   (least squares on relative error).
3. **Model** a step for N ranks with ring collectives on a network of bandwidth ``B``:
   ``Allreduce = 2 (N-1) alpha + 2 (N-1)/N * bytes / B``, reduce-scatter and all-gather half
   of that each (the same volume: ZeRO-1 costs no extra communication), one collective per
   25 MiB bucket, ``alpha`` the measured per-hop latency; plus the local work
   (replicated: pack, divide, update on ``n``; sharded: pack and unpack on ``n``, divide and
   update on ``n / N``; one rank skips the divide and the unpack). Plotted for a
   1e8-parameter float32 model at 10, 100 and 400 Gbit/s.

Writes ``distributed.json`` (every measurement and the fit) and ``distributed.png``.
Numbers are measured under load on a shared machine: medians of interleaved rounds.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
BUCKET = 25 * 1024 * 1024
SIZES = [2 ** k for k in range(10, 27, 2)]          # message bytes, 1 KiB .. 64 MiB


# ---- measuring (under mpiexec) ---------------------------------------------------------------
def _median_time(fn, comm, rounds):
    out = []
    for _ in range(rounds):
        comm.Barrier()
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return out


def measure(n: int, rounds: int) -> dict:
    from mpi4py import MPI
    import fastoptim
    from fastoptim.distributed import DistributedOptimizer
    comm = MPI.COMM_WORLD
    rng = np.random.default_rng(comm.rank)
    res = {"ranks": comm.size, "n": n, "rounds": rounds}
    half = n // 2
    setups = {}
    for shard in (False, True):
        P = {"a": np.ones(half, np.float32), "b": np.ones(n - half, np.float32)}
        G = {k: rng.standard_normal(v.size).astype(np.float32) for k, v in P.items()}
        opt = DistributedOptimizer(fastoptim.Adam(P, lr=1e-6), comm, shard_state=shard)
        opt.step(G)
        setups[shard] = (opt, G)
    samples = {k: [] for k in ("step_replicated", "step_sharded", "comm_replicated",
                               "comm_sharded")}

    def comm_replicated(opt=setups[False][0]):
        for flat in opt._flats:
            for spec in flat.allreduce:
                comm.Allreduce(MPI.IN_PLACE, spec, op=MPI.SUM)

    def comm_sharded(opt=setups[True][0]):
        for flat in opt._flats:
            for send, recv, counts in flat.reduce_scatter:
                comm.Reduce_scatter(send, recv, counts, op=MPI.SUM)
            for spec in flat.allgather:
                comm.Allgatherv(MPI.IN_PLACE, spec)

    for _ in range(rounds):          # interleaved: noise hits every variant alike
        for shard, name in ((False, "replicated"), (True, "sharded")):
            opt, G = setups[shard]
            samples[f"step_{name}"] += _median_time(lambda: opt.step(G), comm, 1)
        if comm.size > 1:
            samples["comm_replicated"] += _median_time(comm_replicated, comm, 1)
            samples["comm_sharded"] += _median_time(comm_sharded, comm, 1)
    for k, v in samples.items():
        if v:
            res[k] = float(np.median(v))
    del setups
    # local costs per element: the Adam update (no communication), a copy
    P = [np.ones(n, np.float32)]
    g = [np.full(n, 0.1, np.float32)]
    adam = fastoptim.Adam(P, lr=1e-6)
    adam.step(g)
    dst = np.empty(n, np.float32)
    upd, cp = [], []
    for _ in range(rounds):
        upd += _median_time(lambda: adam.step(g), comm, 1)
        cp += _median_time(lambda: np.copyto(dst, g[0]), comm, 1)
    res["update_per_element"] = float(np.median(upd)) / n
    res["copy_per_element"] = float(np.median(cp)) / n
    if comm.size > 1:               # the collectives on messages of every size
        coll = {"allreduce": [], "reduce_scatter": [], "allgather": []}
        for size in SIZES:
            count = size // 4
            buf = np.ones(count, np.float32)
            part = np.empty(count // comm.size, np.float32)
            reps = max(3, min(50, (1 << 24) // size))
            t_ar = _median_time(lambda: comm.Allreduce(MPI.IN_PLACE, buf), comm, reps)
            t_rs = _median_time(lambda: comm.Reduce_scatter_block(buf, part), comm, reps)
            t_ag = _median_time(lambda: comm.Allgather(part, buf), comm, reps)
            coll["allreduce"].append([size, float(np.median(t_ar))])
            coll["reduce_scatter"].append([size, float(np.median(t_rs))])
            coll["allgather"].append([size, float(np.median(t_ag))])
        res["collectives"] = coll
    return res if comm.rank == 0 else None


# ---- fitting and modelling -------------------------------------------------------------------
def fit_alpha_beta(points):
    """``T = alpha + beta * bytes`` by least squares on the relative error."""
    x = np.array([p[0] for p in points], float)
    t = np.array([p[1] for p in points], float)
    A = np.stack([np.ones_like(x), x], axis=1) / t[:, None]
    (alpha, beta), *_ = np.linalg.lstsq(A, np.ones_like(t), rcond=None)
    return float(max(alpha, 0.0)), float(beta)


def ring_allreduce(nbytes, N, alpha, B):
    """Ring all-reduce of nbytes over N ranks: 2 (N-1) hops, 2 (N-1)/N of the bytes."""
    if N == 1:
        return 0.0
    return 2 * (N - 1) * alpha + 2 * (N - 1) / N * nbytes / B


def model_step(n, N, bandwidth_bytes, alpha, update, copy, shard, itemsize=4):
    """Predicted seconds of one step for n parameters on N ranks."""
    nbytes = n * itemsize
    buckets = max(1, -(-nbytes // BUCKET))
    per = nbytes / buckets
    comm = buckets * ring_allreduce(per, N, alpha, bandwidth_bytes)   # RS + AG: the same
    many = N > 1
    if shard:   # pack; divide and update the shard; (N > 1) own shard out, the rest in
        local = n * copy + n / N * (many * copy + update) + many * n * copy
    else:       # pack; (N > 1) divide; update
        local = n * (copy + many * copy + update)
    return comm + local, comm


def report(results: dict, out: Path, model_n: float) -> dict:
    one, two = results["1"], results["2"]
    fits = {name: fit_alpha_beta(points) for name, points in two["collectives"].items()}
    # per-hop latency from the 2-rank all-reduce (2 hops), its local bandwidth (bytes/s)
    alpha = fits["allreduce"][0] / 2
    local_bw = 1.0 / fits["allreduce"][1]
    update, copy = one["update_per_element"], one["copy_per_element"]
    Ns = [2 ** k for k in range(0, 11)]
    predictions = {}
    for gbit in (10, 100, 400):
        B = gbit * 1e9 / 8
        for shard in (False, True):
            key = f"{gbit} Gbit/s, {'sharded' if shard else 'replicated'}"
            predictions[key] = [model_step(model_n, N, B, alpha, update, copy, shard)
                                for N in Ns]
    summary = {
        "measured": {
            "n": two["n"],
            "step_1_rank_replicated_s": one["step_replicated"],
            "step_1_rank_sharded_s": one["step_sharded"],
            "step_2_ranks_replicated_s": two["step_replicated"],
            "step_2_ranks_sharded_s": two["step_sharded"],
            "comm_share_2_ranks_replicated": two["comm_replicated"] / two["step_replicated"],
            "comm_share_2_ranks_sharded": two["comm_sharded"] / two["step_sharded"],
            "update_ns_per_element": update * 1e9, "copy_ns_per_element": copy * 1e9,
        },
        "fit": {name: {"alpha_us": a * 1e6, "beta_GB_per_s": 1e-9 / b if b > 0 else None}
                for name, (a, b) in fits.items()},
        "model": {"n": model_n, "alpha_per_hop_us": alpha * 1e6,
                  "local_allreduce_GB_per_s": local_bw / 1e9, "ranks": Ns,
                  "step_s": {k: [s for s, _ in v] for k, v in predictions.items()},
                  "comm_s": {k: [c for _, c in v] for k, v in predictions.items()}},
        "raw": results,
    }
    out.mkdir(parents=True, exist_ok=True)
    (out / "distributed.json").write_text(json.dumps(summary, indent=1) + "\n")
    _plot(summary, out / "distributed.png")
    return summary


def _plot(summary, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    model = summary["model"]
    fig, ax = plt.subplots(figsize=(7, 4.2), dpi=90)
    colors = {"10": "tab:red", "100": "tab:blue", "400": "tab:green"}
    for key, steps in model["step_s"].items():
        gbit = key.split()[0]
        ax.plot(model["ranks"], [s * 1e3 for s in steps], color=colors[gbit],
                ls="--" if "sharded" in key else "-", marker="o", ms=3, label=key)
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlabel("ranks N")
    ax.set_ylabel("predicted optimizer step (ms)")
    ax.set_title(f"Adam step, {model['n']:.0e} float32 parameters, ring collectives\n"
                 f"alpha {model['alpha_per_hop_us']:.1f} us/hop (measured), "
                 f"25 MiB buckets; dashed: ZeRO-1 sharded", fontsize=9)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def _launch(ranks, n, rounds, tmp):
    mpiexec = Path(sys.executable).parent / "mpiexec"
    cmd = [str(mpiexec) if mpiexec.exists() else "mpiexec", "-launcher", "fork",
           "-n", str(ranks), sys.executable, __file__, "--measure", "--n", str(n),
           "--rounds", str(rounds), "--json", str(tmp)]
    subprocess.run(cmd, check=True, timeout=1800)
    return json.loads(Path(tmp).read_text())


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--n", type=float, default=1e7, help="parameters measured (float32)")
    p.add_argument("--rounds", type=int, default=15)
    p.add_argument("--model-n", type=float, default=1e8, help="parameters modelled")
    p.add_argument("--out", default=str(HERE / "results"))
    p.add_argument("--measure", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--json", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.measure:
        res = measure(int(args.n), args.rounds)
        if res is not None:
            Path(args.json).write_text(json.dumps(res))
        return 0
    os.environ.setdefault("OMP_NUM_THREADS", "1")       # one core per rank
    Path(args.out).mkdir(parents=True, exist_ok=True)
    results = {}
    for ranks in (1, 2):
        results[str(ranks)] = _launch(ranks, int(args.n), args.rounds,
                                      Path(args.out) / f".distributed-{ranks}.json")
        os.unlink(Path(args.out) / f".distributed-{ranks}.json")
    s = report(results, Path(args.out), args.model_n)
    m = s["measured"]
    print(f"measured, Adam on {m['n']:.0e} float32 (medians, under load):")
    print(f"  step, 1 rank : replicated {m['step_1_rank_replicated_s'] * 1e3:7.1f} ms, "
          f"sharded {m['step_1_rank_sharded_s'] * 1e3:7.1f} ms")
    print(f"  step, 2 ranks: replicated {m['step_2_ranks_replicated_s'] * 1e3:7.1f} ms "
          f"(communication {m['comm_share_2_ranks_replicated']:.0%}), sharded "
          f"{m['step_2_ranks_sharded_s'] * 1e3:7.1f} ms "
          f"(communication {m['comm_share_2_ranks_sharded']:.0%})")
    for name, f in s["fit"].items():
        print(f"  fit {name:14s}: alpha {f['alpha_us']:6.1f} us, "
              f"{f['beta_GB_per_s']:.2f} GB/s")
    mod = s["model"]
    print(f"model, {mod['n']:.0e} parameters (step ms at N = 1, 8, 64, 1024):")
    for key, steps in mod["step_s"].items():
        picks = [steps[mod["ranks"].index(N)] * 1e3 for N in (1, 8, 64, 1024)]
        print(f"  {key:28s}: " + ", ".join(f"{v:8.1f}" for v in picks))
    print(f"wrote {Path(args.out) / 'distributed.json'} and distributed.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
