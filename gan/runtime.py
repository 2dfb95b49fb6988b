"""Where and how a run computes: the one device selection, the precision rule, autocast and CPU threads."""

from __future__ import annotations

import contextlib

import torch


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


def autocast(device: torch.device, precision: str):
    """bf16 autocast around forward passes, or a no-op context for fp32."""
    if precision == "bf16":
        return torch.autocast(device_type=device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def set_threads(n: int | None) -> None:
    """Torch intra-op threads = the CPUs allotted to this trial (None leaves torch's default)."""
    if n:
        torch.set_num_threads(int(n))
