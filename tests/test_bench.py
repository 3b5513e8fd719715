"""``fastoptim bench`` on tiny sizes: output and JSON structure (no timing assertions)."""
import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from fastoptim import reference
from fastoptim.bench import bandwidth, cases, report
from fastoptim.bench.timing import peak_extra_bytes, summarize
from fastoptim.cli import main

ROW_KEYS = {"kernel", "dtype", "n", "backend", "seconds", "q1", "q3", "min", "max",
            "ns_per_elem", "gbps", "pct_bandwidth", "speedup_vs_numpy", "speedup_vs_torch",
            "peak_bytes", "bytes_per_elem", "repeats"}
TINY = ["--quick", "--sizes", "1000", "--repeats", "1", "--no-progress"]


@pytest.fixture(scope="module")
def adam_run(tmp_path_factory):
    """One tiny run of Adam and SGD, its stdout and its JSON."""
    path = tmp_path_factory.mktemp("bench") / "out.json"
    proc = subprocess.run(
        [sys.executable, "-m", "fastoptim", "bench", "--kernels", "adam", "sgd",
         "--dtypes", "float32", "float64", *TINY, "--json", str(path)],
        capture_output=True, text=True, env=_env(), timeout=600)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout, json.loads(path.read_text())


def _env():
    import os
    src = str(Path(cases.__file__).resolve().parents[2])
    return dict(os.environ, PYTHONPATH=src + os.pathsep + os.environ.get("PYTHONPATH", ""))


def test_json_has_one_row_per_kernel_dtype_and_competitor(adam_run):
    _, result = adam_run
    assert set(result) >= {"machine", "bandwidth", "results", "unavailable", "command",
                           "targets"}
    groups = {(r["kernel"], r["dtype"], r["n"]) for r in result["results"]}
    assert groups == {(k, d, 1000) for k in ("adam", "sgd") for d in ("float32", "float64")}
    for r in result["results"]:
        assert set(r) >= ROW_KEYS
        assert r["seconds"] > 0 and r["ns_per_elem"] > 0 and r["gbps"] > 0
        assert r["min"] <= r["seconds"] <= r["max"]
        assert r["bytes_per_elem"] == bandwidth.bytes_per_element(r["kernel"], r["dtype"])
    backends = {r["backend"] for r in result["results"]}
    assert {"numpy", "cython", "auto"} <= backends


def test_reference_is_the_baseline_of_every_group(adam_run):
    _, result = adam_run
    for r in result["results"]:
        if r["backend"] == "numpy":
            assert r["speedup_vs_numpy"] == 1.0
        base = next(b for b in result["results"] if b["backend"] == "numpy"
                    and (b["kernel"], b["dtype"], b["n"]) == (r["kernel"], r["dtype"], r["n"]))
        assert r["speedup_vs_numpy"] == pytest.approx(base["seconds"] / r["seconds"])


def test_fused_kernels_allocate_no_array_and_the_reference_does(adam_run):
    _, result = adam_run
    for r in result["results"]:
        if r["backend"] in ("cython", "auto"):
            assert r["peak_bytes"] < 1000            # a few Python scalars, no array
        if r["backend"] == "numpy" and r["kernel"] == "adam":
            itemsize = np.dtype(r["dtype"]).itemsize
            assert r["peak_bytes"] >= 2 * r["n"] * itemsize   # temporaries of n elements


def test_text_output_has_machine_line_and_tables(adam_run):
    out, result = adam_run
    assert out.startswith("machine: ")
    for kernel in ("adam", "sgd"):
        for dtype in ("float32", "float64"):
            assert f"{kernel} {dtype}: " in out
    assert "ns/elem" in out and "GB/s" in out and "vs numpy" in out
    assert "performance targets" in out
    assert "issue" not in out.lower()                 # no tracker numbers in shipped output


def test_unavailable_competitors_are_reported_not_fatal(adam_run):
    out, result = adam_run
    ran = {r["backend"] for r in result["results"]}
    for key in result["unavailable"]:
        kernel, name = key.split("/", 1)
        assert not any(r["backend"] == name and r["kernel"] == kernel
                       for r in result["results"])
    if "numba" not in ran:
        assert any(k.endswith("/numba") for k in result["unavailable"])
        assert "skipped numba" in out


