-- The full-text index again, made for speed at 100,000 products (docs/performance.md):
--
-- * search_scope: the product's tenant and active flag as two tokens, 't<hex of tenant>' and
--   't<hex of tenant>a<0|1>', so that a search filters by tenant (and active) inside the index,
--   without looking up every match in products. A generated column, since an external-content
--   index reads its columns from the content table when it is rebuilt.
-- * prefix='2 3 4': prefix indexes for the short prefixes of search-as-you-type ("hea" matches heater).
--
-- The search ranks with products_rank (search_rank.c), which needs no column sizes.
DROP TRIGGER products_fts_insert;
DROP TRIGGER products_fts_delete;
DROP TRIGGER products_fts_update;
DROP TABLE products_fts;

ALTER TABLE products ADD COLUMN search_scope TEXT GENERATED ALWAYS AS (
    't' || lower(hex(tenant)) || ' t' || lower(hex(tenant)) || 'a' || active
) VIRTUAL;

CREATE VIRTUAL TABLE products_fts USING fts5 (
    name, brand_name, description, search_scope,
    content = 'products', content_rowid = 'rowid',
    tokenize = 'unicode61 remove_diacritics 2',
    prefix = '2 3 4'
);

CREATE TRIGGER products_fts_insert AFTER INSERT ON products BEGIN
    INSERT INTO products_fts (rowid, name, brand_name, description, search_scope)
    VALUES (new.rowid, new.name, new.brand_name, new.description, new.search_scope);
END;

CREATE TRIGGER products_fts_delete AFTER DELETE ON products BEGIN
    INSERT INTO products_fts (products_fts, rowid, name, brand_name, description, search_scope)
    VALUES ('delete', old.rowid, old.name, old.brand_name, old.description, old.search_scope);
END;

CREATE TRIGGER products_fts_update
AFTER UPDATE OF name, brand_name, description, tenant, active ON products BEGIN
    INSERT INTO products_fts (products_fts, rowid, name, brand_name, description, search_scope)
    VALUES ('delete', old.rowid, old.name, old.brand_name, old.description, old.search_scope);
    INSERT INTO products_fts (rowid, name, brand_name, description, search_scope)
    VALUES (new.rowid, new.name, new.brand_name, new.description, new.search_scope);
END;

INSERT INTO products_fts (products_fts) VALUES ('rebuild');
