/* The event loop: epoll readiness, timers (binary heap), cross-thread posts, signals. */
#include "core/loop.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>
#include <time.h>
#include <unistd.h>

#include "core/banned.h"

enum { EVENTS_PER_WAIT = 256 };

struct task {
    void (*fn)(void *arg);
    void *arg;
    struct task *next;
};

struct ag_loop {
    int epfd;
    uint64_t now_ms;
    atomic_bool stopping;

    struct ag_timer **heap; /* min-heap on deadline_ms */
    size_t heap_len, heap_cap;

    struct ag_io wake_io; /* eventfd: ag_loop_post and ag_loop_stop from other threads */
    pthread_mutex_t post_lock;
    struct task *posted_head, *posted_tail;

    struct ag_deferred *deferred_head, *deferred_tail; /* loop thread only */

    struct ag_io signal_io; /* signalfd, created on the first ag_loop_signal */
    sigset_t signal_mask;
    struct ag_signal *signals;

    /* The batch being dispatched, so ag_loop_io_remove can cancel pending readiness. */
    struct epoll_event *batch;
    int batch_len, batch_pos;
};

static uint64_t monotonic_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void run_posted(struct ag_io *io, unsigned events);
static void run_deferred(struct ag_loop *loop);

int ag_loop_new(struct ag_loop **out, struct ag_err *err)
{
    int rc = 0;
    struct ag_loop *loop = calloc(1, sizeof *loop);
    if (!loop)
        return ag_err_set(err, AG_ENOMEM, "out of memory creating an event loop");
    loop->epfd = -1;
    loop->wake_io.fd = -1;
    loop->signal_io.fd = -1;
    sigemptyset(&loop->signal_mask);
    pthread_mutex_init(&loop->post_lock, NULL);
    loop->now_ms = monotonic_ms();

    loop->epfd = epoll_create1(EPOLL_CLOEXEC);
    if (loop->epfd < 0) {
        rc = ag_err_sys(err, "epoll_create1");
        goto out;
    }
    int wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (wake_fd < 0) {
        rc = ag_err_sys(err, "eventfd");
        goto out;
    }
    rc = ag_loop_io_add(loop, &loop->wake_io, wake_fd, AG_IO_READ, run_posted);
    if (rc < 0) {
        close(wake_fd);
        ag_err_sys(err, "epoll_ctl(eventfd)");
        goto out;
    }
out:
    if (rc < 0) {
        ag_loop_free(loop);
        return rc;
    }
    *out = loop;
    return 0;
}

static void free_tasks(struct task *t)
{
    while (t) {
        struct task *next = t->next;
        free(t);
        t = next;
    }
}

void ag_loop_free(struct ag_loop *loop)
{
    if (!loop)
        return;
    run_deferred(loop); /* usually frees of objects closed in the last iteration */
    if (loop->wake_io.fd >= 0)
        close(loop->wake_io.fd);
    if (loop->signal_io.fd >= 0)
        close(loop->signal_io.fd);
    if (loop->epfd >= 0)
        close(loop->epfd);
    free_tasks(loop->posted_head);
    pthread_mutex_destroy(&loop->post_lock);
    free(loop->heap);
    free(loop);
}

uint64_t ag_loop_now(const struct ag_loop *loop)
{
    return loop->now_ms;
}

uint64_t ag_loop_update_time(struct ag_loop *loop)
{
    loop->now_ms = monotonic_ms();
    return loop->now_ms;
}

/* ---- fds ---- */

static uint32_t to_epoll(unsigned events)
{
    uint32_t ev = 0;
    if (events & AG_IO_READ)
        ev |= EPOLLIN | EPOLLRDHUP;
    if (events & AG_IO_WRITE)
        ev |= EPOLLOUT;
    if (events & AG_IO_EDGE)
        ev |= EPOLLET;
    return ev;
}

