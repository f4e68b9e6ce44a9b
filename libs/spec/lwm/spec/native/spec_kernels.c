/* The CPU kernels of the RKME table fit (lwm/spec/spec_kernels.py), built for the host's CPU by
 * lwm/spec/native_build.py.
 *
 * project_rows: the canonical row order's projection (also the fit's check for missing values).
 * gather_rows: the table fit's float32 rows [x, 1, -gamma ||x||^2] in a given row order.
 * kmeans_plus_plus: D^2 seeding, all k sequential passes in one call.
 * lloyd_assign: a Lloyd assignment fused with the centre sums.
 * kmeans: the seeding and the Lloyd rounds of the fit's k-means.
 * data_terms: the kernel between the reduced set and the rows, exponentiated and multiplied by
 *     the rows, a block at a time without writing the (points x rows) kernel matrix out of cache.
 * simplex_qp: the active-set search of the beta QP (lwm/spec/qp.py) on Cholesky factors.
 * fit_state: a state of the fit: data terms, kernel among the points, beta, objective, next step.
 * exp2_clamped: the data terms' exponential alone, for tests and the bench's lower bound.
 * The loops over rows (project_rows, gather_rows, lloyd_assign, data_terms) share their blocks out
 * among threads (block_pool.h); sums are added in block order, whatever thread ran a block.
 *
 * The products are GEMM-style micro-kernels: ROWS rows against a tile of TILE_VECS x LANES centres at a
 * time, independent FMA chains in registers, each centre vector loaded once for ROWS rows.
 */
#define _GNU_SOURCE /* block_pool.h names its threads: pthread_setname_np */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "block_pool.h"
#include "simd.h"

#define ROWS 6     /* rows scored together (a third fewer loads per FMA than 4 rows, measured ~10% faster) */
#if defined(__AVX512F__)
#define TILE_VECS 4 /* centre vectors per tile: ROWS x 4 = 24 accumulators of AVX-512's 32 registers */
#else
#define TILE_VECS 2 /* two AVX2 registers per vector: ROWS x 2 x 2 = 24 accumulators of 16 */
#endif
#define CHUNK 96   /* rows whose kernel values (CHUNK x padded floats) stay in cache between the two products; a multiple of ROWS */
#define GATHER_AHEAD 8  /* rows gather_rows prefetches ahead (X out of cache: 1.3 instead of 2.1 ms at 10,000 x 50) */
#define INPUT_BLOCK_ROWS 1024 /* rows of X per block of the passes over it */
#define LLOYD_AHEAD 12 /* sampled rows lloyd_assign prefetches ahead */
#define COLUMNS 6  /* row columns summed at once in data_terms: COLUMNS x TILE_VECS FMA chains */

/* ---------- float64 vectors (k-means++, the input passes, the beta QP) ---------- */

#define DOUBLE_LANES 8
typedef double doubles __attribute__((vector_size(DOUBLE_LANES * sizeof(double))));

static inline doubles load_doubles(const double *p) {
    doubles v;
    memcpy(&v, p, sizeof v);
    return v;
}

static double dot(const double *a, const double *b, int64_t n) {
    doubles acc[2] = {{0}, {0}};
    int64_t i = 0;
    for (; i + 2 * DOUBLE_LANES <= n; i += 2 * DOUBLE_LANES) {
        acc[0] += load_doubles(a + i) * load_doubles(b + i);
        acc[1] += load_doubles(a + i + DOUBLE_LANES) * load_doubles(b + i + DOUBLE_LANES);
    }
    const doubles both = acc[0] + acc[1];
    double total = 0.0;
    for (int l = 0; l < DOUBLE_LANES; l++) total += both[l];
    for (; i < n; i++) total += a[i] * b[i];
    return total;
}

/* The sum of x[0 .. n): two vector accumulators, then their lanes in order. */
static double sum_doubles(const double *x, int64_t n) {
    doubles acc[2] = {{0}, {0}};
    int64_t i = 0;
    for (; i + 2 * DOUBLE_LANES <= n; i += 2 * DOUBLE_LANES) {
        acc[0] += load_doubles(x + i);
        acc[1] += load_doubles(x + i + DOUBLE_LANES);
    }
    const doubles both = acc[0] + acc[1];
    double total = 0.0;
    for (int l = 0; l < DOUBLE_LANES; l++) total += both[l];
    for (; i < n; i++) total += x[i];
    return total;
}

/* ---------- the product tile (Lloyd and the data terms), Lloyd ---------- */

/* TILE(first, vecs) for the tiles of centres across padded lanes: tiles of TILE_VECS vectors, then
 * one of the vectors left (vecs a constant at each call, so the accumulators stay in registers). */
#define EACH_TILE(padded, TILE)                                                                     \
    do {                                                                                            \
        int64_t first_ = 0;                                                                         \
        for (; first_ + TILE_VECS * LANES <= (padded); first_ += TILE_VECS * LANES) TILE(first_, TILE_VECS); \
        switch (((padded) - first_) / LANES) {                                                      \
        case 1: TILE(first_, 1); break;                                                             \
        case 2: TILE(first_, 2); break;                                                             \
        case 3: TILE(first_, 3); break;                                                             \
        }                                                                                           \
    } while (0)

