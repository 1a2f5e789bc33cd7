/* Unit tests for src/core/loop.c: timer order, posts, defers, fd readiness and signals. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "core/err.h"
#include "core/loop.h"

/*
 * No test here measures time. Timer tests check the order in which timers fire and that none
 * fires before its deadline by the loop's own clock. Tests that wait for something from outside
 * (a thread, a signal) also start a watchdog timer of WATCHDOG_MS that stops the loop and marks
 * the test failed, so a missed wake-up fails the test instead of hanging it.
 */
enum { WATCHDOG_MS = 30000 };

static struct ag_loop *loop;

static int loop_setup(void **state)
{
    (void)state;
    struct ag_err err = {0};
    int rc = ag_loop_new(&loop, &err);
    if (rc != 0)
        print_error("ag_loop_new: %s\n", err.msg);
    return rc;
}

static int loop_teardown(void **state)
{
    (void)state;
    ag_loop_free(loop);
    loop = NULL;
    return 0;
}

/* What fired, in order. */
static int fired[1024];
static size_t fired_count;

static void note(int id)
{
    assert_true(fired_count < sizeof fired / sizeof fired[0]);
    fired[fired_count++] = id;
}

static void expect_fired(const int *want, size_t count)
{
    for (size_t i = 0; i < count && i < fired_count; i++)
        if (fired[i] != want[i])
            print_error("position %zu: fired %d, want %d\n", i, fired[i], want[i]);
    assert_int_equal(fired_count, count);
    assert_memory_equal(fired, want, count * sizeof *want);
}

static bool watchdog_fired;

static void on_watchdog(struct ag_timer *t)
{
    (void)t;
    watchdog_fired = true;
    ag_loop_stop(loop);
}

static struct ag_timer watchdog;

static void start_watchdog(void)
{
    watchdog_fired = false;
    ag_timer_init(&watchdog, on_watchdog);
    assert_int_equal(ag_timer_start(loop, &watchdog, WATCHDOG_MS), 0);
}

/* ---- timers ---- */

struct test_timer {
    struct ag_timer timer;
    int id;
    bool stops_loop;
};

static void on_test_timer(struct ag_timer *t)
{
    struct test_timer *tt = AG_CONTAINER_OF(t, struct test_timer, timer);
    assert_false(ag_timer_active(t));                 /* unscheduled before its callback runs */
    assert_true(ag_loop_now(loop) >= t->deadline_ms); /* never early by the loop's clock */
    note(tt->id);
    if (tt->stops_loop)
        ag_loop_stop(loop);
}

static void timers_fire_in_deadline_order(void **state)
{
    (void)state;
    fired_count = 0;
    static const uint64_t delays[] = {20, 5, 10, 1, 15, 2};
    struct test_timer timers[6];
    for (int i = 0; i < 6; i++) {
        timers[i] = (struct test_timer){.id = i, .stops_loop = delays[i] == 20};
        ag_timer_init(&timers[i].timer, on_test_timer);
        assert_false(ag_timer_active(&timers[i].timer));
        assert_int_equal(ag_timer_start(loop, &timers[i].timer, delays[i]), 0);
        assert_true(ag_timer_active(&timers[i].timer));
    }
    assert_int_equal(ag_loop_run(loop), 0);
    static const int want[] = {3, 5, 1, 2, 4, 0};
    expect_fired(want, 6);
}

