/* Helpers shared by the agora commands: error lines, exit codes, option values, state files. */
#ifndef CLI_UTIL_H
#define CLI_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cli/platform.h"

enum {
    CLI_EXIT_OK = 0,
    CLI_EXIT_FAILURE = 1, /* the command could not do its work */
    CLI_EXIT_USAGE = 2,   /* a bad command line */
};

/* The default platform file of every command. */
#define CLI_DEFAULT_CONFIG "config/platform.yaml"

/* Prints "agora: <message>" on stderr and returns CLI_EXIT_FAILURE. */
int cli_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Prints "agora: <message>" and a hint to --help on stderr and returns CLI_EXIT_USAGE. */
int cli_usage(const char *command, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/*
 * Reads the value of option name at argv[*i] ("--name VALUE" or "--name=VALUE") into *value and
 * advances *i past it. Returns 1 when argv[*i] is that option, 0 when it is another argument,
 * -1 when the value is missing (after printing a usage error).
 */
int cli_option(const char *command, int argc, char **argv, int *i, const char *name,
               const char **value);

/* True when argv[i] is -h or --help. */
bool cli_is_help(const char *arg);

/* Creates dir and its missing parents with mode (like mkdir -p). Returns 0 or -1 (errno). */
int cli_mkdir_p(const char *dir, unsigned mode);

/* True when a process with this pid exists (a zombie counts). */
bool cli_pid_alive(long pid);

/*
 * Splits "http://host[:port][/path]" into host (without IPv6 brackets), port (1..65535; "80"
 * when absent) and path ("/" when absent), NUL-terminated copies. AG_EINVAL when malformed.
 */
int cli_url_split(const char *url, char *host, size_t host_size, char *port, size_t port_size,
                  const char **path);

/* Writes len bytes to path through a temporary file in the same directory and rename. */
int cli_write_atomic(const char *path, const char *data, size_t len);

#endif
