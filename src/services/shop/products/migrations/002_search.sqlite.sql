-- Full-text search over name, brand and description: an FTS5 index whose content is the
-- products table itself (external content), kept in step by triggers. Ranked with bm25.
-- The index is keyed by products' implicit rowid, which only VACUUM renumbers: the service never
-- runs VACUUM; after a manual one, INSERT INTO products_fts (products_fts) VALUES ('rebuild').
CREATE VIRTUAL TABLE products_fts USING fts5 (
    name, brand_name, description,
    content = 'products', content_rowid = 'rowid',
    tokenize = 'unicode61 remove_diacritics 2'
);

CREATE TRIGGER products_fts_insert AFTER INSERT ON products BEGIN
    INSERT INTO products_fts (rowid, name, brand_name, description)
    VALUES (new.rowid, new.name, new.brand_name, new.description);
END;

CREATE TRIGGER products_fts_delete AFTER DELETE ON products BEGIN
    INSERT INTO products_fts (products_fts, rowid, name, brand_name, description)
    VALUES ('delete', old.rowid, old.name, old.brand_name, old.description);
END;

CREATE TRIGGER products_fts_update AFTER UPDATE OF name, brand_name, description ON products BEGIN
    INSERT INTO products_fts (products_fts, rowid, name, brand_name, description)
    VALUES ('delete', old.rowid, old.name, old.brand_name, old.description);
    INSERT INTO products_fts (rowid, name, brand_name, description)
    VALUES (new.rowid, new.name, new.brand_name, new.description);
END;
