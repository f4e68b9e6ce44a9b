/* Shared by the C kernels of lwm.spec (spec_kernels.c) and of the searcher (cross_terms.c), which
 * lwm/spec/native_build.py compiles with this directory on the include path.
 * GCC vector extensions hold LANES floats per vector: one AVX-512 register, or two AVX2 ones. */
#ifndef LWM_SIMD_H
#define LWM_SIMD_H

#include <stdint.h>
#include <string.h>
#if defined(__AVX512F__)
#include <immintrin.h>
#elif defined(__SSE__)
#include <xmmintrin.h>
#endif

#define LANES 16

typedef float floats __attribute__((vector_size(LANES * sizeof(float))));
typedef int32_t ints __attribute__((vector_size(LANES * sizeof(int32_t))));

static const ints lane_index = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15};

static inline floats load(const float *p) {
    floats v;
    memcpy(&v, p, sizeof v);
    return v;
}

static inline void store(float *p, floats v) { memcpy(p, &v, sizeof v); }

/* x in every lane: x - 0 is x, so this is a plain broadcast (0 + x is not, for x = -0) */
static inline floats broadcast(float x) { return x - (floats){0}; }

/* mask ? a : b, lane by lane (every mask lane is all ones or all zeros) */
static inline floats pick(ints mask, floats a, floats b) { return (floats)((mask & (ints)a) | (~mask & (ints)b)); }
static inline ints pick_int(ints mask, ints a, ints b) { return (mask & a) | (~mask & b); }

/* max(x, low) and min(x, high) lane by lane, for finite x: one instruction on AVX-512 (pick's
 * compare and masked moves are four, a sixth of the data terms' exponential) */
static inline floats at_least(floats x, floats low) {
#if defined(__AVX512F__)
    return (floats)_mm512_max_ps((__m512)x, (__m512)low);
#else
    return pick(x < low, low, x);
#endif
}

static inline floats at_most(floats x, floats high) {
#if defined(__AVX512F__)
    return (floats)_mm512_min_ps((__m512)x, (__m512)high);
#else
    return pick(x > high, high, x);
#endif
}

/* 2^x for x <= 126 (callers pass exponents <= 0, up to rounding): 2^round(x) from the exponent
 * bits times a degree-6 polynomial of the remainder in [-0.5, 0.5] (relative error 2e-9 before
 * rounding); x below -126 gives 2^-126. */
static inline floats exp2_approx(floats x) {
    x = at_least(x, broadcast(-126.0f));
    const floats shifter = broadcast(12582912.0f); /* 1.5 * 2^23: adding it rounds to an integer */
    const floats whole = (x + shifter) - shifter;
    const floats f = x - whole;
    floats poly = broadcast(1.5337585e-4f);
    poly = poly * f + 1.3399870e-3f;
    poly = poly * f + 9.6185196e-3f;
    poly = poly * f + 5.5503290e-2f;
    poly = poly * f + 2.4022647e-1f;
    poly = poly * f + 6.9314721e-1f;
    poly = poly * f + 1.0f;
    const ints bits = (__builtin_convertvector(whole, ints) + 127) << 23;
    return poly * (floats)bits;
}

/* Subnormals flushed to zero (FTZ, DAZ) in this thread while a kernel runs: subnormal arithmetic
 * took 4-6x as long (measured); the values lost are below 1.2e-38. Returns the setting to restore. */
static inline unsigned int flush_subnormals(void) {
#if defined(__SSE__)
    const unsigned int saved = _mm_getcsr();
    _mm_setcsr(saved | 0x8040);
    return saved;
#else
    return 0;
#endif
}

static inline void restore_subnormals(unsigned int saved) {
#if defined(__SSE__)
    _mm_setcsr(saved);
#else
    (void)saved;
#endif
}

#endif