int ag_loop_io_add(struct ag_loop *loop, struct ag_io *io, int fd, unsigned events, ag_io_cb cb)
{
    struct epoll_event ev = {.events = to_epoll(events), .data.ptr = io};
    if (epoll_ctl(loop->epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
        io->fd = -1; /* not watched: nothing of the loop's may close or remove it */
        return AG_ESYS;
    }
    io->fd = fd;
    io->cb = cb;
    return 0;
}

int ag_loop_io_modify(struct ag_loop *loop, struct ag_io *io, unsigned events)
{
    struct epoll_event ev = {.events = to_epoll(events), .data.ptr = io};
    if (epoll_ctl(loop->epfd, EPOLL_CTL_MOD, io->fd, &ev) < 0)
        return AG_ESYS;
    return 0;
}

void ag_loop_io_remove(struct ag_loop *loop, struct ag_io *io)
{
    if (io->fd >= 0)
        epoll_ctl(loop->epfd, EPOLL_CTL_DEL, io->fd, NULL);
    for (int i = loop->batch_pos; i < loop->batch_len; i++)
        if (loop->batch[i].data.ptr == io)
            loop->batch[i].data.ptr = NULL;
}

/* ---- timers ---- */

static void heap_place(struct ag_loop *loop, size_t i, struct ag_timer *t)
{
    loop->heap[i] = t;
    t->heap_index = i;
}

static void heap_sift_up(struct ag_loop *loop, size_t i)
{
    struct ag_timer *t = loop->heap[i];
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (loop->heap[parent]->deadline_ms <= t->deadline_ms)
            break;
        heap_place(loop, i, loop->heap[parent]);
        i = parent;
    }
    heap_place(loop, i, t);
}

static void heap_sift_down(struct ag_loop *loop, size_t i)
{
    struct ag_timer *t = loop->heap[i];
    for (;;) {
        size_t child = 2 * i + 1;
        if (child >= loop->heap_len)
            break;
        if (child + 1 < loop->heap_len &&
            loop->heap[child + 1]->deadline_ms < loop->heap[child]->deadline_ms)
            child++;
        if (t->deadline_ms <= loop->heap[child]->deadline_ms)
            break;
        heap_place(loop, i, loop->heap[child]);
        i = child;
    }
    heap_place(loop, i, t);
}

void ag_timer_init(struct ag_timer *timer, ag_timer_cb cb)
{
    timer->deadline_ms = 0;
    timer->heap_index = SIZE_MAX;
    timer->cb = cb;
}

bool ag_timer_active(const struct ag_timer *timer)
{
    return timer->heap_index != SIZE_MAX;
}

void ag_timer_stop(struct ag_loop *loop, struct ag_timer *timer)
{
    size_t i = timer->heap_index;
    if (i == SIZE_MAX)
        return;
    timer->heap_index = SIZE_MAX;
    struct ag_timer *last = loop->heap[--loop->heap_len];
    if (i == loop->heap_len)
        return;
    heap_place(loop, i, last);
    if (i > 0 && loop->heap[(i - 1) / 2]->deadline_ms > last->deadline_ms)
        heap_sift_up(loop, i);
    else
        heap_sift_down(loop, i);
}

int ag_timer_start(struct ag_loop *loop, struct ag_timer *timer, uint64_t delay_ms)
{
    ag_timer_stop(loop, timer);
    if (loop->heap_len == loop->heap_cap) {
        size_t cap = loop->heap_cap ? loop->heap_cap * 2 : 64;
        struct ag_timer **heap = realloc(loop->heap, cap * sizeof *heap);
        if (!heap)
            return AG_ENOMEM;
        loop->heap = heap;
        loop->heap_cap = cap;
    }
    timer->deadline_ms = loop->now_ms + delay_ms;
    heap_place(loop, loop->heap_len++, timer);
    heap_sift_up(loop, timer->heap_index);
    return 0;
}

