/* pace — the recent pace of a run and the checkpoint token bucket (jobs/pace.h). */
#include "jobs/pace.h"

#include <math.h>

void pace_add(pace *p, double t, int64_t step)
{
    p->t[p->next] = t;
    p->step[p->next] = step;
    p->next = (p->next + 1) % PACE_N;
    if (p->n < PACE_N)
        p->n++;
}

double pace_rate(const pace *p, double now, int64_t step)
{
    if (p->n == 0)
        return NAN;
    int old = p->n < PACE_N ? 0 : p->next;
    double dt = now - p->t[old];
    return dt > 0 ? (double)(step - p->step[old]) / dt : NAN;
}

void pace_tick(pace *p, double now, int64_t step)
{
    if (now - p->t[(p->next + PACE_N - 1) % PACE_N] >= PACE_EVERY_S)
        pace_add(p, now, step);
}

int ckpt_take(ckpt_bucket *b, double now)
{
    if (now > b->at) {
        b->tokens = fmin(CKPT_BURST, b->tokens + (now - b->at) / CKPT_GAP_S);
        b->at = now;
    }
    if (b->tokens < 1.0)
        return 0;
    b->tokens -= 1.0;
    return 1;
}

