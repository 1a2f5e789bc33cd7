/* `agora keys rotate`: rotation of the auth service's token signing keys. */
#ifndef CLI_KEYS_CMD_H
#define CLI_KEYS_CMD_H

/*
 * agora keys rotate [--keys DIR] [--keep 20m] [--config FILE]: the next key becomes the signing
 * key, the old one stays published for --keep, and the new kid is printed. The key directory
 * and passphrase default to the auth process's AGORA_AUTH_KEYS_DIR and
 * AGORA_AUTH_KEYS_PASSPHRASE in the platform file. Returns 0, 1 on failure, 2 for usage.
 */
int cmd_keys(int argc, char **argv);
void cmd_keys_help(void);

#endif
