-- The auth service's tables. Portable between SQLite and PostgreSQL: ids are TEXT (UUIDv7),
-- times BIGINT milliseconds since the epoch, flags INTEGER 0/1.

CREATE TABLE users (
    id               TEXT PRIMARY KEY,
    tenant           TEXT NOT NULL,
    email            TEXT NOT NULL,
    email_normalized TEXT NOT NULL,
    password_hash    TEXT NOT NULL,
    name             TEXT NOT NULL,
    disabled         INTEGER NOT NULL DEFAULT 0,
    created_at       BIGINT NOT NULL,
    updated_at       BIGINT NOT NULL,
    UNIQUE (tenant, email_normalized)
);
CREATE INDEX users_tenant_created ON users (tenant, created_at, id);

CREATE TABLE roles (
    id          TEXT PRIMARY KEY,
    tenant      TEXT NOT NULL,
    name        TEXT NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    builtin     INTEGER NOT NULL DEFAULT 0,
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL,
    UNIQUE (tenant, name)
);

CREATE TABLE role_permissions (
    role_id    TEXT NOT NULL REFERENCES roles (id) ON DELETE CASCADE,
    permission TEXT NOT NULL,
    PRIMARY KEY (role_id, permission)
);

CREATE TABLE user_roles (
    user_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    role_id TEXT NOT NULL REFERENCES roles (id) ON DELETE CASCADE,
    PRIMARY KEY (user_id, role_id)
);
CREATE INDEX user_roles_role ON user_roles (role_id);

CREATE TABLE refresh_tokens (
    id         TEXT PRIMARY KEY,
    family_id  TEXT NOT NULL,
    user_id    TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    token_hash TEXT NOT NULL UNIQUE,
    expires_at BIGINT NOT NULL,
    spent_at   BIGINT,
    revoked_at BIGINT,
    created_at BIGINT NOT NULL
);
CREATE INDEX refresh_tokens_family ON refresh_tokens (family_id);
CREATE INDEX refresh_tokens_user ON refresh_tokens (user_id);

CREATE TABLE password_resets (
    token_hash TEXT PRIMARY KEY,
    user_id    TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    expires_at BIGINT NOT NULL,
    used_at    BIGINT,
    created_at BIGINT NOT NULL
);
CREATE INDEX password_resets_user ON password_resets (user_id);

CREATE TABLE login_failures (
    tenant           TEXT NOT NULL,
    email_normalized TEXT NOT NULL,
    at               BIGINT NOT NULL
);
CREATE INDEX login_failures_email ON login_failures (tenant, email_normalized, at);

CREATE TABLE audit_log (
    id     TEXT PRIMARY KEY,
    tenant TEXT NOT NULL,
    at     BIGINT NOT NULL,
    actor  TEXT,
    action TEXT NOT NULL,
    target TEXT,
    detail TEXT
);
CREATE INDEX audit_log_tenant_at ON audit_log (tenant, at);