/* acc[r][v] += sum_j x[r][j] table[j][first + v * LANES + lane] for j < count: ROWS x vecs
 * independent FMA chains, each table vector loaded once for ROWS rows. */
static inline __attribute__((always_inline)) void add_products(floats acc[ROWS][TILE_VECS], const float *const x[ROWS], int64_t count, const float *table,
                                                               int64_t padded, int64_t first, const int vecs) {
    for (int64_t j = 0; j < count; j++) {
        floats column[TILE_VECS];
        for (int v = 0; v < vecs; v++) column[v] = load(table + j * padded + first + v * LANES);
        for (int r = 0; r < ROWS; r++) {
            const floats xj = broadcast(x[r][j]);
            for (int v = 0; v < vecs; v++) acc[r][v] += xj * column[v];
        }
    }
}

/* Scores |c|^2 - 2 x.c of ROWS rows against the centres first .. first + vecs * LANES, folded into
 * each row's best value and index per lane (strict <: the earlier centre wins a tie). */
static inline __attribute__((always_inline)) void score_tile(const float *const x[ROWS], int64_t d, const float *scorer, int64_t padded, int64_t first,
                                                             const int vecs, floats best[ROWS], ints best_index[ROWS]) {
    floats acc[ROWS][TILE_VECS];
    for (int v = 0; v < vecs; v++) {
        const floats norms = load(scorer + d * padded + first + v * LANES);
        for (int r = 0; r < ROWS; r++) acc[r][v] = norms;
    }
    add_products(acc, x, d, scorer, padded, first, vecs);
    const ints index = lane_index + (int32_t)first;
    for (int r = 0; r < ROWS; r++) {
        floats value = acc[r][0];
        ints where = index;
        for (int v = 1; v < vecs; v++) { /* strict <: the earlier centre keeps a tie */
            const ints lower = acc[r][v] < value;
            value = pick(lower, acc[r][v], value);
            where = pick_int(lower, index + v * LANES, where);
        }
        const ints better = value < best[r];
        best[r] = pick(better, value, best[r]);
        best_index[r] = pick_int(better, where, best_index[r]);
    }
}

/* The lowest index among the lanes that hold the lowest value. */
static inline int32_t first_lowest(floats value, ints index) {
    floats low = value;
    for (int step = LANES / 2; step > 0; step /= 2) {
        const floats other = __builtin_shuffle(low, lane_index ^ step);
        low = pick(other < low, other, low);
    }
    ints nearest = pick_int(value == low, index, (ints){0} + INT32_MAX);
    for (int step = LANES / 2; step > 0; step /= 2) {
        const ints other = __builtin_shuffle(nearest, lane_index ^ step);
        nearest = pick_int(other < nearest, other, nearest);
    }
    return nearest[0];
}

/* rows: row-major with m columns, the points are their first d columns; the n rows assigned are
 * rows[index[i]] (rows[i] when index is NULL). scorer: (d + 1, padded) row-major, padded a multiple
 * of LANES >= k: row j < d holds -2 c[., j] and row d holds ||c||^2 (+inf past the k centres).
 * Writes assign[i], the nearest centre of the i-th row (the first of equals), and sums (k, m): the
 * sum of the rows assigned to each centre, all m columns. */
static void lloyd_assign_block(const float *rows, const int64_t *index, int64_t n, int64_t m, int64_t d, const float *scorer, int64_t k, int64_t padded,
                               int64_t *assign, float *sums) {
    const unsigned int saved = flush_subnormals();
    memset(sums, 0, (size_t)(k * m) * sizeof(float));
    for (int64_t start = 0; start < n; start += ROWS) {
        const float *x[ROWS];
        for (int r = 0; r < ROWS; r++) {
            const int64_t i = start + r < n ? start + r : n - 1; /* past n: the last row again, unused */
            x[r] = rows + (index == NULL ? i : index[i]) * m;
        }
        if (index != NULL) /* rows out of order: ask for later ones now */
            for (int64_t ahead = start + LLOYD_AHEAD; ahead < start + LLOYD_AHEAD + ROWS && ahead < n; ahead++) {
                const char *later = (const char *)(rows + index[ahead] * m);
                for (int64_t byte = 0; byte < m * (int64_t)sizeof(float); byte += 64) __builtin_prefetch(later + byte);
            }
        floats best[ROWS];
        ints best_index[ROWS];
        for (int r = 0; r < ROWS; r++) {
            best[r] = broadcast(INFINITY);
            best_index[r] = (ints){0};
        }
#define SCORE_TILE(first, vecs) score_tile(x, d, scorer, padded, first, vecs, best, best_index)
        EACH_TILE(padded, SCORE_TILE);
#undef SCORE_TILE
        for (int r = 0; r < ROWS && start + r < n; r++) {
            const int32_t nearest = first_lowest(best[r], best_index[r]);
            assign[start + r] = nearest;
            float *restrict total = sums + (int64_t)nearest * m;
            const float *restrict row = x[r];
            for (int64_t j = 0; j < m; j++) total[j] += row[j];
        }
    }
    restore_subnormals(saved);
}