def test_bandwidth_is_measured_per_access_pattern(adam_run):
    _, result = adam_run
    if "bandwidth" in result["unavailable"]:
        pytest.skip("numba missing: no traffic loop")
    kernels = {(b["kernel"], b["dtype"]) for b in result["bandwidth"]}
    assert kernels == {(k, d) for k in ("adam", "sgd") for d in ("float32", "float64")}
    for b in result["bandwidth"]:
        assert b["gbps"] >= b["gbps_median"] >= b["gbps_min"] > 0
    for r in result["results"]:
        assert r["pct_bandwidth"] > 0


@pytest.mark.skipif(importlib.util.find_spec("matplotlib") is None,
                    reason="matplotlib not installed")
def test_plot_is_written(tmp_path, capsys):
    path = tmp_path / "bench.png"
    assert main(["bench", "--kernels", "ewa", *TINY, "--plot", str(path)]) == 0
    assert path.stat().st_size > 1000
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_targets_mode_reports_every_target(capsys):
    assert main(["bench", "--targets", "--sizes", "100", "1000", "--repeats", "1",
                 "--no-progress", "--no-memory"]) == 0
    out = capsys.readouterr().out
    assert "auto vs naive numpy" in out and "auto: whole call (us)" in out
    assert "adam float32: " in out and "sgd float32" not in out


def test_targets_from_results_compute_the_ratios():
    def row(n, backend, seconds):
        return dict(kernel="adam", dtype="float32", n=n, backend=backend, seconds=seconds)
    result = dict(results=[row(10**7, "auto", 2.0), row(10**7, "traffic", 1.0),
                           row(10**3, "auto", 1e-6), row(10**3, "numpy", 8e-6)])
    entries = {(e["n"], e["what"]): e for e in report.targets(result)}
    assert entries[(10**7, "auto speed / traffic loop speed")]["value"] == 0.5
    assert entries[(10**7, "auto speed / traffic loop speed")]["met"] is False
    assert entries[(10**3, "auto vs naive numpy")]["value"] == 8.0
    assert entries[(10**3, "auto vs naive numpy")]["met"] is True
    assert entries[(10**3, "auto vs torch fused")]["met"] is None   # torch not in this run
    assert entries[(10**3, "auto: whole call (us)")]["value"] == pytest.approx(1.0)


def test_bad_size_is_rejected(capsys):
    with pytest.raises(SystemExit):
        main(["bench", "--sizes", "0"])
    assert "--sizes" in capsys.readouterr().err


@pytest.mark.parametrize("repeats", ["0", "-1"])
def test_repeats_below_one_are_rejected(repeats, capsys):
    """--repeats 0 is refused like -1 (it used to fall back to the default rounds)."""
    with pytest.raises(SystemExit, match="--repeats must be >= 1"):
        main(["bench", "--quick", "--sizes", "1000", "--repeats", repeats, "--no-progress"])


def test_careful_numpy_adam_matches_the_reference():
    rng = np.random.default_rng(1)
    for dtype in (np.float32, np.float64):
        a = [rng.standard_normal(257).astype(dtype) for _ in range(2)] + \
            [np.zeros(257, dtype) for _ in range(2)]
        b = [x.copy() for x in a]
        scratch = np.empty_like(a[0])
        for t in range(1, 30):
            cases.careful_numpy_adam(*a, scratch, step=t)
            reference.adam_step(*b, step=t)
        tol = dict(rtol=1e-5, atol=1e-6) if dtype == np.float32 else dict(rtol=1e-12)
        for x, y in zip(a, b):
            np.testing.assert_allclose(x, y, **tol)


@pytest.mark.parametrize("kernel", list(cases.KERNELS))
def test_traffic_loop_moves_the_pattern_and_changes_nothing(kernel):
    pytest.importorskip("numba")
    arrays = cases.make_arrays(kernel, 1001, np.float32)
    n_read, n_rw = bandwidth.ACCESS_PATTERN[kernel]
    assert len(arrays) == n_read + n_rw                  # the arrays of one timed step
    before = [x.copy() for x in arrays]
    bandwidth.traffic_call(kernel, arrays)()
    for x, y in zip(arrays, before):   # x + 0 * g: every element read and written back
        np.testing.assert_array_equal(x, y)
    with pytest.raises(ValueError, match=f"{kernel} needs {len(arrays)} arrays"):
        bandwidth.traffic_call(kernel, arrays[:-1])


