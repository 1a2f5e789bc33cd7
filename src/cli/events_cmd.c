/* `agora events tail|dead|replay`: watch the event bus, list and replay the services' dead events.
 */
#include "cli/events_cmd.h"

#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli/cli_util.h"
#include "cli/http_call.h"
#include "cli/platform.h"
#include "cli/token.h"
#include "kit/bus.h"
#include "kit/bus_driver.h"
#include "core/banned.h"

enum {
    PATTERNS_MAX = 16,
    TAIL_BATCH = 64,
    TAIL_WAIT_MS = 200,   /* a fetch's wait: also how soon a stop signal is noticed */
    TAIL_RETRY_MS = 1000, /* after a lost connection (the driver reconnects on its next call) */
    CALL_TIMEOUT_MS = 15 * 1000,
    DEAD_PAGE = 100,
    DEAD_PAGES_MAX = 100,  /* at most 10,000 dead events listed per service */
    REPLAY_IDS_MAX = 1000, /* the kit's limit for one request */
    TOKEN_TTL_S = 300,
};

static const char DEAD_PATH[] = "/_kit/events/dead";
static const char REPLAY_PATH[] = "/_kit/events/replay";

void cmd_events_help(void)
{
    fputs("usage: agora events tail [--type PATTERN]... [--from-start] [--json] [--bus URL]\n"
          "       agora events dead [--service NAME]\n"
          "       agora events replay --service NAME (--all | EVENT_ID...)\n"
          "       (each also takes --config FILE, default " CLI_DEFAULT_CONFIG ")\n"
          "\n"
          "tail    prints each event on the bus as it flows, one line each:\n"
          "        HH:MM:SS.mmm type subject tenant id {data}  (the envelope's time, UTC), or\n"
          "        the whole CloudEvents envelope with --json; runs until Ctrl-C (exit 0).\n"
          "        --type PATTERN  a topic pattern over the type's words, repeatable: '*' is\n"
          "                        one word, '#' any number (default '#': everything)\n"
          "        --from-start    begin with the oldest event the bus holds (local bus; a\n"
          "                        RabbitMQ queue only sees what comes after it)\n"
          "        --bus URL       local:PATH or amqp://... (default: AGORA_BUS, else the\n"
          "                        platform file's)\n"
          "dead    lists the events each service on the bus gave up on after its retries\n"
          "        (GET /_kit/events/dead on the service's own port, with an admin token):\n"
          "        service, event id, type, attempts, when it failed, the last error.\n"
          "        --service NAME  only this process of the platform file\n"
          "replay  asks a service to deliver dead events again, with fresh attempts\n"
          "        (POST /_kit/events/replay); prints how many it accepted.\n"
          "        --all           every dead event of the service\n"
          "\n"
          "Exit status: 0, 1 on failure, 2 for usage.\n",
          stdout);
}

/* ---- tail ---- */

static volatile sig_atomic_t tail_stop;

static void on_stop_signal(int sig)
{
    (void)sig;
    tail_stop = 1;
}

/* The bus URL: --bus, else AGORA_BUS, else the platform file's defaults (which set it). */
static int bus_url(const char *given, const char *config, struct platform *platform,
                   const char **out)
{
    const char *env = getenv("AGORA_BUS");
    struct ag_err err = {0};
    if (given) {
        *out = given;
        return 0;
    }
    if (env && *env) {
        *out = env;
        return 0;
    }
    if (platform_load(platform, config, &err) < 0)
        return cli_fail("no bus URL: give --bus or set AGORA_BUS (%s)", err.msg);
    env = getenv("AGORA_BUS");
    if (!env || !*env)
        return cli_fail("no bus URL: give --bus, set AGORA_BUS or add it to the defaults of %s",
                        config);
    *out = env;
    return 0;
}

