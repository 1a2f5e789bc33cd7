// Keys and hand-made JWTs for the agora-gateway e2e tests (Python's stdlib cannot sign ES256).
//
//   node mint.js keygen DIR
//     Writes into DIR: es-a.pem (P-256) and rs-a.pem (RSA 2048), the private keys whose public
//     halves are published in DIR/jwks.json (kids "es-a", "rs-a"); es-other.pem and rs-other.pem,
//     keys that are in no JWKS (a token signed with one under kid "es-a" has a bad signature);
//     and the public keys as PEM (es-a.pub.pem, rs-a.pub.pem) for the HMAC-with-public-key attack.
//
//   node mint.js sign < SPECS.json
//     SPECS is a JSON array of {"header": {...}, "payload": {...}, "key": "PATH"} or
//     {"header", "payload", "secret_file": "PATH"} (HMAC with the file's bytes as the secret), or
//     {"header", "payload"} alone (no signature: for alg "none"). The algorithm is header.alg,
//     never inferred from the key, so any combination can be produced. Prints a JSON array of
//     the compact tokens, in order.

import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';

const b64url = (buf) => Buffer.from(buf).toString('base64url');

function keygen(dir) {
  fs.mkdirSync(dir, { recursive: true });
  const make = (kind) => (kind === 'es'
    ? crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' })
    : crypto.generateKeyPairSync('rsa', { modulusLength: 2048 }));
  const keys = [];
  for (const [name, kind, alg, published] of [
    ['es-a', 'es', 'ES256', true], ['rs-a', 'rs', 'RS256', true],
    ['es-other', 'es', 'ES256', false], ['rs-other', 'rs', 'RS256', false],
  ]) {
    const { privateKey, publicKey } = make(kind);
    fs.writeFileSync(path.join(dir, `${name}.pem`), privateKey.export({ format: 'pem', type: 'pkcs8' }), { mode: 0o600 });
    fs.writeFileSync(path.join(dir, `${name}.pub.pem`), publicKey.export({ format: 'pem', type: 'spki' }));
    if (published) keys.push({ ...publicKey.export({ format: 'jwk' }), kid: name, alg, use: 'sig' });
  }
  fs.writeFileSync(path.join(dir, 'jwks.json'), `${JSON.stringify({ keys })}\n`);
}

function signOne(spec) {
  const { header, payload } = spec;
  const input = `${b64url(JSON.stringify(header))}.${b64url(JSON.stringify(payload))}`;
  const alg = header.alg;
  let sig = Buffer.alloc(0);
  if (spec.secret_file !== undefined) {
    const hash = { HS256: 'sha256', HS384: 'sha384', HS512: 'sha512' }[alg];
    if (!hash) throw new Error(`secret_file needs an HS* alg, not ${alg}`);
    sig = crypto.createHmac(hash, fs.readFileSync(spec.secret_file)).update(input).digest();
  } else if (spec.key !== undefined) {
    const key = crypto.createPrivateKey(fs.readFileSync(spec.key));
    if (alg === 'ES256') {
      sig = crypto.sign('sha256', Buffer.from(input), { key, dsaEncoding: 'ieee-p1363' });
    } else if (alg === 'RS256') {
      sig = crypto.sign('sha256', Buffer.from(input), key);
    } else if (alg === 'PS256') {
      sig = crypto.sign('sha256', Buffer.from(input), { key, padding: crypto.constants.RSA_PKCS1_PSS_PADDING });
    } else {
      throw new Error(`a key cannot sign alg ${alg}`);
    }
  }
  return `${input}.${b64url(sig)}`;
}

function main() {
  const [cmd, arg] = process.argv.slice(2);
  if (cmd === 'keygen' && arg) {
    keygen(arg);
  } else if (cmd === 'sign') {
    const specs = JSON.parse(fs.readFileSync(0, 'utf8'));
    process.stdout.write(`${JSON.stringify(specs.map(signOne))}\n`);
  } else {
    process.stderr.write('usage: node mint.js keygen DIR | node mint.js sign < SPECS.json\n');
    process.exit(2);
  }
}

main();
