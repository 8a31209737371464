/* admit — what a worker checks before and while it trains a job: the daemon's memory budget
 * (jobs/budget.h) and the free space of the store's file system (--min-free-disk). */
#ifndef ANNEALD_ADMIT_H
#define ANNEALD_ADMIT_H

#include <stddef.h>
#include <stdint.h>

#include "core/config.h"
#include "jobs/jobmgr.h"
#include "jobs/settings.h"
#include "store/store.h"

struct service;

/* Reserves the job's charge in the budget, waiting while it does not fit (the reason is on
 * the run's snapshot, shown as the job's queue_reason, meanwhile). 0 with *charge reserved
 * (0 without a budget or for a spec that does not parse: the start reports that); 1 when a
 * pause, cancel or stop came first (run->stop says which); -1 with `why` when the job could
 * never fit. */
int admit_job(struct service *d, store_t *st, job_run *run, uint64_t *charge, char *why,
              size_t size);

/* The ranks of a job that run on this machine: all of its world_size, unless --mpi-hosts
 * sends them to other hosts (then one is counted). */
int admit_local_ranks(const daemon_opts *o, const job_spec *spec);

/* The job's memory estimate (core/memest.h) with what the store knows of its uploaded data:
 * a data set's rows and size, an uploaded corpus's size (`ref`: the data set the job was
 * bound to, or NULL for the one its spec names), and its ranks on this machine. */
struct mem_estimate;
void admit_estimate(const daemon_opts *o, store_t *st, const job_spec *spec, const char *ref,
                    struct mem_estimate *m);

/* 1 with a message in msg when the store's file system has less free space than
 * --min-free-disk (training pauses, checkpointed, before the disk fills); else 0. */
int admit_disk_low(const daemon_opts *o, char *msg, size_t size);

#endif
