/*
 * agora-products: the product list query — the query string's filters and sort, the full-text
 * words of q, and the SQL of a page and of its total, built from a few constant fragments.
 */
#ifndef PRODUCTS_SEARCH_H
#define PRODUCTS_SEARCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "catalog.h"
#include "core/buf.h"

enum {
    SEARCH_Q_MAX_BYTES = 200, /* of q, after percent-decoding */
    SEARCH_Q_MAX_WORDS = 16,
    SEARCH_PARAMS_MAX = 16, /* SQL parameters of a list query, LIMIT and OFFSET included */
};

/* The words of q: letters and digits only, ASCII lowercased; NUL-separated in text. */
struct search_words {
    char text[SEARCH_Q_MAX_BYTES + 1];
    const char *word[SEARCH_Q_MAX_WORDS];
    size_t count;
};

/*
 * Splits q (len bytes, any bytes) into words: maximal runs of letters and digits (ASCII, and
 * the Unicode letters and digits of the C.UTF-8 locale); everything else — quotes, '*', '-',
 * '(', malformed UTF-8 — separates words and is dropped, so no query syntax survives. Returns
 * the number of words (0: none), or AG_ERANGE when q is over SEARCH_Q_MAX_BYTES or has more
 * than SEARCH_Q_MAX_WORDS words.
 */
int search_words_split(const char *q, size_t len, struct search_words *out);

/*
 * The words as a full-text query where each word is a prefix and all must match:
 * FTS5: "word"* "other"*   (quoted: AND, OR, NOT, NEAR are plain words there)
 * PostgreSQL to_tsquery: 'word':* & 'other':*
 * Appends to out. Returns 0, or the codes of ag_buf_append.
 */
int search_match_fts5(const struct search_words *w, struct ag_buf *out);
int search_match_tsquery(const struct search_words *w, struct ag_buf *out);

enum search_sort {
    SEARCH_SORT_CREATED_DESC, /* -created_at: newest first (the default without q) */
    SEARCH_SORT_PRICE,
    SEARCH_SORT_PRICE_DESC,
    SEARCH_SORT_NAME,
    SEARCH_SORT_RELEVANCE, /* the default with q; refused without q */
};
enum search_active { SEARCH_ACTIVE_TRUE, SEARCH_ACTIVE_FALSE, SEARCH_ACTIVE_ALL };
enum search_stock { SEARCH_STOCK_ANY, SEARCH_STOCK_IN, SEARCH_STOCK_OUT };

/* A list request, read from the query string. Strings are borrowed from the request. */
struct search_filters {
    struct search_words words;                     /* count 0: no q */
    const char *category, *brand, *type, *catalog; /* NULL: no such filter */
    int64_t min_price, max_price;                  /* -1: no bound */
    enum search_stock stock;
    enum search_active active;
    enum search_sort sort;
    enum products_scope scope;
    const char *scope_id;
    struct kit_page page;
};

/*
 * Reads q, category, brand, type, catalog, min_price, max_price, in_stock, active, sort, page
 * and per_page. Refuses with 400 (errors[] naming the parameter): q over its limits or without
 * a word, an id that is not one, a bad price bound or min_price > max_price, an unknown value
 * of in_stock / active / sort, sort=relevance without q, a bad page. active other than true
 * needs the admin role (403). Returns 0, or AG_EINVAL after answering.
 */
int search_filters_parse(struct kit_req *req, enum products_scope scope, const char *scope_id,
                         struct search_filters *out);

/*
 * The two statements of a list: count_sql ("SELECT COUNT(*)" over the filtered products,
 * params[0 .. count_params)) and page_sql (columns of products p for one page in the sort's
 * order, params[0 .. page_params)). columns is the select list over the alias p. The texts are
 * made only of constant fragments chosen by which filters are present, so the variants stay
 * few (PostgreSQL caches a prepared statement per text).
 *
 * With page_total set, every row of the page also ends with the total (one column after
 * columns): the count is then needed only when the page is empty. The SQLite search by words
 * alone, ranked, does this (products_top of search_rank.h counts while it ranks).
 */
struct search_sql {
    struct ag_buf count_sql, page_sql;
    struct ag_buf match; /* the full-text query, referenced by params */
    struct kit_db_value params[SEARCH_PARAMS_MAX];
    size_t count_params, page_params;
    bool page_total;
};
void search_sql_init(struct search_sql *s);
void search_sql_release(struct search_sql *s);
/* Builds s (initialised) for f on driver for tenant (borrowed). Returns 0 or AG_ENOMEM. */
int search_sql_build(struct search_sql *s, const struct search_filters *f,
                     enum kit_db_driver driver, const char *tenant, const char *columns);

#endif
