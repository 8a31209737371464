/* pace — two small clocks of a training run, pure and testable: the recent pace (steps per
 * second over the last few seconds, for samples_per_sec and eta_s) and the token bucket that
 * rate-limits periodic checkpoints. */
#ifndef ANNEALD_PACE_H
#define ANNEALD_PACE_H

#include <stdint.h>

/* Periodic checkpoints: at most one per CKPT_GAP_S on average, in bursts of up to
 * CKPT_BURST. A job that trains millions of steps a second with every_steps 100 would
 * otherwise commit tens of thousands of checkpoints a second and spend most of its time in
 * them; a short job still gets every checkpoint it asks for. */
#define CKPT_GAP_S 0.02
#define CKPT_BURST 10.0
/* samples_per_sec and eta_s: the pace over the last PACE_N - 1 intervals of PACE_EVERY_S
 * (about 5 s), so they follow the job's real speed, stores and checkpoints included. */
#define PACE_EVERY_S 0.25
#define PACE_N 21

/* Recent (time, step) points of a run, one per PACE_EVERY_S, oldest overwritten first. */
typedef struct pace {
    double t[PACE_N];          /* monotonic seconds */
    int64_t step[PACE_N];      /* steps done at t */
    int n;                     /* points held, 0..PACE_N */
    int next;                  /* slot the next point goes to */
} pace;

/* Adds the point (t, step), dropping the oldest when full. */
void pace_add(pace *p, double t, int64_t step);

/* Steps per second from the oldest point held to (now, step); NAN with no point or no time
 * gone by. */
double pace_rate(const pace *p, double now, int64_t step);

/* Adds (now, step) when PACE_EVERY_S has passed since the newest point. */
void pace_tick(pace *p, double now, int64_t step);

/* A token bucket for periodic checkpoints: CKPT_BURST tokens, one more every CKPT_GAP_S. */
typedef struct ckpt_bucket {
    double tokens;
    double at;                 /* monotonic time of the last refill */
} ckpt_bucket;

/* Takes a token for a periodic checkpoint due at `now`: 1 = take it now, 0 = defer it (to the
 * next multiple of every_steps, or the next step for every_seconds). Which step a
 * checkpoint lands on does not change the result: a resume from any step is bit-exact. */
int ckpt_take(ckpt_bucket *b, double now);

#endif