static void timer_stop_and_restart(void **state)
{
    (void)state;
    fired_count = 0;
    struct test_timer a = {.id = 'A'}, b = {.id = 'B'}, c = {.id = 'C', .stops_loop = true},
                      d = {.id = 'D'}, e = {.id = 'E'};
    ag_timer_init(&a.timer, on_test_timer);
    ag_timer_init(&b.timer, on_test_timer);
    ag_timer_init(&c.timer, on_test_timer);
    ag_timer_init(&d.timer, on_test_timer);
    ag_timer_init(&e.timer, on_test_timer);
    ag_timer_stop(loop, &e.timer); /* stopping a timer never started is harmless */
    assert_int_equal(ag_timer_start(loop, &a.timer, 5), 0);
    assert_int_equal(ag_timer_start(loop, &b.timer, 10), 0);
    assert_int_equal(ag_timer_start(loop, &c.timer, 15), 0);
    assert_int_equal(ag_timer_start(loop, &d.timer, 1), 0);
    assert_int_equal(ag_timer_start(loop, &e.timer, 3), 0);

    ag_timer_stop(loop, &a.timer); /* A: stopped, then started again later than B */
    assert_false(ag_timer_active(&a.timer));
    ag_timer_stop(loop, &a.timer);
    assert_int_equal(ag_timer_start(loop, &a.timer, 12), 0);
    assert_int_equal(ag_timer_start(loop, &d.timer, 13), 0); /* D: rescheduled while active */
    ag_timer_stop(loop, &e.timer);                           /* E: never fires */

    assert_int_equal(ag_loop_run(loop), 0);
    static const int want[] = {'B', 'A', 'D', 'C'};
    expect_fired(want, 4);

    /* The loop can run again after a stop. */
    fired_count = 0;
    assert_int_equal(ag_timer_start(loop, &e.timer, 1), 0);
    e.stops_loop = true;
    assert_int_equal(ag_loop_run(loop), 0);
    static const int again[] = {'E'};
    expect_fired(again, 1);
}

enum { MANY = 500 };

struct random_timer {
    struct ag_timer timer;
    bool stopped;
    int fired;
};

static struct random_timer many[MANY];
static uint64_t many_deadlines[MANY];
static size_t many_fired, many_expected;

static void on_random_timer(struct ag_timer *t)
{
    struct random_timer *rt = AG_CONTAINER_OF(t, struct random_timer, timer);
    assert_true(ag_loop_now(loop) >= t->deadline_ms);
    rt->fired++;
    many_deadlines[many_fired++] = t->deadline_ms;
    if (many_fired == many_expected)
        ag_loop_stop(loop);
}

static void many_random_timers_fire_sorted(void **state)
{
    (void)state;
    uint32_t seed = 12345;
    many_fired = 0;
    many_expected = 0;
    for (size_t i = 0; i < MANY; i++) {
        seed = seed * 1103515245u + 12345u;
        many[i] = (struct random_timer){0};
        ag_timer_init(&many[i].timer, on_random_timer);
        assert_int_equal(ag_timer_start(loop, &many[i].timer, (seed >> 16) % 21), 0);
    }
    /* Stop a fifth of them and reschedule another fifth, in an order unrelated to the heap. */
    for (size_t i = 0; i < MANY; i++) {
        seed = seed * 1103515245u + 12345u;
        unsigned pick = (seed >> 16) % 5;
        if (pick == 0) {
            ag_timer_stop(loop, &many[i].timer);
            many[i].stopped = true;
        } else if (pick == 1) {
            assert_int_equal(ag_timer_start(loop, &many[i].timer, (seed >> 20) % 21), 0);
        }
    }
    for (size_t i = 0; i < MANY; i++)
        many_expected += !many[i].stopped;
    assert_true(many_expected > 0);

    assert_int_equal(ag_loop_run(loop), 0);
    assert_int_equal(many_fired, many_expected);
    for (size_t i = 1; i < many_fired; i++) {
        if (many_deadlines[i] < many_deadlines[i - 1])
            print_error("timer %zu fired with deadline %ju after one with %ju\n", i,
                        (uintmax_t)many_deadlines[i], (uintmax_t)many_deadlines[i - 1]);
        assert_true(many_deadlines[i] >= many_deadlines[i - 1]);
    }
    for (size_t i = 0; i < MANY; i++) {
        assert_int_equal(many[i].fired, many[i].stopped ? 0 : 1);
        assert_false(ag_timer_active(&many[i].timer));
    }
}

static struct test_timer chained_c, chained_d, chained_e;