def test_cases_are_the_registry_kernels_and_their_typical_step():
    from fastoptim._registry import KERNELS
    assert list(cases.KERNELS) == list(KERNELS) + list(cases.RULES)
    for name, spec in KERNELS.items():
        n_state, kwargs = cases.KERNELS[name]
        assert n_state == len(spec.active_states(spec.typical))
        assert {k: v for k, v in kwargs.items() if k != "step"} == dict(spec.typical)
        assert ("step" in kwargs) == spec.takes_step


@pytest.mark.parametrize("kernel", list(cases.KERNELS))
def test_public_call_and_entry_call_make_the_same_step(kernel):
    """The benchmark's two ways of calling a kernel: validated (fastoptim_call) and the bare
    entry point with the coefficients computed once (entry_call, bench/ scripts)."""
    public = cases.make_arrays(kernel, 257, np.float64, seed=3)
    bare = [a.copy() for a in public]
    reference_arrays = [a.copy() for a in public]
    cases.fastoptim_call(kernel, public, "cython")()
    cases.entry_call(kernel, bare)()
    cases.fastoptim_call(kernel, reference_arrays, "numpy")()
    for a, b, r in zip(public, bare, reference_arrays):
        np.testing.assert_array_equal(a, b)
        np.testing.assert_allclose(a, r, rtol=1e-12, atol=1e-13)
    assert not np.array_equal(public[0], cases.make_arrays(kernel, 257, np.float64, seed=3)[0])


def test_summary_and_peak_memory():
    s = summarize([3.0, 1.0, 2.0, 4.0])
    assert (s["min"], s["median"], s["max"]) == (1.0, 2.5, 4.0)
    assert s["q1"] <= s["median"] <= s["q3"]
    assert peak_extra_bytes(lambda: np.ones(10**5)) >= 8 * 10**5
    assert peak_extra_bytes(lambda: None) < 1000


def test_unknown_competitor_is_a_value_error():
    with pytest.raises(ValueError, match="unknown competitor"):
        cases.build("nope", "adam", cases.make_arrays("adam", 10, np.float32))


def test_plot_json_converts_pytest_benchmark_output():
    spec = importlib.util.spec_from_file_location(
        "plot_json", Path(__file__).resolve().parents[1] / "bench" / "plot_json.py")
    plot_json = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(plot_json)

    def bench(backend, median):
        return dict(extra_info=dict(kernel="sgd", dtype="float32", n=1000, backend=backend,
                                    bytes_per_elem=12),
                    stats=dict(median=median, q1=median, q3=median, min=median, max=median,
                               rounds=5))
    result = plot_json.from_pytest_benchmark(
        dict(benchmarks=[bench("numpy", 4e-6), bench("cython", 1e-6)]))
    by = {r["backend"]: r for r in result["results"]}
    assert by["numpy"]["speedup_vs_numpy"] == 1.0
    assert by["cython"]["speedup_vs_numpy"] == pytest.approx(4.0)
    assert by["cython"]["gbps"] == pytest.approx(12 * 1000 / 1e-6 / 1e9)
    assert "| 1,000 | cython |" in report.markdown_table(result["results"])


def test_plot_without_matplotlib_fails_before_running(monkeypatch, tmp_path, capsys):
    monkeypatch.setitem(sys.modules, "matplotlib", None)        # import matplotlib -> error
    monkeypatch.delitem(sys.modules, "fastoptim.bench.plot", raising=False)
    path = tmp_path / "bench.png"
    assert main(["bench", "--kernels", "ewa", *TINY, "--plot", str(path)]) == 2
    captured = capsys.readouterr()
    assert "--plot needs matplotlib" in captured.err
    assert "ewa float32" not in captured.out and not path.exists()


def test_runs_without_numba(monkeypatch, tmp_path, capsys):
    monkeypatch.setitem(sys.modules, "numba", None)             # import numba -> ImportError
    monkeypatch.setattr(bandwidth, "_traffic_loops", _no_numba)
    path = tmp_path / "out.json"
    assert main(["bench", "--kernels", "ewa", *TINY, "--json", str(path)]) == 0
    result = json.loads(path.read_text())
    assert "bandwidth" in result["unavailable"] and "ewa/traffic" in result["unavailable"]
    assert result["bandwidth"] == []
    assert {r["backend"] for r in result["results"]} >= {"numpy", "cython", "auto"}
    assert all(r["pct_bandwidth"] is None and "traffic" != r["backend"]
               for r in result["results"])
    assert "bandwidth not measured" in capsys.readouterr().out


