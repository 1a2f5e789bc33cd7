/* `agora up --seed`: runs seed_run in a thread once the platform is ready, beside the loop. */
#ifndef CLI_UP_SEED_H
#define CLI_UP_SEED_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>

#include "cli/platform.h"
#include "cli/seed.h"
#include "core/err.h"

enum {
    UP_SEED_LINE_MAX = 1024, /* room for the line up_seed_start and up_seed_finish leave */
};

/*
 * `agora up --seed`: once the platform is ready, a thread loads the demo catalog through the
 * gateway (a thread, so that the loop keeps draining the children's output meanwhile).
 */
enum up_seed_state { UP_SEED_OFF, UP_SEED_WANTED, UP_SEED_RUNNING, UP_SEED_DONE };

struct up_seed {
    enum up_seed_state state;
    pthread_t thread;
    int wake_fd; /* the thread writes one byte to it when it finishes */
    char *token;
    struct seed_options opt;
    struct seed_result res;
    struct ag_err err;
    int rc;
    atomic_bool cancel, finished;
};

/* Starts the thread through p's gateway (RUNNING, or DONE on failure); line: what to print. */
void up_seed_start(struct up_seed *sd, const struct platform *p, int wake_fd, char *line,
                   size_t size);

/* Joins the finished thread (wait: cancels it first). True when it left a line to print. */
bool up_seed_finish(struct up_seed *sd, bool wait, bool stopping, char *line, size_t size);

/* Frees the admin token, once the thread is joined (up_seed_finish with wait). */
void up_seed_release(struct up_seed *sd);

#endif