struct lloyd_job {
    const float *rows;
    const int64_t *index;
    int64_t n, m, d;
    const float *scorer;
    int64_t k, padded, block_rows;
    int64_t *assign;
    float *block_sums; /* (blocks, k, m) */
};

static void lloyd_block(const void *job, int64_t block) {
    const struct lloyd_job *j = job;
    const int64_t start = block * j->block_rows;
    const int64_t count = j->n - start < j->block_rows ? j->n - start : j->block_rows;
    lloyd_assign_block(j->index == NULL ? j->rows + start * j->m : j->rows, j->index == NULL ? NULL : j->index + start, count, j->m, j->d, j->scorer, j->k,
                       j->padded, j->assign + start, j->block_sums + block * j->k * j->m);
}

/* lloyd_assign_block of the centres (k, d) over all n rows in blocks of block_rows, on up to
 * ``threads`` threads; sums (k, m) adds the blocks' sums in block order (in double), so it does not
 * depend on the threads. Returns 0, or -1 when out of memory. */
int lloyd_assign(const float *rows, const int64_t *index, int64_t n, int64_t m, int64_t d, const float *centres, int64_t k, int64_t block_rows, int threads,
                 int64_t *assign, float *sums) {
    const int64_t padded = (k + LANES - 1) / LANES * LANES, blocks = (n + block_rows - 1) / block_rows;
    float *scorer = aligned_alloc(64, (size_t)((d + 1) * padded) * sizeof(float));
    float *block_sums = malloc((size_t)(blocks * k * m) * sizeof(float));
    double *total = calloc((size_t)(k * m), sizeof(double));
    int status = -1;
    if (scorer == NULL || block_sums == NULL || total == NULL) goto done;
    memset(scorer, 0, (size_t)((d + 1) * padded) * sizeof(float));
    for (int64_t c = 0; c < padded; c++) scorer[d * padded + c] = INFINITY;
    for (int64_t c = 0; c < k; c++) {
        float norm = 0.0f;
        for (int64_t j = 0; j < d; j++) {
            scorer[j * padded + c] = -2.0f * centres[c * d + j];
            norm += centres[c * d + j] * centres[c * d + j];
        }
        scorer[d * padded + c] = norm;
    }
    const struct lloyd_job job = {rows, index, n, m, d, scorer, k, padded, block_rows, assign, block_sums};
    run_blocks(threads, blocks, lloyd_block, &job);
    for (int64_t b = 0; b < blocks; b++)
        for (int64_t i = 0; i < k * m; i++) total[i] += block_sums[b * k * m + i];
    for (int64_t i = 0; i < k * m; i++) sums[i] = (float)total[i];
    status = 0;
done:
    free(scorer);
    free(block_sums);
    free(total);
    return status;
}

/* ---------- k-means++ ---------- */

#define SEED_BLOCK 64 /* rows per partial sum of the D^2 weights: the draw scans the partial sums, then one block */

/* closest[i] = min(closest[i], ||x_i - x_p||^2) (= on the first pass), from the points' columns
 * (d, n) and squared norms; each squared distance is floored at 0 against rounding. Then
 * block_sums[b] = the sum of closest over the b-th SEED_BLOCK rows. */
static void fold_distances(const float *columns, const float *norms, int64_t n, int64_t d, int64_t p, float *distance, double *closest, double *block_sums,
                           int first) {
    for (int64_t i = 0; i < n; i++) distance[i] = norms[i] + norms[p];
    for (int64_t j = 0; j < d; j++) {
        const float w = -2.0f * columns[j * n + p];
        const float *column = columns + j * n;
        for (int64_t i = 0; i < n; i++) distance[i] += column[i] * w;
    }
    for (int64_t i = 0; i < n; i++) {
        const double dist = distance[i] > 0.0f ? distance[i] : 0.0f;
        closest[i] = first || dist < closest[i] ? dist : closest[i];
    }
    for (int64_t b = 0; b * SEED_BLOCK < n; b++) block_sums[b] = sum_doubles(closest + b * SEED_BLOCK, n - b * SEED_BLOCK < SEED_BLOCK ? n - b * SEED_BLOCK : SEED_BLOCK);
}

/* The first row whose cumulative weight exceeds target, from the blocks' sums; n when none does. */
static int64_t first_above(const double *closest, const double *block_sums, int64_t n, double target) {
    double running = 0.0;
    for (int64_t b = 0; b * SEED_BLOCK < n; b++) {
        if (running + block_sums[b] > target) {
            const int64_t stop = n < (b + 1) * SEED_BLOCK ? n : (b + 1) * SEED_BLOCK;
            for (int64_t i = b * SEED_BLOCK; i < stop; i++) {
                running += closest[i];
                if (running > target) return i;
            }
            return stop - 1; /* rounding: the block's sum said the target lies in it */
        }
        running += block_sums[b];
    }
    return n;
}

