"""Per-stage latency and memory of a model directory on every execution provider onnxruntime offers.

For each provider (TensorRT, CUDA, ..., CPU: whatever `onnxruntime.get_available_providers()`
lists), the model is loaded with that provider first and CPU as fallback, and measured: load time
(hash + session creation + warm-up: a TensorRT engine build shows up here), the median latency of
one encoder frame, one predictor step and one fused rollout-cost call at the planner's batch, the
process's resident memory growth, and GPU memory (from nvidia-smi, when there is one). A provider
that cannot run the model is reported with its error instead of figures.
"""

from __future__ import annotations

import gc
import shutil
import subprocess
import time
from pathlib import Path

import onnxruntime as ort

from ami_ros.runtime import load_model

SKIPPED = {"AzureExecutionProvider"}
"""Listed by some onnxruntime builds, but it runs remote endpoints, not local graphs."""


def rss_mb() -> float:
    """Resident memory of this process, MiB (Linux /proc; NaN elsewhere)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


def gpu_used_mb() -> float | None:
    """GPU memory in use on GPU 0, MiB, from nvidia-smi; None without one."""
    if shutil.which("nvidia-smi") is None:
        return None
    try:
        out = subprocess.run(
            ["nvidia-smi", "--query-gpu=memory.used", "--format=csv,noheader,nounits", "-i", "0"],
            capture_output=True, text=True, timeout=10, check=True,
        )  # fmt: skip
        return float(out.stdout.strip().splitlines()[0])
    except (OSError, subprocess.SubprocessError, ValueError, IndexError):
        return None


def bench_providers(
    model_dir: str | Path,
    batch: int = 256,
    threads: int = 0,
    repeats: int = 20,
    trt_cache_dir: str | None = None,
    trt_fp16: bool = False,
) -> dict[str, dict]:
    """{provider: figures} for every available execution provider (see the module docstring)."""
    report: dict[str, dict] = {}
    for provider in ort.get_available_providers():
        if provider in SKIPPED:
            continue
        gc.collect()
        rss0, gpu0 = rss_mb(), gpu_used_mb()
        t0 = time.perf_counter()
        try:
            runtime = load_model(
                model_dir, providers=tuple(dict.fromkeys((provider, "CPUExecutionProvider"))),
                intra_op_threads=threads,
                trt_cache_dir=trt_cache_dir, trt_fp16=trt_fp16,
            )  # fmt: skip
        except Exception as err:  # a provider that cannot run here: say why, measure the others
            report[provider] = {"error": f"{type(err).__name__}: {err}"}
            continue
        figures: dict = {"load_and_warm_up_s": round(time.perf_counter() - t0, 3)}
        figures["sessions_ran_on"] = runtime.providers
        figures |= {k: round(v, 3) for k, v in runtime.benchmark(batch=batch, repeats=repeats).items()}
        figures["rss_growth_mb"] = round(rss_mb() - rss0, 1)
        gpu1 = gpu_used_mb()
        if gpu0 is not None and gpu1 is not None:
            figures["gpu_memory_growth_mb"] = round(gpu1 - gpu0, 1)
        runtime.close()
        del runtime
        report[provider] = figures
    return report
