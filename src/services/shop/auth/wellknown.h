/* Discovery: the JWK Set of the signing keys and the OpenID-style configuration document. */
#ifndef AUTH_WELLKNOWN_H
#define AUTH_WELLKNOWN_H

#include "kit/kit.h"

/* GET /.well-known/jwks.json */
int auth_jwks(struct kit_req *req);
/* GET /.well-known/openid-configuration */
int auth_openid_configuration(struct kit_req *req);

#endif