/* k-means++ seeding of points (n, d) row-major: picked[j] is the row whose cumulative D^2 weight
 * first exceeds uniforms[j] times the total (uniforms in [0, 1)); uniform by row when every
 * weight is 0. Returns 0, or -1 when out of memory. */
int kmeans_plus_plus(const float *points, int64_t n, int64_t d, int64_t k, const double *uniforms, int64_t *picked) {
    const int64_t blocks = (n + SEED_BLOCK - 1) / SEED_BLOCK;
    float *columns = malloc((size_t)(n * d) * sizeof(float));
    float *norms = malloc((size_t)n * sizeof(float));
    float *distance = malloc((size_t)n * sizeof(float));
    double *closest = malloc((size_t)n * sizeof(double));
    double *block_sums = malloc((size_t)blocks * sizeof(double));
    int status = -1;
    if (columns == NULL || norms == NULL || distance == NULL || closest == NULL || block_sums == NULL) goto done;
    for (int64_t i = 0; i < n; i++) {
        float norm = 0.0f;
        for (int64_t j = 0; j < d; j++) {
            const float value = points[i * d + j];
            columns[j * n + i] = value;
            norm += value * value;
        }
        norms[i] = norm;
    }
    for (int64_t j = 0; j < k; j++) {
        int64_t chosen = (int64_t)(uniforms[j] * (double)n);
        double total = 0.0;
        for (int64_t b = 0; j > 0 && b < blocks; b++) total += block_sums[b];
        if (j > 0 && total > 0.0) chosen = first_above(closest, block_sums, n, uniforms[j] * total);
        picked[j] = chosen < n - 1 ? chosen : n - 1;
        fold_distances(columns, norms, n, d, picked[j], distance, closest, block_sums, j == 0);
    }
    status = 0;
done:
    free(columns);
    free(norms);
    free(distance);
    free(closest);
    free(block_sums);
    return status;
}

/* ---------- k-means: the seeding and the Lloyd rounds in one call ---------- */

/* k-means of the points rows[sample[i]][0 .. d) for i < n (rows[i] when sample is NULL; rows has m
 * columns and column d all ones): k-means++ seeds (one uniform each) from the rows seed_pool[0 ..
 * pool_size), then up to max_iter Lloyd rounds, stopping at a round whose assignment repeats the
 * last one's; an empty cluster keeps its centre. Writes centres (k, d) and returns the number of
 * Lloyd rounds run, or -1 when out of memory. */
int64_t kmeans(const float *rows, int64_t m, int64_t d, const int64_t *sample, int64_t n, const int64_t *seed_pool, int64_t pool_size, const double *uniforms,
               int64_t k, int64_t max_iter, int64_t block_rows, int threads, float *centres) {
    float *points = malloc((size_t)(pool_size * d) * sizeof(float));
    int64_t *picked = malloc((size_t)k * sizeof(int64_t));
    int64_t *assign[2] = {malloc((size_t)n * sizeof(int64_t)), malloc((size_t)n * sizeof(int64_t))};
    float *sums = malloc((size_t)(k * m) * sizeof(float));
    int64_t rounds = -1;
    if (points == NULL || picked == NULL || assign[0] == NULL || assign[1] == NULL || sums == NULL) goto done;
    for (int64_t i = 0; i < pool_size; i++) memcpy(points + i * d, rows + seed_pool[i] * m, (size_t)d * sizeof(float));
    if (kmeans_plus_plus(points, pool_size, d, k, uniforms, picked) != 0) goto done;
    for (int64_t c = 0; c < k; c++) memcpy(centres + c * d, points + picked[c] * d, (size_t)d * sizeof(float));
    for (rounds = 0; rounds < max_iter;) {
        int64_t *now = assign[rounds & 1];
        if (lloyd_assign(rows, sample, n, m, d, centres, k, block_rows, threads, now, sums) != 0) {
            rounds = -1;
            goto done;
        }
        rounds++;
        if (rounds > 1 && memcmp(now, assign[rounds & 1], (size_t)n * sizeof(int64_t)) == 0) break;
        for (int64_t c = 0; c < k; c++) {
            const float count = sums[c * m + d];
            if (count > 0.0f)
                for (int64_t j = 0; j < d; j++) centres[c * d + j] = sums[c * m + j] / count;
        }
    }
done:
    free(points);
    free(picked);
    free(assign[0]);
    free(assign[1]);
    free(sums);
    return rounds;
}

/* ---------- the passes over the input X (float64, n x d, row-major) ---------- */

struct input_job {
    const double *X;
    int64_t n, d;
    const double *w;      /* project_rows: the direction */
    const int64_t *order; /* gather_rows: the rows to take */
    float gamma;
    double *out;          /* project_rows: a value per row */
    float *rows;          /* gather_rows: (n, d + 2) */
};

static inline int64_t rows_in_block(int64_t n, int64_t block) { return n - block * INPUT_BLOCK_ROWS < INPUT_BLOCK_ROWS ? n - block * INPUT_BLOCK_ROWS : INPUT_BLOCK_ROWS; }