static void on_chain_start(struct ag_timer *t)
{
    struct test_timer *tt = AG_CONTAINER_OF(t, struct test_timer, timer);
    note(tt->id);
    /* Started from a callback: deadlines count from the loop's now at this point. */
    ag_timer_init(&chained_c.timer, on_test_timer);
    ag_timer_init(&chained_d.timer, on_test_timer);
    ag_timer_init(&chained_e.timer, on_test_timer);
    chained_c.id = 'C';
    chained_d.id = 'D';
    chained_d.stops_loop = true;
    chained_e.id = 'E';
    assert_int_equal(ag_timer_start(loop, &chained_d.timer, 5), 0);
    assert_int_equal(ag_timer_start(loop, &chained_c.timer, 0), 0);
    assert_int_equal(ag_timer_start(loop, &chained_e.timer, 2), 0);
}

static int repeats;

static void on_repeat(struct ag_timer *t)
{
    if (++repeats < 5)
        assert_int_equal(ag_timer_start(loop, t, 1), 0); /* restart from its own callback */
}

static void timer_started_from_callback(void **state)
{
    (void)state;
    fired_count = 0;
    repeats = 0;
    struct test_timer a = {.id = 'A'};
    struct ag_timer repeat;
    ag_timer_init(&a.timer, on_chain_start);
    ag_timer_init(&repeat, on_repeat);
    assert_int_equal(ag_timer_start(loop, &a.timer, 1), 0);
    assert_int_equal(ag_timer_start(loop, &repeat, 1), 0);
    assert_int_equal(ag_loop_run(loop), 0);
    static const int want[] = {'A', 'C', 'E', 'D'};
    expect_fired(want, 4);
    /* The repeating timer may or may not be done by now; finish it. */
    struct test_timer last = {.id = 'Z', .stops_loop = true};
    ag_timer_init(&last.timer, on_test_timer);
    while (repeats < 5) {
        assert_int_equal(ag_timer_start(loop, &last.timer, 2), 0);
        assert_int_equal(ag_loop_run(loop), 0);
    }
    assert_int_equal(repeats, 5);
    assert_false(ag_timer_active(&repeat));
}

/* ---- posts from other threads ---- */

enum { POSTS = 200 };

struct post_item {
    int index;
};

static struct post_item post_items[POSTS];
static pthread_t loop_thread;
static int posts_run;
static bool posts_off_thread;

static void on_post(void *arg)
{
    struct post_item *item = arg;
    if (!pthread_equal(pthread_self(), loop_thread))
        posts_off_thread = true;
    note(item->index);
    posts_run++;
    if (item->index == POSTS - 1)
        ag_loop_stop(loop);
}

static void *poster(void *arg)
{
    (void)arg;
    for (int i = 0; i < POSTS; i++) {
        post_items[i].index = i;
        if (ag_loop_post(loop, on_post, &post_items[i]) != 0)
            abort();
    }
    return NULL;
}

static void post_from_thread_wakes_loop(void **state)
{
    (void)state;
    fired_count = 0;
    posts_run = 0;
    posts_off_thread = false;
    loop_thread = pthread_self();
    start_watchdog();
    pthread_t thread;
    assert_int_equal(pthread_create(&thread, NULL, poster, NULL), 0);
    assert_int_equal(ag_loop_run(loop), 0);
    assert_int_equal(pthread_join(thread, NULL), 0);
    assert_false(watchdog_fired);
    assert_false(posts_off_thread);
    assert_int_equal(posts_run, POSTS);
    int want[POSTS];
    for (int i = 0; i < POSTS; i++)
        want[i] = i; /* in the order posted */
    expect_fired(want, POSTS);
    ag_timer_stop(loop, &watchdog);
}

static atomic_bool loop_running;

static void on_running(struct ag_timer *t)
{
    (void)t;
    atomic_store(&loop_running, true);
}

static void *stopper(void *arg)
{
    (void)arg;
    while (!atomic_load(&loop_running))
        sched_yield();
    ag_loop_stop(loop);
    return NULL;
}

