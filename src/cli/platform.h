/* The platform file (config/platform.yaml): which processes `agora up` runs, and how. */
#ifndef CLI_PLATFORM_H
#define CLI_PLATFORM_H

#include <stddef.h>
#include <stdint.h>

#include "core/err.h"

enum { PLATFORM_PROCESSES_MAX = 64 }; /* processes in one platform file */

/* One supervised process. Every string is owned by the platform and already substituted. */
struct platform_process {
    char *name;  /* unique; [A-Za-z0-9_-], at most 32 bytes */
    char *exec;  /* the executable path: bin_dir/exec unless exec holds a '/' */
    char **args; /* argv[1..]; NULL-terminated */
    size_t arg_count;
    char *url;    /* shown when ready; may be NULL */
    char *ready;  /* readiness URL (http://host:port/path), answered 200 when ready; may be NULL */
    char **after; /* names of processes that must be ready before this one starts */
    size_t after_count;
    char **env; /* "NAME=value" added to (or replacing in) the supervisor's environment */
    size_t env_count;
};

struct platform {
    char *path;    /* the file it was read from */
    char *var_dir; /* runtime files: <var_dir>/run/agora.json */
    char *bin_dir;
    uint64_t stop_timeout_ms;
    uint64_t ready_timeout_ms;
    struct platform_process *processes;
    size_t process_count;
};

/*
 * Reads the platform file at path into p (caller memory, overwritten). Scalars get ${VAR} and
 * ${VAR:-default} substitution from the environment, after the file's `defaults:` list
 * ("NAME=value", in order; a value may refer to names set before it) has set every variable
 * the environment leaves unset or empty (with setenv, so children see the same values).
 * Refuses, naming "file:line: key: problem": unknown keys, wrong types, bad durations, names that
 * repeat or do not match, `after` naming an unknown or later process, a missing processes list.
 * Returns 0 (free with platform_release) or AG_EINVAL / AG_ENOTFOUND / AG_ESYS / AG_ENOMEM.
 */
int platform_load(struct platform *p, const char *path, struct ag_err *err);

/* Frees everything platform_load put into p; p is zeroed. Safe on a zeroed struct. */
void platform_release(struct platform *p);

/* The value of NAME in process env (the last entry wins), or NULL. */
const char *platform_process_env(const struct platform_process *proc, const char *name);

/* The process named name, or NULL. */
const struct platform_process *platform_find(const struct platform *p, const char *name);

/*
 * The process that holds the token signing keys: the first whose env sets AGORA_AUTH_KEYS_DIR
 * (the auth service), or NULL. `agora token` and `agora keys` take their defaults from it.
 */
const struct platform_process *platform_auth_process(const struct platform *p);

/* The path of the state file agora up keeps: <var_dir>/run/agora.json. Returns 0 or AG_EINVAL. */
int platform_state_path(const struct platform *p, char *out, size_t size);

#endif
