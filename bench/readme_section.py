"""Print README.md's "## Benchmarks" section from a saved run (default
bench/results/adam-float32.json); paste it into README.md after a new run::

    PYTHONPATH=src python -m fastoptim bench --kernels adam --sizes 1e2 1e3 1e4 1e5 1e6 1e7 \\
        --repeats 9 --json bench/results/adam-float32.json --plot bench/results/adam-float32.png
    PYTHONPATH=src python bench/readme_section.py
"""
import json
import sys

from fastoptim.bench.machine import machine_line
from fastoptim.bench.report import markdown_table, format_targets
path = sys.argv[1] if len(sys.argv) > 1 else "bench/results/adam-float32.json"
with open(path) as fh:
    res = json.load(fh)
load = res["machine"].get("load_average")
bw = res["bandwidth"][0]
rows = [r for r in res["results"] if (r["kernel"], r["dtype"]) == ("adam", "float32")]
cmd = res["command"].replace("fastoptim bench", "PYTHONPATH=src python -m fastoptim bench")
text = f"""## Benchmarks

`fastoptim bench` answers "how fast is each optimizer step on my machine, and how far from the
hardware limit". It first measures the memory bandwidth with a *traffic loop* that has the
optimizer's access pattern (Adam reads p, g, m, v and writes p, m, v: 28 bytes per float32
element), compiled with Numba and run on all threads; then for every kernel, dtype and size it
times the naive NumPy reference (the baseline), the peers (careful NumPy with `out=`, numexpr,
`torch.optim` foreach and fused, when installed), the fastoptim backends and the traffic loop
in interleaved rounds, and prints ns/element (median, inter-quartile range), GB/s, % of the
measured bandwidth, the speed-up over the naive reference and over torch, and the peak extra
memory of one step (tracemalloc).

```
pip install "fastoptim[bench]"            # pytest-benchmark, matplotlib, tqdm, numexpr
pip install "fastoptim[peers]"            # torch==2.13.0 as a peer (optional)
fastoptim bench                           # all kernels, 1e3..1e7, about a minute on 2 cores
fastoptim bench --quick
fastoptim bench --kernels adam --dtypes float32 float64 --sizes 1e3 1e5 1e7 --repeats 11
fastoptim bench --json out.json --plot out.png
fastoptim bench --targets                 # the performance targets for float32 Adam
pytest bench                              # pytest-benchmark: kernel x backend x dtype x size
```

See [bench/README.md](bench/README.md) for what each column measures and how to read numbers on
a shared machine.

### Adam, float32

Made with `{cmd}` on
{machine_line(res["machine"])}.
Traffic-loop bandwidth (Adam's pattern, 64 MiB arrays, best of the rounds):
**{bw["gbps"]:.1f} GB/s** (median {bw["gbps_median"]:.1f}).

![Adam float32: GB/s and speed-up over naive NumPy against size](bench/results/adam-float32.png)

{markdown_table(rows)}

```
{format_targets(res["targets"])}
```

The machine is shared (2 cores, load average {load} when this run started): parallel code (the
traffic loop, torch's OpenMP kernels, Numba) loses whole scheduler time slices at thread
barriers when other processes run, which is why it looks slow at small sizes here; serial
kernels lose only their share. Ratios within one run are the meaningful numbers.
"""
print(text, end="")
