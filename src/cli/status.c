/* `agora status` and `agora down`: read the running platform's state file, or stop it. */
#include "cli/status.h"

#include <errno.h>
#include <jansson.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli/cli_util.h"
#include "cli/platform.h"
#include "core/banned.h"

enum {
    DOWN_POLL_MS = 100,
    DOWN_GRACE_MS = 15000, /* beyond the platform's stop_timeout */
};

void cmd_status_help(void)
{
    fputs("usage: agora status [--config FILE] [--json]\n"
          "\n"
          "Shows the processes of the platform that `agora up` runs: name, pid, uptime, restarts\n"
          "and readiness (each pid is checked). The state comes from <var_dir>/run/agora.json of\n"
          "the platform file (default " CLI_DEFAULT_CONFIG ").\n"
          "\n"
          "  --config FILE   the platform file\n"
          "  --json          print the state as one JSON object\n"
          "\n"
          "Exit status: 0, 1 when no platform runs, 2 for usage.\n",
          stdout);
}

void cmd_down_help(void)
{
    fputs("usage: agora down [--config FILE]\n"
          "\n"
          "Stops the platform that `agora up` runs: SIGTERM to its supervisor (found in\n"
          "<var_dir>/run/agora.json), then waits until it has stopped every process and exited.\n"
          "\n"
          "  --config FILE   the platform file (default " CLI_DEFAULT_CONFIG ")\n"
          "\n"
          "Exit status: 0, 1 when no platform runs or it did not stop, 2 for usage.\n",
          stdout);
}

/* Reads the state file of the platform at config. Returns 0 with *state, or an exit status. */
static int read_state(const char *config, json_t **state, char *path, size_t path_size,
                      uint64_t *stop_timeout_ms)
{
    struct platform p;
    struct ag_err err = {0};
    if (platform_load(&p, config, &err) < 0)
        return cli_fail("%s", err.msg);
    int rc = platform_state_path(&p, path, path_size);
    *stop_timeout_ms = p.stop_timeout_ms;
    platform_release(&p);
    if (rc < 0)
        return cli_fail("var_dir is too long");
    json_error_t jerr;
    *state = json_load_file(path, 0, &jerr);
    if (!*state) {
        if (access(path, F_OK) != 0)
            return cli_fail("no platform is running (no %s)", path);
        return cli_fail("%s: %s", path, jerr.text);
    }
    long pid = (long)json_integer_value(json_object_get(*state, "pid"));
    if (!cli_pid_alive(pid)) {
        json_decref(*state);
        *state = NULL;
        return cli_fail("no platform is running (the supervisor of %s, pid %ld, is gone)", path,
                        pid);
    }
    return 0;
}

/* text, or fallback when text is NULL. */
static const char *or_text(const char *text, const char *fallback)
{
    return text ? text : fallback;
}

static void format_uptime(int64_t seconds, char *out, size_t size)
{
    if (seconds < 0)
        seconds = 0;
    if (seconds < 60)
        snprintf(out, size, "%llds", (long long)seconds);
    else if (seconds < 3600)
        snprintf(out, size, "%lldm%02llds", (long long)(seconds / 60), (long long)(seconds % 60));
    else
        snprintf(out, size, "%lldh%02lldm", (long long)(seconds / 3600),
                 (long long)(seconds / 60 % 60));
}

static int parse_common(const char *command, int argc, char **argv, const char **config, bool *json,
                        void (*help)(void))
{
    for (int i = 1; i < argc; i++) {
        if (cli_is_help(argv[i])) {
            help();
            return -1;
        }
        if (json && strcmp(argv[i], "--json") == 0) {
            *json = true;
            continue;
        }
        int r = cli_option(command, argc, argv, &i, "--config", config);
        if (r < 0)
            return CLI_EXIT_USAGE;
        if (r == 0)
            return cli_usage(command, "unknown argument %s", argv[i]);
    }
    return 0;
}

