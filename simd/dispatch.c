/*
 * simd/dispatch.c: CPU feature detection, the TESSERA_ISA cap and table fill.
 *
 * Owns the order of registration: scalar fills every slot, then each enabled
 * level overwrites what it implements, then the completeness check. Does not
 * own any kernel. Detection uses __builtin_cpu_supports, which (in GCC) also
 * checks that the OS enabled the YMM/ZMM state.
 */
#include "kernels.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#if defined(__aarch64__)
#include <sys/auxv.h>
#ifndef HWCAP_ASIMDDP
#define HWCAP_ASIMDDP (1UL << 20) /* Linux arch/arm64 uapi hwcap.h */
#endif
#endif

static const struct {
    ts_isa isa;
    const char *name;
} isa_names[] = {
    {TS_ISA_SCALAR, "scalar"}, {TS_ISA_AVX2, "avx2"},         {TS_ISA_AVX512, "avx512"},
    {TS_ISA_NEON, "neon"},     {TS_ISA_NEON_DOT, "neon_dot"},
};

const char *ts_isa_name(ts_isa isa)
{
    for (size_t i = 0; i < sizeof(isa_names) / sizeof(isa_names[0]); i++)
        if (isa_names[i].isa == isa)
            return isa_names[i].name;
    return "?";
}

int ts_isa_from_name(const char *name)
{
    for (size_t i = 0; i < sizeof(isa_names) / sizeof(isa_names[0]); i++)
        if (name && strcasecmp(name, isa_names[i].name) == 0)
            return (int)isa_names[i].isa;
    return -1;
}

ts_isa ts_isa_detect(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_cpu_init();
    if (!(__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")))
        return TS_ISA_SCALAR;
    /* F16C and BMI2 ride along with every AVX2 CPU we target; checked anyway
     * where GCC knows the name. */
    if (!__builtin_cpu_supports("bmi2"))
        return TS_ISA_SCALAR;
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
        __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq") &&
        __builtin_cpu_supports("avx512vnni"))
        return TS_ISA_AVX512;
    return TS_ISA_AVX2;
#elif defined(__aarch64__)
    /* AT_HWCAP comes from the kernel, so it also reflects what the OS enabled;
     * qemu-user reports its -cpu model's features the same way. */
    const unsigned long hw = getauxval(AT_HWCAP);
    if (!(hw & HWCAP_ASIMD))
        return TS_ISA_SCALAR;
    return (hw & HWCAP_ASIMDDP) ? TS_ISA_NEON_DOT : TS_ISA_NEON;
#else
    return TS_ISA_SCALAR;
#endif
}

ts_isa ts_isa_from_env(void)
{
    ts_isa det = ts_isa_detect();
    const char *env = getenv("TESSERA_ISA");
    if (!env || !*env)
        return det;
    int want = ts_isa_from_name(env);
    if (want < 0)
        return det; /* unknown names do not change the level; core logs them */
    if (want == TS_ISA_SCALAR)
        return TS_ISA_SCALAR;
    /* A cap from the other ladder (neon on x86) means scalar. */
    if ((want >= TS_ISA_NEON) != (det >= TS_ISA_NEON) && det != TS_ISA_SCALAR)
        return TS_ISA_SCALAR;
    return (ts_isa)want < det ? (ts_isa)want : det;
}

int ts_kernels_required(uint32_t qtype)
{
    switch (qtype) {
    case TS_QTYPE_F32: case TS_QTYPE_F16: case TS_QTYPE_BF16:
    case TS_QTYPE_Q4_0: case TS_QTYPE_Q4_1: case TS_QTYPE_Q5_0: case TS_QTYPE_Q5_1:
    case TS_QTYPE_Q8_0: case TS_QTYPE_Q2_K: case TS_QTYPE_Q3_K: case TS_QTYPE_Q4_K:
    case TS_QTYPE_Q5_K: case TS_QTYPE_Q6_K:
        return 1;
    default:
        return 0;
    }
}

static void kernels_check_complete(const ts_kernels *k)
{
    for (int act = TS_ACT_Q8_0; act < TS_ACT_COUNT; act++)
        if (!k->quant_act[act]) {
            fprintf(stderr, "tessera: kernel table: no quantizer for activation format %d\n",
                    act);
            abort();
        }
    for (uint32_t t = 0; t < TS_QTYPE_COUNT; t++)
        if (ts_kernels_required(t) && !k->gemm[t].fn) {
            fprintf(stderr, "tessera: kernel table: no gemm kernel for qtype %u\n", t);
            abort();
        }
    if (!k->ops.attn_f32kv || !k->ops.attn_f16kv || !k->ops.rmsnorm || !k->ops.rope ||
        !k->ops.swiglu) {
        fprintf(stderr, "tessera: kernel table: an attention / per-token op slot is empty\n");
        abort();
    }
}

void ts_kernels_init(ts_kernels *k, ts_isa cap)
{
    ts_isa det = ts_isa_detect();
    if (cap > det)
        cap = det;
    memset(k, 0, sizeof(*k));
    ts_simd_register_scalar(k);
    k->isa = TS_ISA_SCALAR;
#if defined(__x86_64__) || defined(__i386__)
    if (cap >= TS_ISA_AVX2 && cap <= TS_ISA_AVX512) {
        ts_simd_register_avx2(k);
        k->isa = TS_ISA_AVX2;
    }
    if (cap == TS_ISA_AVX512) {
        ts_simd_register_avx512(k);
        k->isa = TS_ISA_AVX512;
    }
#elif defined(__aarch64__)
    if (cap >= TS_ISA_NEON) {
        ts_simd_register_neon(k);
        k->isa = TS_ISA_NEON;
    }
    if (cap >= TS_ISA_NEON_DOT) {
        ts_simd_register_neon_dot(k);
        k->isa = TS_ISA_NEON_DOT;
    }
#endif
    kernels_check_complete(k);
}
