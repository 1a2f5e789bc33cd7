/*
 * agora-products: the product list query. The user's q never reaches the database as query
 * syntax: it is cut into words of letters and digits, each quoted and matched as a prefix.
 */
#include "search.h"

#include <locale.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <wctype.h>

#include "core/json.h"
#include "core/banned.h"

/* ---- words ---- */

static pthread_once_t utf8_locale_once = PTHREAD_ONCE_INIT;
static locale_t utf8_locale; /* (locale_t)0 when C.UTF-8 is missing: any non-ASCII is a letter */

static void utf8_locale_open(void)
{
    utf8_locale = newlocale(LC_CTYPE_MASK, "C.UTF-8", (locale_t)0);
}

/* The code point of the well-formed sequence s[0 .. n) (n is 2 to 4). */
static uint32_t utf8_decode(const unsigned char *s, size_t n)
{
    uint32_t cp = s[0] & (0x7f >> n);
    for (size_t i = 1; i < n; i++)
        cp = (cp << 6) | (s[i] & 0x3f);
    return cp;
}

/* Bytes of the letter or digit at s[0] (n ≥ 1 available), or 0 when it separates words. */
static size_t word_char_len(const unsigned char *s, size_t n)
{
    if (s[0] < 0x80) {
        bool alnum = (s[0] >= 'a' && s[0] <= 'z') || (s[0] >= 'A' && s[0] <= 'Z') ||
                     (s[0] >= '0' && s[0] <= '9');
        return alnum ? 1 : 0;
    }
    size_t len = ag_utf8_sequence_len(s, n);
    if (len < 2)
        return 0;
    if (!utf8_locale)
        return len;
    return iswalnum_l((wint_t)utf8_decode(s, len), utf8_locale) ? len : 0;
}

int search_words_split(const char *q, size_t len, struct search_words *out)
{
    const unsigned char *s = (const unsigned char *)q;
    size_t pos = 0; /* bytes written to out->text */

    out->count = 0;
    if (len > SEARCH_Q_MAX_BYTES)
        return AG_ERANGE;
    pthread_once(&utf8_locale_once, utf8_locale_open);
    for (size_t i = 0; i < len;) {
        size_t step = word_char_len(s + i, len - i);
        if (step == 0) {
            size_t skip = s[i] < 0x80 ? 1 : ag_utf8_sequence_len(s + i, len - i);
            i += skip ? skip : 1;
            continue;
        }
        if (out->count == SEARCH_Q_MAX_WORDS)
            return AG_ERANGE;
        out->word[out->count++] = out->text + pos;
        while (step > 0) {
            for (size_t k = 0; k < step; k++) {
                char c = (char)s[i + k];
                out->text[pos++] = (c >= 'A' && c <= 'Z') ? (char)(c - 'A' + 'a') : c;
            }
            i += step;
            step = i < len ? word_char_len(s + i, len - i) : 0;
        }
        out->text[pos++] = '\0'; /* room: a separator, or the one byte past SEARCH_Q_MAX_BYTES */
    }
    return (int)out->count;
}

int search_match_fts5(const struct search_words *w, struct ag_buf *out)
{
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < w->count; i++)
        rc = ag_buf_appendf(out, "%s\"%s\"*", i ? " " : "", w->word[i]);
    return rc;
}

int search_match_tsquery(const struct search_words *w, struct ag_buf *out)
{
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < w->count; i++)
        rc = ag_buf_appendf(out, "%s'%s':*", i ? " & " : "", w->word[i]);
    return rc;
}

/* ---- the query string ---- */

/* An optional id filter: NULL when absent; refuses a value that is not an id. */
static int query_id(struct kit_req *req, const char *name, const char **out)
{
    int rc = kit_req_query_once(req, name, out);
    if (rc < 0)
        return rc;
    if (*out && !kit_id_valid(*out))
        return kit_resp_query_invalid(req, name, "must be an id");
    return 0;
}

