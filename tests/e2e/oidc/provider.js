// A real OpenID Connect provider (the npm package oidc-provider) for the agora-gateway e2e tests.
//
//   node provider.js [--port N] [--alg ES256|RS256] [--kid KID] [--ttl SECONDS]
//
// It listens on 127.0.0.1:N (0, the default, picks a free port) with the issuer
// http://127.0.0.1:PORT, and prints one JSON line on stdout once it accepts:
//   {"msg":"listening","port":N,"issuer":"http://127.0.0.1:N","alg":"ES256","kid":"..."}
// Discovery is at /.well-known/openid-configuration; its jwks_uri names the JWKS (/jwks).
//
// The signing key is generated at every start (ES256: P-256, RS256: RSA 2048) and named by --kid
// (a random kid by default). Restarting on the same port with another --kid is the key-rotation
// hook: tokens from the new process carry a kid that the gateway has never seen.
//
// Identities: client_credentials has no end user, so each test identity is a confidential client
// whose id becomes the access token's `sub`. The secret of client ID is "ID-secret".
//   alice  roles ["admin"]             tenant "acme"
//   bob    roles []                    tenant "acme"
//   carol  roles ["viewer", "editor"]  tenant "globex"
// A token: POST /token with HTTP Basic auth (id:secret) and grant_type=client_credentials
// (resource=urn:agora is the default resource). The access token is a JWT (typ at+jwt) signed
// with --alg, with iss, sub, aud "agora", iat, exp, jti, client_id, scope, roles and tenant.
// SIGTERM or SIGINT stop it.

import * as crypto from 'node:crypto';
import * as http from 'node:http';

import Provider from 'oidc-provider';

const IDENTITIES = {
  alice: { roles: ['admin'], tenant: 'acme' },
  bob: { roles: [], tenant: 'acme' },
  carol: { roles: ['viewer', 'editor'], tenant: 'globex' },
};
const RESOURCE = 'urn:agora';
const AUDIENCE = 'agora';

function parseArgs(argv) {
  const opts = { port: 0, alg: 'ES256', kid: `k-${crypto.randomBytes(6).toString('hex')}`, ttl: 600 };
  for (let i = 0; i < argv.length; i += 1) {
    const name = argv[i];
    const value = argv[i + 1];
    if (value === undefined) throw new Error(`${name} needs a value`);
    i += 1;
    switch (name) {
      case '--port': opts.port = Number(value); break;
      case '--alg': opts.alg = value; break;
      case '--kid': opts.kid = value; break;
      case '--ttl': opts.ttl = Number(value); break;
      default: throw new Error(`unknown option ${name}`);
    }
  }
  if (!['ES256', 'RS256'].includes(opts.alg)) throw new Error(`--alg must be ES256 or RS256, not ${opts.alg}`);
  if (!Number.isInteger(opts.port) || opts.port < 0 || opts.port > 65535) throw new Error('bad --port');
  return opts;
}

function signingJwk(alg, kid) {
  const { privateKey } = alg === 'ES256'
    ? crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' })
    : crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
  return { ...privateKey.export({ format: 'jwk' }), kid, alg, use: 'sig' };
}

async function main() {
  const opts = parseArgs(process.argv.slice(2));
  const server = http.createServer();
  await new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port, '127.0.0.1', resolve);
  });
  const { port } = server.address();
  const issuer = `http://127.0.0.1:${port}`;

  const provider = new Provider(issuer, {
    clients: Object.keys(IDENTITIES).map((id) => ({
      client_id: id,
      client_secret: `${id}-secret`,
      grant_types: ['client_credentials'],
      response_types: [],
      redirect_uris: [],
    })),
    clientDefaults: { id_token_signed_response_alg: opts.alg },
    jwks: { keys: [signingJwk(opts.alg, opts.kid)] },
    cookies: { keys: [crypto.randomBytes(32).toString('hex')] },
    features: {
      devInteractions: { enabled: false },
      clientCredentials: { enabled: true },
      introspection: { enabled: false },
      revocation: { enabled: false },
      resourceIndicators: {
        enabled: true,
        defaultResource: () => RESOURCE,
        useGrantedResource: () => true,
        getResourceServerInfo: (ctx, resourceIndicator) => {
          if (resourceIndicator !== RESOURCE) throw new Provider.errors.InvalidTarget();
          return {
            scope: 'api',
            audience: AUDIENCE,
            accessTokenTTL: opts.ttl,
            accessTokenFormat: 'jwt',
            jwt: { sign: { alg: opts.alg } },
          };
        },
      },
    },
    extraTokenClaims: (ctx, token) => {
      const who = IDENTITIES[token.clientId];
      return who ? { roles: who.roles, tenant: who.tenant } : undefined;
    },
  });
  // Errors answered to clients are expected in tests (bad secrets and the like); keep them quiet.
  provider.on('server_error', (ctx, err) => process.stderr.write(`provider server_error: ${err.stack}\n`));

  server.on('request', provider.callback());
  process.stdout.write(`${JSON.stringify({
    msg: 'listening', port, issuer, alg: opts.alg, kid: opts.kid,
  })}\n`);

  const stop = () => server.close(() => process.exit(0));
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
  // close() waits for keep-alive connections; do not let one keep the process alive.
  process.on('SIGTERM', () => server.closeAllConnections());
}

main().catch((err) => {
  process.stderr.write(`provider.js: ${err.stack || err}\n`);
  process.exit(2);
});
