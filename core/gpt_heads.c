/* gpt_heads — the products of one attention head on its causal triangle (see gpt_heads.h).
 *
 * Each product keeps a tile of rows × 16 columns in vector registers (LANES = 16) and walks
 * the shared dimension once, adding one term per step in order (a fused multiply-add), so the
 * result of an entry does not depend on the tile it falls in nor on the instruction set. With
 * AVX-512 a tile is 8 rows of one register each, written as plain loops the compiler
 * vectorises; with AVX2 the scores and L·x take 4 rows of two registers, written with
 * intrinsics (tile4): the plain loops left an AVX2 tile's sums on the stack, loaded and
 * stored at every step, and cleared it with a call to memset (a head of the README's GPT,
 * 64 × 32, on an AMD EPYC with AVX2: scores 5.3 → 3.4 us, L·x 4.9 → 3.3 us). The causal
 * mask is used to skip work: the scores are computed only in the 16-column blocks up to the
 * diagonal's, and the products with a lower-triangular matrix stop (or start) at the tile's
 * last (first) row; the entries they pass over are zeros. */
#include "core/gpt_heads.h"

#if defined(__AVX2__) && defined(__FMA__)
#include <immintrin.h>
#define HAVE_TILE4 1
#endif

#include "core/gemm.h"
#include "core/gpt_simd.h"

enum { ROWS = 8 };

int gpt_head_fast(int T, int hs)
{
    return T > 0 && hs > 0 && T % LANES == 0 && hs % LANES == 0 &&
           (long)T * hs <= GPT_HEAD_FAST_MAX;
}

/* The tiles take float32 products of the sizes gpt_head_fast accepts; bf16 products and other
 * sizes go to gemm_f32. */
static int tiles(int T, int hs)
{
    return !gemm_bf16() && gpt_head_fast(T, hs);
}

/* One step of a tile: row i of acc += w[i·ws] · x (LANES columns). The factors are read
 * before the loop over the columns, so that each row is one vector and each factor one
 * broadcast (read inside it, the compiler vectorised across the rows, with shuffles); eight
 * rows are eight independent chains of multiply-adds, enough to hide their latency. */
static inline ALWAYS_INLINE void tile_step(float (*acc)[LANES], const float *w, size_t ws,
                                           const float *x)
{
    float f[ROWS];
    for (int i = 0; i < ROWS; i++)
        f[i] = w[(size_t)i * ws];
    for (int j = 0; j < LANES; j++) {
        float xj = x[j];
        for (int i = 0; i < ROWS; i++)
            acc[i][j] = fmaf(f[i], xj, acc[i][j]);
    }
}

/* Stores a tile: out rows of stride ldo get scale · acc. */
static inline ALWAYS_INLINE void tile_store(float *out, size_t ldo, float (*acc)[LANES],
                                            float scale)
{
    for (int i = 0; i < ROWS; i++)
        for (int j = 0; j < LANES; j++)
            out[(size_t)i * ldo + j] = scale * acc[i][j];
}

#ifdef HAVE_TILE4
/* The AVX2 tile: 4 rows × 16 columns, two registers a row (see the file's comment). */
typedef struct tile4 {
    __m256 v[4][2];
} tile4;

static inline ALWAYS_INLINE void tile4_zero(tile4 *t)
{
    for (int i = 0; i < 4; i++)
        t->v[i][0] = t->v[i][1] = _mm256_setzero_ps();
}

/* tile_step for tile4: row i += w[i·ws] · x[0 .. 16). */
static inline ALWAYS_INLINE void tile4_step(tile4 *t, const float *w, size_t ws, const float *x)
{
    __m256 x0 = _mm256_loadu_ps(x), x1 = _mm256_loadu_ps(x + 8);
    for (int i = 0; i < 4; i++) {
        __m256 f = _mm256_broadcast_ss(w + (size_t)i * ws);
        t->v[i][0] = _mm256_fmadd_ps(f, x0, t->v[i][0]);
        t->v[i][1] = _mm256_fmadd_ps(f, x1, t->v[i][1]);
    }
}

static inline ALWAYS_INLINE void tile4_store(float *out, size_t ldo, const tile4 *t,
                                             float scale)
{
    __m256 s = _mm256_set1_ps(scale);
    for (int i = 0; i < 4; i++) {
        _mm256_storeu_ps(out + (size_t)i * ldo, _mm256_mul_ps(s, t->v[i][0]));
        _mm256_storeu_ps(out + (size_t)i * ldo + 8, _mm256_mul_ps(s, t->v[i][1]));
    }
}

#endif

/* S = scale · a·bᵀ: bt is bᵀ [hs][T]. */
static inline ALWAYS_INLINE void scores_body(float *S, const float *a, int lda, const float *bt,
                                             int T, int hs, float scale)
{
    for (int t0 = 0; t0 < T; t0 += ROWS) {
        int blocks = (t0 + ROWS - 1) / LANES + 1; /* up to the block of column t0 + 7 */
        const float *ar = a + (size_t)t0 * lda;
        for (int jb = 0; jb < blocks; jb++) {
            float acc[ROWS][LANES] = {{0}};
            for (int d = 0; d < hs; d++)
                tile_step(acc, ar + d, (size_t)lda, bt + (size_t)d * T + (size_t)jb * LANES);
            tile_store(S + (size_t)t0 * T + (size_t)jb * LANES, (size_t)T, acc, scale);
        }
    }
}

