/* The event loop: epoll readiness, timers (binary heap), cross-thread posts, signals. */
#ifndef AG_LOOP_H
#define AG_LOOP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/err.h"

/* The struct that holds `member` at address ptr. */
#define AG_CONTAINER_OF(ptr, type, member) ((type *)(void *)((char *)(ptr)-offsetof(type, member)))

struct ag_loop;

/* Readiness bits passed to and reported by the loop. Errors and hang-ups report both bits. */
enum {
    AG_IO_READ = 1u << 0,
    AG_IO_WRITE = 1u << 1,
    AG_IO_EDGE = 1u << 2, /* edge-triggered: report each transition once; read/write until EAGAIN */
};

struct ag_io;
typedef void (*ag_io_cb)(struct ag_io *io, unsigned events);

/* A file descriptor watched by a loop; embed it in the owner and use AG_CONTAINER_OF. */
struct ag_io {
    int fd;
    ag_io_cb cb;
};

struct ag_timer;
typedef void (*ag_timer_cb)(struct ag_timer *timer);

/* A one-shot timer; embed it in the owner. Restart it from its callback to repeat. */
struct ag_timer {
    uint64_t deadline_ms;
    size_t heap_index; /* SIZE_MAX when not scheduled */
    ag_timer_cb cb;
};

struct ag_signal;
typedef void (*ag_signal_cb)(struct ag_signal *sig, int signo);

/* A signal delivered through the loop's signalfd; embed it in the owner. */
struct ag_signal {
    int signo;
    ag_signal_cb cb;
    struct ag_signal *next;
};

/*
 * Creates a loop (epoll instance and eventfd). Returns 0 and *out, or AG_ESYS / AG_ENOMEM with
 * err filled. The loop belongs to the thread that runs it; only ag_loop_post and ag_loop_stop
 * may be called from other threads.
 */
int ag_loop_new(struct ag_loop **out, struct ag_err *err);

/* Frees the loop: pending defers run first, pending posts are dropped; fds are not closed. */
void ag_loop_free(struct ag_loop *loop);

/*
 * Runs until ag_loop_stop. Callbacks run on this thread. Returns 0 after a stop, AG_ESYS when
 * epoll_wait fails for a reason other than EINTR.
 */
int ag_loop_run(struct ag_loop *loop);

/*
 * Makes ag_loop_run return after the current iteration, or at once if it is called before the
 * run starts. Safe from any thread.
 */
void ag_loop_stop(struct ag_loop *loop);

/* Milliseconds on the monotonic clock, cached at the start of each iteration. */
uint64_t ag_loop_now(const struct ag_loop *loop);

/* Refreshes the cached time (for long callbacks that need a precise now). */
uint64_t ag_loop_update_time(struct ag_loop *loop);

/*
 * Watches fd for the AG_IO_* bits in events and calls cb on readiness. Returns 0, or AG_ESYS
 * with io->fd set to -1 (the loop then holds nothing of fd). The fd stays owned by the caller.
 */
int ag_loop_io_add(struct ag_loop *loop, struct ag_io *io, int fd, unsigned events, ag_io_cb cb);

/* Changes the watched bits. Returns 0 or AG_ESYS. */
int ag_loop_io_modify(struct ag_loop *loop, struct ag_io *io, unsigned events);

/*
 * Stops watching io (the fd is not closed). Readiness already collected for io in this
 * iteration is dropped, so the owner may be freed through ag_loop_defer from its own callback.
 */
void ag_loop_io_remove(struct ag_loop *loop, struct ag_io *io);

/* Prepares a timer that is not scheduled. */
void ag_timer_init(struct ag_timer *timer, ag_timer_cb cb);

/*
 * Schedules timer to fire delay_ms after ag_loop_now (rescheduling it when already active).
 * Returns 0 or AG_ENOMEM (the heap could not grow; the timer is then not scheduled).
 */
int ag_timer_start(struct ag_loop *loop, struct ag_timer *timer, uint64_t delay_ms);

/* Unschedules timer; harmless when it is not scheduled. */
void ag_timer_stop(struct ag_loop *loop, struct ag_timer *timer);

/* True while timer is scheduled. */
bool ag_timer_active(const struct ag_timer *timer);

/*
 * Runs fn(arg) on the loop's thread during its next iteration. Safe from any thread, and the
 * only loop call that is. Returns 0 or AG_ENOMEM.
 */
int ag_loop_post(struct ag_loop *loop, void (*fn)(void *arg), void *arg);

/*
 * A deferred call embedded in its owner, so that scheduling it cannot fail (no allocation).
 * Prepare it with ag_deferred_init; fn gets the node back (use AG_CONTAINER_OF).
 */
struct ag_deferred {
    void (*fn)(struct ag_deferred *d);
    struct ag_deferred *next;
    bool queued;
};

/* Prepares d, not queued, to call fn. */
void ag_deferred_init(struct ag_deferred *d, void (*fn)(struct ag_deferred *d));

/*
 * Queues d to run on this loop's thread once the current batch of callbacks is over, in the
 * order queued; the way to act after, or free an object from inside, its own callback. A d
 * already queued stays queued once. Never fails.
 */
void ag_loop_defer_node(struct ag_loop *loop, struct ag_deferred *d);

/* Takes d off the queue if it is there (before freeing its owner, say). */
void ag_loop_defer_cancel(struct ag_loop *loop, struct ag_deferred *d);

/* True while d is queued. */
bool ag_deferred_queued(const struct ag_deferred *d);

/*
 * As ag_loop_defer_node for a one-off fn(arg) with no node of its own: allocates one.
 * Returns 0 or AG_ENOMEM (then fn will not run).
 */
int ag_loop_defer(struct ag_loop *loop, void (*fn)(void *arg), void *arg);

/*
 * Delivers signo through the loop. The signal must already be blocked in every thread (see
 * ag_signals_block) or the default action may run instead. Returns 0 or AG_ESYS.
 */
int ag_loop_signal(struct ag_loop *loop, struct ag_signal *sig, int signo, ag_signal_cb cb);

/*
 * Blocks the listed signals in the calling thread; call it in main() before starting threads so
 * that every thread inherits the mask and signals reach only signalfds. Returns 0 or AG_ESYS.
 */
int ag_signals_block(const int *signos, size_t count, struct ag_err *err);

#endif
