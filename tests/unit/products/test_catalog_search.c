/*
 * Unit tests for src/services/shop/products/search.c: q cut into words, the full-text query
 * texts, and the list SQL run on an in-memory SQLite database with the service's migrations.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The module is compiled into the test: the products service is an executable, not a library. */
#include "services/shop/products/search.c"
#include "services/shop/products/search_rank.c"

/* ---- words ---- */

static void split_expect(const char *q, int count, const char *const *words)
{
    struct search_words w;
    int n = search_words_split(q, strlen(q), &w);
    if (n != count)
        fail_msg("\"%s\": %d words, expected %d", q, n, count);
    for (int i = 0; i < count; i++)
        assert_string_equal(w.word[i], words[i]);
}

static void words_split(void **state)
{
    (void)state;
    split_expect("Red apple", 2, (const char *const[]){"red", "apple"});
    split_expect("  \"near\"*  NEAR(a b) ", 4, (const char *const[]){"near", "near", "a", "b"});
    split_expect("a OR b AND NOT c", 6, (const char *const[]){"a", "or", "b", "and", "not", "c"});
    split_expect("-x +y 'z' \\w %v", 5, (const char *const[]){"x", "y", "z", "w", "v"});
    split_expect("Crème brûlée", 2, (const char *const[]){"crème", "brûlée"});
    split_expect("日本語,tea", 2, (const char *const[]){"日本語", "tea"});
    split_expect("usb-c 3.1", 4, (const char *const[]){"usb", "c", "3", "1"});
    split_expect("a\xff\xfe"
                 "b\xc3",
                 2, (const char *const[]){"a", "b"});
    split_expect("😀 ok ☃", 1, (const char *const[]){"ok"});
    split_expect("\"", 0, NULL);
    split_expect("*", 0, NULL);
    split_expect("", 0, NULL);
    split_expect("' \" * ( ) : ^ - + ,", 0, NULL);
}

static void words_limits(void **state)
{
    (void)state;
    struct search_words w;
    char q[600];
    memset(q, 'a', SEARCH_Q_MAX_BYTES);
    assert_int_equal(search_words_split(q, SEARCH_Q_MAX_BYTES, &w), 1);
    assert_int_equal(strlen(w.word[0]), SEARCH_Q_MAX_BYTES);
    assert_int_equal(search_words_split(q, SEARCH_Q_MAX_BYTES + 1, &w), AG_ERANGE);
    /* 16 words of one letter fit; 17 do not */
    for (size_t i = 0; i < 17; i++)
        memcpy(q + 2 * i, "a ", 2);
    assert_int_equal(search_words_split(q, 2 * 16, &w), 16);
    assert_int_equal(search_words_split(q, 2 * 17, &w), AG_ERANGE);
    /* 16 words filling all 200 bytes: every word's NUL takes its separator's place */
    for (size_t i = 0; i < 15; i++)
        memcpy(q + 13 * i, "abcdefghijkl ", 13);
    memcpy(q + 195, "mnopq", 5);
    assert_int_equal(search_words_split(q, SEARCH_Q_MAX_BYTES, &w), 16);
    assert_string_equal(w.word[15], "mnopq");
}

static void match_texts(void **state)
{
    (void)state;
    struct search_words w;
    struct ag_buf b;
    const char *q = "near \"x\" OR y*";
    assert_int_equal(search_words_split(q, strlen(q), &w), 4);
    ag_buf_init(&b, 1024);
    assert_int_equal(search_match_fts5(&w, &b), 0);
    assert_int_equal(ag_buf_append(&b, "", 1), 0);
    assert_string_equal(b.data, "\"near\"* \"x\"* \"or\"* \"y\"*");
    ag_buf_clear(&b);
    assert_int_equal(search_match_tsquery(&w, &b), 0);
    assert_int_equal(ag_buf_append(&b, "", 1), 0);
    assert_string_equal(b.data, "'near':* & 'x':* & 'or':* & 'y':*");
    ag_buf_release(&b);
}

/* ---- the SQL, on SQLite ---- */