static void run_timers(struct ag_loop *loop)
{
    /*
     * At most as many callbacks as timers were scheduled on entry: a timer that restarts itself
     * with no delay fires again on the next iteration, after I/O, instead of starving it.
     */
    for (size_t budget = loop->heap_len;
         budget > 0 && loop->heap_len > 0 && loop->heap[0]->deadline_ms <= loop->now_ms; budget--) {
        struct ag_timer *t = loop->heap[0];
        ag_timer_stop(loop, t);
        t->cb(t);
    }
}

/* ---- posts and defers ---- */

static int push_task(struct task **head, struct task **tail, void (*fn)(void *), void *arg)
{
    struct task *t = malloc(sizeof *t);
    if (!t)
        return AG_ENOMEM;
    *t = (struct task){fn, arg, NULL};
    if (*tail)
        (*tail)->next = t;
    else
        *head = t;
    *tail = t;
    return 0;
}

static void wake(struct ag_loop *loop)
{
    uint64_t one = 1;
    ssize_t n = write(loop->wake_io.fd, &one, sizeof one);
    (void)n; /* EAGAIN means the counter is already non-zero: the loop will wake anyway */
}

int ag_loop_post(struct ag_loop *loop, void (*fn)(void *arg), void *arg)
{
    pthread_mutex_lock(&loop->post_lock);
    int rc = push_task(&loop->posted_head, &loop->posted_tail, fn, arg);
    pthread_mutex_unlock(&loop->post_lock);
    if (rc == 0)
        wake(loop);
    return rc;
}

static void run_posted(struct ag_io *io, unsigned events)
{
    (void)events;
    struct ag_loop *loop = AG_CONTAINER_OF(io, struct ag_loop, wake_io);
    uint64_t count;
    while (read(io->fd, &count, sizeof count) > 0) {
    }
    pthread_mutex_lock(&loop->post_lock);
    struct task *t = loop->posted_head;
    loop->posted_head = loop->posted_tail = NULL;
    pthread_mutex_unlock(&loop->post_lock);
    while (t) {
        struct task *next = t->next;
        t->fn(t->arg);
        free(t);
        t = next;
    }
}

void ag_deferred_init(struct ag_deferred *d, void (*fn)(struct ag_deferred *d))
{
    *d = (struct ag_deferred){.fn = fn};
}

bool ag_deferred_queued(const struct ag_deferred *d)
{
    return d->queued;
}

void ag_loop_defer_node(struct ag_loop *loop, struct ag_deferred *d)
{
    if (d->queued)
        return;
    d->queued = true;
    d->next = NULL;
    if (loop->deferred_tail)
        loop->deferred_tail->next = d;
    else
        loop->deferred_head = d;
    loop->deferred_tail = d;
}

void ag_loop_defer_cancel(struct ag_loop *loop, struct ag_deferred *d)
{
    if (!d->queued)
        return;
    struct ag_deferred *prev = NULL;
    for (struct ag_deferred *it = loop->deferred_head; it; prev = it, it = it->next) {
        if (it != d)
            continue;
        if (prev)
            prev->next = d->next;
        else
            loop->deferred_head = d->next;
        if (loop->deferred_tail == d)
            loop->deferred_tail = prev;
        break;
    }
    d->queued = false;
}

/* A one-off deferred call: the node and its argument, freed once it ran. */
struct deferred_task {
    struct ag_deferred node;
    void (*fn)(void *arg);
    void *arg;
};

static void run_deferred_task(struct ag_deferred *d)
{
    struct deferred_task *t = AG_CONTAINER_OF(d, struct deferred_task, node);
    void (*fn)(void *) = t->fn;
    void *arg = t->arg;
    free(t);
    fn(arg);
}

int ag_loop_defer(struct ag_loop *loop, void (*fn)(void *arg), void *arg)
{
    struct deferred_task *t = malloc(sizeof *t);
    if (!t)
        return AG_ENOMEM;
    ag_deferred_init(&t->node, run_deferred_task);
    t->fn = fn;
    t->arg = arg;
    ag_loop_defer_node(loop, &t->node);
    return 0;
}

