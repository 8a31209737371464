/* rankwire — the frames the daemon and rank 0 of a multi-rank job exchange over their Unix
 * socket (jobs/rankrun.c on one side, rank/rankd.c on the other). Pure: encoding and decoding
 * only, the I/O is the callers'.
 *
 * A frame is a 5-byte header — the payload's length (u32, little-endian) and its type (u8) —
 * and the payload. The daemon sends the job (RW_SPEC, RW_DATA, RW_RESUME, in that order,
 * right after rank 0 connects) and later at most one RW_STOP; rank 0 sends RW_METRICS batches,
 * RW_START once set up, RW_CKPT checkpoints (the blob a one-process job saves), RW_RANKMS (each rank's step time)
 * and ends with RW_DONE or RW_FAIL. Every decoder checks the payload's length against what it
 * announces, so a short, long or foreign frame is -EPROTO, never a read past the end. */
#ifndef ANNEALD_RANKWIRE_H
#define ANNEALD_RANKWIRE_H

#include <stddef.h>
#include <stdint.h>

#define RW_HEADER 5
/* The largest payload: a checkpoint is three times the parameters (Adam) and the daemon caps
 * a job's memory far below this, so a larger length is a corrupt or foreign stream. */
#define RW_MAX_PAYLOAD ((uint32_t)1 << 31)
#define RW_MAX_LR 64          /* learning-rate groups per metric row (STORE_MAX_LR) */
#define RW_MAX_RANKS 256      /* CFG_MAX_WORLD */

enum rw_type {
    /* daemon → rank 0 */
    RW_SPEC = 1,     /* the job spec's JSON text */
    RW_DATA = 2,     /* the uploaded data set's CSV text (empty for other data types) */
    RW_RESUME = 3,   /* the checkpoint blob to resume from (empty: start at step 0) */
    RW_STOP = 4,     /* u8 enum rw_stop: checkpoint (pause) or not (cancel), then exit */
    /* rank 0 → daemon */
    RW_METRICS = 16, /* a batch of metric rows */
    RW_CKPT = 17,    /* i64 step, f64 loss, then the checkpoint blob */
    RW_RANKMS = 18,  /* u32 n, then n f64: each rank's milliseconds per step */
    RW_DONE = 19,    /* u8 enum rw_end: the ranks ended as the daemon expects */
    RW_FAIL = 20,    /* the error's text: the job failed (bad spec, train error) */
    RW_START = 21    /* steps done, total steps, RW_VERSION: the ranks are set up and train */
};

enum rw_stop { RW_STOP_PAUSE = 1, RW_STOP_CANCEL = 2 };
enum rw_end { RW_END_COMPLETED = 0, RW_END_STOPPED = 1 };

/* One optimizer step as the daemon stores it. */
typedef struct rw_metric {
    int64_t step, epoch;
    double loss, grad_norm;
    double time;            /* seconds since the ranks started training (this run) */
    int n_lr;
    double lr[RW_MAX_LR];
    int has_val;
    double val_loss, val_acc;
    /* fp16 (a gpt job with ds_config.fp16): the loss scale the step used, > 0 (NAN or 0
     * otherwise: decoded as NAN); the steps skipped so far (this one included) and whether
     * this one overflowed. */
    double loss_scale;
    int64_t skipped_steps;
    int skipped;
} rw_metric;

/* Writes a frame's header into out[RW_HEADER]. */
void rw_header(unsigned char *out, int type, uint32_t len);

/* Reads a header: 0 with *type and *len, or -EPROTO for an unknown type or a length over
 * RW_MAX_PAYLOAD. */
int rw_header_parse(const unsigned char *hdr, int *type, uint32_t *len);

/* Bytes rw_metrics_encode writes for these rows. */
size_t rw_metrics_size(const rw_metric *rows, size_t n);
/* Encodes n rows into out (rw_metrics_size bytes); returns the bytes written. */
size_t rw_metrics_encode(const rw_metric *rows, size_t n, unsigned char *out);
/* Decodes a RW_METRICS payload into rows[0..max): 0 with *n, or -EPROTO (a length that does
 * not match, n_lr over RW_MAX_LR, more than max rows). */
int rw_metrics_decode(const unsigned char *p, size_t len, rw_metric *rows, size_t max, size_t *n);

/* RW_CKPT's 16-byte head; the blob follows. */
#define RW_CKPT_HEAD 16
void rw_ckpt_head(unsigned char *out, int64_t step, double loss);
/* 0 with the step, loss and the blob's place inside p, or -EPROTO (too short, step < 1). */
int rw_ckpt_decode(const unsigned char *p, size_t len, int64_t *step, double *loss,
                   const unsigned char **blob, size_t *blob_len);

/* RW_RANKMS: 4 + 8·n bytes. */
size_t rw_rankms_encode(const double *ms, int n, unsigned char *out);
/* 0 with ms[0..*n), or -EPROTO (length mismatch, n = 0 or over max). */
int rw_rankms_decode(const unsigned char *p, size_t len, double *ms, int max, int *n);

/* RW_START: 16 bytes. 0, or -EPROTO (length, done < 0 or over total). */
/* RW_START: i64 steps done, i64 total steps, u32 RW_VERSION (RW_START_LEN bytes). The
 * version tells a rank program of another build (another host's anneald-rank) from this
 * one's: its start is -EPROTONOSUPPORT with *version what it sent (1: a start of 16 bytes,
 * from before versions; 0: neither length), and any other fault -EPROTO. */
#define RW_VERSION 2
#define RW_START_LEN 20
void rw_start_encode(unsigned char *out, int64_t done, int64_t total);
int rw_start_decode(const unsigned char *p, size_t len, int64_t *done, int64_t *total,
                    uint32_t *version);

/* RW_STOP and RW_DONE carry one byte: 0 with its value, or -EPROTO (length or value). */
int rw_stop_decode(const unsigned char *p, size_t len, int *how);
int rw_done_decode(const unsigned char *p, size_t len, int *how);

#endif
