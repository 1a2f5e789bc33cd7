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

int token_source_defaults(struct token_source *src, const struct platform *p, struct ag_err *err)
{
    const struct platform_process *auth = p ? platform_auth_process(p) : NULL;
    const char *passphrase =
        src->passphrase ? src->passphrase : getenv("AGORA_AUTH_KEYS_PASSPHRASE");
    if (auth) {
        if (!src->keys_dir)
            src->keys_dir = platform_process_env(auth, "AGORA_AUTH_KEYS_DIR");
        if (!src->issuer)
            src->issuer = platform_process_env(auth, "AGORA_AUTH_ISSUER");
        if (!src->audience)
            src->audience = platform_process_env(auth, "AGORA_AUDIENCE");
        if (!passphrase || !*passphrase)
            passphrase = platform_process_env(auth, "AGORA_AUTH_KEYS_PASSPHRASE");
    }
    src->audience = src->audience ? src->audience : "agora";
    src->passphrase = passphrase && *passphrase ? passphrase : NULL;
    if (!src->keys_dir)
        return ag_err_set(err, AG_EINVAL,
                          "no key directory: give --keys (no process in the platform file sets "
                          "AGORA_AUTH_KEYS_DIR)");
    if (!src->issuer)
        return ag_err_set(err, AG_EINVAL,
                          "no issuer: give --issuer (no AGORA_AUTH_ISSUER in the platform file)");
    return 0;
}

int token_mint(const struct token_source *src, const char *user, const char *const *roles,
               size_t role_count, const char *tenant, uint32_t ttl_s, struct ag_buf *out,
               struct ag_err *err)
{
    struct kit_keys *keys = NULL;
    int rc = kit_keys_open(src->keys_dir, src->passphrase, true, &keys, err);
    if (rc < 0)
        return rc;
    struct kit_token_claims claims = {.issuer = src->issuer,
                                      .audience = src->audience,
                                      .subject = user,
                                      .tenant = tenant,
                                      .roles = roles,
                                      .role_count = role_count,
                                      .ttl_s = ttl_s};
    struct ag_err mint_err = {0};
    rc = kit_keys_mint(keys, &claims, out, NULL, &mint_err);
    if (rc < 0)
        ag_err_set(err, rc, "cannot mint the token: %s", mint_err.msg);
    kit_keys_free(keys);
    return rc;
}

int token_mint_admin(const struct platform *p, const char *user, const char *tenant, uint32_t ttl_s,
                     char **out, struct ag_err *err)
{
    static const char *const admin[] = {"admin"};
    struct token_source src = {0};
    struct ag_buf token;
    *out = NULL;
    int rc = token_source_defaults(&src, p, err);
    if (rc < 0)
        return rc;
    ag_buf_init(&token, 64 * 1024);
    rc = token_mint(&src, user, admin, 1, tenant, ttl_s, &token, err);
    if (rc == 0) {
        *out = strndup(token.data + token.off, token.len);
        if (!*out)
            rc = ag_err_set(err, AG_ENOMEM, "out of memory");
    }
    ag_buf_release(&token);
    return rc;
}

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
    struct token_source source = {keys_dir, issuer, audience, NULL};
    struct ag_buf token;
    struct ag_err err = {0};
    char *roles_copy = NULL;
    const char *roles[MAX_ROLES];
    size_t role_count = 0;
    memset(&platform, 0, sizeof(platform));
    ag_buf_init(&token, 64 * 1024);

    if (!keys_dir || !issuer || !audience || config) {
        const char *path = config ? config : CLI_DEFAULT_CONFIG;
        if (platform_load(&platform, path, &err) < 0) {
            rc = cli_fail("%s (give --keys, --issuer and --audience, or a platform file)", err.msg);
            goto out;
        }
    }
    if (token_source_defaults(&source, platform.path ? &platform : NULL, &err) < 0) {
        rc = cli_fail("%s", err.msg);
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
    if (token_mint(&source, user, roles, role_count, tenant, (uint32_t)(ttl_ms / 1000), &token,
                   &err) < 0) {
        rc = cli_fail("%s", err.msg);
        goto out;
    }
    printf("%.*s\n", (int)token.len, token.data + token.off);
out:
    ag_buf_release(&token);
    free(roles_copy);
    platform_release(&platform);
    return rc;
}