static void run_deferred(struct ag_loop *loop)
{
    /* Nodes queued while this runs (a callback deferring more) run in the same pass. */
    while (loop->deferred_head) {
        struct ag_deferred *d = loop->deferred_head;
        loop->deferred_head = d->next;
        if (!loop->deferred_head)
            loop->deferred_tail = NULL;
        d->queued = false;
        d->fn(d);
    }
}

void ag_loop_stop(struct ag_loop *loop)
{
    atomic_store(&loop->stopping, true);
    wake(loop);
}

/* ---- signals ---- */

int ag_signals_block(const int *signos, size_t count, struct ag_err *err)
{
    sigset_t set;
    sigemptyset(&set);
    for (size_t i = 0; i < count; i++)
        sigaddset(&set, signos[i]);
    int e = pthread_sigmask(SIG_BLOCK, &set, NULL);
    if (e != 0) {
        errno = e;
        return ag_err_sys(err, "pthread_sigmask");
    }
    return 0;
}

static void dispatch_signals(struct ag_io *io, unsigned events)
{
    (void)events;
    struct ag_loop *loop = AG_CONTAINER_OF(io, struct ag_loop, signal_io);
    struct signalfd_siginfo info;
    while (read(io->fd, &info, sizeof info) == (ssize_t)sizeof info) {
        for (struct ag_signal *s = loop->signals; s; s = s->next)
            if (s->signo == (int)info.ssi_signo)
                s->cb(s, s->signo);
    }
}

int ag_loop_signal(struct ag_loop *loop, struct ag_signal *sig, int signo, ag_signal_cb cb)
{
    sigaddset(&loop->signal_mask, signo);
    int fd = signalfd(loop->signal_io.fd, &loop->signal_mask, SFD_NONBLOCK | SFD_CLOEXEC);
    if (fd < 0)
        return AG_ESYS;
    if (loop->signal_io.fd < 0 &&
        ag_loop_io_add(loop, &loop->signal_io, fd, AG_IO_READ, dispatch_signals) < 0) {
        close(fd);
        return AG_ESYS;
    }
    sig->signo = signo;
    sig->cb = cb;
    sig->next = loop->signals;
    loop->signals = sig;
    return 0;
}

/* ---- run ---- */

static int next_timeout(const struct ag_loop *loop)
{
    if (loop->deferred_head)
        return 0;
    if (loop->heap_len == 0)
        return -1;
    uint64_t deadline = loop->heap[0]->deadline_ms;
    if (deadline <= loop->now_ms)
        return 0;
    uint64_t wait = deadline - loop->now_ms;
    return wait > 60000 ? 60000 : (int)wait;
}

int ag_loop_run(struct ag_loop *loop)
{
    struct epoll_event events[EVENTS_PER_WAIT];
    while (!atomic_load(&loop->stopping)) {
        int n = epoll_wait(loop->epfd, events, EVENTS_PER_WAIT, next_timeout(loop));
        loop->now_ms = monotonic_ms();
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return AG_ESYS;
        }
        loop->batch = events;
        loop->batch_len = n;
        for (loop->batch_pos = 0; loop->batch_pos < n;) {
            struct epoll_event *ev = &events[loop->batch_pos++];
            struct ag_io *io = ev->data.ptr;
            if (!io)
                continue;
            unsigned bits = 0;
            if (ev->events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR))
                bits |= AG_IO_READ;
            if (ev->events & (EPOLLOUT | EPOLLHUP | EPOLLERR))
                bits |= AG_IO_WRITE;
            io->cb(io, bits);
        }
        loop->batch = NULL;
        loop->batch_len = loop->batch_pos = 0;
        run_timers(loop);
        run_deferred(loop);
    }
    atomic_store(&loop->stopping, false); /* a later run starts afresh */
    return 0;
}
