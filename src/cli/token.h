/* `agora token` and `agora keys rotate`: development tokens and signing-key rotation. */
#ifndef CLI_TOKEN_H
#define CLI_TOKEN_H

/*
 * agora token --user ID [--roles a,b] [--tenant T] [--ttl 15m] [--keys DIR] [--issuer URL]
 * [--audience A] [--config FILE]: mints an access token with the auth service's signing keys
 * and prints it alone on stdout. Defaults come from the auth process of the platform file
 * (AGORA_AUTH_KEYS_DIR, AGORA_AUTH_ISSUER, AGORA_AUDIENCE, AGORA_AUTH_KEYS_PASSPHRASE).
 * Returns 0, 1 on failure, 2 for usage.
 */
int cmd_token(int argc, char **argv);
void cmd_token_help(void);

#endif
