"""The course's comparison figure: the cost against the epoch for every optimizer."""
from __future__ import annotations

from typing import Dict, Sequence

from .datasets import EXTRA_HINT

__all__ = ["require_matplotlib", "plot_costs"]


def require_matplotlib():
    """``matplotlib.pyplot`` on the file-only Agg backend; ImportError naming the extra."""
    try:
        import matplotlib
    except ImportError as exc:
        raise ImportError(
            f"--plot needs matplotlib, which is not installed ({exc}); install the training "
            f"extra: {EXTRA_HINT}") from exc
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def plot_costs(path: str, costs: Dict[str, Sequence[float]], title: str) -> None:
    """Save one figure with a cost curve per optimizer (``name -> cost per epoch``) to ``path``."""
    plt = require_matplotlib()
    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    styles = ["-", "--", "-", "--", ":", "-."]    # curves that overlap stay visible
    for i, (name, curve) in enumerate(costs.items()):
        ax.plot(range(1, len(curve) + 1), curve, label=name, linewidth=1.4,
                linestyle=styles[i % len(styles)])
    ax.set_xlabel("epoch")
    ax.set_ylabel("cost")
    ax.set_title(title, fontsize=10)
    ax.grid(True, alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
