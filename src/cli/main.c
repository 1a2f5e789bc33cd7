/* agora: the command line of the platform (up, status, down, token, keys, seed, events). */
#include <stdio.h>
#include <string.h>

#include "cli/cli_util.h"
#include "cli/events_cmd.h"
#include "cli/keys_cmd.h"
#include "cli/seed.h"
#include "cli/status.h"
#include "cli/supervise.h"
#include "cli/token.h"
#include "core/banned.h"

struct command {
    const char *name;
    int (*run)(int argc, char **argv);
    void (*help)(void);
    const char *summary;
};

static const struct command COMMANDS[] = {
    {"up", cmd_up, cmd_up_help, "start the platform and supervise it (Ctrl-C stops it)"},
    {"status", cmd_status, cmd_status_help, "show the running platform's processes"},
    {"down", cmd_down, cmd_down_help, "stop the running platform"},
    {"token", cmd_token, cmd_token_help, "mint a development access token"},
    {"keys", cmd_keys, cmd_keys_help, "rotate the token signing keys (keys rotate)"},
    {"seed", cmd_seed, cmd_seed_help, "load a demo catalog through the gateway"},
    {"events", cmd_events, cmd_events_help, "watch the event bus; list and replay dead events"},
};

static void help(FILE *out)
{
    fputs("usage: agora <command> [options]\n"
          "\n"
          "Runs the Agora platform on one machine.\n"
          "\n"
          "Commands:\n",
          out);
    for (size_t i = 0; i < sizeof(COMMANDS) / sizeof(COMMANDS[0]); i++)
        fprintf(out, "  %-8s %s\n", COMMANDS[i].name, COMMANDS[i].summary);
    fputs("\n"
          "`agora <command> --help` describes each one. Every command reads the platform file\n"
          "(--config, default " CLI_DEFAULT_CONFIG "). Errors are one line `agora: ...` on\n"
          "stderr; exit status 0 on success, 1 on failure, 2 for a bad command line.\n",
          out);
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        help(stderr);
        return CLI_EXIT_USAGE;
    }
    if (cli_is_help(argv[1]) || strcmp(argv[1], "help") == 0) {
        if (argc > 2) {
            for (size_t i = 0; i < sizeof(COMMANDS) / sizeof(COMMANDS[0]); i++) {
                if (strcmp(argv[2], COMMANDS[i].name) == 0) {
                    COMMANDS[i].help();
                    return CLI_EXIT_OK;
                }
            }
        }
        help(stdout);
        return CLI_EXIT_OK;
    }
    for (size_t i = 0; i < sizeof(COMMANDS) / sizeof(COMMANDS[0]); i++)
        if (strcmp(argv[1], COMMANDS[i].name) == 0)
            return COMMANDS[i].run(argc - 1, argv + 1);
    return cli_usage(NULL, "unknown command %s", argv[1]);
}
