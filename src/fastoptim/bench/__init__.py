"""``fastoptim bench``: how fast is each kernel on this machine, and how far from the limit.

The modules of this package:

* :mod:`~fastoptim.bench.main`: the ``fastoptim bench`` command (``add_arguments``, ``run``)
  and the helpers the ``bench/`` scripts import (``kernel_call``, ``time_interleaved``,
  ``interleaved_samples``);
* :mod:`~fastoptim.bench.cases`: the kernels and the competitors (one table, shared with the
  ``bench/`` pytest-benchmark suite);
* :mod:`~fastoptim.bench.bandwidth`: the memory-traffic loops, the speed limit;
* :mod:`~fastoptim.bench.timing`: interleaved timing and peak memory;
* :mod:`~fastoptim.bench.runner`: one run, bandwidth then every group, as a JSON-able dict;
* :mod:`~fastoptim.bench.report`: the text tables and the performance targets;
* :mod:`~fastoptim.bench.multi`: the multi-tensor comparison (200 arrays);
* :mod:`~fastoptim.bench.machine`: the machine line;
* :mod:`~fastoptim.bench.plot`: the plots (needs matplotlib).
"""
from .cases import BASELINE, COMPETITORS, KERNELS
from .main import (DEFAULT_SIZES, QUICK_BANDWIDTH_BYTES, QUICK_SIZES, TARGET_COMPETITORS,
                   TARGET_SIZES, add_arguments, interleaved_samples, kernel_call, run,
                   time_interleaved)

__all__ = ["BASELINE", "COMPETITORS", "KERNELS", "DEFAULT_SIZES", "QUICK_SIZES",
           "TARGET_SIZES", "TARGET_COMPETITORS", "QUICK_BANDWIDTH_BYTES", "add_arguments",
           "run", "kernel_call", "time_interleaved", "interleaved_samples"]
