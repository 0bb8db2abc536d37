/*
 * simd/dispatch.c: CPU feature detection, the TESSERA_ISA cap and table fill.
 *
 * Owns the order of registration: scalar fills every slot, then each enabled
 * level overwrites what it implements, then the completeness check. Does not
 * own any kernel. Detection uses __builtin_cpu_supports, which (in GCC) also
 * checks that the OS enabled the YMM/ZMM state. AMX (which GCC 12's
 * __builtin_cpu_supports does not know) is read from CPUID and XCR0 directly,
 * then requested from Linux once per process (arch_prctl ARCH_REQ_XCOMP_PERM):
 * without that permission the first tile instruction faults.
 */
#include "kernels.h"
#include "repack.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#if defined(__x86_64__)
#include <cpuid.h>
#include <sys/syscall.h>
#include <unistd.h>
#endif
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
    {TS_ISA_AMX, "amx"},       {TS_ISA_NEON, "neon"},         {TS_ISA_NEON_DOT, "neon_dot"},
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

#if defined(__x86_64__)
/* AMX-TILE + AMX-INT8 + AMX-BF16 (CPUID.(7,0):EDX bits 24, 25, 22), the OS
 * saving XTILECFG + XTILEDATA (XCR0 bits 17, 18, read after CPUID.1:ECX
 * OSXSAVE), and Linux granting this process XTILEDATA (arch_prctl 0x1023,
 * feature 18; the request is process-wide and idempotent, done once and
 * cached: a racing second call only repeats it). Failure anywhere: no AMX. */
static int amx_usable(void)
{
    static int cached = -1;
    int c = __atomic_load_n(&cached, __ATOMIC_RELAXED);
    if (c >= 0)
        return c;
    unsigned a, b, cx, d;
    int ok = 0;
    if (__get_cpuid_count(7, 0, &a, &b, &cx, &d) && ((d >> 22) & 1) && ((d >> 24) & 1) &&
        ((d >> 25) & 1) && __get_cpuid(1, &a, &b, &cx, &d) && ((cx >> 27) & 1)) {
        unsigned lo, hi;
        __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
        (void)hi;
        if (((lo >> 17) & 3) == 3)
            ok = syscall(SYS_arch_prctl, 0x1023 /* ARCH_REQ_XCOMP_PERM */,
                         18 /* XFEATURE_XTILEDATA */) == 0;
    }
    __atomic_store_n(&cached, ok, __ATOMIC_RELAXED);
    return ok;
}
#endif

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
#if defined(__x86_64__)
        return amx_usable() ? TS_ISA_AMX : TS_ISA_AVX512;
#else
        return TS_ISA_AVX512;
#endif
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

uint32_t ts_kernels_repack_type(const ts_kernels *k, uint32_t qtype)
{
    const uint32_t rt = ts_repack_type(qtype);
    if (!rt || rt >= TS_GEMM_SLOTS || !k->gemm[rt].fn)
        return 0;
    ts_kernels scalar;
    memset(&scalar, 0, sizeof(scalar));
    ts_simd_register_scalar(&scalar);
    return k->gemm[rt].fn != scalar.gemm[rt].fn ? rt : 0;
}

int ts_kernels_required(uint32_t qtype)
{
    switch (qtype) {
    case TS_QTYPE_F32: case TS_QTYPE_F16: case TS_QTYPE_BF16:
    case TS_QTYPE_Q4_0: case TS_QTYPE_Q4_1: case TS_QTYPE_Q5_0: case TS_QTYPE_Q5_1:
    case TS_QTYPE_Q8_0: case TS_QTYPE_Q2_K: case TS_QTYPE_Q3_K: case TS_QTYPE_Q4_K:
    case TS_QTYPE_Q5_K: case TS_QTYPE_Q6_K: case TS_QTYPE_IQ2_XXS:
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
    if (!k->peak_int8 || !k->peak_f32) {
        fprintf(stderr, "tessera: kernel table: no peak probe\n");
        abort();
    }
    if (!k->ops.attn || !k->ops.rmsnorm || !k->ops.rope ||
        !k->ops.swiglu || !k->ops.gdn_scan) {
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
    if (cap >= TS_ISA_AVX2 && cap < TS_ISA_NEON) {
        ts_simd_register_avx2(k);
        k->isa = TS_ISA_AVX2;
    }
    if (cap >= TS_ISA_AVX512 && cap < TS_ISA_NEON) {
        ts_simd_register_avx512(k);
        k->isa = TS_ISA_AVX512;
    }
#if defined(__x86_64__)
    if (cap == TS_ISA_AMX) {
        ts_simd_register_amx(k);
        k->isa = TS_ISA_AMX;
    }
#endif
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