static char *read_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    char *text = NULL;
    long n;
    if (!f)
        fail_msg("cannot open %s (tests run from the repository root)", path);
    fseek(f, 0, SEEK_END);
    n = ftell(f);
    fseek(f, 0, SEEK_SET);
    text = calloc(1, (size_t)n + 1);
    assert_non_null(text);
    assert_int_equal(fread(text, 1, (size_t)n, f), (size_t)n);
    fclose(f);
    return text;
}

static void exec_ok(struct kit_db *db, const char *sql)
{
    struct ag_err err = {0};
    int rc = kit_db_exec_script(db, sql, &err);
    if (rc < 0)
        fail_msg("%s: %s", sql, err.msg);
}

/* Ids: categories 1 ⊃ 2 ⊃ 3, and 4; brand 5 "Acme"; catalog 6. */
#define ID(n) "00000000-0000-7000-8000-00000000000" #n
static const char seed_sql[] =
    "INSERT INTO categories (id, tenant, parent_id, name, slug, created_at, updated_at) VALUES "
    "('00000000-0000-7000-8000-000000000001', 't', NULL, 'Food', 'food', 1, 1), "
    "('00000000-0000-7000-8000-000000000002', 't', '00000000-0000-7000-8000-000000000001', "
    "'Fruit', 'fruit', 1, 1), "
    "('00000000-0000-7000-8000-000000000003', 't', '00000000-0000-7000-8000-000000000002', "
    "'Apples', 'apples', 1, 1), "
    "('00000000-0000-7000-8000-000000000004', 't', NULL, 'Tools', 'tools', 1, 1);"
    "INSERT INTO brands (id, tenant, name, slug, created_at, updated_at) VALUES "
    "('00000000-0000-7000-8000-000000000005', 't', 'Acme', 'acme', 1, 1);"
    "INSERT INTO catalogs (id, tenant, name, slug, created_at, updated_at) VALUES "
    "('00000000-0000-7000-8000-000000000006', 't', 'Summer', 'summer', 1, 1);"
    "INSERT INTO products (id, tenant, sku, name, slug, description, price_amount, currency, "
    "brand_id, brand_name, on_hand, reserved, active, created_at, updated_at) VALUES "
    "('p1', 't', 'P1', 'Red Apple', 'red-apple', 'crisp fruit', 100, 'EUR', "
    "'00000000-0000-7000-8000-000000000005', 'Acme', 5, 0, 1, 10, 10), "
    "('p2', 't', 'P2', 'Green Pear', 'green-pear', 'grows near the apple tree', 200, 'EUR', "
    "NULL, '', 3, 3, 1, 20, 20), "
    "('p3', 't', 'P3', 'Apple Pie', 'apple-pie', 'baked', 300, 'EUR', NULL, '', 1, 0, 0, 30, 30);"
    "INSERT INTO product_categories (product_id, category_id) VALUES "
    "('p1', '00000000-0000-7000-8000-000000000003'), "
    "('p2', '00000000-0000-7000-8000-000000000002'), "
    "('p3', '00000000-0000-7000-8000-000000000001');";
/* Inserted after 004_tenant_ranges: p4 after the other tenant's p5, so that it is moved. */
static const char seed_later_sql[] =
    "INSERT INTO products (id, tenant, sku, name, slug, description, price_amount, currency, "
    "brand_id, brand_name, on_hand, reserved, active, created_at, updated_at) VALUES "
    "('p5', 'u', 'P1', 'Apple', 'apple', 'other tenant', 100, 'EUR', NULL, '', 1, 0, 1, 50, 50), "
    "('p4', 't', 'P4', 'Hammer', 'hammer', 'steel', 400, 'EUR', "
    "'00000000-0000-7000-8000-000000000005', 'Acme', 0, 0, 1, 40, 40);"
    "INSERT INTO product_categories (product_id, category_id) VALUES "
    "('p4', '00000000-0000-7000-8000-000000000004');"
    "INSERT INTO product_catalogs (product_id, catalog_id) VALUES "
    "('p4', '00000000-0000-7000-8000-000000000006');";

