/* What keys_mint.c needs from the key directory in keys.c; private to src/kit/keys*.c. */
#ifndef KIT_KEYS_INTERNAL_H
#define KIT_KEYS_INTERNAL_H

#include <openssl/types.h>

#include "core/err.h"
#include "kit/keys.h"

/*
 * The current signing key and its kid, read together under the key directory's lock so that
 * a concurrent kit_keys_reload cannot pair one key with another's kid. Returns 0 with *pkey
 * holding a new reference (the caller EVP_PKEY_free's it) and kid NUL-terminated; AG_EINVAL
 * when no current key is loaded (*pkey NULL, kid unchanged). Thread-safe.
 */
int kit_keys_signing_key(struct kit_keys *keys, EVP_PKEY **pkey, char kid[64], struct ag_err *err);

#endif
