"""Where and how a run computes: the one device selection, the precision rule, the backend (determinism) flags,
autocast and CPU threads."""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass

import torch

CUBLAS_WORKSPACE = ":4096:8"  # CUBLAS_WORKSPACE_CONFIG that makes cuBLAS deterministic (":16:8" also does, slower)


def select_device(pref: str = "auto") -> torch.device:
    """'auto' -> cuda if available else cpu; 'cpu', 'cuda', 'cuda:1' are taken as given (cuda must exist)."""
    if pref in (None, "", "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(pref)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {pref!r} was asked for but CUDA is not available; use cpu or auto")
    if device.type not in ("cpu", "cuda"):
        raise ValueError(f"device {pref!r} is not supported; allowed: auto, cpu, cuda[:N]")
    return device


def resolve_precision(precision: str, device: torch.device) -> str:
    """'fp32' or 'bf16'. 'auto' = bf16 on a CUDA device that supports it, fp32 otherwise (CPU bf16 is opt-in)."""
    if precision == "auto":
        cuda_bf16 = device.type == "cuda" and torch.cuda.is_bf16_supported()
        return "bf16" if cuda_bf16 else "fp32"
    if precision not in ("fp32", "bf16"):
        raise ValueError(f"precision {precision!r} is unknown; allowed: auto, fp32, bf16")
    return precision


@dataclass(frozen=True)
class BackendFlags:
    """The process-wide torch flags `configure_backends` owns; ``current()`` reads them, ``apply()`` sets them."""

    cudnn_benchmark: bool  # torch.backends.cudnn.benchmark: time conv algorithms once per shape, keep the fastest
    cudnn_deterministic: bool  # torch.backends.cudnn.deterministic: only deterministic conv algorithms
    deterministic_algorithms: bool  # torch.use_deterministic_algorithms: error on any nondeterministic kernel
    tf32_matmul: bool  # torch.backends.cuda.matmul.allow_tf32: TF32 tensor cores for float32 matmuls
    tf32_cudnn: bool  # torch.backends.cudnn.allow_tf32: TF32 tensor cores for float32 convolutions
    cublas_workspace: str | None  # the CUBLAS_WORKSPACE_CONFIG environment variable (None: unset)

    @classmethod
    def current(cls) -> "BackendFlags":
        return cls(torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic,
                   torch.are_deterministic_algorithms_enabled(), torch.backends.cuda.matmul.allow_tf32,
                   torch.backends.cudnn.allow_tf32, os.environ.get("CUBLAS_WORKSPACE_CONFIG"))

    def apply(self) -> None:
        torch.backends.cudnn.benchmark = self.cudnn_benchmark
        torch.backends.cudnn.deterministic = self.cudnn_deterministic
        torch.use_deterministic_algorithms(self.deterministic_algorithms)
        torch.backends.cuda.matmul.allow_tf32 = self.tf32_matmul
        torch.backends.cudnn.allow_tf32 = self.tf32_cudnn
        if self.cublas_workspace is None:
            os.environ.pop("CUBLAS_WORKSPACE_CONFIG", None)
        else:
            os.environ["CUBLAS_WORKSPACE_CONFIG"] = self.cublas_workspace


def configure_backends(device: torch.device | str, deterministic: bool = False) -> BackendFlags:
    """Set torch's backend flags for a run on ``device``; returns the flags as they were (``.apply()`` restores).

    ``deterministic=False`` (the default): cuDNN benchmark on (fixed shapes: pick the fastest conv algorithms once),
    nondeterministic kernels allowed, TF32 at torch's defaults (off for matmuls, on for cuDNN convolutions). Fast;
    on a GPU two runs of one config can differ in the last bits, and the differences grow over training.

    ``deterministic=True``: cuDNN benchmark off and cuDNN restricted to deterministic algorithms,
    ``torch.use_deterministic_algorithms(True)`` (an op without a deterministic kernel raises instead of running),
    ``CUBLAS_WORKSPACE_CONFIG=:4096:8`` (kept if already ":16:8"; cuBLAS reads it when the process first uses it,
    so set it before the first CUDA matmul, as `gan.checkpoint.build_state` does at the start of a trial), and TF32 off
    for matmuls and cuDNN. Then a GPU run, and a resumed one, repeats bit for bit on the same GPU model, driver and
    library versions; slower (benchmarks/train_throughput.py).

    CPU runs are bit-exact either way: these flags change nothing on the CPU, where the kernels are deterministic
    (tests/test_runtime.py checks a CPU run is identical with and without). The flags are process-wide, so they are
    set whatever ``device`` is, and every one of them in both modes: a worker process reused across trials never
    carries one trial's setting into the next.
    """
    if torch.device(device).type not in ("cpu", "cuda"):
        raise ValueError(f"device {device!r} is not supported; allowed: cpu, cuda[:N]")
    previous = BackendFlags.current()
    if deterministic:
        workspace = previous.cublas_workspace if previous.cublas_workspace in (":4096:8", ":16:8") else CUBLAS_WORKSPACE
        BackendFlags(cudnn_benchmark=False, cudnn_deterministic=True, deterministic_algorithms=True,
                     tf32_matmul=False, tf32_cudnn=False, cublas_workspace=workspace).apply()
    else:
        BackendFlags(cudnn_benchmark=True, cudnn_deterministic=False, deterministic_algorithms=False,
                     tf32_matmul=False, tf32_cudnn=True, cublas_workspace=previous.cublas_workspace).apply()
    return previous


def autocast(device: torch.device, precision: str):
    """bf16 autocast around forward passes, or a no-op context for fp32."""
    if precision == "bf16":
        return torch.autocast(device_type=device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def set_threads(n: int | None) -> None:
    """Torch intra-op threads = the CPUs allotted to this trial (None leaves torch's default)."""
    if n:
        torch.set_num_threads(int(n))


def device_name(device: torch.device) -> str:
    """What a run computed on, for the record: the GPU's name, or the CPU with the threads torch uses."""
    if device.type == "cuda":
        return f"cuda: {torch.cuda.get_device_name(device)}"
    import platform

    return f"cpu: {platform.processor() or platform.machine()}, {torch.get_num_threads()} threads"