static int query_q(struct kit_req *req, struct search_words *words)
{
    const char *q = NULL;
    char msg[96];
    int rc = kit_req_query_once(req, "q", &q);
    if (rc < 0)
        return rc;
    if (!q) {
        words->count = 0;
        return 0;
    }
    int n = search_words_split(q, strlen(q), words);
    if (n == AG_ERANGE) {
        snprintf(msg, sizeof msg, "must be at most %d bytes and %d words", SEARCH_Q_MAX_BYTES,
                 SEARCH_Q_MAX_WORDS);
        return kit_resp_query_invalid(req, "q", msg);
    }
    if (n == 0)
        return kit_resp_query_invalid(req, "q", "must hold at least one word of letters or digits");
    return 0;
}

int search_filters_parse(struct kit_req *req, enum products_scope scope, const char *scope_id,
                         struct search_filters *out)
{
    static const char *const sorts[] = {"-created_at", "price",     "-price",
                                        "name",        "relevance", NULL};
    static const char *const booleans[] = {"true", "false", NULL};
    static const char *const actives[] = {"true", "false", "all", NULL};
    const char *sort, *stock, *active;
    int rc;

    memset(out, 0, sizeof *out);
    out->scope = scope;
    out->scope_id = scope_id;
    rc = query_q(req, &out->words);
    if (rc == 0)
        rc = query_id(req, "category", &out->category);
    if (rc == 0)
        rc = query_id(req, "brand", &out->brand);
    if (rc == 0)
        rc = query_id(req, "type", &out->type);
    if (rc == 0)
        rc = query_id(req, "catalog", &out->catalog);
    if (rc == 0)
        rc = kit_req_query_int(req, "min_price", -1, 0, CATALOG_PRICE_MAX, &out->min_price);
    if (rc == 0)
        rc = kit_req_query_int(req, "max_price", -1, 0, CATALOG_PRICE_MAX, &out->max_price);
    if (rc == 0 && out->min_price >= 0 && out->max_price >= 0 && out->min_price > out->max_price)
        rc = kit_resp_query_invalid(req, "min_price", "must not be over max_price");
    if (rc == 0)
        rc = kit_req_query_enum(req, "in_stock", booleans, NULL, &stock);
    if (rc == 0)
        rc = kit_req_query_enum(req, "active", actives, "true", &active);
    if (rc == 0)
        rc = kit_req_query_enum(req, "sort", sorts, out->words.count ? "relevance" : "-created_at",
                                &sort);
    if (rc == 0 && strcmp(sort, "relevance") == 0 && out->words.count == 0)
        rc = kit_resp_query_invalid(req, "sort", "relevance needs q");
    if (rc == 0)
        rc = kit_req_page(req, &out->page);
    if (rc < 0)
        return rc;
    if (strcmp(active, "true") != 0 && !kit_req_has_role(req, "admin")) {
        kit_resp_problem(req, 403, "only admins may list inactive products");
        return AG_EINVAL;
    }
    out->stock = !stock                       ? SEARCH_STOCK_ANY
                 : strcmp(stock, "true") == 0 ? SEARCH_STOCK_IN
                                              : SEARCH_STOCK_OUT;
    out->active = strcmp(active, "true") == 0    ? SEARCH_ACTIVE_TRUE
                  : strcmp(active, "false") == 0 ? SEARCH_ACTIVE_FALSE
                                                 : SEARCH_ACTIVE_ALL;
    out->sort = strcmp(sort, "price") == 0       ? SEARCH_SORT_PRICE
                : strcmp(sort, "-price") == 0    ? SEARCH_SORT_PRICE_DESC
                : strcmp(sort, "name") == 0      ? SEARCH_SORT_NAME
                : strcmp(sort, "relevance") == 0 ? SEARCH_SORT_RELEVANCE
                                                 : SEARCH_SORT_CREATED_DESC;
    return 0;
}

