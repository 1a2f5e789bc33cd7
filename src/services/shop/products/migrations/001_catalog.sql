-- The catalog: products and what classifies them, scoped by tenant. Portable between SQLite and
-- PostgreSQL: ids are TEXT (UUIDv7), times BIGINT milliseconds since the epoch, flags INTEGER
-- 0/1, money BIGINT minor units. The full-text index is per driver (002_search).

CREATE TABLE vat_rates (
    id          TEXT PRIMARY KEY,
    tenant      TEXT NOT NULL,
    name        TEXT NOT NULL,
    rate_bp     INTEGER NOT NULL CHECK (rate_bp BETWEEN 0 AND 10000), -- basis points: 2000 = 20 %
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL,
    UNIQUE (tenant, name)
);

CREATE TABLE brands (
    id          TEXT PRIMARY KEY,
    tenant      TEXT NOT NULL,
    name        TEXT NOT NULL,
    slug        TEXT NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL,
    UNIQUE (tenant, slug)
);

CREATE TABLE types (
    id          TEXT PRIMARY KEY,
    tenant      TEXT NOT NULL,
    name        TEXT NOT NULL,
    slug        TEXT NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL,
    UNIQUE (tenant, slug)
);

CREATE TABLE catalogs (
    id          TEXT PRIMARY KEY,
    tenant      TEXT NOT NULL,
    name        TEXT NOT NULL,
    slug        TEXT NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL,
    UNIQUE (tenant, slug)
);

-- A tree: parent_id NULL for a root. Cycles are refused by the service (an ancestor walk in the
-- same transaction as the write).
CREATE TABLE categories (
    id          TEXT PRIMARY KEY,
    tenant      TEXT NOT NULL,
    parent_id   TEXT REFERENCES categories (id),
    name        TEXT NOT NULL,
    slug        TEXT NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    position    INTEGER NOT NULL DEFAULT 0,
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL,
    UNIQUE (tenant, slug)
);
CREATE INDEX categories_parent ON categories (parent_id);

-- stock: on_hand counts the units in the warehouse, reserved those held by open reservations;
-- available = on_hand - reserved is never negative (the CHECK is the last line of defence).
-- brand_name is a copy of the brand's name for the full-text index (kept by the service).
CREATE TABLE products (
    id                  TEXT PRIMARY KEY,
    tenant              TEXT NOT NULL,
    sku                 TEXT NOT NULL,
    name                TEXT NOT NULL,
    slug                TEXT NOT NULL,
    description         TEXT NOT NULL DEFAULT '',
    price_amount        BIGINT NOT NULL CHECK (price_amount >= 0),
    currency            TEXT NOT NULL,
    vat_rate_id         TEXT REFERENCES vat_rates (id),
    brand_id            TEXT REFERENCES brands (id),
    brand_name          TEXT NOT NULL DEFAULT '',
    type_id             TEXT REFERENCES types (id),
    attributes          TEXT NOT NULL DEFAULT '{}',
    on_hand             BIGINT NOT NULL DEFAULT 0 CHECK (on_hand >= 0),
    reserved            BIGINT NOT NULL DEFAULT 0 CHECK (reserved >= 0 AND reserved <= on_hand),
    low_stock_threshold BIGINT NOT NULL DEFAULT 0 CHECK (low_stock_threshold >= 0),
    active              INTEGER NOT NULL DEFAULT 1,
    created_at          BIGINT NOT NULL,
    updated_at          BIGINT NOT NULL,
    UNIQUE (tenant, sku)
);
CREATE INDEX products_tenant_created ON products (tenant, created_at, id);
CREATE INDEX products_tenant_price ON products (tenant, price_amount, id);
CREATE INDEX products_tenant_name ON products (tenant, name, id);
CREATE INDEX products_brand ON products (brand_id);
CREATE INDEX products_type ON products (type_id);
CREATE INDEX products_vat_rate ON products (vat_rate_id);

CREATE TABLE product_categories (
    product_id  TEXT NOT NULL REFERENCES products (id) ON DELETE CASCADE,
    category_id TEXT NOT NULL REFERENCES categories (id),
    PRIMARY KEY (product_id, category_id)
);
CREATE INDEX product_categories_category ON product_categories (category_id, product_id);

CREATE TABLE product_catalogs (
    product_id TEXT NOT NULL REFERENCES products (id) ON DELETE CASCADE,
    catalog_id TEXT NOT NULL REFERENCES catalogs (id),
    PRIMARY KEY (product_id, catalog_id)
);
CREATE INDEX product_catalogs_catalog ON product_catalogs (catalog_id, product_id);

-- An image's bytes live in the blob store under blob_key; etag is the SHA-256 of the bytes.
CREATE TABLE product_images (
    id           TEXT PRIMARY KEY,
    tenant       TEXT NOT NULL,
    product_id   TEXT NOT NULL REFERENCES products (id) ON DELETE CASCADE,
    content_type TEXT NOT NULL,
    size         BIGINT NOT NULL,
    etag         TEXT NOT NULL,
    blob_key     TEXT NOT NULL,
    position     INTEGER NOT NULL DEFAULT 0,
    created_at   BIGINT NOT NULL
);
CREATE INDEX product_images_product ON product_images (product_id, position, id);

-- Reservations for the checkout: held units count in products.reserved until committed (the
-- units leave on_hand) or released (by request or when expires_at passes). request_hash makes a
-- replay with the same reservation_id and the same items idempotent, and a different one 409.
CREATE TABLE reservations (
    tenant       TEXT NOT NULL,
    id           TEXT NOT NULL,
    state        TEXT NOT NULL CHECK (state IN ('held', 'committed', 'released', 'expired')),
    request_hash TEXT NOT NULL,
    expires_at   BIGINT NOT NULL,
    created_at   BIGINT NOT NULL,
    updated_at   BIGINT NOT NULL,
    PRIMARY KEY (tenant, id)
);
CREATE INDEX reservations_held_expiry ON reservations (state, expires_at);

CREATE TABLE reservation_items (
    tenant         TEXT NOT NULL,
    reservation_id TEXT NOT NULL,
    product_id     TEXT NOT NULL,
    quantity       BIGINT NOT NULL CHECK (quantity > 0),
    PRIMARY KEY (tenant, reservation_id, product_id),
    FOREIGN KEY (tenant, reservation_id) REFERENCES reservations (tenant, id)
);
CREATE INDEX reservation_items_product ON reservation_items (product_id);