/* Prints one delivered envelope; a malformed one is reported on stderr and skipped. */
static void tail_print(const struct kit_bus_delivery *d, bool as_json)
{
    json_error_t jerr;
    json_t *env = json_loadb(d->envelope, d->len, 0, &jerr);
    if (!json_is_object(env)) {
        fprintf(stderr, "agora: skipping a malformed envelope (%s)\n", jerr.text);
        json_decref(env);
        return;
    }
    char *text = json_dumps(as_json ? env : json_object_get(env, "data"),
                            JSON_COMPACT | JSON_ENCODE_ANY | JSON_PRESERVE_ORDER);
    if (as_json) {
        printf("%s\n", text ? text : "{}");
    } else {
        /* RFC 3339 "YYYY-MM-DDTHH:MM:SS.mmmZ": the clock part is bytes 11 to 22. */
        const char *time_text = json_string_value(json_object_get(env, "time"));
        char clock[16] = "--:--:--.---";
        if (time_text && strlen(time_text) >= 23 && time_text[10] == 'T')
            snprintf(clock, sizeof(clock), "%.12s", time_text + 11);
        const char *fields[] = {"type", "subject", "tenant", "id"};
        const char *values[4];
        for (int i = 0; i < 4; i++) {
            values[i] = json_string_value(json_object_get(env, fields[i]));
            values[i] = values[i] && *values[i] ? values[i] : "-";
        }
        printf("%s %s %s %s %s %s\n", clock, values[0], values[1], values[2], values[3],
               text ? text : "null");
    }
    free(text);
    json_decref(env);
}

static int events_tail(int argc, char **argv)
{
    const char *config = CLI_DEFAULT_CONFIG, *given_bus = NULL, *url = NULL;
    const char *patterns[PATTERNS_MAX];
    size_t pattern_count = 0;
    bool from_start = false, as_json = false;
    for (int i = 1; i < argc; i++) {
        const char *type = NULL;
        int r;
        if (cli_is_help(argv[i])) {
            cmd_events_help();
            return CLI_EXIT_OK;
        }
        if (strcmp(argv[i], "--from-start") == 0) {
            from_start = true;
            continue;
        }
        if (strcmp(argv[i], "--json") == 0) {
            as_json = true;
            continue;
        }
        if ((r = cli_option("events tail", argc, argv, &i, "--type", &type)) < 0)
            return CLI_EXIT_USAGE;
        if (r > 0) {
            if (!*type || strlen(type) > KIT_EVENT_TYPE_MAX)
                return cli_usage("events", "--type: expected a pattern such as products.*.created");
            if (pattern_count == PATTERNS_MAX)
                return cli_usage("events", "more than %d --type patterns", PATTERNS_MAX);
            patterns[pattern_count++] = type;
            continue;
        }
        if ((r = cli_option("events tail", argc, argv, &i, "--bus", &given_bus)) < 0 ||
            (r == 0 && (r = cli_option("events tail", argc, argv, &i, "--config", &config)) < 0))
            return CLI_EXIT_USAGE;
        if (r == 0)
            return cli_usage("events", "tail: unknown argument %s", argv[i]);
    }
    if (pattern_count == 0)
        patterns[pattern_count++] = "#";

    struct platform platform;
    struct ag_err err = {0};
    struct kit_bus_sub *sub = NULL;
    const struct kit_bus_driver *drv = NULL;
    int rc = CLI_EXIT_OK;
    memset(&platform, 0, sizeof(platform));
    if ((rc = bus_url(given_bus, config, &platform, &url)) != 0)
        goto out;
    if (!(drv = kit_bus_driver_for(url, &err))) {
        rc = cli_usage("events", "%s", err.msg);
        goto out;
    }
    struct kit_bus_sub_config cfg = {.group = NULL,
                                     .patterns = patterns,
                                     .pattern_count = pattern_count,
                                     .prefetch = TAIL_BATCH,
                                     .from_start = from_start};
    if (drv->sub_open(url, &cfg, NULL, &sub, &err) < 0) {
        rc = cli_fail("cannot subscribe to the bus: %s", err.msg);
        goto out;
    }

    /* No SA_RESTART: a signal cuts a wait short; the fetch timeout bounds it anyway. */
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_stop_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    setvbuf(stdout, NULL, _IOLBF, 0); /* a line as soon as an event comes, even into a pipe */

    struct kit_bus_delivery batch[TAIL_BATCH];
    bool lost = false;
    while (!tail_stop) {
        int n = drv->fetch(sub, batch, TAIL_BATCH, TAIL_WAIT_MS, &err);
        if (n == AG_EUNAVAIL) {
            if (!lost)
                fprintf(stderr, "agora: lost the bus (%s); retrying\n", err.msg);
            lost = true;
            struct timespec ts = {TAIL_RETRY_MS / 1000, (TAIL_RETRY_MS % 1000) * 1000000L};
            nanosleep(&ts, NULL);
            continue;
        }
        if (n < 0) {
            rc = cli_fail("reading the bus: %s", err.msg);
            break;
        }
        if (lost && n >= 0)
            fprintf(stderr, "agora: the bus is back\n");
        lost = false;
        for (int i = 0; i < n; i++)
            tail_print(&batch[i], as_json);
        if (ferror(stdout)) {
            /* The reader went away (tail | head), or a stop signal cut a blocked write short. */
            rc =
                errno == EPIPE || tail_stop ? CLI_EXIT_OK : cli_fail("stdout: %s", strerror(errno));
            break;
        }
        /* An ephemeral subscriber keeps no position: record and settle only move it on. */
        if (n > 0 && (drv->record(sub, NULL, &batch[n - 1], &err) < 0 ||
                      drv->settle(sub, batch, (size_t)n, &err) < 0)) {
            rc = cli_fail("acknowledging events: %s", err.msg);
            break;
        }
    }
out:
    if (sub && drv->sub_close)
        drv->sub_close(sub);
    platform_release(&platform);
    return rc;
}

