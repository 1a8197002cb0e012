"""``--amp auto``: bf16 autocast where the device runs bf16 matrix products natively, float32 elsewhere.

Native bf16: a CUDA GPU of compute capability 8.0 or newer, or a CPU with AVX512-BF16 or AMX
that torch dispatches to (``ATEN_CPU_CAPABILITY=avx2`` or ``ONEDNN_MAX_CPU_ISA`` below the bf16
instructions make it count as not native: there bf16 products are emulated, many times slower
than float32).
"""

from __future__ import annotations

import torch


def cpu_isa_flags() -> set[str]:
    """The CPU feature flags of /proc/cpuinfo (empty where there is none)."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def native_bf16(device: torch.device) -> tuple[bool, str]:
    """(whether bf16 products run natively on ``device``, why)."""
    if device.type == "cuda":
        major, minor = torch.cuda.get_device_capability(device)
        return major >= 8, f"CUDA compute capability {major}.{minor} ({'>=' if major >= 8 else '<'} 8.0)"
    if device.type != "cpu":
        return False, f"device type {device.type!r}"
    capability = torch.backends.cpu.get_cpu_capability()
    check = getattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", None)
    onednn_bf16 = bool(check()) if check is not None else False  # honours ONEDNN_MAX_CPU_ISA
    flags = cpu_isa_flags()
    hw = [name for flag, name in (("avx512_bf16", "AVX512-BF16"), ("amx_bf16", "AMX")) if flag in flags]
    native = capability.startswith("AVX512") and onednn_bf16 and (bool(hw) or not flags)
    why = f"CPU capability {capability}, bf16 instructions {'/'.join(hw) or 'none'}, oneDNN bf16 {onednn_bf16}"
    return native, why


def resolve_amp(amp: str, device: torch.device) -> tuple[str, str]:
    """(the autocast mode to use, a note for the log). ``auto`` -> bf16 where native, else none."""
    if amp != "auto":
        return amp, f"amp={amp}"
    native, why = native_bf16(device)
    chosen = "bf16" if native else "none"
    return chosen, f"amp=auto -> {chosen} ({'native' if native else 'no native'} bf16: {why})"


def run_amp(train_cfg, requested: str | None) -> str:
    """The autocast mode to run a trained model with: ``requested`` (``--amp``) when given; else "auto" for a
    run whose amp ``auto`` chose (chosen again for the device at hand), else the run's own mode."""
    if requested is not None:
        return requested
    return "auto" if getattr(train_cfg, "amp_auto", False) else train_cfg.amp