static void stop_from_thread_wakes_loop(void **state)
{
    (void)state;
    atomic_store(&loop_running, false);
    start_watchdog();
    struct ag_timer running;
    ag_timer_init(&running, on_running);
    assert_int_equal(ag_timer_start(loop, &running, 0), 0);
    pthread_t thread;
    assert_int_equal(pthread_create(&thread, NULL, stopper, NULL), 0);
    assert_int_equal(ag_loop_run(loop), 0); /* nothing left to wait for but the stop */
    assert_int_equal(pthread_join(thread, NULL), 0);
    assert_false(watchdog_fired);
    ag_timer_stop(loop, &watchdog);
}

/* ---- defers ---- */

struct pipe_watch {
    struct ag_io io;
    int id;
    int fds[2];
    int events;
};

static void open_pipe(struct pipe_watch *w, int id)
{
    w->id = id;
    w->events = 0;
    assert_int_equal(pipe(w->fds), 0);
}

static void close_pipe(struct pipe_watch *w)
{
    if (w->fds[0] >= 0)
        close(w->fds[0]);
    if (w->fds[1] >= 0)
        close(w->fds[1]);
}

static void on_deferred(void *arg)
{
    int id = *(int *)arg;
    note(id);
    if (id == 'd')
        ag_loop_stop(loop);
}

static int deferred_ids[] = {'D', 'd'};

static void on_nested_defer(void *arg)
{
    note(*(int *)arg);
    /* Deferred from a deferred function: runs in the same round, after this one. */
    assert_int_equal(ag_loop_defer(loop, on_deferred, &deferred_ids[1]), 0);
}

static void on_pipe_defers(struct ag_io *io, unsigned events)
{
    struct pipe_watch *w = AG_CONTAINER_OF(io, struct pipe_watch, io);
    assert_true(events & AG_IO_READ);
    char c;
    assert_int_equal(read(io->fd, &c, 1), 1);
    note(w->id);
    if (fired_count == 1)
        assert_int_equal(ag_loop_defer(loop, on_nested_defer, &deferred_ids[0]), 0);
}

static void defer_runs_after_callbacks(void **state)
{
    (void)state;
    fired_count = 0;
    struct pipe_watch a, b;
    open_pipe(&a, 'a');
    open_pipe(&b, 'b');
    assert_int_equal(ag_loop_io_add(loop, &a.io, a.fds[0], AG_IO_READ, on_pipe_defers), 0);
    assert_int_equal(ag_loop_io_add(loop, &b.io, b.fds[0], AG_IO_READ, on_pipe_defers), 0);
    struct test_timer t = {.id = 't'};
    ag_timer_init(&t.timer, on_test_timer);
    assert_int_equal(ag_timer_start(loop, &t.timer, 0), 0);
    /* Both pipes are readable and the timer is due before the loop first waits. */
    assert_int_equal(write(a.fds[1], "x", 1), 1);
    assert_int_equal(write(b.fds[1], "x", 1), 1);
    assert_int_equal(ag_loop_run(loop), 0);

    assert_int_equal(fired_count, 5);
    assert_true((fired[0] == 'a' && fired[1] == 'b') || (fired[0] == 'b' && fired[1] == 'a'));
    assert_int_equal(fired[2], 't'); /* timers after the fd callbacks */
    assert_int_equal(fired[3], 'D'); /* defers after everything in the iteration */
    assert_int_equal(fired[4], 'd');
    ag_loop_io_remove(loop, &a.io);
    ag_loop_io_remove(loop, &b.io);
    close_pipe(&a);
    close_pipe(&b);
}

/* ---- fd readiness ---- */

static void on_pipe_read(struct ag_io *io, unsigned events)
{
    struct pipe_watch *w = AG_CONTAINER_OF(io, struct pipe_watch, io);
    assert_true(events & AG_IO_READ);
    char buf[16];
    ssize_t n = read(io->fd, buf, sizeof buf);
    note(n > 0 ? buf[0] : 'E'); /* 'E': end of file */
    w->events++;
    ag_loop_stop(loop);
}

