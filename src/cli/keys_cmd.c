/* `agora keys rotate`: rotation of the auth service's token signing keys. */
#include "cli/keys_cmd.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli_util.h"
#include "cli/platform.h"
#include "core/config_yaml.h"
#include "kit/keys.h"
#include "core/banned.h"

enum {
    MAX_KEEP_MS = 7 * 24 * 3600 * 1000u,
};

void cmd_keys_help(void)
{
    fputs(
        "usage: agora keys rotate [--keys DIR] [--keep 20m] [--config FILE]\n"
        "\n"
        "Rotates the auth service's token signing keys: the next key (already published in\n"
        "jwks.json) signs from now on, a new next key is made, and the old signing key stays\n"
        "published for --keep (at least the access token lifetime plus clock skew) so that\n"
        "the tokens it signed still verify. Prints the new signing kid. Running services pick\n"
        "the change up within a second; the gateway at its next JWKS refresh.\n"
        "\n"
        "  --keys DIR       the key directory (default: AGORA_AUTH_KEYS_DIR of the auth process)\n"
        "  --keep DURATION  how long the old key stays published (default 20m, at most 7 days)\n"
        "  --config FILE    the platform file (default " CLI_DEFAULT_CONFIG ")\n"
        "\n"
        "AGORA_AUTH_KEYS_PASSPHRASE (environment, else the auth process's) decrypts the keys.\n"
        "Exit status: 0, 1 on failure, 2 for usage.\n",
        stdout);
}

int cmd_keys(int argc, char **argv)
{
    if (argc < 2 || cli_is_help(argv[1])) {
        cmd_keys_help();
        return argc < 2 ? CLI_EXIT_USAGE : CLI_EXIT_OK;
    }
    if (strcmp(argv[1], "rotate") != 0)
        return cli_usage("keys", "unknown keys command %s", argv[1]);
    const char *config = NULL, *keys_dir = NULL, *keep_text = "20m";
    for (int i = 2; i < argc; i++) {
        if (cli_is_help(argv[i])) {
            cmd_keys_help();
            return CLI_EXIT_OK;
        }
        int r = cli_option("keys", argc, argv, &i, "--keys", &keys_dir);
        if (r == 0)
            r = cli_option("keys", argc, argv, &i, "--keep", &keep_text);
        if (r == 0)
            r = cli_option("keys", argc, argv, &i, "--config", &config);
        if (r < 0)
            return CLI_EXIT_USAGE;
        if (r == 0)
            return cli_usage("keys", "unknown argument %s", argv[i]);
    }
    uint64_t keep_ms = 0;
    if (ag_config_parse_duration(ag_str_from_cstr(keep_text), &keep_ms) < 0 ||
        keep_ms > MAX_KEEP_MS)
        return cli_usage("keys", "--keep %s: expected a duration up to 7 days", keep_text);

    int rc = CLI_EXIT_OK;
    struct platform platform;
    struct ag_err err = {0};
    char kid[64];
    memset(&platform, 0, sizeof(platform));
    const char *passphrase = getenv("AGORA_AUTH_KEYS_PASSPHRASE");
    if (!keys_dir || config) {
        if (platform_load(&platform, config ? config : CLI_DEFAULT_CONFIG, &err) < 0) {
            rc = cli_fail("%s (give --keys or a platform file)", err.msg);
            goto out;
        }
        const struct platform_process *auth = platform_auth_process(&platform);
        if (auth) {
            keys_dir = keys_dir ? keys_dir : platform_process_env(auth, "AGORA_AUTH_KEYS_DIR");
            if (!passphrase || !*passphrase)
                passphrase = platform_process_env(auth, "AGORA_AUTH_KEYS_PASSPHRASE");
        }
    }
    if (passphrase && !*passphrase)
        passphrase = NULL;
    if (!keys_dir) {
        rc = cli_fail("no key directory: give --keys (no process in the platform file sets "
                      "AGORA_AUTH_KEYS_DIR)");
        goto out;
    }
    if (kit_keys_rotate(keys_dir, passphrase, (uint32_t)(keep_ms / 1000), kid, &err) < 0) {
        rc = cli_fail("%s", err.msg);
        goto out;
    }
    printf("%s\n", kid);
out:
    platform_release(&platform);
    return rc;
}