int cmd_status(int argc, char **argv)
{
    const char *config = CLI_DEFAULT_CONFIG;
    bool as_json = false;
    int rc = parse_common("status", argc, argv, &config, &as_json, cmd_status_help);
    if (rc != 0)
        return rc < 0 ? CLI_EXIT_OK : rc;
    json_t *state = NULL;
    char path[4096];
    uint64_t stop_timeout_ms;
    if ((rc = read_state(config, &state, path, sizeof(path), &stop_timeout_ms)) != 0)
        return rc;
    int64_t now = (int64_t)time(NULL);
    json_t *procs = json_object_get(state, "processes");
    size_t i;
    json_t *p;
    json_array_foreach(procs, i, p)
    {
        long pid = (long)json_integer_value(json_object_get(p, "pid"));
        int64_t started = (int64_t)json_integer_value(json_object_get(p, "started_at"));
        bool alive = cli_pid_alive(pid);
        json_object_set_new(p, "alive", json_boolean(alive));
        json_object_set_new(p, "uptime_s", json_integer(alive && started ? now - started : 0));
    }
    if (as_json) {
        char *text = json_dumps(state, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
        if (text)
            puts(text);
        free(text);
        json_decref(state);
        return CLI_EXIT_OK;
    }
    printf("supervisor pid %lld (%s), %s\n",
           (long long)json_integer_value(json_object_get(state, "pid")),
           or_text(json_string_value(json_object_get(state, "config")), "?"),
           or_text(json_string_value(json_object_get(state, "state")), "?"));
    printf("%-16s %-8s %-9s %-8s %-6s %s\n", "NAME", "PID", "UPTIME", "RESTARTS", "READY", "URL");
    json_array_foreach(procs, i, p)
    {
        char pid_text[24], uptime[32];
        long pid = (long)json_integer_value(json_object_get(p, "pid"));
        bool alive = json_is_true(json_object_get(p, "alive"));
        if (alive)
            snprintf(pid_text, sizeof(pid_text), "%ld", pid);
        else
            snprintf(pid_text, sizeof(pid_text), "-");
        if (alive)
            format_uptime((int64_t)json_integer_value(json_object_get(p, "uptime_s")), uptime,
                          sizeof(uptime));
        else
            snprintf(uptime, sizeof(uptime), "%s",
                     or_text(json_string_value(json_object_get(p, "state")), "-"));
        printf("%-16s %-8s %-9s %-8lld %-6s %s\n",
               or_text(json_string_value(json_object_get(p, "name")), "?"), pid_text, uptime,
               (long long)json_integer_value(json_object_get(p, "restarts")),
               json_is_true(json_object_get(p, "ready")) && alive ? "yes" : "no",
               or_text(json_string_value(json_object_get(p, "url")), ""));
    }
    json_decref(state);
    return CLI_EXIT_OK;
}

int cmd_down(int argc, char **argv)
{
    const char *config = CLI_DEFAULT_CONFIG;
    int rc = parse_common("down", argc, argv, &config, NULL, cmd_down_help);
    if (rc != 0)
        return rc < 0 ? CLI_EXIT_OK : rc;
    json_t *state = NULL;
    char path[4096];
    uint64_t stop_timeout_ms;
    if ((rc = read_state(config, &state, path, sizeof(path), &stop_timeout_ms)) != 0)
        return rc;
    long pid = (long)json_integer_value(json_object_get(state, "pid"));
    json_decref(state);
    if (kill((pid_t)pid, SIGTERM) != 0)
        return cli_fail("cannot signal the supervisor (pid %ld): %s", pid, strerror(errno));
    /* It removes its state file last, just before it exits. */
    uint64_t waited = 0, limit = stop_timeout_ms + DOWN_GRACE_MS;
    while (cli_pid_alive(pid) && access(path, F_OK) == 0 && waited < limit) {
        struct timespec ts = {0, DOWN_POLL_MS * 1000000L};
        nanosleep(&ts, NULL);
        waited += DOWN_POLL_MS;
    }
    if (cli_pid_alive(pid) && access(path, F_OK) == 0)
        return cli_fail("the supervisor (pid %ld) did not stop within %llu ms", pid,
                        (unsigned long long)limit);
    printf("stopped (supervisor pid %ld)\n", pid);
    return CLI_EXIT_OK;
}
