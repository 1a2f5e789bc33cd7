-- Full-text search over name (weight A), brand (B) and description (C): a generated tsvector
-- with a GIN index, ranked with ts_rank. The 'simple' configuration: no stemming, any language.
ALTER TABLE products ADD COLUMN search tsvector GENERATED ALWAYS AS (
    setweight(to_tsvector('simple', name), 'A') ||
    setweight(to_tsvector('simple', brand_name), 'B') ||
    setweight(to_tsvector('simple', description), 'C')
) STORED;
CREATE INDEX products_search ON products USING gin (search);