static void project_block(const void *job, int64_t block) {
    const struct input_job *j = job;
    const int64_t first = block * INPUT_BLOCK_ROWS, count = rows_in_block(j->n, block);
    for (int64_t i = first; i < first + count; i++) j->out[i] = dot(j->X + i * j->d, j->w, j->d);
}

/* out[i] = X[i] . w for the n rows, on up to ``threads`` threads. */
void project_rows(const double *X, int64_t n, int64_t d, const double *w, int threads, double *out) {
    const struct input_job job = {.X = X, .n = n, .d = d, .w = w, .out = out};
    run_blocks(threads, (n + INPUT_BLOCK_ROWS - 1) / INPUT_BLOCK_ROWS, project_block, &job);
}

static void gather_block(const void *job, int64_t block) {
    const struct input_job *j = job;
    const int64_t first = block * INPUT_BLOCK_ROWS, stop = first + rows_in_block(j->n, block), d = j->d;
    for (int64_t i = first; i < stop; i++) {
        if (i + GATHER_AHEAD < stop) { /* the order is random to the hardware prefetcher: ask for a later row now */
            const char *later = (const char *)(j->X + j->order[i + GATHER_AHEAD] * d);
            for (int64_t byte = 0; byte < d * (int64_t)sizeof(double); byte += 64) __builtin_prefetch(later + byte);
        }
        const double *x = j->X + j->order[i] * d;
        float *row = j->rows + i * (d + 2);
        for (int64_t c = 0; c < d; c++) row[c] = (float)x[c];
        floats squares = {0};
        int64_t c = 0;
        for (; c + LANES <= d; c += LANES) squares += load(row + c) * load(row + c);
        float norm = 0.0f;
        for (int l = 0; l < LANES; l++) norm += squares[l];
        for (; c < d; c++) norm += row[c] * row[c];
        row[d] = 1.0f;
        row[d + 1] = -j->gamma * norm;
    }
}

/* out (n, d + 2) float32, row-major: row i is [x, 1, -gamma ||x||^2] for x = X[order[i]] rounded
 * to float32, on up to ``threads`` threads (two threads fault in out's fresh pages faster than one:
 * 1.4-1.7 instead of 2.2-2.4 ms at 10,000 x 50). */
void gather_rows(const double *X, int64_t d, const int64_t *order, int64_t n, float gamma, int threads, float *out) {
    const struct input_job job = {.X = X, .n = n, .d = d, .order = order, .gamma = gamma, .rows = out};
    run_blocks(threads, (n + INPUT_BLOCK_ROWS - 1) / INPUT_BLOCK_ROWS, gather_block, &job);
}

/* ---------- data terms ---------- */

static inline floats exp2_of_exponent(floats x, floats floor2) { return exp2_approx(at_least(at_most(x, (floats){0}), floor2)); }

/* kernel[r][k] = 2^clamp(zt[., k] . x[r], floor2, 0) for ROWS rows and the centres first .. first + vecs * LANES. */
static inline __attribute__((always_inline)) void kernel_tile(const float *const x[ROWS], int64_t m, const float *zt, int64_t padded, int64_t first, const int vecs,
                                                              floats floor2, float *kernel) {
    floats acc[ROWS][TILE_VECS];
    for (int r = 0; r < ROWS; r++)
        for (int v = 0; v < vecs; v++) acc[r][v] = (floats){0};
    add_products(acc, x, m, zt, padded, first, vecs);
    for (int r = 0; r < ROWS; r++)
        for (int v = 0; v < vecs; v++) store(kernel + r * padded + first + v * LANES, exp2_of_exponent(acc[r][v], floor2));
}

/* sums[c][k] += sum_i kernel[i][k] * rows[i][c] for the columns c = column .. column + cols and the centres first .. first + vecs * LANES. */
static inline __attribute__((always_inline)) void sum_tile(const float *rows, int64_t count, int64_t m, int64_t column, const int cols, const float *kernel,
                                                           int64_t padded, int64_t first, const int vecs, float *sums) {
    floats acc[COLUMNS][TILE_VECS];
    for (int c = 0; c < cols; c++)
        for (int v = 0; v < vecs; v++) acc[c][v] = (floats){0};
    for (int64_t i = 0; i < count; i++) {
        floats weight[TILE_VECS];
        for (int v = 0; v < vecs; v++) weight[v] = load(kernel + i * padded + first + v * LANES);
        const float *x = rows + i * m + column;
        for (int c = 0; c < cols; c++) {
            const floats xc = broadcast(x[c]);
            for (int v = 0; v < vecs; v++) acc[c][v] += xc * weight[v];
        }
    }
    for (int c = 0; c < cols; c++)
        for (int v = 0; v < vecs; v++) {
            float *s = sums + c * padded + first + v * LANES;
            store(s, load(s) + acc[c][v]);
        }
}

