/* `agora token`: mints a development access token with the auth service's signing keys. */
#include "cli/token.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli_util.h"
#include "cli/platform.h"
#include "core/buf.h"
#include "core/config_yaml.h"
#include "kit/keys.h"
#include "core/banned.h"

enum {
    MAX_ROLES = 32,
    MAX_TTL_MS = 24 * 3600 * 1000,
};

void cmd_token_help(void)
{
    fputs(
        "usage: agora token --user ID [--roles admin,customer] [--tenant T] [--ttl 15m]\n"
        "                   [--keys DIR] [--issuer URL] [--audience A] [--config FILE]\n"
        "\n"
        "Mints a development access token (ES256, signed by the auth service's current key)\n"
        "and prints it alone on stdout: curl -H \"Authorization: Bearer $(agora token --user 1\n"
        "--roles admin)\" ... The key directory is created when it does not exist yet.\n"
        "\n"
        "  --user ID         the subject (sub); required\n"
        "  --roles LIST      comma-separated roles (default: none)\n"
        "  --tenant T        the tenant claim (default: none)\n"
        "  --ttl DURATION    lifetime, 1s to 24h (default 15m)\n"
        "  --keys DIR        the key directory (default: AGORA_AUTH_KEYS_DIR of the auth process)\n"
        "  --issuer URL      iss (default: its AGORA_AUTH_ISSUER)\n"
        "  --audience A      aud (default: its AGORA_AUDIENCE, else agora)\n"
        "  --config FILE     the platform file the defaults come from (default " CLI_DEFAULT_CONFIG
        ")\n"
        "\n"
        "AGORA_AUTH_KEYS_PASSPHRASE (environment, else the auth process's) decrypts the keys.\n"
        "Exit status: 0, 1 on failure, 2 for usage.\n",
        stdout);
}

int cmd_token(int argc, char **argv)
{
    const char *config = NULL, *user = NULL, *roles_text = NULL, *tenant = NULL;
    const char *ttl_text = "15m", *keys_dir = NULL, *issuer = NULL, *audience = NULL;
    struct {
        const char *name;
        const char **value;
    } options[] = {{"--config", &config}, {"--user", &user},        {"--roles", &roles_text},
                   {"--tenant", &tenant}, {"--ttl", &ttl_text},     {"--keys", &keys_dir},
                   {"--issuer", &issuer}, {"--audience", &audience}};
    for (int i = 1; i < argc; i++) {
        if (cli_is_help(argv[i])) {
            cmd_token_help();
            return CLI_EXIT_OK;
        }
        int r = 0;
        for (size_t k = 0; k < sizeof(options) / sizeof(options[0]) && r == 0; k++)
            r = cli_option("token", argc, argv, &i, options[k].name, options[k].value);
        if (r < 0)
            return CLI_EXIT_USAGE;
        if (r == 0)
            return cli_usage("token", "unknown argument %s", argv[i]);
    }
    if (!user || !*user)
        return cli_usage("token", "--user is required");
    uint64_t ttl_ms = 0;
    if (ag_config_parse_duration(ag_str_from_cstr(ttl_text), &ttl_ms) < 0 || ttl_ms < 1000 ||
        ttl_ms > MAX_TTL_MS)
        return cli_usage("token", "--ttl %s: expected a duration from 1s to 24h", ttl_text);

    int rc = CLI_EXIT_OK;
    struct platform platform;
    struct kit_keys *keys = NULL;
    struct ag_buf token;
    struct ag_err err = {0};
    char *roles_copy = NULL;
    const char *roles[MAX_ROLES];
    size_t role_count = 0;
    memset(&platform, 0, sizeof(platform));
    ag_buf_init(&token, 64 * 1024);

    const char *passphrase = getenv("AGORA_AUTH_KEYS_PASSPHRASE");
    if (!keys_dir || !issuer || !audience || config) {
        const char *path = config ? config : CLI_DEFAULT_CONFIG;
        if (platform_load(&platform, path, &err) < 0) {
            rc = cli_fail("%s (give --keys, --issuer and --audience, or a platform file)", err.msg);
            goto out;
        }
        const struct platform_process *auth = platform_auth_process(&platform);
        if (auth) {
            keys_dir = keys_dir ? keys_dir : platform_process_env(auth, "AGORA_AUTH_KEYS_DIR");
            issuer = issuer ? issuer : platform_process_env(auth, "AGORA_AUTH_ISSUER");
            audience = audience ? audience : platform_process_env(auth, "AGORA_AUDIENCE");
            if (!passphrase || !*passphrase)
                passphrase = platform_process_env(auth, "AGORA_AUTH_KEYS_PASSPHRASE");
        }
    }
    audience = audience ? audience : "agora";
    if (passphrase && !*passphrase)
        passphrase = NULL;
    if (!keys_dir) {
        rc = cli_fail("no key directory: give --keys (no process in the platform file sets "
                      "AGORA_AUTH_KEYS_DIR)");
        goto out;
    }
    if (!issuer) {
        rc = cli_fail("no issuer: give --issuer (no AGORA_AUTH_ISSUER in the platform file)");
        goto out;
    }
    if (roles_text && *roles_text) {
        roles_copy = strdup(roles_text);
        if (!roles_copy) {
            rc = cli_fail("out of memory");
            goto out;
        }
        char *p = roles_copy;
        while (p) {
            char *comma = strchr(p, ',');
            if (comma)
                *comma = '\0';
            if (*p) {
                if (role_count == MAX_ROLES) {
                    rc = cli_usage("token", "more than %d roles", MAX_ROLES);
                    goto out;
                }
                roles[role_count++] = p;
            }
            p = comma ? comma + 1 : NULL;
        }
    }
    if (kit_keys_open(keys_dir, passphrase, true, &keys, &err) < 0) {
        rc = cli_fail("%s", err.msg);
        goto out;
    }
    struct kit_token_claims claims = {.issuer = issuer,
                                      .audience = audience,
                                      .subject = user,
                                      .tenant = tenant,
                                      .roles = roles,
                                      .role_count = role_count,
                                      .ttl_s = (uint32_t)(ttl_ms / 1000)};
    if (kit_keys_mint(keys, &claims, &token, NULL, &err) < 0) {
        rc = cli_fail("cannot mint the token: %s", err.msg);
        goto out;
    }
    printf("%.*s\n", (int)token.len, token.data + token.off);
out:
    kit_keys_free(keys);
    ag_buf_release(&token);
    free(roles_copy);
    platform_release(&platform);
    return rc;
}