def _no_numba():
    import numba  # noqa: F401  (raises: sys.modules["numba"] is None)


def test_benchmark_suite_smoke_skips_the_large_sizes():
    pytest.importorskip("pytest_benchmark")
    root = Path(__file__).resolve().parents[1]
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-rs",
         str(root / "bench"), "--benchmark-disable", "-k", "ewa and float32 and cython"],
        capture_output=True, text=True, env=_env(), cwd=root, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "3 passed, 3 skipped" in proc.stdout                   # 1e2..1e4 run, 1e5.. skip
    assert "skipped under --benchmark-disable" in proc.stdout


def test_helpers_other_scripts_import_from_fastoptim_bench():
    from fastoptim.bench import kernel_call, time_interleaved
    calls = {b: kernel_call("adam", 64, np.float32, b) for b in ("numpy", "cython")}
    medians = time_interleaved(calls, 2, min_time=1e-4)
    assert set(medians) == {"numpy", "cython"} and all(t > 0 for t in medians.values())


def _row(n, pct):
    return dict(n=n, backend="cython", seconds=1e-6 * n, q1=1e-6 * n, q3=1e-6 * n, gbps=10.0,
                pct_bandwidth=pct, speedup_vs_numpy=2.0, speedup_vs_torch=None,
                peak_bytes=0)


@pytest.mark.parametrize("pcts,noted", [([50.0, 99.9], False), ([50.0, 140.0], True),
                                        ([None, 80.0], False)])
def test_above_bandwidth_note_only_when_a_row_exceeds_100_percent(pcts, noted):
    from fastoptim.bench import report
    rows = [_row(10 ** (k + 3), p) for k, p in enumerate(pcts)]
    text = report.format_table("adam", "float32", rows, None)
    markdown = report.markdown_table(rows)
    assert (report.ABOVE_BANDWIDTH_NOTE in text) is noted
    assert (report.ABOVE_BANDWIDTH_NOTE in markdown) is noted
    assert "cache" in report.ABOVE_BANDWIDTH_NOTE


def test_lowmem_comparison_in_the_main_bench(tmp_path):
    """`fastoptim bench --lowmem`: Adam's float32, bfloat16 and int8 state side by side, the
    state bytes per parameter as fastoptim.lowmem counts them, in the JSON too."""
    from fastoptim.cli import main
    path = tmp_path / "lowmem.json"
    assert main(["bench", "--kernels", "ewa", *TINY, "--lowmem", "--lowmem-size", "1e5",
                 "--json", str(path)]) == 0
    rows = json.loads(path.read_text())["lowmem"]["rows"]
    from fastoptim import _lowmem
    both = len(_lowmem.nearest_code_searches()) == 2    # an int8 row per search there
    assert [r["state"] for r in rows] == ["float32", "bfloat16", "int8"] + ["int8"] * both
    per_param = [r["bytes_per_param"] for r in rows]
    assert per_param[:2] == [8.0, 4.0] and 2.0 < per_param[2] < 2.04
    assert all(r["ms"] > 0 and r["roofline_fraction"] > 0 for r in rows)
    if both:
        assert rows[2]["search"] == _lowmem.nearest_code_search()
        assert {rows[2]["search"], rows[3]["search"]} == {"bucket", "arithmetic"}
        assert _lowmem.nearest_code_search() == rows[2]["search"]     # restored


def test_int8_search_benchmark_times_both_searches():
    """bench/int8_search.py: each int8 kind under both nearest-code searches, and the CPU's
    own choice (and the thread count) as they were afterwards."""
    import fastoptim
    from fastoptim import _lowmem
    if len(_lowmem.nearest_code_searches()) < 2:
        pytest.skip("the two searches differ at the AVX-512 levels only")
    spec = importlib.util.spec_from_file_location(
        "int8_search", Path(__file__).resolve().parents[1] / "bench" / "int8_search.py")
    int8_search = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(int8_search)
    search, threads = _lowmem.nearest_code_search(), fastoptim.get_num_threads()
    try:
        result = int8_search.main(["--n", "5000", "--rounds", "1", "--threads", "1"])
    finally:
        fastoptim.set_num_threads(threads)
    assert list(result) == ["Adam", "SGD", "Lion", "Adagrad"]
    assert all(t["bucket"] > 0 and t["arithmetic"] > 0 for t in result.values())
    assert _lowmem.nearest_code_search() == search


