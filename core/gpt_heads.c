/* gpt_heads — the products of one attention head on its causal triangle (see gpt_heads.h).
 *
 * Each product keeps a tile of R rows × 16 columns in vector registers (LANES = 16) and walks
 * the shared dimension once, adding one term per step in order, so the result of an entry
 * does not depend on the tile it falls in. With AVX-512 a row is one register and R = 8; with
 * AVX2 a row is two registers and R is 4 or 8 (HEAD_WAYS): eight rows take all sixteen
 * registers for the sums, which suits one kernel and not the others. The causal mask is used
 * to skip work: the scores are computed only in the 16-column blocks up to the diagonal's,
 * and the products with a lower-triangular matrix stop (or start) at the tile's last (first)
 * row; the entries they pass over are zeros. */
#include "core/gpt_heads.h"

#include "core/gemm.h"
#include "core/gpt_simd.h"

enum { ROWS_MAX = 8, ROWS_512 = 8 };

/* TWO_WAYS (gpt_simd.h) with each way's tile height: 8 rows with AVX-512; with AVX2 the
 * height each kernel ran fastest at (a head of the README's GPT, 64 × 32, on an AMD EPYC with
 * AVX2: scores 5.3 → 5.0 us and L·x 5.0 → 4.2 us at 4 rows, Lᵀ·x 3.1 us at 8 against 4.2). */
#define HEAD_WAYS(name, rows_256, params, args)                        \
    AVX512 static void name##_512 params                              \
    {                                                                 \
        name##_body(ROWS_512, UNPAREN args);                          \
    }                                                                 \
    static void name##_256 params { name##_body(rows_256, UNPAREN args); } \
    static void name params                                           \
    {                                                                 \
        if (gpt_wide_vectors())                                       \
            name##_512 args;                                          \
        else                                                          \
            name##_256 args;                                          \
    }
#define UNPAREN(...) __VA_ARGS__

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

/* One step of a tile of `rows` rows (a constant once inlined): row i of acc += w[i·ws] · x
 * (LANES columns). The factors are read before the loop over the columns, so that each row is
 * one vector and each factor one broadcast (read inside it, the compiler vectorised across the
 * rows, with shuffles); the rows are independent chains of multiply-adds, which hide their
 * latency. */
static inline ALWAYS_INLINE void tile_step(int rows, float (*acc)[LANES], const float *w,
                                           size_t ws, const float *x)
{
    float f[ROWS_MAX];
    for (int i = 0; i < rows; i++)
        f[i] = w[(size_t)i * ws];
    for (int j = 0; j < LANES; j++) {
        float xj = x[j];
        for (int i = 0; i < rows; i++)
            acc[i][j] = fmaf(f[i], xj, acc[i][j]);
    }
}

/* Stores a tile: out rows of stride ldo get scale · acc. */
static inline ALWAYS_INLINE void tile_store(int rows, float *out, size_t ldo,
                                            float (*acc)[LANES], float scale)
{
    for (int i = 0; i < rows; i++)
        for (int j = 0; j < LANES; j++)
            out[(size_t)i * ldo + j] = scale * acc[i][j];
}

/* S = scale · a·bᵀ: bt is bᵀ [hs][T]. */
static inline ALWAYS_INLINE void scores_body(int rows, float *S, const float *a, int lda,
                                             const float *bt, int T, int hs, float scale)
{
    for (int t0 = 0; t0 < T; t0 += rows) {
        int blocks = (t0 + rows - 1) / LANES + 1; /* up to the block of the tile's last row */
        const float *ar = a + (size_t)t0 * lda;
        for (int jb = 0; jb < blocks; jb++) {
            float acc[ROWS_MAX][LANES] = {{0}};
            for (int d = 0; d < hs; d++)
                tile_step(rows, acc, ar + d, (size_t)lda,
                          bt + (size_t)d * T + (size_t)jb * LANES);
            tile_store(rows, S + (size_t)t0 * T + (size_t)jb * LANES, (size_t)T, acc, scale);
        }
    }
}

HEAD_WAYS(scores, 4, (float *S, const float *a, int lda, const float *bt, int T, int hs,
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
static inline ALWAYS_INLINE void lower_body(int rows, float *out, int ldo, const float *L,
                                            const float *x, int ldx, int T, int hs, float scale)
{
    for (int t0 = 0; t0 < T; t0 += rows)
        for (int db = 0; db < hs; db += LANES) {
            float acc[ROWS_MAX][LANES] = {{0}};
            const float *lr = L + (size_t)t0 * T;
            for (int s = 0; s < t0 + rows; s++)
                tile_step(rows, acc, lr + s, (size_t)T, x + (size_t)s * ldx + db);
            tile_store(rows, out + (size_t)t0 * ldo + db, (size_t)ldo, acc, scale);
        }
}

HEAD_WAYS(lower, 4, (float *out, int ldo, const float *L, const float *x, int ldx, int T,
                     int hs, float scale), (out, ldo, L, x, ldx, T, hs, scale))

void gpt_head_lower(float *out, int ldo, const float *L, const float *x, int ldx, int T, int hs,
                    float scale)
{
    if (!tiles(T, hs))
        gemm_f32(0, 0, T, hs, T, scale, L, T, x, ldx, 0.0f, out, ldo);
    else
        lower(out, ldo, L, x, ldx, T, hs, scale);
}

/* out = scale · Lᵀ·x: row s sums L[t][s]·x[t] for t from the tile's first row. */
static inline ALWAYS_INLINE void lower_t_body(int rows, float *out, int ldo, const float *L,
                                              const float *x, int ldx, int T, int hs,
                                              float scale)
{
    for (int s0 = 0; s0 < T; s0 += rows)
        for (int db = 0; db < hs; db += LANES) {
            float acc[ROWS_MAX][LANES] = {{0}};
            for (int t = s0; t < T; t++)
                tile_step(rows, acc, L + (size_t)t * T + s0, 1, x + (size_t)t * ldx + db);
            tile_store(rows, out + (size_t)s0 * ldo + db, (size_t)ldo, acc, scale);
        }
}

HEAD_WAYS(lower_t, 8, (float *out, int ldo, const float *L, const float *x, int ldx, int T,
                       int hs, float scale), (out, ldo, L, x, ldx, T, hs, scale))

void gpt_head_lower_t(float *out, int ldo, const float *L, const float *x, int ldx, int T,
                      int hs, float scale)
{
    if (!tiles(T, hs))
        gemm_f32(1, 0, T, hs, T, scale, L, T, x, ldx, 0.0f, out, ldo);
    else
        lower_t(out, ldo, L, x, ldx, T, hs, scale);
}
