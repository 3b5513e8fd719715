"""Write docs/benchmarks.md (the full table of one Adam float32 run, which README.md's
"Benchmarks" section links to) from a saved run (default bench/results/adam-float32.json)::

    PYTHONPATH=src python -m fastoptim bench --kernels adam --sizes 1e2 1e3 1e4 1e5 1e6 1e7 \\
        --repeats 9 --json bench/results/adam-float32.json --plot bench/results/adam-float32.png
    PYTHONPATH=src python bench/readme_section.py > docs/benchmarks.md
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
text = f"""# Benchmarks: one run of Adam, float32


Made with `{cmd}` on
{machine_line(res["machine"])}.
Traffic-loop bandwidth (Adam's pattern, 64 MiB arrays, best of the rounds):
**{bw["gbps"]:.1f} GB/s** (median {bw["gbps_median"]:.1f}).

![Adam float32: GB/s and speed-up over naive NumPy against size](../bench/results/adam-float32.png)

{markdown_table(rows)}

```
{format_targets(res["targets"])}
```

The machine is shared (2 cores, load average {load} when this run started): parallel code (the
traffic loop, torch's OpenMP kernels, Numba) loses whole scheduler time slices at thread
barriers when other processes run, which is why it looks slow at small sizes here; serial
kernels lose only their share. Ratios within one run are the meaningful numbers. How to
read the columns: [bench/README.md](../bench/README.md).
"""
print(text, end="")
