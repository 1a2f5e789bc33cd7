-- The full-text search scoped by rowid ranges instead of index tokens (docs/performance.md).
--
-- 003 filtered a search by tenant with a token of the tenant in every row's search_scope: the
-- words' matches were intersected with the tenant's token, whose list holds every product of the
-- tenant; for a large tenant that intersection cost more than the words themselves. Now:
--
-- * every tenant gets a number (tenant_numbers), and its products live in the rowid range
--   (number << 40, (number + 1) << 40): the search passes that range to FTS5, which seeks
--   straight into it. The insert trigger moves a new product into its tenant's range (a rowid
--   SQLite picked is the last one plus one, which may lie in another tenant's range). 2^40
--   products per tenant, 8,388,606 tenants. A product never changes tenant (refused below).
-- * search_flags holds the token 'inactive' for an inactive product, nothing for an active one:
--   the shop's search excludes the few inactive products with NOT, which costs next to nothing.
--
-- Applying this renumbers the existing products and rebuilds the index (seconds at 100,000).
DROP TRIGGER products_fts_insert;
DROP TRIGGER products_fts_delete;
DROP TRIGGER products_fts_update;
DROP TABLE products_fts;
ALTER TABLE products DROP COLUMN search_scope;

CREATE TABLE tenant_numbers (
    number INTEGER PRIMARY KEY CHECK (number BETWEEN 1 AND 8388606),
    tenant TEXT NOT NULL UNIQUE
);
INSERT INTO tenant_numbers (tenant) SELECT DISTINCT tenant FROM products ORDER BY tenant;

-- Old rowids are below 2^40, new ones above: no row takes another's rowid on the way.
UPDATE products SET rowid = placed.rowid_new
FROM (SELECT p.rowid AS rowid_old,
             (t.number << 40) + ROW_NUMBER() OVER (PARTITION BY t.number ORDER BY p.rowid)
                 AS rowid_new
      FROM products p JOIN tenant_numbers t ON t.tenant = p.tenant) AS placed
WHERE products.rowid = placed.rowid_old;

ALTER TABLE products ADD COLUMN search_flags TEXT GENERATED ALWAYS AS (
    CASE active WHEN 1 THEN '' ELSE 'inactive' END
) VIRTUAL;

CREATE VIRTUAL TABLE products_fts USING fts5 (
    name, brand_name, description, search_flags,
    content = 'products', content_rowid = 'rowid',
    tokenize = 'unicode61 remove_diacritics 2',
    prefix = '2 3 4'
);

CREATE TRIGGER products_fts_insert AFTER INSERT ON products BEGIN
    INSERT OR IGNORE INTO tenant_numbers (tenant) VALUES (new.tenant);
    UPDATE products SET rowid = (
        SELECT COALESCE((SELECT q.rowid FROM products q
                         WHERE q.rowid > (t.number << 40) AND q.rowid < ((t.number + 1) << 40)
                         ORDER BY q.rowid DESC LIMIT 1), t.number << 40) + 1
        FROM tenant_numbers t WHERE t.tenant = new.tenant)
    WHERE rowid = new.rowid
      AND rowid >> 40 IS NOT (SELECT number FROM tenant_numbers WHERE tenant = new.tenant);
    INSERT INTO products_fts (rowid, name, brand_name, description, search_flags)
    SELECT rowid, name, brand_name, description, search_flags FROM products WHERE id = new.id;
END;

CREATE TRIGGER products_tenant_fixed BEFORE UPDATE OF tenant ON products
WHEN new.tenant IS NOT old.tenant BEGIN
    SELECT RAISE(ABORT, 'a product cannot move to another tenant');
END;

CREATE TRIGGER products_fts_delete AFTER DELETE ON products BEGIN
    INSERT INTO products_fts (products_fts, rowid, name, brand_name, description, search_flags)
    VALUES ('delete', old.rowid, old.name, old.brand_name, old.description, old.search_flags);
END;

CREATE TRIGGER products_fts_update AFTER UPDATE OF name, brand_name, description, active
ON products BEGIN
    INSERT INTO products_fts (products_fts, rowid, name, brand_name, description, search_flags)
    VALUES ('delete', old.rowid, old.name, old.brand_name, old.description, old.search_flags);
    INSERT INTO products_fts (rowid, name, brand_name, description, search_flags)
    VALUES (new.rowid, new.name, new.brand_name, new.description, new.search_flags);
END;

INSERT INTO products_fts (products_fts) VALUES ('rebuild');