static int setup_db(void **state)
{
    static const char *const migrations[] = {
        "src/services/shop/products/migrations/001_catalog.sql",
        "src/services/shop/products/migrations/002_search.sqlite.sql",
        "src/services/shop/products/migrations/003_search_scope.sqlite.sql",
        "src/services/shop/products/migrations/004_tenant_ranges.sqlite.sql",
    };
    struct kit_db *db = NULL;
    struct ag_err err = {0};
    assert_int_equal(search_rank_register(), 0); /* once per process is enough; more is harmless */
    assert_int_equal(kit_db_open("sqlite::memory:", &db, &err), 0);
    /* half the rows before 004 (it renumbers them and rebuilds the index), half after (the
     * triggers place and index them) */
    for (size_t i = 0; i < 4; i++) {
        if (i == 3)
            exec_ok(db, seed_sql);
        char *text = read_file(migrations[i]);
        exec_ok(db, text);
        free(text);
    }
    exec_ok(db, seed_later_sql);
    *state = db;
    return 0;
}

static int teardown_db(void **state)
{
    kit_db_close(*state);
    return 0;
}

static void filters_init(struct search_filters *f, const char *q)
{
    memset(f, 0, sizeof *f);
    f->min_price = f->max_price = -1;
    f->page = (struct kit_page){1, 20, 0};
    if (q)
        assert_true(search_words_split(q, strlen(q), &f->words) >= 0);
    f->sort = f->words.count ? SEARCH_SORT_RELEVANCE : SEARCH_SORT_CREATED_DESC;
}

/* Runs f's count and page; the ids of the page, comma-separated, into out; returns the total. */
static int64_t run(struct kit_db *db, const struct search_filters *f, char *out, size_t size)
{
    struct search_sql s;
    struct kit_db_rows *rows = NULL;
    struct ag_err err = {0};
    int64_t total = -1;
    search_sql_init(&s);
    assert_int_equal(search_sql_build(&s, f, KIT_DB_SQLITE, "t", "p.id"), 0);
    if (kit_db_query_int(db, ag_buf_str(&s.count_sql).p, s.params, s.count_params, &total, &err) <
        0)
        fail_msg("%s: %s", ag_buf_str(&s.count_sql).p, err.msg);
    if (kit_db_query(db, ag_buf_str(&s.page_sql).p, s.params, s.page_params, 0, &rows, &err) < 0)
        fail_msg("%s: %s", ag_buf_str(&s.page_sql).p, err.msg);
    for (size_t r = 0; s.page_total && r < kit_db_rows_count(rows); r++) /* the same total */
        assert_int_equal(kit_db_rows_int(rows, r, kit_db_rows_columns(rows) - 1), total);
    out[0] = '\0';
    for (size_t r = 0; r < kit_db_rows_count(rows); r++)
        snprintf(out + strlen(out), size - strlen(out), "%s%s", r ? "," : "",
                 kit_db_rows_text(rows, r, 0, NULL));
    kit_db_rows_free(rows);
    search_sql_release(&s);
    return total;
}

