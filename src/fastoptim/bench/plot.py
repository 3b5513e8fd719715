"""Plots of a ``fastoptim bench`` result (matplotlib, an optional dependency).

Per kernel and dtype, two panels side by side: throughput (GB/s of useful traffic) against
size on log axes, one line per competitor (median, inter-quartile range shaded), with the
measured bandwidth as a horizontal roofline; and the speed-up over the naive NumPy reference
against size.
"""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")  # files only, no display needed
import matplotlib.pyplot as plt  # noqa: E402

from .machine import machine_line  # noqa: E402

STYLE = {  # competitor -> (color, line style, marker)
    "numpy": ("0.45", "--", "o"),
    "numpy-careful": ("0.65", "--", "s"),
    "numexpr": ("tab:olive", "--", "^"),
    "torch-foreach": ("tab:orange", ":", "v"),
    "torch-fused": ("tab:red", ":", "D"),
    "cython": ("tab:blue", "-", "o"),
    "numba": ("tab:purple", "-", "s"),
    "auto": ("tab:green", "-", "*"),
    "traffic": ("black", "-.", "x"),
}


def _groups(result: dict) -> list:
    seen = []
    for r in result["results"]:
        key = (r["kernel"], r["dtype"])
        if key not in seen:
            seen.append(key)
    return seen


def plot(result: dict, path: str) -> None:
    """Write the GB/s and speed-up plots of ``result`` (the dict of a run) to ``path``."""
    groups = _groups(result)
    fig, axes = plt.subplots(len(groups), 2, figsize=(11, 3.6 * len(groups)), squeeze=False)
    for (kernel, dtype), (ax_bw, ax_up) in zip(groups, axes):
        rows = [r for r in result["results"] if (r["kernel"], r["dtype"]) == (kernel, dtype)]
        names = [n for n in STYLE if any(r["backend"] == n for r in rows)]
        for name in names:
            mine = sorted((r for r in rows if r["backend"] == name), key=lambda r: r["n"])
            color, ls, marker = STYLE[name]
            n = [r["n"] for r in mine]
            kw = dict(color=color, ls=ls, marker=marker, ms=5, lw=1.6, label=name)
            ax_bw.plot(n, [r["gbps"] for r in mine], **kw)
            ax_bw.fill_between(n, [r["gbps"] * r["seconds"] / r["q3"] for r in mine],
                               [r["gbps"] * r["seconds"] / r["q1"] for r in mine],
                               color=color, alpha=0.12, lw=0)   # inter-quartile range
            if name != "traffic":
                ax_up.plot(n, [r["speedup_vs_numpy"] for r in mine], **kw)
        bw = next((b for b in result["bandwidth"]
                   if (b["kernel"], b["dtype"]) == (kernel, dtype)), None)
        if bw:
            ax_bw.axhline(bw["gbps"], color="black", lw=1, alpha=0.6)
            ax_bw.annotate(f"memory bandwidth {bw['gbps']:.0f} GB/s", (0.02, bw["gbps"]),
                           xycoords=("axes fraction", "data"), va="bottom", fontsize=8)
        bpe = rows[0]["bytes_per_elem"]
        ax_bw.set(xscale="log", yscale="log", xlabel="elements", ylabel="GB/s (useful bytes)",
                  title=f"{kernel} {dtype}: throughput ({bpe} B/elem)")
        ax_up.axhline(1.0, color="0.45", lw=1, ls="--")
        ax_up.set(xscale="log", yscale="log", xlabel="elements",
                  ylabel="speed-up over naive NumPy", title=f"{kernel} {dtype}: speed-up")
        for ax in (ax_bw, ax_up):
            ax.grid(True, which="major", alpha=0.3)
        ax_bw.legend(fontsize=7, loc="lower right", ncol=2)
    fig.suptitle(machine_line(result["machine"]), fontsize=8)
    fig.tight_layout(rect=(0, 0, 1, 0.97))
    fig.savefig(path, dpi=90)
    plt.close(fig)