/* ---- SQL ---- */

enum { SQL_MAX = 8192 }; /* the longest list statement is about 1.5 KB */

void search_sql_init(struct search_sql *s)
{
    memset(s, 0, sizeof *s);
    ag_buf_init(&s->count_sql, SQL_MAX);
    ag_buf_init(&s->page_sql, SQL_MAX);
    ag_buf_init(&s->match, 4 * SEARCH_Q_MAX_BYTES + 8 * SEARCH_Q_MAX_WORDS);
}

void search_sql_release(struct search_sql *s)
{
    ag_buf_release(&s->count_sql);
    ag_buf_release(&s->page_sql);
    ag_buf_release(&s->match);
}

/* The parameter numbers ($N) of a list's values; 0 for a value the list does not have. */
struct search_slots {
    size_t match, category, scope, brand, type, catalog, min_price, max_price, limit, offset;
};

/* Adds v as the next parameter and returns its number. */
static size_t slot_add(struct search_sql *s, struct kit_db_value v)
{
    s->params[s->page_params++] = v;
    return s->page_params;
}

/* The subtree of a category: a recursive CTE named name over the tenant's categories. */
static int cte_category(struct ag_buf *b, const char *name, size_t slot, bool first)
{
    return ag_buf_appendf(b,
                          "%s%s(id) AS (SELECT id FROM categories WHERE tenant = $1 AND id = $%zu "
                          "UNION SELECT c.id FROM categories c JOIN %s t ON c.parent_id = t.id)",
                          first ? "WITH RECURSIVE " : ", ", name, slot, name);
}

static int sql_prefix(struct ag_buf *b, const struct search_slots *n)
{
    int rc = 0;
    if (n->category)
        rc = cte_category(b, "cat_filter", n->category, true);
    if (rc == 0 && n->scope)
        rc = cte_category(b, "cat_scope", n->scope, !n->category);
    if (rc == 0 && (n->category || n->scope))
        rc = ag_buf_appendf(b, " ");
    return rc;
}

/*
 * True when f needs nothing but the SQLite full-text index: q, the tenant (a rowid range) and
 * active (the search_flags token), and no other filter (004_tenant_ranges). Its count then reads
 * the index alone, and so does its page when sorted by relevance: no lookup into products per
 * match.
 */
static bool index_only(const struct search_filters *f, enum kit_db_driver driver,
                       const struct search_slots *n)
{
    return driver == KIT_DB_SQLITE && n->match && !n->category && !n->scope && !n->brand &&
           !n->type && !n->catalog && !n->min_price && !n->max_price &&
           f->stock == SEARCH_STOCK_ANY;
}

/*
 * The FTS5 match: the words in the three text columns; active as the 'inactive' token of
 * search_flags (excluded, required, or not looked at); the tenant as its rowid range, which
 * FTS5 seeks into (an unknown tenant: the empty range 0 .. 0).
 */
static int sql_fts5_match(struct ag_buf *b, const struct search_filters *f, size_t slot)
{
    const char *active = f->active == SEARCH_ACTIVE_TRUE    ? " NOT search_flags : inactive"
                         : f->active == SEARCH_ACTIVE_FALSE ? " AND search_flags : inactive"
                                                            : "";
    return ag_buf_appendf(
        b,
        "products_fts MATCH '{name brand_name description} : (' || $%zu || ')%s' AND "
        "products_fts.rowid > COALESCE((SELECT number << 40 FROM tenant_numbers WHERE tenant = "
        "$1), 0) AND products_fts.rowid < COALESCE((SELECT (number + 1) << 40 FROM "
        "tenant_numbers WHERE tenant = $1), 0)",
        slot, active);
}