static void list_filters(void **state)
{
    struct kit_db *db = *state;
    struct search_filters f;
    char ids[256];

    filters_init(&f, NULL);
    assert_int_equal(run(db, &f, ids, sizeof ids), 3);
    assert_string_equal(ids, "p4,p2,p1"); /* newest first; p3 inactive, p5 another tenant */
    f.active = SEARCH_ACTIVE_ALL;
    assert_int_equal(run(db, &f, ids, sizeof ids), 4);
    f.active = SEARCH_ACTIVE_FALSE;
    assert_int_equal(run(db, &f, ids, sizeof ids), 1);
    assert_string_equal(ids, "p3");

    filters_init(&f, NULL);
    f.category = ID(1); /* with its descendants 2 and 3 */
    assert_int_equal(run(db, &f, ids, sizeof ids), 2);
    assert_string_equal(ids, "p2,p1");
    f.category = ID(3);
    assert_int_equal(run(db, &f, ids, sizeof ids), 1);
    assert_string_equal(ids, "p1");

    filters_init(&f, NULL);
    f.brand = ID(5);
    f.sort = SEARCH_SORT_PRICE;
    assert_int_equal(run(db, &f, ids, sizeof ids), 2);
    assert_string_equal(ids, "p1,p4");
    f.sort = SEARCH_SORT_PRICE_DESC;
    run(db, &f, ids, sizeof ids);
    assert_string_equal(ids, "p4,p1");
    f.sort = SEARCH_SORT_NAME;
    run(db, &f, ids, sizeof ids);
    assert_string_equal(ids, "p4,p1");

    filters_init(&f, NULL);
    f.min_price = 150;
    f.max_price = 400;
    assert_int_equal(run(db, &f, ids, sizeof ids), 2);
    assert_string_equal(ids, "p4,p2");
    f.stock = SEARCH_STOCK_IN; /* p2 has every unit reserved, p4 none on hand */
    assert_int_equal(run(db, &f, ids, sizeof ids), 0);
    f.stock = SEARCH_STOCK_OUT;
    assert_int_equal(run(db, &f, ids, sizeof ids), 2);

    filters_init(&f, NULL);
    f.catalog = ID(6);
    assert_int_equal(run(db, &f, ids, sizeof ids), 1);
    assert_string_equal(ids, "p4");

    /* a scope and the same kind of filter together: both hold */
    filters_init(&f, NULL);
    f.scope = PRODUCTS_SCOPE_CATEGORY;
    f.scope_id = ID(1);
    f.category = ID(2);
    assert_int_equal(run(db, &f, ids, sizeof ids), 2);
    f.category = ID(4);
    assert_int_equal(run(db, &f, ids, sizeof ids), 0);
    filters_init(&f, NULL);
    f.scope = PRODUCTS_SCOPE_BRAND;
    f.scope_id = ID(5);
    assert_int_equal(run(db, &f, ids, sizeof ids), 2);
    f.scope = PRODUCTS_SCOPE_CATALOG;
    f.scope_id = ID(6);
    assert_int_equal(run(db, &f, ids, sizeof ids), 1);

    /* pages */
    filters_init(&f, NULL);
    f.page = (struct kit_page){2, 2, 2};
    assert_int_equal(run(db, &f, ids, sizeof ids), 3);
    assert_string_equal(ids, "p1");
}

