/* lossscale — DeepSpeed's fp16 loss scaler (see lossscale.h). */
#include "core/lossscale.h"

#include <math.h>

lossscale_cfg lossscale_defaults(void)
{
    return (lossscale_cfg){.loss_scale = 0, .initial_scale_power = 16,
                           .loss_scale_window = 1000, .hysteresis = 2,
                           .consecutive_hysteresis = 0, .min_loss_scale = 1};
}

void lossscale_init(lossscale *ls, const lossscale_cfg *cfg)
{
    ls->cfg = *cfg;
    ls->cur_scale = cfg->loss_scale > 0 ? cfg->loss_scale : ldexp(1.0, cfg->initial_scale_power);
    ls->cur_iter = 0;
    ls->last_overflow_iter = -1;
    ls->cur_hysteresis = cfg->hysteresis;
    ls->skipped = 0;
}

int lossscale_overflow(const float *grads, size_t n)
{
    /* x − x is 0 for finite x and NaN for inf or NaN; summing keeps the loop branch-free. */
    float acc = 0.0f;
    for (size_t i = 0; i < n; i++)
        acc += grads[i] - grads[i];
    return acc != acc;
}

int lossscale_update(lossscale *ls, int overflow, an_err *err)
{
    const lossscale_cfg *c = &ls->cfg;
    if (overflow)
        ls->skipped++;
    if (c->loss_scale > 0) { /* fixed */
        ls->cur_iter++;
        return 0;
    }
    if (overflow) {
        if (c->hysteresis == 1 || ls->cur_hysteresis == 1) {
            if (ls->cur_scale == c->min_loss_scale) {
                ls->skipped--;
                return an_failc(err, -ERANGE, "ds_config.fp16.min_loss_scale",
                                "the gradients overflowed at the minimum loss scale %g "
                                "(\"Current loss scale already at minimum\")",
                                c->min_loss_scale);
            }
            ls->cur_scale = fmax(ls->cur_scale / 2, c->min_loss_scale);
        } else {
            ls->cur_hysteresis--;
        }
        ls->last_overflow_iter = ls->cur_iter;
    } else {
        if (c->consecutive_hysteresis)
            ls->cur_hysteresis = c->hysteresis;
        int64_t stable = (ls->cur_iter - ls->last_overflow_iter) - 1;
        if (stable > 0 && stable % c->loss_scale_window == 0) {
            if (!c->consecutive_hysteresis)
                ls->cur_hysteresis = c->hysteresis;
            ls->cur_scale *= 2;
        }
    }
    ls->cur_iter++;
    return 0;
}