static void io_read_readiness(void **state)
{
    (void)state;
    fired_count = 0;
    struct pipe_watch w;
    open_pipe(&w, 'r');
    assert_int_equal(ag_loop_io_add(loop, &w.io, w.fds[0], AG_IO_READ, on_pipe_read), 0);
    assert_int_equal(write(w.fds[1], "q", 1), 1);
    assert_int_equal(ag_loop_run(loop), 0);
    /* The writer hangs up: the reader sees readiness and end of file. */
    close(w.fds[1]);
    w.fds[1] = -1;
    assert_int_equal(ag_loop_run(loop), 0);
    static const int want[] = {'q', 'E'};
    expect_fired(want, 2);
    ag_loop_io_remove(loop, &w.io);
    close_pipe(&w);
}

static void on_pipe_write(struct ag_io *io, unsigned events)
{
    (void)io;
    note(events & AG_IO_WRITE ? 'W' : '?');
    ag_loop_stop(loop);
}

static void io_modify_to_write(void **state)
{
    (void)state;
    fired_count = 0;
    struct pipe_watch w;
    open_pipe(&w, 'w');
    struct test_timer t = {.id = 't', .stops_loop = true};
    ag_timer_init(&t.timer, on_test_timer);
    /* Watching the write end for reading reports nothing; the timer ends the run. */
    assert_int_equal(ag_loop_io_add(loop, &w.io, w.fds[1], AG_IO_READ, on_pipe_write), 0);
    assert_int_equal(ag_timer_start(loop, &t.timer, 1), 0);
    assert_int_equal(ag_loop_run(loop), 0);
    assert_int_equal(ag_loop_io_modify(loop, &w.io, AG_IO_WRITE), 0);
    assert_int_equal(ag_loop_run(loop), 0);
    static const int want[] = {'t', 'W'};
    expect_fired(want, 2);
    ag_loop_io_remove(loop, &w.io);
    close_pipe(&w);
    /* Errors come back as AG_ESYS. */
    struct ag_io bad;
    assert_int_equal(ag_loop_io_add(loop, &bad, -1, AG_IO_READ, on_pipe_write), AG_ESYS);
}

/* Two watchers, each of which removes and frees the other from its callback. */
struct removing_watch {
    struct ag_io io;
    struct removing_watch **other; /* where the other one lives, NULL once freed */
    struct removing_watch **self;
};

static struct removing_watch *watch_a, *watch_b;
static int removing_calls;

static void free_watch(void *arg)
{
    free(arg);
    ag_loop_stop(loop);
}

static void on_removing(struct ag_io *io, unsigned events)
{
    (void)events;
    struct removing_watch *w = AG_CONTAINER_OF(io, struct removing_watch, io);
    removing_calls++;
    struct removing_watch *other = *w->other;
    if (other) {
        /* Its readiness is already in this batch: removing it must drop that. */
        ag_loop_io_remove(loop, &other->io);
        free(other); /* at once: the loop must not touch it again (ASan would tell) */
        *w->other = NULL;
    }
    ag_loop_io_remove(loop, io);
    *w->self = NULL;
    assert_int_equal(ag_loop_defer(loop, free_watch, w), 0); /* itself: after the callback */
}

static void io_remove_cancels_pending_readiness(void **state)
{
    (void)state;
    int p1[2], p2[2];
    assert_int_equal(pipe(p1), 0);
    assert_int_equal(pipe(p2), 0);
    watch_a = calloc(1, sizeof *watch_a);
    watch_b = calloc(1, sizeof *watch_b);
    assert_non_null(watch_a);
    assert_non_null(watch_b);
    *watch_a = (struct removing_watch){.other = &watch_b, .self = &watch_a};
    *watch_b = (struct removing_watch){.other = &watch_a, .self = &watch_b};
    assert_int_equal(ag_loop_io_add(loop, &watch_a->io, p1[0], AG_IO_READ, on_removing), 0);
    assert_int_equal(ag_loop_io_add(loop, &watch_b->io, p2[0], AG_IO_READ, on_removing), 0);
    assert_int_equal(write(p1[1], "x", 1), 1);
    assert_int_equal(write(p2[1], "x", 1), 1);
    removing_calls = 0;
    assert_int_equal(ag_loop_run(loop), 0);
    assert_int_equal(removing_calls, 1);
    assert_null(watch_a);
    assert_null(watch_b);
    close(p1[0]);
    close(p1[1]);
    close(p2[0]);
    close(p2[1]);
}