static void list_full_text(void **state)
{
    struct kit_db *db = *state;
    struct search_filters f;
    char ids[256];

    filters_init(&f, "apple");
    assert_int_equal(run(db, &f, ids, sizeof ids), 2);
    assert_string_equal(ids, "p1,p2"); /* the name weighs more than the description */
    filters_init(&f, "APP");           /* a prefix, any case */
    assert_int_equal(run(db, &f, ids, sizeof ids), 2);
    filters_init(&f, "acme");
    assert_int_equal(run(db, &f, ids, sizeof ids), 2);
    filters_init(&f, "apple near"); /* every word must match: NEAR is a plain word */
    assert_int_equal(run(db, &f, ids, sizeof ids), 1);
    assert_string_equal(ids, "p2");
    filters_init(&f, "apple OR hammer"); /* OR too */
    assert_int_equal(run(db, &f, ids, sizeof ids), 0);
    filters_init(&f, "apple");
    f.category = ID(2);
    f.sort = SEARCH_SORT_PRICE_DESC;
    assert_int_equal(run(db, &f, ids, sizeof ids), 2);
    assert_string_equal(ids, "p2,p1");

    /* q alone reads the index alone: the tenant is a rowid range, active a search_flags token */
    filters_init(&f, "apple");
    f.active = SEARCH_ACTIVE_ALL;
    assert_int_equal(run(db, &f, ids, sizeof ids), 3);
    assert_string_equal(ids, "p1,p3,p2"); /* apple once in the name: a tie, broken by rowid */
    f.active = SEARCH_ACTIVE_FALSE;
    assert_int_equal(run(db, &f, ids, sizeof ids), 1);
    assert_string_equal(ids, "p3");
    f.active = SEARCH_ACTIVE_TRUE;
    f.min_price = 0; /* the same through the join to products */
    assert_int_equal(run(db, &f, ids, sizeof ids), 2);
    assert_string_equal(ids, "p1,p2");
    f.min_price = -1;
    f.sort = SEARCH_SORT_PRICE_DESC; /* another sort: through the join, the count from the index */
    assert_int_equal(run(db, &f, ids, sizeof ids), 2);
    assert_string_equal(ids, "p2,p1");
    f.sort = SEARCH_SORT_RELEVANCE;
    f.page = (struct kit_page){2, 1, 1};
    assert_int_equal(run(db, &f, ids, sizeof ids), 2);
    assert_string_equal(ids, "p2");
    f.page = (struct kit_page){3, 1, 2}; /* past the end: no row, the total from the count */
    assert_int_equal(run(db, &f, ids, sizeof ids), 2);
    assert_string_equal(ids, "");
    /* a product that becomes inactive leaves the shop's search at once */
    exec_ok(db, "UPDATE products SET active = 0 WHERE id = 'p1'");
    filters_init(&f, "apple");
    assert_int_equal(run(db, &f, ids, sizeof ids), 1);
    assert_string_equal(ids, "p2");
    exec_ok(db, "UPDATE products SET active = 1 WHERE id = 'p1'");
    assert_int_equal(run(db, &f, ids, sizeof ids), 2);
    assert_string_equal(ids, "p1,p2");
    /* the other tenant sees its own product only; an unknown tenant nothing */
    struct search_sql s;
    int64_t n = -1;
    struct ag_err err = {0};
    search_sql_init(&s);
    assert_int_equal(search_sql_build(&s, &f, KIT_DB_SQLITE, "u", "p.id"), 0);
    assert_int_equal(
        kit_db_query_int(db, ag_buf_str(&s.count_sql).p, s.params, s.count_params, &n, &err), 0);
    assert_int_equal(n, 1);
    search_sql_release(&s);
    search_sql_init(&s);
    assert_int_equal(search_sql_build(&s, &f, KIT_DB_SQLITE, "nobody", "p.id"), 0);
    assert_int_equal(
        kit_db_query_int(db, ag_buf_str(&s.count_sql).p, s.params, s.count_params, &n, &err), 0);
    assert_int_equal(n, 0);
    search_sql_release(&s);

    /* hostile input: whatever survives is plain words */
    static const char *const hostile[] = {
        "\"",  "*",       "NEAR(",        "a OR b",    "-x",     "'",
        "\\",  "%",       "\"unbalanced", "col:apple", "^apple", "apple*\"*",
        "NOT", "AND AND", "(((",          "{a b}:c",   "😀x"};
    for (size_t i = 0; i < sizeof hostile / sizeof hostile[0]; i++) {
        filters_init(&f, hostile[i]);
        if (f.words.count == 0)
            continue;
        assert_true(run(db, &f, ids, sizeof ids) >= 0);
    }
}

/* The first column of every row of sql (with n params), comma-separated, into out. */
static void texts_of_params(struct kit_db *db, const char *sql, const struct kit_db_value *params,
                            size_t n, char *out, size_t size)
{
    struct kit_db_rows *rows = NULL;
    struct ag_err err = {0};
    if (kit_db_query(db, sql, params, n, 0, &rows, &err) < 0)
        fail_msg("%s: %s", sql, err.msg);
    out[0] = '\0';
    for (size_t r = 0; r < kit_db_rows_count(rows); r++)
        snprintf(out + strlen(out), size - strlen(out), "%s%s", r ? "," : "",
                 kit_db_rows_text(rows, r, 0, NULL));
    kit_db_rows_free(rows);
}

/* products_rank's score of each match, in rowid order, as "%.4f,..." */
static void ranks_of(struct kit_db *db, const char *match, char *out, size_t size)
{
    texts_of_params(db,
                    "SELECT printf('%.4f', products_rank(products_fts, 10.0, 5.0, 1.0)) FROM "
                    "products_fts WHERE products_fts MATCH $1 ORDER BY rowid",
                    KIT_DB_PARAMS(KIT_DB_TEXT(match)), out, size);
}