/* ---- dead and replay: the kit's endpoints on each service ---- */

/* The processes to ask: the one named, or every process on the bus that has a URL. */
static int pick_services(const struct platform *p, const char *name,
                         const struct platform_process **out, size_t *count)
{
    *count = 0;
    if (name) {
        const struct platform_process *proc = platform_find(p, name);
        if (!proc)
            return cli_fail("%s names no process named %s", p->path, name);
        if (!proc->url)
            return cli_fail("%s: the process %s has no url", p->path, name);
        out[(*count)++] = proc;
        return 0;
    }
    for (size_t i = 0; i < p->process_count; i++)
        if (p->processes[i].url && platform_process_env(&p->processes[i], "AGORA_BUS"))
            out[(*count)++] = &p->processes[i];
    if (*count == 0)
        return cli_fail("no process of %s is on the bus (none sets AGORA_BUS)", p->path);
    return 0;
}

/* An admin token for the services' kit endpoints (minted once per command). */
static int admin_token(const struct platform *p, char **token)
{
    struct ag_err err = {0};
    if (token_mint_admin(p, "agora-events", NULL, TOKEN_TTL_S, token, &err) < 0)
        return cli_fail("%s", err.msg);
    return CLI_EXIT_OK;
}

/* A session to proc's own port with token. */
static int service_session(const struct platform_process *proc, const char *token,
                           struct http_session **out)
{
    struct ag_err err = {0};
    if (http_session_new(proc->url, token, CALL_TIMEOUT_MS, out, &err) < 0)
        return cli_fail("%s: %s", proc->name, err.msg);
    return CLI_EXIT_OK;
}

/* Prints one dead event as a table row; the error on one line, cut at 100 characters. */
static void dead_row(const char *service, const json_t *item)
{
    char error[104];
    const char *error_text = json_string_value(json_object_get(item, "error"));
    size_t n = 0;
    for (const char *c = error_text ? error_text : ""; *c && n < 100; c++)
        error[n++] = *c == '\n' || *c == '\r' || *c == '\t' ? ' ' : *c;
    error[n] = '\0';
    const char *failed_at = json_string_value(json_object_get(item, "failed_at")); /* RFC 3339 */
    const char *id = json_string_value(json_object_get(item, "event_id"));
    const char *type = json_string_value(json_object_get(item, "type"));
    json_int_t attempts = json_integer_value(json_object_get(item, "attempts"));
    bool replaying = json_is_true(json_object_get(item, "replay_requested"));
    printf("%-12s %-36s %-32s %8" JSON_INTEGER_FORMAT " %-24s %s%s\n", service, id ? id : "-",
           type ? type : "-", attempts, failed_at ? failed_at : "-",
           replaying ? "(replay requested) " : "", error);
}

