"""Do the GPU execution providers compute what the CPU provider computes, for every shipped graph?

For each .onnx file a model directory's manifest lists, one seeded random input of the graph's
declared shapes (symbolic dimensions such as `batch` get `batch`) is run on the CPU provider and
on each provider asked for (CUDA, TensorRT by default), and the largest absolute difference over
all outputs is compared with a tolerance (1e-4 by default). Each (graph, provider) gets a status:

- `pass` / `fail`: the difference is within / beyond the tolerance (a non-finite output fails);
- `unavailable`: this onnxruntime build does not offer the provider, or the session fell back to
  CPU — onnxruntime-gpu on a machine without a usable GPU logs an error and runs on CPU without
  raising, so `session.get_providers()` is what tells;
- `error`: the provider is there but cannot open or run the graph (the message says why).

Run it: `python -m ami_ros.runtime.parity --model models/tabletop_arm` (one JSON report on stdout;
exit code 1 when a row is `fail` or `error`).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
import yaml

from ami_ros.runtime.world_model import ModelLoadError, _verified_bytes

GPU_PROVIDERS = ("CUDAExecutionProvider", "TensorrtExecutionProvider")
TOLERANCE = 1e-4
"""Largest absolute difference to the CPU provider that passes (the export's own parity bound)."""

_DTYPES = {
    "tensor(float)": np.float32,
    "tensor(float16)": np.float16,
    "tensor(double)": np.float64,
    "tensor(uint8)": np.uint8,
    "tensor(int32)": np.int32,
    "tensor(int64)": np.int64,
    "tensor(bool)": np.bool_,
}


def random_inputs(
    session: ort.InferenceSession, batch: int, rng: np.random.Generator
) -> dict[str, np.ndarray]:
    """One random array per input of `session`: its declared shape, symbolic dimensions = `batch`.

    Floats are standard normal, uint8 spans 0..255 (images), other integers 0..9.
    """
    feeds = {}
    for arg in session.get_inputs():
        shape = [d if isinstance(d, int) and d > 0 else batch for d in arg.shape]
        dtype = _DTYPES.get(arg.type)
        if dtype is None:
            raise ValueError(f"input {arg.name!r} has type {arg.type}, which the parity check cannot fill")
        if np.issubdtype(dtype, np.floating):
            feeds[arg.name] = rng.standard_normal(shape).astype(dtype)
        elif dtype == np.uint8:
            feeds[arg.name] = rng.integers(0, 256, shape, dtype=np.uint8)
        else:
            feeds[arg.name] = rng.integers(0, 10, shape).astype(dtype)
    return feeds


def max_abs_diff(reference: Sequence[np.ndarray], other: Sequence[np.ndarray]) -> float:
    """Largest |reference - other| over all outputs; inf when a shape differs or a value is not finite."""
    worst = 0.0
    for ref, out in zip(reference, other, strict=True):
        ref, out = np.asarray(ref, np.float64), np.asarray(out, np.float64)
        if ref.shape != out.shape or not (np.isfinite(ref).all() and np.isfinite(out).all()):
            return float("inf")
        if ref.size:
            worst = max(worst, float(np.max(np.abs(ref - out))))
    return worst


def _provider_entry(provider: str, trt_cache_dir: str | None) -> Any:
    if provider == "TensorrtExecutionProvider":
        options: dict[str, Any] = {"trt_fp16_enable": False}  # fp16 would not meet 1e-4 by design
        if trt_cache_dir:
            options |= {"trt_engine_cache_enable": True, "trt_engine_cache_path": trt_cache_dir}
        return (provider, options)
    return provider


def graph_files(model_dir: Path) -> tuple[dict, Path]:
    """The manifest's `files` entries that are ONNX graphs, and the manifest's path."""
    path = model_dir / "manifest.yaml"
    if not path.is_file():
        raise ModelLoadError(f"missing file: {path}")
    manifest = yaml.safe_load(path.read_text())
    files = manifest.get("files") if isinstance(manifest, dict) else None
    if not isinstance(files, dict):
        raise ModelLoadError(f"{path}: no `files` section")
    return {name: entry for name, entry in files.items() if str(name).endswith(".onnx")}, path


def check_parity(
    model_dir: str | Path,
    providers: Sequence[str] = GPU_PROVIDERS,
    batch: int = 8,
    seed: int = 0,
    tolerance: float = TOLERANCE,
    trt_cache_dir: str | None = None,
) -> list[dict[str, Any]]:
    """One row per (graph, provider): {graph, provider, status, max_abs_diff, detail}.

    Every graph the manifest lists is checked (its sha256 verified first); `providers` are
    compared with the CPU provider on the same inputs (see the module docstring).
    """
    model_dir = Path(model_dir)
    files, manifest_path = graph_files(model_dir)
    available = ort.get_available_providers()
    options = ort.SessionOptions()
    options.log_severity_level = 3
    rows = []
    for index, (name, entry) in enumerate(sorted(files.items())):
        blob = _verified_bytes(model_dir, name, entry, manifest_path)
        cpu = ort.InferenceSession(blob, options, providers=["CPUExecutionProvider"])
        feeds = random_inputs(cpu, batch, np.random.default_rng([seed, index]))
        reference = cpu.run(None, feeds)
        for provider in providers:
            row: dict[str, Any] = dict(graph=name, provider=provider, status="", max_abs_diff=None, detail="")
            rows.append(row)
            if provider not in available:
                row |= {"status": "unavailable", "detail": "not offered by this onnxruntime build"}
                continue
            try:
                session = ort.InferenceSession(
                    blob, options, providers=[_provider_entry(provider, trt_cache_dir)]
                )
            except Exception as err:  # onnxruntime raises its own exception types
                row |= {"status": "error", "detail": f"cannot open the session: {err}"}
                continue
            if session.get_providers()[0] != provider:
                got = ", ".join(session.get_providers())
                row |= {"status": "unavailable", "detail": f"the session fell back to {got}"}
                continue
            try:
                outputs = session.run(None, feeds)
            except Exception as err:
                row |= {"status": "error", "detail": f"run failed: {err}"}
                continue
            diff = max_abs_diff(reference, outputs)
            row["status"] = "pass" if diff <= tolerance else "fail"
            row["max_abs_diff"] = diff if np.isfinite(diff) else None
            if not np.isfinite(diff):
                row["detail"] = "an output differs in shape or is not finite"
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m ami_ros.runtime.parity", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--model", required=True, help="model directory (manifest.yaml + .onnx files)")
    parser.add_argument("--providers", nargs="+", default=list(GPU_PROVIDERS))
    parser.add_argument("--batch", type=int, default=8, help="size of every symbolic dimension")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--tolerance", type=float, default=TOLERANCE)
    parser.add_argument("--trt-cache-dir", default="", help="TensorRT engine cache folder")
    args = parser.parse_args(argv)
    rows = check_parity(
        args.model, args.providers, args.batch, args.seed, args.tolerance, args.trt_cache_dir or None
    )
    report = {
        "model_dir": str(args.model),
        "tolerance": args.tolerance,
        "batch": args.batch,
        "seed": args.seed,
        "onnxruntime": ort.__version__,
        "available_providers": ort.get_available_providers(),
        "results": rows,
    }
    print(json.dumps(report, indent=2))
    return 1 if any(r["status"] in ("fail", "error") for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