def test_int8_budget_benchmark_times_the_parts_and_the_target():
    """bench/int8_budget.py: the int8 step and its parts on one thread, then the int8 step
    beside torch's fused step with the budget the 1.5x target leaves; the thread count as it
    was afterwards."""
    import fastoptim
    spec = importlib.util.spec_from_file_location(
        "int8_budget", Path(__file__).resolve().parents[1] / "bench" / "int8_budget.py")
    int8_budget = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(int8_budget)
    threads = fastoptim.get_num_threads()
    with pytest.raises(SystemExit):     # below the int8 state's smallest size
        int8_budget.main(["--n", str(fastoptim.lowmem.MIN_8BIT_SIZE - 1)])
    result = int8_budget.main(["--n", "8192", "--rounds", "1", "--target-n", "8192"])
    assert fastoptim.get_num_threads() == threads
    assert list(result["ns_per_element"]) == [
        "int8 Adam step", "decode m and v", "encode m (signed)", "encode v (unsigned)",
        "bfloat16 Adam step", "float32 Adam step"]
    assert all(ns > 0 for ns in result["ns_per_element"].values())
    assert result["search"] == fastoptim._lowmem.nearest_code_search()
    assert result["per_core_ns"]["int8 Adam step"] > 0
    try:
        import torch  # noqa: F401
    except ImportError:
        assert "budget_ns" not in result
    else:
        assert result["budget_ns"] == pytest.approx(
            result["per_core_ns"]["torch fused float32"] / int8_budget.TARGET)


def _timed_script(name: str, monkeypatch):
    """bench/<name>.py as a module, with bench/ on the path for its _timing helper."""
    bench = Path(__file__).resolve().parents[1] / "bench"
    monkeypatch.syspath_prepend(str(bench))
    spec = importlib.util.spec_from_file_location(name, bench / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_torch_front_benchmark_has_the_compressed_states_and_their_peer(monkeypatch):
    """bench/torch_front.py: fastoptim.torch with float32, bfloat16 and int8 state beside
    torch's implementations (and bitsandbytes' 8-bit AdamW when it is installed), in every
    case, each timed."""
    pytest.importorskip("torch")
    torch_front = _timed_script("torch_front", monkeypatch)
    result = torch_front.main(["--name", "AdamW", "--layers", "2", "--width", "4",
                               "--large", "5000", "--repeats", "1"])
    assert len(result) == 3
    for times in result.values():
        labels = set(times)
        assert {"fastoptim.torch", "fastoptim.torch bfloat16", "fastoptim.torch int8",
                "torch fused", "torch foreach", "torch for-loop"} <= labels
        assert ("bitsandbytes 8-bit" in labels) == (torch_front._bitsandbytes() is not None)
        assert all(median > 0 and least > 0 for median, least in times.values())
    lamb = torch_front.main(["--name", "LAMB", "--layers", "1", "--width", "4", "--large",
                             "100", "--repeats", "1"])
    assert all("fastoptim.torch int8" not in t for t in lamb.values())     # (no state_dtype)
    half = torch_front.main(["--name", "AdamW", "--layers", "2", "--width", "4", "--large",
                             "5000", "--repeats", "1", "--dtype", "bfloat16"])
    for times in half.values():         # half parameters: their options, no state_dtype
        assert {"fastoptim.torch", "fastoptim.torch master_weights",
                "fastoptim.torch stochastic_rounding", "torch fused",
                "torch for-loop"} <= set(times)
        assert not any("int8" in label or "8-bit" in label for label in times)


def test_small_arrays_benchmark_times_every_state_of_each_class(monkeypatch):
    """bench/small_arrays.py: each class's float32 state, its compressed states and (Adam,
    AdamW) bfloat16 parameters, each timed."""
    small_arrays = _timed_script("small_arrays", monkeypatch)
    result = small_arrays.main(["--layers", "2", "--width", "4", "--repeats", "1",
                                "--names", "AdamW", "NAdam", "ASGD"])
    assert set(result["AdamW"]) == {"float32", "bfloat16", "int8", "bfloat16 params",
                                    "bfloat16 params, master weights"}
    assert set(result["NAdam"]) == {"float32", "bfloat16", "int8"}
    assert set(result["ASGD"]) == {"float32", "bfloat16"}        # (no int8: an average)
    assert all(median > 0 and least > 0 for times in result.values()
               for median, least in times.values())