/* ---- signals ---- */

struct test_signal {
    struct ag_signal sig;
    int count;
};

static struct test_signal usr1, usr2;

static void on_signal(struct ag_signal *sig, int signo)
{
    struct test_signal *ts = AG_CONTAINER_OF(sig, struct test_signal, sig);
    assert_int_equal(signo, sig->signo);
    ts->count++;
    note(signo);
    if (usr1.count >= 2 && usr2.count >= 1)
        ag_loop_stop(loop);
}

static void on_raise_timer(struct ag_timer *t)
{
    (void)t;
    assert_int_equal(raise(SIGUSR1), 0); /* while the loop runs */
}

static void signals_through_signalfd(void **state)
{
    (void)state;
    fired_count = 0;
    usr1.count = usr2.count = 0;
    start_watchdog();
    assert_int_equal(ag_loop_signal(loop, &usr1.sig, SIGUSR1, on_signal), 0);
    assert_int_equal(ag_loop_signal(loop, &usr2.sig, SIGUSR2, on_signal), 0);
    /* Pending before the loop runs: one to this thread, one to the process. */
    assert_int_equal(raise(SIGUSR1), 0);
    assert_int_equal(kill(getpid(), SIGUSR2), 0);
    struct ag_timer later;
    ag_timer_init(&later, on_raise_timer);
    assert_int_equal(ag_timer_start(loop, &later, 1), 0);
    assert_int_equal(ag_loop_run(loop), 0);
    assert_false(watchdog_fired);
    assert_int_equal(usr1.count, 2);
    assert_int_equal(usr2.count, 1);
    assert_int_equal(fired_count, 3);
    ag_timer_stop(loop, &watchdog);
}

static void stop_before_run_returns_at_once(void **state)
{
    (void)state;
    fired_count = 0;
    struct test_timer t = {.id = 't', .stops_loop = true};
    ag_timer_init(&t.timer, on_test_timer);
    assert_int_equal(ag_timer_start(loop, &t.timer, 0), 0); /* due at once */
    ag_loop_stop(loop);
    assert_int_equal(ag_loop_run(loop), 0);
    assert_int_equal(fired_count, 0); /* no iteration ran */
    assert_true(ag_timer_active(&t.timer));
    /* The stop is used up: the next run goes on until the timer stops it. */
    assert_int_equal(ag_loop_run(loop), 0);
    static const int want[] = {'t'};
    expect_fired(want, 1);
}

static bool deferred_ran;

static void on_deferred_at_free(void *arg)
{
    assert_ptr_equal(arg, &deferred_ran);
    deferred_ran = true;
}

static void free_runs_pending_defers(void **state)
{
    (void)state;
    deferred_ran = false;
    assert_int_equal(ag_loop_defer(loop, on_deferred_at_free, &deferred_ran), 0);
    ag_loop_free(loop);
    loop = NULL; /* the teardown's ag_loop_free(NULL) does nothing */
    assert_true(deferred_ran);
}

/* Embedded deferred nodes: order of queueing, once per queueing, cancel anywhere in the queue. */
struct node_probe {
    struct ag_deferred node;
    int id;
};

static int node_order[8];
static size_t node_runs;

static void on_node(struct ag_deferred *d)
{
    struct node_probe *p = AG_CONTAINER_OF(d, struct node_probe, node);
    assert_true(node_runs < 8);
    assert_false(ag_deferred_queued(d)); /* off the queue before it runs: it may queue itself */
    node_order[node_runs++] = p->id;
}