/* FROM and WHERE: the filters. With products false, over the index alone when it suffices. */
static int sql_from_where(struct ag_buf *b, const struct search_filters *f,
                          enum kit_db_driver driver, const struct search_slots *n, bool products)
{
    if (!products && index_only(f, driver, n)) {
        int rc = ag_buf_appendf(b, "FROM products_fts WHERE ");
        return rc == 0 ? sql_fts5_match(b, f, n->match) : rc;
    }
    static const char in_catalog[] =
        " AND p.id IN (SELECT product_id FROM product_catalogs WHERE catalog_id = $%zu)";
    /* CROSS JOIN: on SQLite the subtree drives, through product_categories_category */
    static const char in_category[] =
        " AND p.id IN (SELECT pc.product_id FROM %s t CROSS JOIN product_categories pc "
        "WHERE pc.category_id = t.id)";
    int rc;

    if (n->match && driver == KIT_DB_SQLITE) { /* CROSS JOIN: the FTS index drives the join */
        rc = ag_buf_appendf(b, "FROM products_fts CROSS JOIN products p WHERE ");
        if (rc == 0)
            rc = sql_fts5_match(b, f, n->match);
        if (rc == 0)
            rc = ag_buf_appendf(b, " AND p.rowid = products_fts.rowid AND p.tenant = $1");
    } else if (n->match)
        rc = ag_buf_appendf(b,
                            "FROM products p WHERE p.search @@ to_tsquery('simple', $%zu) AND "
                            "p.tenant = $1",
                            n->match);
    else
        rc = ag_buf_appendf(b, "FROM products p WHERE p.tenant = $1");
    if (rc == 0 && f->active != SEARCH_ACTIVE_ALL)
        rc = ag_buf_appendf(b, " AND p.active = %d", f->active == SEARCH_ACTIVE_TRUE);
    if (rc == 0 && n->category)
        rc = ag_buf_appendf(b, in_category, "cat_filter");
    if (rc == 0 && n->scope && f->scope == PRODUCTS_SCOPE_CATEGORY)
        rc = ag_buf_appendf(b, in_category, "cat_scope");
    if (rc == 0 && n->scope && f->scope == PRODUCTS_SCOPE_CATALOG)
        rc = ag_buf_appendf(b, in_catalog, n->scope);
    if (rc == 0 && n->scope && f->scope == PRODUCTS_SCOPE_BRAND)
        rc = ag_buf_appendf(b, " AND p.brand_id = $%zu", n->scope);
    if (rc == 0 && n->scope && f->scope == PRODUCTS_SCOPE_TYPE)
        rc = ag_buf_appendf(b, " AND p.type_id = $%zu", n->scope);
    if (rc == 0 && n->scope && f->scope == PRODUCTS_SCOPE_VAT_RATE)
        rc = ag_buf_appendf(b, " AND p.vat_rate_id = $%zu", n->scope);
    if (rc == 0 && n->brand)
        rc = ag_buf_appendf(b, " AND p.brand_id = $%zu", n->brand);
    if (rc == 0 && n->type)
        rc = ag_buf_appendf(b, " AND p.type_id = $%zu", n->type);
    if (rc == 0 && n->catalog)
        rc = ag_buf_appendf(b, in_catalog, n->catalog);
    if (rc == 0 && n->min_price)
        rc = ag_buf_appendf(b, " AND p.price_amount >= $%zu", n->min_price);
    if (rc == 0 && n->max_price)
        rc = ag_buf_appendf(b, " AND p.price_amount <= $%zu", n->max_price);
    if (rc == 0 && f->stock == SEARCH_STOCK_IN)
        rc = ag_buf_appendf(b, " AND p.on_hand > p.reserved");
    if (rc == 0 && f->stock == SEARCH_STOCK_OUT)
        rc = ag_buf_appendf(b, " AND p.on_hand = p.reserved");
    return rc;
}

