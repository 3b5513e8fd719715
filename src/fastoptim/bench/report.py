"""Text output of ``fastoptim bench``: the per-kernel tables and the performance targets."""
from __future__ import annotations

from typing import List, Optional


def human_bytes(n: Optional[int]) -> str:
    """``1536 -> '1.5 KiB'``; ``None`` (not traced) -> ``'n/a'``."""
    if n is None:
        return "n/a"
    for unit in ("B", "KiB", "MiB"):
        if n < 1024 or unit == "MiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return ""  # pragma: no cover


def _ratio(x: Optional[float]) -> str:
    """A speed ratio with about three significant digits: 0.12x, 4.56x, 45.6x, 456x."""
    if x is None:
        return "-"
    return f"{x:.0f}x" if x >= 100 else f"{x:.1f}x" if x >= 10 else f"{x:.2f}x"


def _num(x: float) -> str:
    """About three significant digits without exponents: 0.123, 12.3, 1,234."""
    return f"{x:,.0f}" if x >= 100 else f"{x:.3g}"


def _pct(x: Optional[float]) -> str:
    return "-" if x is None else f"{x:.0f}%" if x >= 10 else f"{x:.2g}%"


def _ns(r: dict, key: str) -> str:
    return _num(r[key] / r["n"] * 1e9)


def table_header(kernel: str, dtype: str, bandwidth: Optional[dict]) -> str:
    """Title line of one kernel's table: the bytes it moves and the bandwidth limit."""
    if bandwidth:
        bw = (f"traffic-loop bandwidth {bandwidth['gbps']:.1f} GB/s best "
              f"(median {bandwidth['gbps_median']:.1f}, worst {bandwidth['gbps_min']:.1f}) "
              f"on {bandwidth['n']:.2g} elements")
    else:
        bw = "bandwidth not measured"
    from .bandwidth import bytes_per_element
    return f"{kernel} {dtype}: {bytes_per_element(kernel, dtype)} B/elem moved; {bw}"


COLUMNS = (f"{'n':>9} {'backend':<14} {'us/call':>9} {'ns/elem':>9} {'IQR ns/elem':>15} {'GB/s':>7} "
           f"{'%BW':>6} {'vs numpy':>9} {'vs torch':>9} {'extra mem':>10}")


def format_row(r: dict) -> str:
    """One line of a kernel's table (times per element; the IQR is the spread over rounds)."""
    n = r["n"]
    iqr = f"{_ns(r, 'q1')}-{_ns(r, 'q3')}"
    pct = _pct(r["pct_bandwidth"])
    return (f"{n:>9} {r['backend']:<14} {_num(r['seconds'] * 1e6):>9} {_ns(r, 'seconds'):>9} {iqr:>15} {r['gbps']:>7.3g} "
            f"{pct:>6} {_ratio(r['speedup_vs_numpy']):>9} {_ratio(r['speedup_vs_torch']):>9} "
            f"{human_bytes(r['peak_bytes']):>10}")


# printed under a table in which some row runs above the measured DRAM bandwidth
ABOVE_BANDWIDTH_NOTE = (
    "%BW above 100%: those sizes fit in the CPU caches (L2/L3), which are faster than main "
    "memory; %BW compares with the DRAM bandwidth of the traffic loop on large arrays, so "
    "cache-resident sizes can exceed it. Only the large sizes are bound by memory.")


def above_bandwidth(rows: List[dict]) -> bool:
    """Whether any row runs above the measured memory bandwidth (cache-resident sizes)."""
    return any((r.get("pct_bandwidth") or 0) > 100 for r in rows)


def format_table(kernel: str, dtype: str, rows: List[dict], bandwidth: Optional[dict]) -> str:
    """The table of one kernel and dtype, every size and competitor; a note under it when a
    row exceeds 100% of the bandwidth."""
    lines = [table_header(kernel, dtype, bandwidth), COLUMNS]
    lines += [format_row(r) for r in rows]
    if above_bandwidth(rows):
        lines.append(ABOVE_BANDWIDTH_NOTE)
    return "\n".join(lines)