static void on_node_stop(struct ag_timer *t)
{
    (void)t;
    ag_loop_stop(loop);
}

static void deferred_nodes_order_and_cancel(void **state)
{
    (void)state;
    struct node_probe p[5];
    for (int i = 0; i < 5; i++) {
        ag_deferred_init(&p[i].node, on_node);
        p[i].id = i;
        assert_false(ag_deferred_queued(&p[i].node));
    }
    node_runs = 0;
    ag_loop_defer_node(loop, &p[0].node);
    ag_loop_defer_node(loop, &p[1].node);
    ag_loop_defer_node(loop, &p[2].node);
    ag_loop_defer_node(loop, &p[0].node); /* already queued: stays where it is, runs once */
    ag_loop_defer_node(loop, &p[3].node);
    ag_loop_defer_node(loop, &p[4].node);
    assert_true(ag_deferred_queued(&p[2].node));
    ag_loop_defer_cancel(loop, &p[0].node); /* head */
    ag_loop_defer_cancel(loop, &p[2].node); /* middle */
    ag_loop_defer_cancel(loop, &p[4].node); /* tail */
    ag_loop_defer_cancel(loop, &p[4].node); /* not queued: nothing happens */
    assert_false(ag_deferred_queued(&p[4].node));
    ag_loop_defer_node(loop, &p[4].node); /* the tail was fixed: this goes last */
    struct ag_timer stop;
    ag_timer_init(&stop, on_node_stop);
    assert_int_equal(ag_timer_start(loop, &stop, 0), 0);
    assert_int_equal(ag_loop_run(loop), 0);
    assert_int_equal(node_runs, 3);
    assert_int_equal(node_order[0], 1);
    assert_int_equal(node_order[1], 3);
    assert_int_equal(node_order[2], 4);
}

static void clock_moves_forward(void **state)
{
    (void)state;
    uint64_t a = ag_loop_now(loop);
    uint64_t b = ag_loop_update_time(loop);
    assert_true(b >= a);
    assert_int_equal(ag_loop_now(loop), b);
}

/* ---- failures of epoll_ctl, injected ---- */

/*
 * The core is a static library linked into this program, so these definitions replace libc's
 * for it. They pass every call through, except that epoll_ctl(EPOLL_CTL_ADD) fails once when
 * fail_next_epoll_add is set, and close() counts calls on fds that are not open.
 */
static bool fail_next_epoll_add;
static bool watch_closes;
static int closes_of_unopened_fds;

int epoll_ctl(int epfd, int op, int fd, struct epoll_event *event)
{
    static int (*real_epoll_ctl)(int, int, int, struct epoll_event *);
    if (!real_epoll_ctl)
        *(void **)&real_epoll_ctl = dlsym(RTLD_NEXT, "epoll_ctl");
    if (op == EPOLL_CTL_ADD && fail_next_epoll_add) {
        fail_next_epoll_add = false;
        errno = ENOSPC; /* what the kernel says past max_user_watches */
        return -1;
    }
    return real_epoll_ctl(epfd, op, fd, event);
}

int close(int fd)
{
    static int (*real_close)(int);
    if (!real_close)
        *(void **)&real_close = dlsym(RTLD_NEXT, "close");
    if (watch_closes && fcntl(fd, F_GETFD) < 0)
        closes_of_unopened_fds++;
    return real_close(fd);
}

/*
 * Regression: when epoll_ctl fails in ag_loop_signal, the loop keeps no trace of the closed
 * signalfd. Its number once stayed in loop->signal_io.fd, so a later ag_loop_signal passed it to
 * signalfd() and ag_loop_free closed it again, by then a pipe the caller owned.
 */
