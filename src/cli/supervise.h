/* `agora up`: runs the platform's processes as children, watches, restarts and stops them. */
#ifndef CLI_SUPERVISE_H
#define CLI_SUPERVISE_H

/*
 * agora up [--config FILE] [--no-color]: starts every process of the platform file, prefixes
 * their output, waits for readiness, restarts crashes with back-off, and stops everything on
 * SIGINT or SIGTERM. Returns the exit status: 0 after a requested stop, 1 when the platform
 * could not start (a process missing, not ready in time, another supervisor running), 2 for a
 * bad command line.
 */
int cmd_up(int argc, char **argv);

/* Prints the usage of agora up. */
void cmd_up_help(void);

#endif
