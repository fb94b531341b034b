"""Which matrix instructions this CPU has: what decides whether bf16 and int8 can be fast here.

Read from ``/proc/cpuinfo`` (Linux). AMX (Intel Sapphire Rapids and later) and AVX-512-BF16
(Intel Cooper Lake and later, AMD Zen 4 and later) run bf16 matrix products in hardware; VNNI
(AVX-512 or AVX) runs int8 dot products.
"""

from __future__ import annotations

from pathlib import Path

#: Feature name -> the /proc/cpuinfo flag that announces it.
MATRIX_FLAGS = {
    "amx_bf16": "amx_bf16",
    "amx_int8": "amx_int8",
    "avx512_bf16": "avx512_bf16",
    "avx512_vnni": "avx512_vnni",
    "avx_vnni": "avx_vnni",
    "avx512f": "avx512f",
    "avx2": "avx2",
}


def cpu_features(cpuinfo: str | None = None) -> dict[str, bool]:
    """``{feature: present}`` for :data:`MATRIX_FLAGS`, from ``/proc/cpuinfo`` (all False when unreadable)."""
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text()
        except OSError:
            cpuinfo = ""
    flags: set[str] = set()
    for line in cpuinfo.splitlines():
        if line.startswith("flags"):
            flags.update(line.split(":", 1)[1].split())
            break  # every core reports the same flags
    return {name: flag in flags for name, flag in MATRIX_FLAGS.items()}


def has_fast_bf16(features: dict[str, bool] | None = None) -> bool:
    """AMX or AVX-512-BF16: bf16 matrix products in hardware."""
    features = features if features is not None else cpu_features()
    return features["amx_bf16"] or features["avx512_bf16"]
