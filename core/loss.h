/* loss — the training losses of anneald and their gradients with respect to the model's
 * outputs, plus classification accuracy.
 *
 * Shapes: out [B, C] (the model's outputs), y the targets: [B, C] float rows for mse and bce,
 * [B, 1] class indices stored as floats for cross_entropy (exact below 2^24), unused for
 * mean. Losses are accumulated in double and returned as double; the gradient is the
 * gradient of that micro-batch mean (scaling for gradient accumulation is the caller's). */
#ifndef ANNEALD_LOSS_H
#define ANNEALD_LOSS_H

#include "core/err.h"

/* The loss of one micro-batch (enum loss_type of config.h):
 *   LOSS_MSE            mean over all B*C elements of (out - y)^2
 *   LOSS_CROSS_ENTROPY  mean over rows of -log softmax(out)[y] (stable log-sum-exp)
 *   LOSS_BCE            mean over all elements of max(x,0) - x*y + log1p(exp(-|x|)), x = out
 *   LOSS_MEAN           mean of all outputs (DeepSpeed's tutorial: y unused)
 * If dout is not NULL it receives d(loss)/d(out) [B, C] (overwritten). Targets are trusted:
 * check them once with loss_check_targets. */
double loss_compute(int type, const float *out, const float *y, int B, int C, float *dout);

/* Checks that targets suit the loss: class indices integral and in [0, C) for
 * cross_entropy, finite values for the others. `field` names the data in errors. */
int loss_check_targets(int type, const float *y, long long rows, int C, const char *field,
                       an_err *err);

/* Width of a target row for a loss and C model outputs: 1 for cross_entropy, else C. */
int loss_target_width(int type, int C);

/* 1 if the loss is a classification loss (cross_entropy, bce): accuracy is meaningful. */
int loss_is_classification(int type);

/* Correct predictions in the batch: rows whose argmax equals the class (cross_entropy; ties
 * go to the lower index), or elements whose sign (out > 0) matches y > 0.5 (bce); 0
 * otherwise. Divide by loss_accuracy_count for a fraction. */
long long loss_correct(int type, const float *out, const float *y, int B, int C);

/* How many predictions loss_correct judged: B for cross_entropy, B*C for bce, 0 otherwise. */
long long loss_accuracy_count(int type, int B, int C);

#endif
