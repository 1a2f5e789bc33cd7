/* A fixed pool of handler threads fed by one bounded FIFO queue of jobs. */
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "kit/kit_pool.h"
#include "core/banned.h"

struct pool_thread {
    struct kit_pool *pool;
    unsigned index;
    pthread_t thread;
    void *data;
};

struct kit_pool {
    struct kit_pool_config cfg;
    pthread_mutex_t lock;
    pthread_cond_t work;    /* a job was queued, or the pool stops */
    pthread_cond_t started; /* a thread finished thread_start */
    struct kit_pool_job *head, *tail;
    size_t queued;
    bool stopping;
    unsigned created;  /* threads created */
    unsigned reported; /* threads that finished thread_start */
    int start_rc;      /* first failure of thread_start */
    struct ag_err start_err;
    struct pool_thread *threads;
};

static void *pool_main(void *arg)
{
    struct pool_thread *t = arg;
    struct kit_pool *p = t->pool;
    struct ag_err err = {0};
    int rc = p->cfg.thread_start ? p->cfg.thread_start(t->index, p->cfg.ctx, &t->data, &err) : 0;
    pthread_mutex_lock(&p->lock);
    if (rc < 0 && p->start_rc == 0) {
        p->start_rc = rc;
        p->start_err = err;
    }
    p->reported++;
    pthread_cond_broadcast(&p->started);
    pthread_mutex_unlock(&p->lock);
    if (rc < 0)
        return NULL;
    for (;;) {
        pthread_mutex_lock(&p->lock);
        while (!p->head && !p->stopping)
            pthread_cond_wait(&p->work, &p->lock);
        struct kit_pool_job *job = p->head;
        if (job) {
            p->head = job->next;
            if (!p->head)
                p->tail = NULL;
            p->queued--;
            if (p->cfg.on_queued)
                p->cfg.on_queued(p->queued, p->cfg.ctx);
        }
        pthread_mutex_unlock(&p->lock);
        if (!job)
            break; /* stopping and nothing left */
        job->next = NULL;
        job->run(job, t->data);
    }
    if (p->cfg.thread_stop)
        p->cfg.thread_stop(t->index, p->cfg.ctx, t->data);
    return NULL;
}

/* Stops and joins every created thread. */
static void pool_stop(struct kit_pool *p)
{
    pthread_mutex_lock(&p->lock);
    p->stopping = true;
    pthread_cond_broadcast(&p->work);
    pthread_mutex_unlock(&p->lock);
    for (unsigned i = 0; i < p->created; i++)
        pthread_join(p->threads[i].thread, NULL);
    p->created = 0;
}

int kit_pool_new(const struct kit_pool_config *cfg, struct kit_pool **out, struct ag_err *err)
{
    int rc = 0;
    if (cfg->threads == 0)
        return ag_err_set(err, AG_EINVAL, "a pool needs at least one thread");
    struct kit_pool *p = calloc(1, sizeof *p);
    if (!p)
        return ag_err_set(err, AG_ENOMEM, "out of memory");
    p->cfg = *cfg;
    pthread_mutex_init(&p->lock, NULL);
    pthread_cond_init(&p->work, NULL);
    pthread_cond_init(&p->started, NULL);
    p->threads = calloc(cfg->threads, sizeof *p->threads);
    if (!p->threads) {
        rc = ag_err_set(err, AG_ENOMEM, "out of memory");
        goto out;
    }
    for (unsigned i = 0; i < cfg->threads; i++) {
        p->threads[i] = (struct pool_thread){.pool = p, .index = i};
        int e = pthread_create(&p->threads[i].thread, NULL, pool_main, &p->threads[i]);
        if (e != 0) {
            errno = e;
            rc = ag_err_sys(err, "pthread_create");
            break;
        }
        p->created++;
    }
    pthread_mutex_lock(&p->lock);
    while (p->reported < p->created)
        pthread_cond_wait(&p->started, &p->lock);
    if (rc == 0 && p->start_rc < 0) {
        rc = p->start_rc;
        if (err)
            *err = p->start_err;
    }
    pthread_mutex_unlock(&p->lock);
out:
    if (rc < 0) {
        kit_pool_free(p);
        return rc;
    }
    *out = p;
    return 0;
}

int kit_pool_submit(struct kit_pool *p, struct kit_pool_job *job)
{
    int rc = 0;
    pthread_mutex_lock(&p->lock);
    if (p->stopping) {
        rc = AG_ECLOSED;
    } else if (p->queued >= p->cfg.max_queued) {
        rc = AG_ERANGE;
    } else {
        job->next = NULL;
        if (p->tail)
            p->tail->next = job;
        else
            p->head = job;
        p->tail = job;
        p->queued++;
        if (p->cfg.on_queued)
            p->cfg.on_queued(p->queued, p->cfg.ctx);
        pthread_cond_signal(&p->work);
    }
    pthread_mutex_unlock(&p->lock);
    return rc;
}

size_t kit_pool_queued(struct kit_pool *p)
{
    pthread_mutex_lock(&p->lock);
    size_t n = p->queued;
    pthread_mutex_unlock(&p->lock);
    return n;
}

void kit_pool_free(struct kit_pool *p)
{
    if (!p)
        return;
    pool_stop(p);
    pthread_cond_destroy(&p->work);
    pthread_cond_destroy(&p->started);
    pthread_mutex_destroy(&p->lock);
    free(p->threads);
    free(p);
}
