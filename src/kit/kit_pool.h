/* A fixed pool of handler threads fed by one bounded FIFO queue of jobs. */
#ifndef KIT_POOL_H
#define KIT_POOL_H

#include <stddef.h>

#include "core/err.h"

struct kit_pool;

/* A job, embedded in its owner. run is called on a pool thread with that thread's data. */
struct kit_pool_job {
    struct kit_pool_job *next;
    void (*run)(struct kit_pool_job *job, void *thread_data);
};

struct kit_pool_config {
    unsigned threads;  /* at least 1 */
    size_t max_queued; /* jobs waiting (not running); a submit beyond is refused */
    /*
     * Optional: runs first on each thread (open its database connection, its caches). Returns 0
     * and *data, or a negative code: kit_pool_new then fails with that code (err from the
     * first failing thread).
     */
    int (*thread_start)(unsigned index, void *ctx, void **data, struct ag_err *err);
    /* Optional: runs last on each thread that started, with its data. */
    void (*thread_stop)(unsigned index, void *ctx, void *data);
    void *ctx;
    /* Optional: called (under the queue's lock: keep it cheap) with the new queue length. */
    void (*on_queued)(size_t queued, void *ctx);
};

/*
 * Starts cfg->threads threads and waits until each ran thread_start. Returns 0 and *out; the
 * code of a failed thread_start (every thread then stopped); AG_ESYS; AG_ENOMEM.
 */
int kit_pool_new(const struct kit_pool_config *cfg, struct kit_pool **out, struct ag_err *err);

/*
 * Queues job (its owner must live until run returns). Thread-safe. Returns 0; AG_ERANGE when
 * max_queued jobs are waiting (the caller answers 503); AG_ECLOSED after kit_pool_stop began.
 */
int kit_pool_submit(struct kit_pool *pool, struct kit_pool_job *job);

/* Jobs waiting now (a snapshot). */
size_t kit_pool_queued(struct kit_pool *pool);

/*
 * Refuses new jobs, lets the threads run every job already queued, runs thread_stop on each,
 * and joins them. Then frees the pool. NULL allowed.
 */
void kit_pool_free(struct kit_pool *pool);

#endif