/* The order of a sort inside the page's id query (inner) and over its rows (outer). */
static void sql_order(enum search_sort sort, enum kit_db_driver driver, const char **inner,
                      const char **outer)
{
    switch (sort) {
    case SEARCH_SORT_PRICE:
        *inner = *outer = "p.price_amount, p.id";
        break;
    case SEARCH_SORT_PRICE_DESC:
        *inner = *outer = "p.price_amount DESC, p.id DESC";
        break;
    case SEARCH_SORT_NAME:
        *inner = *outer = "p.name, p.id";
        break;
    case SEARCH_SORT_RELEVANCE: /* bm25 is lower for better matches, ts_rank higher */
        *inner = driver == KIT_DB_SQLITE ? "k, p.id" : "k DESC, p.id";
        *outer = driver == KIT_DB_SQLITE ? "s.k, s.id" : "s.k DESC, s.id";
        break;
    default:
        *inner = *outer = "p.created_at DESC, p.id DESC";
        break;
    }
}

/*
 * Ranks: name weighs 10, brand 5, description 1. ts_rank's weights are listed D, C, B, A; the
 * tsvector of 002_search gives name A, brand B, description C.
 */
static const char rank_fts5[] = "products_rank(products_fts, 10.0, 5.0, 1.0)"; /* search_rank.h */
static const char rank_tsquery[] =
    "ts_rank('{0, 0.1, 0.5, 1.0}'::float4[], p.search, to_tsquery('simple', $%zu))";

/*
 * True when the page's rows also carry the total (search_sql.page_total): where the ranking reads
 * every match anyway. SQLite's search by words alone counts them in products_top; PostgreSQL's
 * ranked search adds COUNT(*) OVER () (no second scan of the matches for the count). A sort
 * that an index gives in order reads only the page's rows: a count there would read them all.
 */
static bool page_total(const struct search_filters *f, enum kit_db_driver driver,
                       const struct search_slots *n)
{
    return f->sort == SEARCH_SORT_RELEVANCE &&
           (driver == KIT_DB_POSTGRES || index_only(f, driver, n));
}

/*
 * WITH ... SELECT columns FROM (SELECT p.id [, rank AS k] FROM ... WHERE ... ORDER BY ...
 * LIMIT OFFSET) s JOIN products p ON p.id = s.id ORDER BY ...: the inner query picks the
 * page's ids from the indexes alone; the columns (and their subselects) are read for those
 * rows only.
 *
 * Index-only by relevance (SQLite, q alone): products_top ranks and counts every match in one
 * pass over the FTS index and keeps the best offset + limit rowids, [total, rowid...]; the page
 * is the rows past offset, each with the total (page_total).
 */