static void rank_scores(void **state)
{
    struct kit_db *db = *state;
    char ranks[256];
    /* one word once in the name: tf 10 → -(10 × 2.2 / 11.2); once in the description: tf 1 */
    ranks_of(db, "{name brand_name description} : \"apple\"", ranks, sizeof ranks);
    assert_string_equal(ranks, "-1.9643,-1.0000,-1.9643,-1.9643");
    /* a brand word (weight 5): p1 and p4, Acme; two words add up */
    ranks_of(db, "{name brand_name description} : (\"acme\")", ranks, sizeof ranks);
    assert_string_equal(ranks, "-1.7742,-1.7742"); /* 5 × 2.2 / 6.2 */
    ranks_of(db, "{name brand_name description} : (\"acme\" \"red\")", ranks, sizeof ranks);
    assert_string_equal(ranks, "-3.7385");
    /* a column without a weight (search_flags) adds nothing */
    ranks_of(db, "search_flags : inactive", ranks, sizeof ranks);
    assert_string_equal(ranks, "0.0000");
    /* more occurrences rank better, with diminishing returns */
    exec_ok(db, "UPDATE products SET description = 'steel steel steel' WHERE id = 'p4'");
    ranks_of(db, "\"steel\"", ranks, sizeof ranks);
    assert_string_equal(ranks, "-1.5714"); /* tf 3: 3 × 2.2 / 4.2 */
}

/* The first column of every row of sql, comma-separated, into out. */
static void texts_of(struct kit_db *db, const char *sql, char *out, size_t size)
{
    texts_of_params(db, sql, NULL, 0, out, size);
}

static void tenant_ranges(void **state)
{
    struct kit_db *db = *state;
    char out[256];
    struct ag_err err = {0};
    /* 004 numbered the tenants it found (t) and renumbered their products in order; the
     * trigger gave u the next number, and moved p4, inserted after p5, into t's range */
    texts_of(db, "SELECT tenant || number FROM tenant_numbers ORDER BY number", out, sizeof out);
    assert_string_equal(out, "t1,u2");
    texts_of(db,
             "SELECT id || ':' || (rowid >> 40) || '.' || (rowid & 1099511627775) FROM products "
             "ORDER BY rowid",
             out, sizeof out);
    assert_string_equal(out, "p1:1.1,p2:1.2,p3:1.3,p4:1.4,p5:2.1");
    /* the index has every product at its place */
    texts_of(db, "SELECT count(*) FROM products_fts p JOIN products q ON q.rowid = p.rowid", out,
             sizeof out);
    assert_string_equal(out, "5");
    /* a product deleted, then a new one: the next place in the range */
    exec_ok(db, "DELETE FROM products WHERE id = 'p5';"
                "INSERT INTO products (id, tenant, sku, name, slug, price_amount, currency, "
                "created_at, updated_at) VALUES ('p6', 'u', 'P6', 'Pear', 'pear', 1, 'EUR', 1, 1),"
                "('p7', 't', 'P7', 'Plum', 'plum', 1, 'EUR', 1, 1)");
    texts_of(db,
             "SELECT id || ':' || (rowid >> 40) || '.' || (rowid & 1099511627775) FROM products "
             "WHERE id IN ('p6', 'p7') ORDER BY id",
             out, sizeof out);
    assert_string_equal(out, "p6:2.1,p7:1.5");
    texts_of(db,
             "SELECT rowid >> 40 FROM products_fts WHERE products_fts MATCH 'pear OR plum' "
             "ORDER BY rowid",
             out, sizeof out);
    assert_string_equal(out, "1,1,2"); /* Green Pear (p2), Plum, Pear */
    /* a product never changes tenant: its range says whose it is */
    assert_true(kit_db_exec_script(db, "UPDATE products SET tenant = 'u' WHERE id = 'p1'", &err) <
                0);
    assert_non_null(strstr(err.msg, "cannot move to another tenant"));
    exec_ok(db, "UPDATE products SET tenant = 't', name = 'Red Apple' WHERE id = 'p1'");
}