static inline __attribute__((always_inline)) void sum_columns(const float *rows, int64_t count, int64_t m, int64_t column, const int cols, const float *kernel,
                                                              int64_t padded, float *sums) {
#define SUM_TILE(first, vecs) sum_tile(rows, count, m, column, cols, kernel, padded, first, vecs, sums)
    EACH_TILE(padded, SUM_TILE);
#undef SUM_TILE
}

/* rows (n, m) row-major; zt (m, padded), padded a multiple of LANES: column k holds point k's
 * exponent coefficients in log2 units (zero past the points). Writes sums (width, padded):
 * sums[c][k] = sum_i 2^clamp(zt[., k] . rows[i], floor2, 0) * rows[i][first_column + c].
 * Returns 0, or -1 when out of memory. */
static int data_terms_block(const float *rows, int64_t n, int64_t m, const float *zt, int64_t padded, float floor2, int64_t first_column, int64_t width, float *sums) {
    float *kernel = aligned_alloc(sizeof(floats), (size_t)(CHUNK * padded) * sizeof(float));
    if (kernel == NULL) return -1;
    const unsigned int saved = flush_subnormals();
    memset(sums, 0, (size_t)(width * padded) * sizeof(float));
    const floats floor_vector = broadcast(floor2);
    for (int64_t start = 0; start < n; start += CHUNK) {
        const int64_t count = n - start < CHUNK ? n - start : CHUNK;
        for (int64_t r0 = 0; r0 < count; r0 += ROWS) {
            const float *x[ROWS];
            for (int r = 0; r < ROWS; r++) x[r] = rows + (start + (r0 + r < count ? r0 + r : count - 1)) * m; /* past count: unused */
#define KERNEL_TILE(first, vecs) kernel_tile(x, m, zt, padded, first, vecs, floor_vector, kernel + r0 * padded)
            EACH_TILE(padded, KERNEL_TILE);
#undef KERNEL_TILE
        }
        const float *chunk = rows + start * m + first_column;
        int64_t c = 0;
        for (; c + COLUMNS <= width; c += COLUMNS) sum_columns(chunk, count, m, c, COLUMNS, kernel, padded, sums + c * padded);
        switch (width - c) { /* the last columns, a constant count each so that their accumulators stay in registers */
        case 1: sum_columns(chunk, count, m, c, 1, kernel, padded, sums + c * padded); break;
        case 2: sum_columns(chunk, count, m, c, 2, kernel, padded, sums + c * padded); break;
        case 3: sum_columns(chunk, count, m, c, 3, kernel, padded, sums + c * padded); break;
        case 4: sum_columns(chunk, count, m, c, 4, kernel, padded, sums + c * padded); break;
        case 5: sum_columns(chunk, count, m, c, 5, kernel, padded, sums + c * padded); break;
        }
    }
    restore_subnormals(saved);
    free(kernel);
    return 0;
}

struct data_terms_job {
    const float *rows;
    int64_t n, m;
    const float *zt;
    int64_t padded;
    float floor2;
    int64_t first_column, width, block_rows;
    float *block_sums; /* (blocks, width, padded) */
    _Atomic int failed;
};

static void data_terms_of_block(const void *job, int64_t block) {
    struct data_terms_job *j = (struct data_terms_job *)job;
    const int64_t start = block * j->block_rows;
    const int64_t count = j->n - start < j->block_rows ? j->n - start : j->block_rows;
    if (data_terms_block(j->rows + start * j->m, count, j->m, j->zt, j->padded, j->floor2, j->first_column, j->width, j->block_sums + block * j->width * j->padded) != 0)
        atomic_store(&j->failed, 1);
}

/* data_terms_block over all n rows in blocks of block_rows, on up to ``threads`` threads; sums
 * (width, padded) adds the blocks' sums in block order, in double. Returns 0, or -1 when out of memory. */
int data_terms(const float *rows, int64_t n, int64_t m, const float *zt, int64_t padded, float floor2, int64_t first_column, int64_t width, int64_t block_rows,
               int threads, double *sums) {
    const int64_t blocks = (n + block_rows - 1) / block_rows;
    const int64_t size = width * padded;
    float *block_sums = malloc((size_t)(blocks * size) * sizeof(float));
    if (block_sums == NULL) return -1;
    struct data_terms_job job = {rows, n, m, zt, padded, floor2, first_column, width, block_rows, block_sums, 0};
    run_blocks(threads, blocks, data_terms_of_block, &job);
    memset(sums, 0, (size_t)size * sizeof(double));
    for (int64_t b = 0; b < blocks; b++)
        for (int64_t i = 0; i < size; i++) sums[i] += block_sums[b * size + i];
    free(block_sums);
    return atomic_load(&job.failed) ? -1 : 0;
}

/* out[i] = 2^clamp(x[i], floor2, 0), as data_terms computes it; n a multiple of LANES. */
void exp2_clamped(const float *x, int64_t n, float floor2, float *out) {
    const floats floor_vector = broadcast(floor2);
    for (int64_t i = 0; i < n; i += LANES) store(out + i, exp2_of_exponent(load(x + i), floor_vector));
}

