/* loss — mse, cross_entropy, bce with logits, mean; gradients and accuracy. */
#include "core/loss.h"

#include <math.h>
#include <stddef.h>

#include "core/config.h"

static double mse(const float *out, const float *y, int B, int C, float *dout)
{
    size_t n = (size_t)B * C;
    double s = 0, scale = 2.0 / (double)n;
    for (size_t i = 0; i < n; i++) {
        double d = (double)out[i] - y[i];
        s += d * d;
        if (dout)
            dout[i] = (float)(scale * d);
    }
    return s / (double)n;
}

static double cross_entropy(const float *out, const float *y, int B, int C, float *dout)
{
    double s = 0;
    for (int b = 0; b < B; b++) {
        const float *x = out + (size_t)b * C;
        int t = (int)y[b];
        double mx = x[0];
        for (int c = 1; c < C; c++)
            mx = x[c] > mx ? x[c] : mx;
        double z = 0;
        for (int c = 0; c < C; c++)
            z += exp(x[c] - mx);
        double lse = mx + log(z);
        s += lse - x[t];
        if (dout) {
            float *d = dout + (size_t)b * C;
            for (int c = 0; c < C; c++)
                d[c] = (float)((exp(x[c] - lse) - (c == t)) / B);
        }
    }
    return s / B;
}

static double bce(const float *out, const float *y, int B, int C, float *dout)
{
    size_t n = (size_t)B * C;
    double s = 0;
    for (size_t i = 0; i < n; i++) {
        double x = out[i], t = y[i];
        s += (x > 0 ? x : 0) - x * t + log1p(exp(-fabs(x)));
        if (dout) {
            /* sigmoid without overflow for either sign */
            double sg = x >= 0 ? 1.0 / (1.0 + exp(-x)) : exp(x) / (1.0 + exp(x));
            dout[i] = (float)((sg - t) / (double)n);
        }
    }
    return s / (double)n;
}

static double mean(const float *out, int B, int C, float *dout)
{
    size_t n = (size_t)B * C;
    double s = 0;
    for (size_t i = 0; i < n; i++)
        s += out[i];
    if (dout)
        for (size_t i = 0; i < n; i++)
            dout[i] = (float)(1.0 / (double)n);
    return s / (double)n;
}

double loss_compute(int type, const float *out, const float *y, int B, int C, float *dout)
{
    if (B <= 0 || C <= 0)
        return 0.0;
    switch (type) {
    case LOSS_MSE:
        return mse(out, y, B, C, dout);
    case LOSS_CROSS_ENTROPY:
        return cross_entropy(out, y, B, C, dout);
    case LOSS_BCE:
        return bce(out, y, B, C, dout);
    case LOSS_MEAN:
        return mean(out, B, C, dout);
    default:
        return NAN;
    }
}

int loss_check_targets(int type, const float *y, long long rows, int C, const char *field,
                       an_err *err)
{
    if (type == LOSS_MEAN)
        return 0;
    int w = loss_target_width(type, C);
    for (long long r = 0; r < rows; r++)
        for (int c = 0; c < w; c++) {
            float v = y[r * w + c];
            if (!isfinite(v))
                return an_fail(err, field, "target of row %lld is not a finite number", r + 1);
            if (type == LOSS_CROSS_ENTROPY && (v != floorf(v) || v < 0 || v >= (float)C))
                return an_fail(err, field,
                               "cross_entropy expects class indices 0..%d (the model has %d "
                               "outputs), but row %lld has target %g",
                               C - 1, C, r + 1, (double)v);
        }
    return 0;
}

int loss_target_width(int type, int C)
{
    return type == LOSS_CROSS_ENTROPY ? 1 : C;
}

int loss_is_classification(int type)
{
    return type == LOSS_CROSS_ENTROPY || type == LOSS_BCE;
}

long long loss_correct(int type, const float *out, const float *y, int B, int C)
{
    long long n = 0;
    if (type == LOSS_CROSS_ENTROPY) {
        for (int b = 0; b < B; b++) {
            const float *x = out + (size_t)b * C;
            int best = 0;
            for (int c = 1; c < C; c++)
                if (x[c] > x[best])
                    best = c;
            n += best == (int)y[b];
        }
    } else if (type == LOSS_BCE) {
        for (size_t i = 0; i < (size_t)B * C; i++)
            n += (out[i] > 0) == (y[i] > 0.5f);
    }
    return n;
}

long long loss_accuracy_count(int type, int B, int C)
{
    if (type == LOSS_CROSS_ENTROPY)
        return B;
    if (type == LOSS_BCE)
        return (long long)B * C;
    return 0;
}