static void top_matches(void **state)
{
    struct kit_db *db = *state;
    char out[256];
    /* the best `keep` by rank then rowid, after the count of every row */
    texts_of(db,
             "SELECT products_top(r, k, 3) FROM (SELECT 10 AS r, -1.0 AS k UNION ALL "
             "SELECT 11, -3.0 UNION ALL SELECT 12, -1.0 UNION ALL SELECT 9, -1.0 UNION ALL "
             "SELECT 13, -2.0)",
             out, sizeof out);
    assert_string_equal(out, "[5,11,13,9]");
    /* more kept than seen; none kept; no row at all */
    texts_of(db,
             "SELECT products_top(r, k, 100) FROM (SELECT 1 AS r, 0.5 AS k UNION ALL "
             "SELECT 2, 0.25)",
             out, sizeof out);
    assert_string_equal(out, "[2,2,1]");
    texts_of(db, "SELECT products_top(r, k, 0) FROM (SELECT 1 AS r, 0.5 AS k)", out, sizeof out);
    assert_string_equal(out, "[1]");
    texts_of(db, "SELECT products_top(rowid, 0, 20) FROM products WHERE 0", out, sizeof out);
    assert_string_equal(out, "[0]");
    /* many rows: the heap grows; the kept ones are the best, in order */
    texts_of(db,
             "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 5000) "
             "SELECT products_top(i, (i * 7919) % 5000, 4) FROM n",
             out, sizeof out);
    assert_string_equal(out, "[5000,5000,2679,358,3037]");
}

/* The query plan's details joined, for f's page. */
static void plan_of(struct kit_db *db, const struct search_filters *f, char *out, size_t size)
{
    struct search_sql s;
    struct kit_db_rows *rows = NULL;
    struct ag_err err = {0};
    char sql[SQL_MAX + 32];
    search_sql_init(&s);
    assert_int_equal(search_sql_build(&s, f, KIT_DB_SQLITE, "t", "p.id, p.name"), 0);
    snprintf(sql, sizeof sql, "EXPLAIN QUERY PLAN %s", ag_buf_str(&s.page_sql).p);
    if (kit_db_query(db, sql, s.params, s.page_params, 0, &rows, &err) < 0)
        fail_msg("%s: %s", sql, err.msg);
    out[0] = '\0';
    for (size_t r = 0; r < kit_db_rows_count(rows); r++)
        snprintf(out + strlen(out), size - strlen(out), "%s | ",
                 kit_db_rows_text(rows, r, kit_db_rows_columns(rows) - 1, NULL));
    kit_db_rows_free(rows);
    search_sql_release(&s);
}

static void plans_use_indexes(void **state)
{
    struct kit_db *db = *state;
    struct search_filters f;
    char plan[4096];

    filters_init(&f, "apple");
    f.min_price = 1; /* a filter on products: the index drives the join */
    plan_of(db, &f, plan, sizeof plan);
    if (!strstr(plan, "SCAN products_fts VIRTUAL TABLE INDEX") ||
        !strstr(plan, "SEARCH p USING INTEGER PRIMARY KEY (rowid=?)"))
        fail_msg("the full-text plan does not start from the FTS index: %s", plan);
    filters_init(&f, "apple"); /* q alone: the index alone, then a rowid lookup per page row */
    plan_of(db, &f, plan, sizeof plan);
    if (!strstr(plan, "SCAN products_fts VIRTUAL TABLE INDEX") || strstr(plan, "SCAN p ") ||
        !strstr(plan, "SEARCH p USING INTEGER PRIMARY KEY (rowid=?)"))
        fail_msg("the q-only plan does not read the FTS index alone: %s", plan);

    filters_init(&f, NULL);
    f.category = ID(1);
    plan_of(db, &f, plan, sizeof plan);
    if (!strstr(plan, "product_categories_category"))
        fail_msg("the category plan does not use product_categories_category: %s", plan);

    filters_init(&f, NULL);
    plan_of(db, &f, plan, sizeof plan);
    if (!strstr(plan, "products_tenant_created") || strstr(plan, "TEMP B-TREE FOR ORDER BY p."))
        fail_msg("the default list does not walk products_tenant_created: %s", plan);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(words_split),
        cmocka_unit_test(words_limits),
        cmocka_unit_test(match_texts),
        cmocka_unit_test_setup_teardown(list_filters, setup_db, teardown_db),
        cmocka_unit_test_setup_teardown(list_full_text, setup_db, teardown_db),
        cmocka_unit_test_setup_teardown(plans_use_indexes, setup_db, teardown_db),
        cmocka_unit_test_setup_teardown(rank_scores, setup_db, teardown_db),
        cmocka_unit_test_setup_teardown(tenant_ranges, setup_db, teardown_db),
        cmocka_unit_test_setup_teardown(top_matches, setup_db, teardown_db),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
