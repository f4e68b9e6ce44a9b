/* The searcher's CPU kernels.
 * Fused RKME cross terms: for each stacked point p,
 *     out[p] = sum_a beta[a] * 2^(<query_a, p>)
 * in one pass, without materialising the (points x queries) exponent matrix that the
 * torch path writes, exponentiates and reads back.
 * Sketch dot products: <user sketch, int8 sketch codes of a row> for the index's shortlist.
 * Built by lwm.spec.native_build (for services/searcher/native_kernel.py) with -O3 -march=native; GCC vector
 * extensions hold LANES points per vector, and the caller splits points across threads.
 */
#include <stdint.h>
#include <stdlib.h>
#if defined(__AVX512BW__)
#include <immintrin.h>
#endif

#include "simd.h" /* lwm/spec/native: LANES, the vector types, exp2_approx, flush_subnormals */

#define QUERIES 4

/* points: (n_points, width) row-major; queries: (n_queries, width) row-major;
 * beta: (n_queries,); out: (n_points,). Returns 0, or -1 when out of memory. */
int cross_terms(const float *points, int64_t n_points, int64_t width, const float *queries, const float *beta, int64_t n_queries, float *out) {
    /* LANES points, transposed: block[j][l] = points[start + l][j] */
    floats *block = aligned_alloc(sizeof(floats), (size_t)width * sizeof(floats));
    if (block == NULL) return -1;
    const unsigned int saved = flush_subnormals(); /* a spec far from the user's makes beta * 2^-126 terms */
    for (int64_t start = 0; start < n_points; start += LANES) {
        const int64_t lanes = n_points - start < LANES ? n_points - start : LANES;
        for (int64_t j = 0; j < width; j++)
            for (int64_t l = 0; l < LANES; l++) block[j][l] = l < lanes ? points[(start + l) * width + j] : 0.0f;
        floats total = {0};
        /* QUERIES at once: independent FMA chains hide the FMA latency. Queries past the
         * end repeat the last one with weight 0. */
        for (int64_t a = 0; a < n_queries; a += QUERIES) {
            const float *q[QUERIES];
            float weight[QUERIES];
            for (int k = 0; k < QUERIES; k++) {
                const int64_t row = a + k < n_queries ? a + k : n_queries - 1;
                q[k] = queries + row * width;
                weight[k] = a + k < n_queries ? beta[row] : 0.0f;
            }
            floats exponent[QUERIES] = {{0}};
            for (int64_t j = 0; j < width; j++)
                for (int k = 0; k < QUERIES; k++) exponent[k] += q[k][j] * block[j];
            for (int k = 0; k < QUERIES; k++) total += weight[k] * exp2_approx(exponent[k]);
        }
        for (int64_t l = 0; l < lanes; l++) out[start + l] = total[l];
    }
    restore_subnormals(saved);
    free(block);
    return 0;
}

/* codes: (n_rows, width) int8 row-major; user: (width,) int16; out[r] = scale * sum_f codes[r][f] * user[f].
 * Memory-bound (one byte per feature): AVX-512 multiplies 32 features per instruction
 * (vpmaddwd) into int32 lanes; the caller bounds user so that the lanes cannot overflow. */
void sketch_dots(const int8_t *codes, int64_t n_rows, int64_t width, const int16_t *user, float scale, float *out) {
    for (int64_t r = 0; r < n_rows; r++) {
        const int8_t *row = codes + r * width;
        int64_t f = 0;
        int64_t total = 0;
#if defined(__AVX512BW__)
        __m512i lanes = _mm512_setzero_si512();
        for (; f + 32 <= width; f += 32) {
            const __m512i wide = _mm512_cvtepi8_epi16(_mm256_loadu_si256((const __m256i *)(row + f)));
            lanes = _mm512_add_epi32(lanes, _mm512_madd_epi16(wide, _mm512_loadu_si512((const void *)(user + f))));
        }
        total = _mm512_reduce_add_epi32(lanes);
#endif
        for (; f < width; f++) total += (int32_t)row[f] * (int32_t)user[f];
        out[r] = scale * (float)total;
    }
}