static void signal_setup_failure_leaves_no_stale_fd(void **state)
{
    (void)state;
    static struct test_signal sig;
    fail_next_epoll_add = true;
    assert_int_equal(ag_loop_signal(loop, &sig.sig, SIGUSR1, on_signal), AG_ESYS);
    int fds[2];
    assert_int_equal(pipe(fds), 0); /* takes the lowest free numbers: the closed signalfd's */
    int retry = ag_loop_signal(loop, &sig.sig, SIGUSR1, on_signal);
    ag_loop_free(loop);
    loop = NULL;
    bool read_end_open = fcntl(fds[0], F_GETFD) >= 0, write_end_open = fcntl(fds[1], F_GETFD) >= 0;
    if (read_end_open)
        close(fds[0]);
    if (write_end_open)
        close(fds[1]);
    if (retry != 0)
        print_error("ag_loop_signal after a failed one gave %s\n", ag_err_name(retry));
    if (!read_end_open || !write_end_open)
        print_error("ag_loop_free closed the caller's pipe\n");
    assert_int_equal(retry, 0);
    assert_true(read_end_open && write_end_open);
}

/*
 * Regression: when epoll_ctl fails for the eventfd in ag_loop_new, the eventfd is closed once.
 * It was once closed again by ag_loop_free, which in a threaded program can hit an fd another
 * thread just opened.
 */
static void loop_new_failure_closes_once(void **state)
{
    (void)state;
    struct ag_loop *failed = NULL;
    struct ag_err err = {0};
    fail_next_epoll_add = true;
    closes_of_unopened_fds = 0;
    watch_closes = true;
    int rc = ag_loop_new(&failed, &err);
    watch_closes = false;
    assert_int_equal(rc, AG_ESYS);
    assert_null(failed);
    assert_int_equal(err.code, AG_ESYS);
    if (closes_of_unopened_fds)
        print_error("ag_loop_new closed %d fd(s) that were already closed\n",
                    closes_of_unopened_fds);
    assert_int_equal(closes_of_unopened_fds, 0);
}

int main(void)
{
    /* Blocked before any thread exists, so only the loop's signalfd sees them. */
    static const int signos[] = {SIGUSR1, SIGUSR2};
    struct ag_err err = {0};
    if (ag_signals_block(signos, 2, &err) != 0) {
        fprintf(stderr, "ag_signals_block: %s\n", err.msg);
        return 1;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(timers_fire_in_deadline_order, loop_setup, loop_teardown),
        cmocka_unit_test_setup_teardown(timer_stop_and_restart, loop_setup, loop_teardown),
        cmocka_unit_test_setup_teardown(many_random_timers_fire_sorted, loop_setup, loop_teardown),
        cmocka_unit_test_setup_teardown(timer_started_from_callback, loop_setup, loop_teardown),
        cmocka_unit_test_setup_teardown(post_from_thread_wakes_loop, loop_setup, loop_teardown),
        cmocka_unit_test_setup_teardown(stop_from_thread_wakes_loop, loop_setup, loop_teardown),
        cmocka_unit_test_setup_teardown(defer_runs_after_callbacks, loop_setup, loop_teardown),
        cmocka_unit_test_setup_teardown(io_read_readiness, loop_setup, loop_teardown),
        cmocka_unit_test_setup_teardown(io_modify_to_write, loop_setup, loop_teardown),
        cmocka_unit_test_setup_teardown(io_remove_cancels_pending_readiness, loop_setup,
                                        loop_teardown),
        cmocka_unit_test_setup_teardown(signals_through_signalfd, loop_setup, loop_teardown),
        cmocka_unit_test_setup_teardown(stop_before_run_returns_at_once, loop_setup, loop_teardown),
        cmocka_unit_test_setup_teardown(free_runs_pending_defers, loop_setup, loop_teardown),
        cmocka_unit_test_setup_teardown(deferred_nodes_order_and_cancel, loop_setup, loop_teardown),
        cmocka_unit_test_setup_teardown(clock_moves_forward, loop_setup, loop_teardown),
        cmocka_unit_test_setup_teardown(signal_setup_failure_leaves_no_stale_fd, loop_setup,
                                        loop_teardown),
        cmocka_unit_test(loop_new_failure_closes_once),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