/*
 * Lists one service's dead events. *shown counts the rows printed. A 404 from a service not
 * named explicitly means it does not serve the kit's endpoints: skipped.
 */
static int dead_list_service(const struct platform_process *proc, const char *token, bool named,
                             size_t *shown)
{
    struct http_session *s = NULL;
    int rc = service_session(proc, token, &s);
    for (int page = 1; rc == 0 && page <= DEAD_PAGES_MAX; page++) {
        char path[100], why[300];
        struct http_reply reply;
        struct ag_err err = {0};
        snprintf(path, sizeof(path), "%s?page=%d&per_page=%d", DEAD_PATH, page, DEAD_PAGE);
        if (http_session_call(s, "GET", path, NULL, &reply, &err) < 0) {
            rc = cli_fail("%s: %s", proc->name, err.msg);
            http_reply_release(&reply);
            break;
        }
        json_t *items = json_object_get(reply.json, "items");
        if (reply.status == 404 && !named) {
            http_reply_release(&reply);
            break;
        }
        if (reply.status != 200 || !json_is_array(items)) {
            http_reply_describe(&reply, why, sizeof(why));
            rc = cli_fail("%s: GET %s%s: %s", proc->name, proc->url, DEAD_PATH,
                          reply.status == 200 ? "the answer has no items list" : why);
            http_reply_release(&reply);
            break;
        }
        size_t i;
        json_t *item;
        json_array_foreach(items, i, item)
        {
            if (*shown == 0)
                printf("%-12s %-36s %-32s %8s %-24s %s\n", "SERVICE", "EVENT_ID", "TYPE",
                       "ATTEMPTS", "FAILED_AT", "ERROR");
            dead_row(proc->name, item);
            (*shown)++;
        }
        size_t got = json_array_size(items);
        http_reply_release(&reply);
        if (got < DEAD_PAGE)
            break;
    }
    http_session_free(s);
    return rc;
}

static int events_dead(int argc, char **argv)
{
    const char *config = CLI_DEFAULT_CONFIG, *service = NULL;
    for (int i = 1; i < argc; i++) {
        int r;
        if (cli_is_help(argv[i])) {
            cmd_events_help();
            return CLI_EXIT_OK;
        }
        if ((r = cli_option("events dead", argc, argv, &i, "--service", &service)) < 0 ||
            (r == 0 && (r = cli_option("events dead", argc, argv, &i, "--config", &config)) < 0))
            return CLI_EXIT_USAGE;
        if (r == 0)
            return cli_usage("events", "dead: unknown argument %s", argv[i]);
    }
    if (service && !*service)
        return cli_usage("events", "dead: --service needs a process name");
    struct platform platform;
    struct ag_err err = {0};
    const struct platform_process *procs[PLATFORM_PROCESSES_MAX];
    size_t count = 0, shown = 0;
    char *token = NULL;
    int rc = CLI_EXIT_OK;
    if (platform_load(&platform, config, &err) < 0)
        return cli_fail("%s", err.msg);
    if ((rc = pick_services(&platform, service, procs, &count)) == 0 &&
        (rc = admin_token(&platform, &token)) == 0) {
        /* Every service is asked even when one fails: the others' dead events still show. */
        for (size_t i = 0; i < count; i++)
            if (dead_list_service(procs[i], token, service != NULL, &shown) != 0)
                rc = CLI_EXIT_FAILURE;
    }
    free(token);
    if (rc == CLI_EXIT_OK && shown == 0)
        printf("no dead events\n");
    platform_release(&platform);
    return rc;
}

