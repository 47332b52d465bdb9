"""Device and numeric-precision choice for inference (and training).

One place decides "GPU if present" and "bf16/fp16 autocast where the hardware
does it natively", so the Predictor, the trainer and the benchmarks agree.
Precision is expressed as the autocast dtype (``None`` = plain fp32): the
weights stay fp32 and autocast runs the convolutions and matmuls in the lower
precision, which is where the time goes.
"""

from __future__ import annotations

import contextlib
from contextlib import AbstractContextManager

import torch

PRECISIONS: tuple[str, ...] = ("auto", "fp32", "bf16", "fp16")

_DTYPE_NAMES: dict[torch.dtype | None, str] = {
    None: "fp32",
    torch.bfloat16: "bf16",
    torch.float16: "fp16",
}


def select_device(preference: str | torch.device | None = None) -> torch.device:
    """Return the device to run on: CUDA when available, else the CPU.

    ``preference`` may be ``None``/``"auto"`` (that rule), ``"cpu"``, or a
    CUDA device string such as ``"cuda"`` / ``"cuda:1"``. Asking for CUDA
    on a machine without it raises ``ValueError`` instead of silently
    running on the CPU, because a user who asked for the GPU expects its speed.
    """
    if isinstance(preference, torch.device):
        preference = str(preference)
    choice = (preference or "auto").strip().lower()
    if choice == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(choice)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {choice!r} was asked for but CUDA is not available here")
    if device.type not in ("cpu", "cuda"):
        raise ValueError(f"unsupported device {choice!r}: use cpu, cuda or auto")
    return device


def cpu_supports_bf16() -> bool:
    """True when this CPU computes bf16 natively (AVX512-BF16 or AMX) through oneDNN.

    Without those instructions PyTorch still accepts bf16 on the CPU but
    emulates it, which is slower than fp32, so "auto" must not pick it.
    """
    if not torch.backends.mkldnn.is_available():
        return False
    cpu = getattr(torch, "cpu", None)
    checks = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    for name in checks:
        check = getattr(cpu, name, None)
        if check is not None:
            try:
                if check():
                    return True
            except RuntimeError:  # pragma: no cover - very old builds
                continue
    return False


def cpu_has_amx() -> bool:
    """True when the CPU has AMX tiles (Sapphire Rapids and later).

    Measured on this project's 2-core AVX512-BF16 CPU without AMX (ResNet-50,
    batch 32, 224 px): fp32 21.8 img/s, bf16 autocast 16.6, bf16 weights 16.5.
    So bf16 pays off on the CPU only with AMX, and "auto" picks it only then.
    """
    check = getattr(getattr(torch, "cpu", None), "_is_amx_tile_supported", None)
    try:
        return bool(check()) if check is not None else False
    except RuntimeError:  # pragma: no cover - very old builds
        return False


def resolve_precision(device: torch.device | str, precision: str = "auto") -> torch.dtype | None:
    """Map a precision name to the autocast dtype for ``device`` (``None`` = fp32).

    * ``"auto"``: bf16 on CPUs with AMX (native bf16 without AMX measured
      slower than fp32, see ``cpu_has_amx``); on CUDA bf16 where the GPU
      supports it, else fp16; fp32 otherwise.
    * ``"fp32"``: always available.
    * ``"bf16"``: on CPU accepted everywhere (emulated where not native, which
      is slow but correct); on CUDA only where the GPU supports it.
    * ``"fp16"``: CUDA only, because CPU fp16 kernels are emulated and slow.
    """
    device = torch.device(device) if isinstance(device, str) else device
    name = (precision or "auto").strip().lower()
    if name not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}: choose one of {', '.join(PRECISIONS)}")
    if name == "fp32":
        return None
    if device.type == "cuda":
        bf16_ok = torch.cuda.is_available() and torch.cuda.is_bf16_supported()
        if name == "auto":
            return torch.bfloat16 if bf16_ok else torch.float16
        if name == "bf16" and not bf16_ok:
            raise ValueError("bf16 was asked for but this GPU does not support it; use fp16 or fp32")
        return torch.bfloat16 if name == "bf16" else torch.float16
    if device.type == "cpu":
        if name == "auto":
            return torch.bfloat16 if (cpu_supports_bf16() and cpu_has_amx()) else None
        if name == "fp16":
            raise ValueError("fp16 is for CUDA only; on the CPU use bf16 or fp32")
        return torch.bfloat16
    raise ValueError(f"no precision rule for device type {device.type!r}")


def precision_name(dtype: torch.dtype | None) -> str:
    """``None`` -> ``"fp32"``, ``torch.bfloat16`` -> ``"bf16"``, ``torch.float16`` -> ``"fp16"``."""
    return _DTYPE_NAMES[dtype]


def autocast(device: torch.device, dtype: torch.dtype | None) -> AbstractContextManager[object]:
    """Autocast context for ``dtype`` on ``device``; a no-op for fp32 (``None``)."""
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)
