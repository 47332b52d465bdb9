"""When to ``torch.compile`` the inference module, and where its caches live.

``Predictor(compile=...)`` reads its choice through :func:`should_compile`:

* ``"off"``: the eager path;
* ``"on"``: compile on any device (a failure still falls back to eager);
* ``"auto"``: compile on CUDA, and on CPUs of the kind where compiling measured
  faster (:func:`cpu_compile_measured_faster`).

Inductor keeps its compiled code on disk (the FX-graph cache and the
AOTAutograd cache, both on by default in torch >= 2.6); :func:`configure_cache`
points them, and Triton's kernel cache on CUDA, at one folder, so that a second
start of a worker process loads the compiled code instead of compiling again.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

COMPILE_MODES: tuple[str, ...] = ("auto", "on", "off")

def check_compile_mode(mode: str) -> str:
    name = (mode or "off").strip().lower()
    if name not in COMPILE_MODES:
        raise ValueError(f"unknown compile mode {mode!r}: choose one of {', '.join(COMPILE_MODES)}")
    return name


def cpu_compile_measured_faster() -> bool:
    """True on CPUs with AMX, the only kind where compiling measured clearly faster.

    Measured (classify + fused CAM, channels_last, eager and compiled in the same
    run, the ratio compiled / eager):

    * 2-core Intel Xeon with AMX (issue 18, ResNet-50, batch 32): fp32 1.67x,
      bf16 autocast 3.28x;
    * the 2-core AMD EPYC here, AVX2 + FMA only (no AVX-512, no AVX512-BF16, no
      AMX), shared with other jobs: ResNet-18 batch 16 fp32 1.20x, 1.21x, 1.25x,
      1.11x (load 9-11) and 1.02x (load 26); ResNet-50 in README "Inference speed".
      That gain does not pay for a compile of minutes per worker process on two
      cores (~4 min cold, ~1 min from the cache, for ResNet-18 at that load), so
      ``auto`` stays eager on such CPUs; ``on`` compiles anyway.

    Other CPUs (AVX-512 without AMX, ARM) were not measured: eager.
    """
    from ml.device import cpu_has_amx

    return cpu_has_amx()


def should_compile(mode: str, device: torch.device) -> bool:
    """Whether a Predictor on ``device`` compiles for ``mode`` (``auto`` / ``on`` / ``off``)."""
    mode = check_compile_mode(mode)
    if mode == "off":
        return False
    if mode == "on":
        return True
    if device.type == "cuda":
        return True
    return device.type == "cpu" and cpu_compile_measured_faster()


def use_freezing(device: torch.device) -> bool:
    """Whether to compile with inductor's ``freezing`` (weights folded in as constants).

    Only on CPUs with AMX, where issue 18 measured it (bf16 3.28x with prepacked
    weights). On the AVX2 EPYC here it bought no clear speed (ResNet-18, batch 16,
    fp32: compiled/eager 1.21x and 1.20x with freezing, 1.25x and 1.11x without,
    eager and compiled interleaved at load ~9-11) but made the second start 2.8x
    slower: a frozen graph bypasses the AOTAutograd cache (80.7 s against 28.5 s
    warm, 163 s and 176 s cold). Without freezing the weights are graph inputs, so
    a new model version of the same architecture also hits the cache. On CUDA:
    not measured, left off.
    """
    from ml.device import cpu_has_amx

    return device.type == "cpu" and cpu_has_amx()


def configure_cache(directory: str | os.PathLike[str] | None) -> Path | None:
    """Point inductor's on-disk caches (and Triton's, on CUDA) at ``directory``; made if missing.

    Sets ``TORCHINDUCTOR_CACHE_DIR`` (inductor reads it at each compile, so
    this works after torch is imported, as long as it runs before the first
    compile) and ``TRITON_CACHE_DIR``, and makes sure the FX-graph and
    AOTAutograd caches are on. ``None`` leaves torch's defaults (a folder
    under ``/tmp``). Returns the folder used.
    """
    if directory is None:
        return None
    root = Path(directory).expanduser().resolve()
    root.mkdir(parents=True, exist_ok=True)
    os.environ["TORCHINDUCTOR_CACHE_DIR"] = str(root)
    os.environ["TRITON_CACHE_DIR"] = str(root / "triton")
    import torch._functorch.config as functorch_config
    import torch._inductor.config as inductor_config

    inductor_config.fx_graph_cache = True
    functorch_config.enable_autograd_cache = True
    return root
