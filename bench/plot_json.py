"""Plot a saved benchmark: ``python bench/plot_json.py RESULTS.json OUT.png``.

RESULTS.json is either ``fastoptim bench --json`` output or ``pytest bench
--benchmark-json`` output (converted here: the suite stores kernel, dtype, n, backend and
bytes per element in each benchmark's ``extra_info``). Also prints the Markdown table of
each kernel and dtype (``--markdown``), as pasted in the README.
"""
import argparse
import json

from fastoptim.bench.machine import machine_info
from fastoptim.bench.report import markdown_table
from fastoptim.bench.runner import add_speedups


def from_pytest_benchmark(data: dict) -> dict:
    """A ``fastoptim bench``-style result dict from pytest-benchmark JSON."""
    rows = []
    for b in data["benchmarks"]:
        info, stats = b["extra_info"], b["stats"]
        n, t = info["n"], stats["median"]
        rows.append(dict(
            kernel=info["kernel"], dtype=info["dtype"], n=n, backend=info["backend"],
            seconds=t, q1=stats["q1"], q3=stats["q3"], min=stats["min"], max=stats["max"],
            repeats=stats["rounds"], ns_per_elem=t / n * 1e9,
            bytes_per_elem=info["bytes_per_elem"], gbps=info["bytes_per_elem"] * n / t / 1e9,
            pct_bandwidth=None, peak_bytes=info.get("peak_bytes")))
    groups = {}
    for r in rows:
        groups.setdefault((r["kernel"], r["dtype"], r["n"]), []).append(r)
    for group in groups.values():
        add_speedups(group)
    machine = machine_info()
    machine["note"] = "machine line of the plotting host, not necessarily of the run"
    return dict(machine=machine, bandwidth=[], results=rows, unavailable={})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results")
    parser.add_argument("out", nargs="?", help="image path (PNG, SVG, PDF)")
    parser.add_argument("--markdown", action="store_true", help="print Markdown tables")
    args = parser.parse_args()
    with open(args.results) as fh:
        data = json.load(fh)
    result = from_pytest_benchmark(data) if "benchmarks" in data else data
    if args.markdown:
        keys = []
        for r in result["results"]:
            if (r["kernel"], r["dtype"]) not in keys:
                keys.append((r["kernel"], r["dtype"]))
        for kernel, dtype in keys:
            print(f"\n{kernel} {dtype}\n")
            print(markdown_table([r for r in result["results"]
                                  if (r["kernel"], r["dtype"]) == (kernel, dtype)]))
    if args.out:
        from fastoptim.bench.plot import plot
        plot(result, args.out)
        print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
