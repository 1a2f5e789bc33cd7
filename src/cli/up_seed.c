/* `agora up --seed`: runs seed_run in a thread once the platform is ready, beside the loop. */
#include "cli/up_seed.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/token.h"
#include "core/banned.h"

enum { UP_SEED_TOKEN_TTL_S = 3600 };

static void *up_seed_thread(void *arg)
{
    struct up_seed *sd = arg;
    sd->rc = seed_run(&sd->opt, &sd->res, &sd->err);
    atomic_store(&sd->finished, true);
    char byte = 0;
    ssize_t ignored = write(sd->wake_fd, &byte, 1); /* wakes the loop up */
    (void)ignored;
    return NULL;
}

/* Starts the seed thread (signals stay with the main thread); line says how, either way. */
void up_seed_start(struct up_seed *sd, const struct platform *p, int wake_fd, char *line,
                   size_t size)
{
    struct ag_err err = {0};
    sd->state = UP_SEED_DONE;
    sd->wake_fd = wake_fd;
    if (token_mint_admin(p, "agora-seed", NULL, UP_SEED_TOKEN_TTL_S, &sd->token, &err) < 0) {
        snprintf(line, size, "seed: %s", err.msg);
        return;
    }
    sd->opt = (struct seed_options){.url = seed_gateway_url(p),
                                    .token = sd->token,
                                    .products = SEED_DEFAULT_PRODUCTS,
                                    .concurrency = SEED_DEFAULT_CONCURRENCY,
                                    .only_if_empty = true,
                                    .cancel = &sd->cancel};
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    int rc = pthread_create(&sd->thread, NULL, up_seed_thread, sd);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc != 0) {
        snprintf(line, size, "seed: cannot start a thread: %s", strerror(rc));
        return;
    }
    sd->state = UP_SEED_RUNNING;
    snprintf(line, size, "seeding the demo catalog through %s", sd->opt.url);
}

/*
 * Joins the seed thread once it finished and leaves its one summary line in line (then returns
 * true). With wait, cancels it and waits: only when no child runs any more (its calls then fail
 * at once), since the loop must keep draining the children's output while they stop.
 */
bool up_seed_finish(struct up_seed *sd, bool wait, bool stopping, char *line, size_t size)
{
    if (sd->state != UP_SEED_RUNNING)
        return false;
    if (stopping || wait)
        atomic_store(&sd->cancel, true);
    if (!wait && !atomic_load(&sd->finished))
        return false;
    pthread_join(sd->thread, NULL);
    sd->state = UP_SEED_DONE;
    if (sd->rc == 0) {
        char summary[512];
        seed_summary(&sd->res, summary, sizeof(summary));
        snprintf(line, size, "%s", summary);
        return true;
    }
    if (sd->rc != AG_ECLOSED && !stopping) {
        /* While stopping, a failure is the gateway going away: nothing to report. */
        snprintf(line, size, "seed failed: %s", sd->err.msg);
        return true;
    }
    return false;
}

void up_seed_release(struct up_seed *sd)
{
    free(sd->token);
    sd->token = NULL;
}
