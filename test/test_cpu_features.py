"""CPU matrix-instruction detection from /proc/cpuinfo text."""

from mots_ros.cpu_features import cpu_features, has_fast_bf16

ZEN4 = "processor\t: 0\nmodel name\t: AMD EPYC\nflags\t\t: fpu sse avx2 avx512f avx512_vnni avx512_bf16\n"
SAPPHIRE_RAPIDS = "flags\t\t: avx2 avx512f avx512_vnni avx512_bf16 amx_bf16 amx_tile amx_int8 avx_vnni\n"
OLD = "flags\t\t: fpu sse sse2 avx avx2\n"


def test_flags_are_read_from_the_first_flags_line():
    assert cpu_features(ZEN4) == {"amx_bf16": False, "amx_int8": False, "avx512_bf16": True, "avx512_vnni": True,
                                  "avx_vnni": False, "avx512f": True, "avx2": True}
    assert cpu_features(SAPPHIRE_RAPIDS)["amx_int8"] and has_fast_bf16(cpu_features(SAPPHIRE_RAPIDS))
    assert not has_fast_bf16(cpu_features(OLD)) and not any(cpu_features("").values())

