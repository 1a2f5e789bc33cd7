/* `agora events tail|dead|replay`: watch the event bus, list and replay the services' dead events.
 */
#ifndef CLI_EVENTS_CMD_H
#define CLI_EVENTS_CMD_H

/*
 * agora events tail [--type PATTERN]... [--from-start] [--json] [--bus URL] [--config FILE]:
 *   prints each event on the bus as it flows, until SIGINT or SIGTERM (then exits 0).
 * agora events dead [--service NAME] [--config FILE]: the dead events of each service
 *   (GET /_kit/events/dead on its own port), as a table.
 * agora events replay --service NAME (--all | ID...) [--config FILE]: asks the service to
 *   deliver dead events again (POST /_kit/events/replay) and prints how many it took.
 * Returns 0, 1 on failure, 2 for usage.
 */
int cmd_events(int argc, char **argv);
void cmd_events_help(void);

#endif