/* ---------- beta QP: the active-set search of lwm/spec/qp.py ---------- */

/* y -= a x over n entries */
static inline void subtract_scaled(double *y, double a, const double *x, int64_t n) {
    for (int64_t i = 0; i < n; i++) y[i] -= a * x[i];
}

/* The upper Cholesky factor U (A = U^T U) of the m x m row-major A, in place in its upper
 * triangle (the lower one is not read): each step scales a row and subtracts multiples of it from
 * the rows below, contiguous runs that vectorise. Returns -1 when a pivot is not above 1e-12 of
 * A's diagonal entry (diagonal[k]): A is not safely positive definite. */
static int cholesky(double *A, int64_t m, const double *diagonal) {
    for (int64_t k = 0; k < m; k++) {
        double *row = A + k * m;
        if (!(row[k] > 1e-12 * diagonal[k])) return -1;
        row[k] = sqrt(row[k]);
        for (int64_t j = k + 1; j < m; j++) row[j] /= row[k];
        for (int64_t i = k + 1; i < m; i++) subtract_scaled(A + i * m + i, row[i], row + i, m - i);
    }
    return 0;
}

/* x = (U^T U)^-1 x for the upper factor U (m x m, row-major). */
static void cholesky_solve(const double *U, int64_t m, double *x) {
    for (int64_t i = 0; i < m; i++) {
        x[i] /= U[i * m + i];
        subtract_scaled(x + i + 1, x[i], U + i * m + i + 1, m - i - 1);
    }
    for (int64_t i = m - 1; i >= 0; i--) x[i] = (x[i] - dot(U + i * m + i + 1, x + i + 1, m - i - 1)) / U[i * m + i];
}

/* Weights b >= 0, sum(b) = 1 minimising 1/2 b^T K b - c^T b (K: n x n row-major, symmetric), by
 * an active-set search from the support in_support (n bytes, 1 = in; updated). Each round solves
 * exactly on the support: K_S u = c_S, K_S v = 1, b_S = u + lambda v with lambda making sum(b) = 1
 * (then K_S b_S - c_S = lambda). It drops the indices whose weight came out negative or, when none
 * did, adds every index whose gradient K b - c is below lambda by more than 1e-10 of its largest
 * entry. Returns 0 with b optimal (feasible and meeting the KKT conditions), 1 when the search did
 * not settle in max_rounds or a support's K_S was not safely positive definite (the caller solves
 * another way), -1 when out of memory. */
int simplex_qp(const double *K, const double *c, int64_t n, uint8_t *in_support, int64_t max_rounds, double *b) {
    double *factor = malloc((size_t)(n * n) * sizeof(double));
    double *u = malloc((size_t)n * sizeof(double));
    double *v = malloc((size_t)n * sizeof(double));
    double *diagonal = malloc((size_t)n * sizeof(double));
    int64_t *support = malloc((size_t)n * sizeof(int64_t));
    int status = -1;
    if (factor == NULL || u == NULL || v == NULL || diagonal == NULL || support == NULL) goto done;
    status = 1;
    for (int64_t round = 0; round < max_rounds; round++) {
        int64_t m = 0;
        for (int64_t i = 0; i < n; i++)
            if (in_support[i]) support[m++] = i;
        if (m == 0) break;
        for (int64_t p = 0; p < m; p++) {
            for (int64_t q = p; q < m; q++) factor[p * m + q] = K[support[p] * n + support[q]];
            diagonal[p] = factor[p * m + p];
            u[p] = c[support[p]];
            v[p] = 1.0;
        }
        if (cholesky(factor, m, diagonal) != 0) break;
        cholesky_solve(factor, m, u);
        cholesky_solve(factor, m, v);
        double sum_u = 0.0, sum_v = 0.0;
        for (int64_t p = 0; p < m; p++) {
            sum_u += u[p];
            sum_v += v[p];
        }
        const double lambda = (1.0 - sum_u) / sum_v;
        if (!isfinite(lambda)) break;
        memset(b, 0, (size_t)n * sizeof(double));
        int negative = 0;
        for (int64_t p = 0; p < m; p++) {
            b[support[p]] = u[p] + lambda * v[p];
            negative |= b[support[p]] < 0.0;
        }
        if (negative) {
            for (int64_t p = 0; p < m; p++) in_support[support[p]] = b[support[p]] > 0.0;
            continue;
        }
        double largest = 1.0; /* the gradient's largest entry, at least 1 */
        for (int64_t i = 0; i < n; i++) {
            u[i] = dot(K + i * n, b, n) - c[i]; /* u: the gradient now */
            largest = fabs(u[i]) > largest ? fabs(u[i]) : largest;
        }
        int violated = 0;
        for (int64_t i = 0; i < n; i++)
            if (!in_support[i] && lambda - u[i] > 1e-10 * largest) {
                in_support[i] = 1;
                violated = 1;
            }
        if (!violated) {
            status = 0;
            break;
        }
    }
done:
    free(factor);
    free(u);
    free(v);
    free(diagonal);
    free(support);
    return status;
}