static int sql_page(struct ag_buf *b, const struct search_filters *f, enum kit_db_driver driver,
                    const struct search_slots *n, const char *columns)
{
    const char *order_inner, *order_outer;
    int rc = sql_prefix(b, n);
    if (rc == 0 && f->sort == SEARCH_SORT_RELEVANCE && index_only(f, driver, n)) {
        /* one pass over the matches ranks and counts them: [total, rowid...] (search_rank.h) */
        rc = ag_buf_appendf(b,
                            "SELECT %s, json_extract(top.t, '$[0]') FROM (SELECT "
                            "products_top(r, k, $%zu + $%zu) AS t FROM (SELECT "
                            "products_fts.rowid AS r, %s AS k FROM products_fts WHERE ",
                            columns, n->limit, n->offset, rank_fts5);
        if (rc == 0)
            rc = sql_fts5_match(b, f, n->match);
        if (rc == 0) /* LIMIT -1: keeps the ranking subquery apart from the aggregate */
            rc = ag_buf_appendf(b,
                                " LIMIT -1)) AS top, json_each(top.t) AS j JOIN products p ON "
                                "p.rowid = j.value WHERE j.key > $%zu ORDER BY j.key",
                                n->offset);
        return rc;
    }
    sql_order(f->sort, driver, &order_inner, &order_outer);
    if (rc == 0 && page_total(f, driver, n)) /* PostgreSQL by relevance: the count comes along */
        rc = ag_buf_appendf(b,
                            "SELECT %s, s.total FROM (SELECT p.id AS id, COUNT(*) OVER () AS "
                            "total",
                            columns);
    else if (rc == 0)
        rc = ag_buf_appendf(b, "SELECT %s FROM (SELECT p.id AS id", columns);
    if (rc == 0 && f->sort == SEARCH_SORT_RELEVANCE && driver == KIT_DB_SQLITE)
        rc = ag_buf_appendf(b, ", %s AS k", rank_fts5);
    else if (rc == 0 && f->sort == SEARCH_SORT_RELEVANCE) {
        rc = ag_buf_appendf(b, ", ");
        if (rc == 0)
            rc = ag_buf_appendf(b, rank_tsquery, n->match);
        if (rc == 0)
            rc = ag_buf_appendf(b, " AS k");
    }
    if (rc == 0)
        rc = ag_buf_appendf(b, " ");
    if (rc == 0)
        rc = sql_from_where(b, f, driver, n, true);
    if (rc == 0)
        rc = ag_buf_appendf(b,
                            " ORDER BY %s LIMIT $%zu OFFSET $%zu) s JOIN products p ON p.id = s.id "
                            "ORDER BY %s",
                            order_inner, n->limit, n->offset, order_outer);
    return rc;
}

int search_sql_build(struct search_sql *s, const struct search_filters *f,
                     enum kit_db_driver driver, const char *tenant, const char *columns)
{
    struct search_slots n = {0};
    int rc = 0;

    s->page_params = 0;
    s->page_total = false;
    slot_add(s, KIT_DB_TEXT(tenant));
    if (f->words.count > 0) {
        rc = driver == KIT_DB_SQLITE ? search_match_fts5(&f->words, &s->match)
                                     : search_match_tsquery(&f->words, &s->match);
        if (rc < 0)
            return rc;
        struct ag_str m = ag_buf_str(&s->match);
        n.match = slot_add(s, KIT_DB_TEXTN(m.p, m.len));
    }
    if (f->category)
        n.category = slot_add(s, KIT_DB_TEXT(f->category));
    if (f->scope != PRODUCTS_SCOPE_NONE && f->scope_id)
        n.scope = slot_add(s, KIT_DB_TEXT(f->scope_id));
    if (f->brand)
        n.brand = slot_add(s, KIT_DB_TEXT(f->brand));
    if (f->type)
        n.type = slot_add(s, KIT_DB_TEXT(f->type));
    if (f->catalog)
        n.catalog = slot_add(s, KIT_DB_TEXT(f->catalog));
    if (f->min_price >= 0)
        n.min_price = slot_add(s, KIT_DB_INT(f->min_price));
    if (f->max_price >= 0)
        n.max_price = slot_add(s, KIT_DB_INT(f->max_price));
    s->count_params = s->page_params;
    n.limit = slot_add(s, KIT_DB_INT(f->page.per_page));
    n.offset = slot_add(s, KIT_DB_INT(f->page.offset));

    /* WITH ... SELECT COUNT(*) FROM ... WHERE ... */
    rc = sql_prefix(&s->count_sql, &n);
    if (rc == 0)
        rc = ag_buf_appendf(&s->count_sql, "SELECT COUNT(*) ");
    if (rc == 0)
        rc = sql_from_where(&s->count_sql, f, driver, &n, false);

    if (rc == 0)
        rc = sql_page(&s->page_sql, f, driver, &n, columns);
    s->page_total = page_total(f, driver, &n);
    /* NUL-terminate both texts: the drivers take C strings */
    if (rc == 0)
        rc = ag_buf_append(&s->count_sql, "", 1);
    if (rc == 0)
        rc = ag_buf_append(&s->page_sql, "", 1);
    return rc < 0 ? AG_ENOMEM : 0;
}