static void scores_256(float *S, const float *a, int lda, const float *bt, int T, int hs,
                        float scale)
{
#ifndef HAVE_TILE4
    scores_body(S, a, lda, bt, T, hs, scale); /* a build without AVX2 */
#else
    for (int t0 = 0; t0 < T; t0 += 4) {
        int blocks = (t0 + 3) / LANES + 1; /* up to the block of column t0 + 3 */
        const float *ar = a + (size_t)t0 * lda;
        for (int jb = 0; jb < blocks; jb++) {
            tile4 t;
            tile4_zero(&t);
            for (int d = 0; d < hs; d++)
                tile4_step(&t, ar + d, (size_t)lda, bt + (size_t)d * T + (size_t)jb * LANES);
            tile4_store(S + (size_t)t0 * T + (size_t)jb * LANES, (size_t)T, &t, scale);
        }
    }
#endif
}

WIDE_OR_256(scores, (float *S, const float *a, int lda, const float *bt, int T, int hs,
                   float scale), (S, a, lda, bt, T, hs, scale))

void gpt_head_scores(float *S, const float *a, int lda, const float *b, int ldb, int T, int hs,
                     float scale)
{
    if (!tiles(T, hs)) {
        gemm_f32(0, 1, T, T, hs, scale, a, lda, b, ldb, 0.0f, S, T);
        return;
    }
    float bt[GPT_HEAD_FAST_MAX];
    for (int d = 0; d < hs; d++)
        for (int s = 0; s < T; s++)
            bt[(size_t)d * T + s] = b[(size_t)s * ldb + d];
    scores(S, a, lda, bt, T, hs, scale);
}

/* out = scale · L·x: row t sums L[t][s]·x[s] for s up to the tile's last row. */
static inline ALWAYS_INLINE void lower_body(float *out, int ldo, const float *L, const float *x,
                                            int ldx, int T, int hs, float scale)
{
    for (int t0 = 0; t0 < T; t0 += ROWS)
        for (int db = 0; db < hs; db += LANES) {
            float acc[ROWS][LANES] = {{0}};
            const float *lr = L + (size_t)t0 * T;
            for (int s = 0; s < t0 + ROWS; s++)
                tile_step(acc, lr + s, (size_t)T, x + (size_t)s * ldx + db);
            tile_store(out + (size_t)t0 * ldo + db, (size_t)ldo, acc, scale);
        }
}

static void lower_256(float *out, int ldo, const float *L, const float *x, int ldx, int T,
                       int hs, float scale)
{
#ifndef HAVE_TILE4
    lower_body(out, ldo, L, x, ldx, T, hs, scale); /* a build without AVX2 */
#else
    for (int t0 = 0; t0 < T; t0 += 4)
        for (int db = 0; db < hs; db += LANES) {
            tile4 t;
            tile4_zero(&t);
            const float *lr = L + (size_t)t0 * T;
            for (int s = 0; s < t0 + 4; s++)
                tile4_step(&t, lr + s, (size_t)T, x + (size_t)s * ldx + db);
            tile4_store(out + (size_t)t0 * ldo + db, (size_t)ldo, &t, scale);
        }
#endif
}

WIDE_OR_256(lower, (float *out, int ldo, const float *L, const float *x, int ldx, int T, int hs,
                  float scale), (out, ldo, L, x, ldx, T, hs, scale))

void gpt_head_lower(float *out, int ldo, const float *L, const float *x, int ldx, int T, int hs,
                    float scale)
{
    if (!tiles(T, hs))
        gemm_f32(0, 0, T, hs, T, scale, L, T, x, ldx, 0.0f, out, ldo);
    else
        lower(out, ldo, L, x, ldx, T, hs, scale);
}

/* out = scale · Lᵀ·x: row s sums L[t][s]·x[t] for t from the tile's first row. */
static inline ALWAYS_INLINE void lower_t_body(float *out, int ldo, const float *L,
                                              const float *x, int ldx, int T, int hs,
                                              float scale)
{
    for (int s0 = 0; s0 < T; s0 += ROWS)
        for (int db = 0; db < hs; db += LANES) {
            float acc[ROWS][LANES] = {{0}};
            for (int t = s0; t < T; t++)
                tile_step(acc, L + (size_t)t * T + s0, 1, x + (size_t)t * ldx + db);
            tile_store(out + (size_t)s0 * ldo + db, (size_t)ldo, acc, scale);
        }
}

/* Lᵀ·x keeps the plain 8-row tile with AVX2 too: it ran at 3.1 us a head against 3.7 for
 * tile4 (each row of x then serves eight rows of the tile instead of four). */
TWO_WAYS(lower_t, (float *out, int ldo, const float *L, const float *x, int ldx, int T, int hs,
                   float scale), (out, ldo, L, x, ldx, T, hs, scale))

void gpt_head_lower_t(float *out, int ldo, const float *L, const float *x, int ldx, int T,
                      int hs, float scale)
{
    if (!tiles(T, hs))
        gemm_f32(1, 0, T, hs, T, scale, L, T, x, ldx, 0.0f, out, ldo);
    else
        lower_t(out, ldo, L, x, ldx, T, hs, scale);
}