/* ---------- a state of the RKME table fit: data terms, kernel among the points, beta ---------- */

/* The fit's step direction for each point (see _ReducedSetFit.descent_direction in lwm/spec/rkme.py):
 * out[i] = ((mean_kx[i] - a_i z_i) - (t_i - s_i z_i)) / a_i with a_i = mean_k[i], s_i = sum_{j != i}
 * beta_j k_zz[i][j] and t_i the same sum of beta_j k_zz[i][j] z_j; 0 where a_i <= min_mass. */
static void descent_direction(const double *restrict z, int64_t K, int64_t d, const double *restrict beta, const double *restrict k_zz,
                              const double *restrict mean_k, const double *restrict mean_kx, double min_mass, double *restrict out) {
    for (int64_t i = 0; i < K; i++) {
        double *t = out + i * d; /* t_i first, then the direction over it */
        double s = 0.0;
        memset(t, 0, (size_t)d * sizeof(double));
        for (int64_t j = 0; j < K; j++) {
            if (j == i) continue;
            const double w = k_zz[i * K + j] * beta[j];
            s += w;
            for (int64_t c = 0; c < d; c++) t[c] += w * z[j * d + c];
        }
        const double a = mean_k[i];
        for (int64_t c = 0; c < d; c++)
            t[c] = a > min_mass ? ((mean_kx[i * d + c] - a * z[i * d + c]) - (t[c] - s * z[i * d + c])) / a : 0.0;
    }
}

/* The fit at the points z (K, d; rows (n, d + 2) as gather_rows writes them, with its gamma):
 * mean_k[i] = mean_x k(z_i, x) and, with_kx, mean_kx (K, d) = mean_x k(z_i, x) x (data_terms, the
 * kernel's exponent floored at exponent_floor), k_zz (K, K) = k(z_i, z_j) from the squared distance
 * ||z_i||^2 - 2 z_i.z_j + ||z_j||^2 floored at 0. With support (K bytes, the guessed support of
 * beta; updated), beta from simplex_qp, the objective beta^T k_zz beta - 2 mean_k.beta and, with_kx,
 * the step direction (K, d) from there (descent_direction). Returns 0; 1 when beta was asked for and
 * the QP search did not settle (the caller solves it another way); -1 when out of memory. */
int fit_state(const float *rows, int64_t n, int64_t d, const double *z, int64_t K, double gamma, double exponent_floor, int with_kx, int64_t block_rows,
              int threads, uint8_t *support, int64_t max_rounds, double min_mass, double *mean_k, double *mean_kx, double *k_zz, double *beta, double *objective,
              double *direction) {
    const int64_t m = d + 2, padded = (K + LANES - 1) / LANES * LANES, width = with_kx ? d + 1 : 1;
    const double log2e = 1.4426950408889634;
    float *zt = aligned_alloc(64, (size_t)(m * padded) * sizeof(float));
    double *sums = malloc((size_t)(width * padded) * sizeof(double));
    double *norms = malloc((size_t)K * sizeof(double));
    int status = -1;
    if (zt == NULL || sums == NULL || norms == NULL) goto done;
    /* zt[., i] = [2 gamma z_i, -gamma ||z_i||^2, 1] in log2 units: its product with a row is the kernel's exponent */
    memset(zt, 0, (size_t)(m * padded) * sizeof(float));
    for (int64_t i = 0; i < K; i++) {
        norms[i] = dot(z + i * d, z + i * d, d);
        for (int64_t j = 0; j < d; j++) zt[j * padded + i] = (float)(2.0 * gamma * log2e * z[i * d + j]);
        zt[d * padded + i] = (float)(-gamma * log2e * norms[i]);
        zt[(d + 1) * padded + i] = (float)log2e;
    }
    if (data_terms(rows, n, m, zt, padded, (float)(exponent_floor * log2e), with_kx ? 0 : d, width, block_rows, threads, sums) != 0) goto done;
    for (int64_t i = 0; i < K; i++) {
        mean_k[i] = sums[(width - 1) * padded + i] / (double)n;
        for (int64_t j = 0; with_kx && j < d; j++) mean_kx[i * d + j] = sums[j * padded + i] / (double)n;
    }
    for (int64_t i = 0; i < K; i++)
        for (int64_t j = i; j < K; j++) {
            const double squared = norms[i] - 2.0 * dot(z + i * d, z + j * d, d) + norms[j];
            k_zz[i * K + j] = k_zz[j * K + i] = exp(-gamma * (squared > 0.0 ? squared : 0.0));
        }
    status = support == NULL ? 0 : simplex_qp(k_zz, mean_k, K, support, max_rounds, beta);
    if (support != NULL && status == 0) {
        double value = 0.0;
        for (int64_t i = 0; i < K; i++) value += beta[i] * (dot(k_zz + i * K, beta, K) - 2.0 * mean_k[i]);
        *objective = value;
        if (with_kx) descent_direction(z, K, d, beta, k_zz, mean_k, mean_kx, min_mass, direction);
    }
done:
    free(zt);
    free(sums);
    free(norms);
    return status;
}