static int events_replay(int argc, char **argv)
{
    const char *config = CLI_DEFAULT_CONFIG, *service = NULL;
    bool all = false;
    json_t *ids = json_array();
    int rc = CLI_EXIT_OK;
    if (!ids)
        return cli_fail("out of memory");
    for (int i = 1; i < argc && rc == CLI_EXIT_OK; i++) {
        int r;
        if (cli_is_help(argv[i])) {
            cmd_events_help();
            json_decref(ids);
            return CLI_EXIT_OK;
        }
        if (strcmp(argv[i], "--all") == 0) {
            all = true;
            continue;
        }
        if ((r = cli_option("events replay", argc, argv, &i, "--service", &service)) < 0 ||
            (r == 0 && (r = cli_option("events replay", argc, argv, &i, "--config", &config)) < 0))
            rc = CLI_EXIT_USAGE;
        else if (r == 0 && argv[i][0] == '-')
            rc = cli_usage("events", "replay: unknown argument %s", argv[i]);
        else if (r == 0 && json_array_size(ids) == REPLAY_IDS_MAX)
            rc = cli_usage("events", "replay: more than %d event ids", REPLAY_IDS_MAX);
        else if (r == 0 && json_array_append_new(ids, json_string(argv[i])) < 0)
            rc = cli_usage("events", "replay: %s is not an event id", argv[i]);
    }
    if (rc == CLI_EXIT_OK && (!service || !*service))
        rc = cli_usage("events", "replay: --service NAME is required");
    else if (rc == CLI_EXIT_OK && all == (json_array_size(ids) > 0))
        rc = cli_usage("events", "replay: give either --all or event ids");
    if (rc != CLI_EXIT_OK) {
        json_decref(ids);
        return rc;
    }

    struct platform platform;
    struct ag_err err = {0};
    struct http_session *s = NULL;
    struct http_reply reply = {0};
    const struct platform_process *proc;
    char *token = NULL;
    size_t count;
    json_t *body = all ? json_pack("{s:b}", "all", 1) : json_pack("{s:O}", "ids", ids);
    if (platform_load(&platform, config, &err) < 0) {
        json_decref(ids);
        json_decref(body);
        return cli_fail("%s", err.msg);
    }
    if (!body)
        rc = cli_fail("out of memory");
    if (rc == CLI_EXIT_OK)
        rc = pick_services(&platform, service, &proc, &count);
    if (rc == CLI_EXIT_OK)
        rc = admin_token(&platform, &token);
    if (rc == CLI_EXIT_OK)
        rc = service_session(proc, token, &s);
    if (rc == CLI_EXIT_OK && http_session_call(s, "POST", REPLAY_PATH, body, &reply, &err) < 0)
        rc = cli_fail("%s: %s", proc->name, err.msg);
    if (rc == CLI_EXIT_OK) {
        json_t *requested = json_object_get(reply.json, "requested");
        char why[300];
        http_reply_describe(&reply, why, sizeof(why));
        if (reply.status != 202 || !json_is_integer(requested))
            rc = cli_fail("%s: POST %s%s: %s", proc->name, proc->url, REPLAY_PATH,
                          reply.status == 202 ? "the answer has no requested count" : why);
        else
            printf("%s: replay requested for %" JSON_INTEGER_FORMAT " dead event%s\n", proc->name,
                   json_integer_value(requested), json_integer_value(requested) == 1 ? "" : "s");
    }
    http_reply_release(&reply);
    http_session_free(s);
    free(token);
    json_decref(body);
    json_decref(ids);
    platform_release(&platform);
    return rc;
}

int cmd_events(int argc, char **argv)
{
    if (argc < 2)
        return cli_usage("events", "expected tail, dead or replay");
    if (cli_is_help(argv[1]) || strcmp(argv[1], "help") == 0) {
        cmd_events_help();
        return CLI_EXIT_OK;
    }
    if (strcmp(argv[1], "tail") == 0)
        return events_tail(argc - 1, argv + 1);
    if (strcmp(argv[1], "dead") == 0)
        return events_dead(argc - 1, argv + 1);
    if (strcmp(argv[1], "replay") == 0)
        return events_replay(argc - 1, argv + 1);
    return cli_usage("events", "unknown subcommand %s (tail, dead or replay)", argv[1]);
}