def markdown_table(rows: List[dict]) -> str:
    """The rows as a Markdown table (for the README)."""
    out = ["| n | backend | µs/call | ns/elem | IQR ns/elem | GB/s | % of BW | vs numpy | vs torch "
           "| extra mem |", "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        n = r["n"]
        pct = _pct(r["pct_bandwidth"])
        out.append(
            f"| {n:,} | {r['backend']} | {_num(r['seconds'] * 1e6)} | {_ns(r, 'seconds')} | "
            f"{_ns(r, 'q1')}-{_ns(r, 'q3')} | {r['gbps']:.3g} | {pct} | "
            f"{_ratio(r['speedup_vs_numpy'])} | {_ratio(r['speedup_vs_torch'])} | "
            f"{human_bytes(r['peak_bytes'])} |")
    if above_bandwidth(rows):
        out += ["", ABOVE_BANDWIDTH_NOTE]
    return "\n".join(out)


# ------------------------------------------------------------------- the performance targets

def _time(result: dict, backend: str, n: int, kernel="adam", dtype="float32"):
    for r in result["results"]:
        if (r["kernel"], r["dtype"], r["n"], r["backend"]) == (kernel, dtype, n, backend):
            return r["seconds"]
    return None


def targets(result: dict) -> List[dict]:
    """The performance targets for float32 Adam, ``backend="auto"``, from one run's results.

    Each entry: ``what``, ``n``, ``value`` (a speed ratio, > 1 means auto is faster; or
    microseconds per call), ``target``, ``higher_is_better`` and ``met`` (None when a
    competitor is missing from the run).
    """
    sizes = sorted({r["n"] for r in result["results"]
                    if (r["kernel"], r["dtype"]) == ("adam", "float32")})
    out = []

    def ratio(what, n, other, target):
        auto, t = _time(result, "auto", n), _time(result, other, n)
        value = t / auto if auto and t else None
        out.append(dict(what=what, n=n, value=value, target=target, higher_is_better=True,
                        met=None if value is None else value >= target))

    for n in sizes:
        if n >= 10**7:
            ratio("auto speed / traffic loop speed", n, "traffic", 0.95)
        if n == 10**6:
            ratio("auto vs torch fused", n, "torch-fused", 1.5)
        if n == 10**5:
            ratio("auto vs torch fused", n, "torch-fused", 3.0)
        if n <= 10**3:
            ratio("auto vs torch fused", n, "torch-fused", 20.0)
            ratio("auto vs naive numpy", n, "numpy", 5.0)
            auto = _time(result, "auto", n)
            us = auto * 1e6 if auto else None
            out.append(dict(what="auto: whole call (us)", n=n, value=us, target=2.0,
                            higher_is_better=False, met=None if us is None else us <= 2.0))
    return out


def format_targets(entries: List[dict]) -> str:
    lines = ["performance targets, adam float32, backend='auto', ratios measured "
             "side by side in this run:"]
    for e in entries:
        if e["value"] is None:
            value, verdict = "n/a", "not measured"
        else:
            value = f"{e['value']:.2f}" + ("x" if e["higher_is_better"] else "")
            verdict = "met" if e["met"] else "NOT met"
        op = ">=" if e["higher_is_better"] else "<="
        lines.append(f"  n={e['n']:<9.0e} {e['what']:<34} {value:>9}   "
                     f"(target {op} {e['target']:g})  {verdict}")
    return "\n".join(lines)


def format_unavailable(unavailable: dict) -> List[str]:
    """One line per competitor that could not run, with the kernels and the reason."""
    by_reason: dict = {}
    for key, reason in unavailable.items():
        kernel, _, name = key.rpartition("/")
        by_reason.setdefault((name, reason), []).append(kernel or "all")
    return [f"skipped {name} ({', '.join(kernels)}): {reason}"
            for (name, reason), kernels in by_reason.items()]
