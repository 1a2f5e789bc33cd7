/* `agora status` and `agora down`: read the running platform's state file, or stop it. */
#ifndef CLI_STATUS_H
#define CLI_STATUS_H

/*
 * agora status [--config FILE] [--json]: prints each supervised process (name, pid, uptime,
 * restarts, readiness), checking that each pid is alive. Returns 0, 1 when no platform runs
 * (no state file, or its supervisor is gone), 2 for a bad command line.
 */
int cmd_status(int argc, char **argv);
void cmd_status_help(void);

/*
 * agora down [--config FILE]: sends SIGTERM to the supervisor named by the state file and waits
 * until it has exited. Returns 0, 1 when no platform runs or it did not stop in time, 2 for usage.
 */
int cmd_down(int argc, char **argv);
void cmd_down_help(void);

#endif
