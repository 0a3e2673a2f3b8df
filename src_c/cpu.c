/* cpu.c: which SIMD kernels this CPU and OS can run, and the choice among them (GRUINFER_KERNEL overrides). */
#include <stdlib.h>
#include <string.h>

#include "gru.h"
#include "kernels.h"

#ifdef GRUINFER_HAVE_X86
#include <cpuid.h>

static unsigned long long xgetbv0(void)
{
    unsigned int lo, hi;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    return ((unsigned long long)hi << 32) | lo;
}

/* 2: AVX-512F usable, 1: AVX2 + FMA usable, 0: neither.  Checks that the OS
 * saves the wide registers (OSXSAVE + XCR0), not only the CPUID bits. */
static int x86_level(void)
{
    unsigned int a, b, c, d;
    if (!__get_cpuid(1, &a, &b, &c, &d))
        return 0;
    const int fma = (c >> 12) & 1, osxsave = (c >> 27) & 1, avx = (c >> 28) & 1;
    if (!osxsave || !avx || !fma)
        return 0;
    const unsigned long long xcr0 = xgetbv0();
    if ((xcr0 & 0x6) != 0x6)
        return 0;
    if (__get_cpuid_max(0, 0) < 7)
        return 0;
    __cpuid_count(7, 0, a, b, c, d);
    const int avx2 = (b >> 5) & 1, avx512f = (b >> 16) & 1;
    if (!avx2)
        return 0;
    if (avx512f && (xcr0 & 0xe6) == 0xe6)
        return 2;
    return 1;
}
#endif

static const gruinfer_kernels *const all_kernels[] = {
    &gruinfer_kernels_ref,
#ifdef GRUINFER_HAVE_X86
    &gruinfer_kernels_avx2,
    &gruinfer_kernels_avx512,
#endif
};
#define N_KERNELS ((int)(sizeof all_kernels / sizeof all_kernels[0]))

static const char *const kernel_names[] = {
    "ref",
#ifdef GRUINFER_HAVE_X86
    "avx2",
    "avx512",
#endif
    NULL};

const char *const *gruinfer_kernel_names(void) { return kernel_names; }

static int supported(int index)
{
#ifdef GRUINFER_HAVE_X86
    return index == 0 || index <= x86_level();
#else
    return index == 0;
#endif
}

static const gruinfer_kernels *find_named(const char *name)
{
    for (int i = 0; i < N_KERNELS; i++)
        if (strcmp(all_kernels[i]->name, name) == 0)
            return supported(i) ? all_kernels[i] : NULL;
    return NULL;
}

int gruinfer_kernel_supported(const char *name) { return name && find_named(name) != NULL; }

const gruinfer_kernels *gruinfer_kernels_find(const char *name)
{
    if (!name || !*name || strcmp(name, "auto") == 0) {
        const char *env = getenv("GRUINFER_KERNEL");
        if (env && *env && strcmp(env, "auto") != 0)
            return find_named(env);
        for (int i = N_KERNELS - 1; i > 0; i--)
            if (supported(i))
                return all_kernels[i];
        return all_kernels[0];
    }
    return find_named(name);
}

const char *gruinfer_kernel_default(void)
{
    const gruinfer_kernels *k = gruinfer_kernels_find(NULL);
    return k ? k->name : NULL;
}
