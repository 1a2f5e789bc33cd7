/* agora-products: products_rank and products_top, the SQLite functions of search_rank.h. */
#include "search_rank.h"

#include <sqlite3.h>
#include <stdbool.h>
#include <stdlib.h>

#include "core/err.h"
#include "core/banned.h"

enum { RANK_WEIGHTS_MAX = 16 };

#define RANK_K1 1.2

/* fts5's API of this connection (the documented "SELECT fts5(?1)" handshake), or NULL. */
static fts5_api *fts5_api_of(sqlite3 *db)
{
    fts5_api *api = NULL;
    sqlite3_stmt *stmt = NULL;
    if (sqlite3_prepare_v2(db, "SELECT fts5(?1)", -1, &stmt, NULL) == SQLITE_OK &&
        sqlite3_bind_pointer(stmt, 1, (void *)&api, "fts5_api_ptr", NULL) == SQLITE_OK)
        sqlite3_step(stmt);
    sqlite3_finalize(stmt);
    return api;
}

static void products_rank(const Fts5ExtensionApi *api, Fts5Context *fts, sqlite3_context *out,
                          int argc, sqlite3_value **argv)
{
    double weight[RANK_WEIGHTS_MAX] = {0};
    int columns = argc < RANK_WEIGHTS_MAX ? argc : RANK_WEIGHTS_MAX;
    for (int c = 0; c < columns; c++)
        weight[c] = sqlite3_value_double(argv[c]);
    int phrases = api->xPhraseCount(fts);
    double score = 0.0;
    for (int p = 0; p < phrases; p++) {
        Fts5PhraseIter it;
        int col = -1, off = 0;
        double tf = 0.0;
        int rc = api->xPhraseFirst(fts, p, &it, &col, &off);
        if (rc != SQLITE_OK) {
            sqlite3_result_error_code(out, rc);
            return;
        }
        for (; col >= 0; api->xPhraseNext(fts, &it, &col, &off))
            if (col < columns)
                tf += weight[col];
        score += tf * (RANK_K1 + 1.0) / (tf + RANK_K1);
    }
    sqlite3_result_double(out, -score);
}

/* ---- products_top ---- */

struct top_entry {
    double rank;
    sqlite3_int64 rowid;
};

/* products_top's state: the rows seen, and the best `keep` of them as a heap, the worst on top. */
struct top {
    sqlite3_int64 count, keep;
    struct top_entry *heap;
    size_t n, cap;
};

/* a ranks after b: a higher rank, or the same rank and a higher rowid */
static bool top_after(const struct top_entry *a, const struct top_entry *b)
{
    return a->rank > b->rank || (a->rank == b->rank && a->rowid > b->rowid);
}

static void top_swap(struct top_entry *a, struct top_entry *b)
{
    struct top_entry t = *a;
    *a = *b;
    *b = t;
}

static void top_sift_up(struct top_entry *h, size_t i)
{
    while (i > 0 && top_after(&h[i], &h[(i - 1) / 2])) {
        top_swap(&h[i], &h[(i - 1) / 2]);
        i = (i - 1) / 2;
    }
}

static void top_sift_down(struct top_entry *h, size_t n, size_t i)
{
    for (;;) {
        size_t worst = i, l = 2 * i + 1, r = l + 1;
        if (l < n && top_after(&h[l], &h[worst]))
            worst = l;
        if (r < n && top_after(&h[r], &h[worst]))
            worst = r;
        if (worst == i)
            return;
        top_swap(&h[i], &h[worst]);
        i = worst;
    }
}

static void top_step(sqlite3_context *ctx, int argc, sqlite3_value **argv)
{
    (void)argc;
    struct top *t = sqlite3_aggregate_context(ctx, sizeof *t);
    if (!t) {
        sqlite3_result_error_nomem(ctx);
        return;
    }
    if (t->count++ == 0) {
        t->keep = sqlite3_value_int64(argv[2]);
        if (t->keep < 0)
            t->keep = 0;
    }
    struct top_entry e = {sqlite3_value_double(argv[1]), sqlite3_value_int64(argv[0])};
    if ((sqlite3_int64)t->n < t->keep) {
        if (t->n == t->cap) { /* grows with the matches, never past keep */
            size_t cap = t->cap ? 2 * t->cap : 64;
            struct top_entry *h = realloc(t->heap, cap * sizeof *h);
            if (!h) {
                sqlite3_result_error_nomem(ctx);
                return;
            }
            t->heap = h;
            t->cap = cap;
        }
        t->heap[t->n] = e;
        top_sift_up(t->heap, t->n++);
    } else if (t->n > 0 && top_after(&t->heap[0], &e)) {
        t->heap[0] = e;
        top_sift_down(t->heap, t->n, 0);
    }
}

static int top_order(const void *a, const void *b)
{
    return top_after(a, b) ? 1 : top_after(b, a) ? -1 : 0;
}

static void top_final(sqlite3_context *ctx)
{
    struct top *t = sqlite3_aggregate_context(ctx, 0); /* NULL: no row was seen */
    sqlite3_str *out = sqlite3_str_new(sqlite3_context_db_handle(ctx));
    sqlite3_str_appendf(out, "[%lld", t ? t->count : 0);
    if (t && t->n > 0) {
        qsort(t->heap, t->n, sizeof *t->heap, top_order);
        for (size_t i = 0; i < t->n; i++)
            sqlite3_str_appendf(out, ",%lld", t->heap[i].rowid);
    }
    sqlite3_str_appendchar(out, 1, ']');
    if (t) {
        free(t->heap);
        t->heap = NULL;
    }
    int rc = sqlite3_str_errcode(out);
    char *text = sqlite3_str_finish(out);
    if (rc != SQLITE_OK || !text) {
        sqlite3_free(text);
        sqlite3_result_error_nomem(ctx);
        return;
    }
    sqlite3_result_text(ctx, text, -1, sqlite3_free);
}

/* The auto-extension: adds products_rank and products_top to a connection being opened. */
static int rank_install(sqlite3 *db, char **errmsg, const struct sqlite3_api_routines *unused)
{
    (void)unused;
    fts5_api *api = fts5_api_of(db);
    if (!api || api->iVersion < 2) {
        *errmsg = sqlite3_mprintf("products_rank: this SQLite has no FTS5 (version 2 or later)");
        return SQLITE_ERROR;
    }
    int rc = api->xCreateFunction(api, "products_rank", NULL, products_rank, NULL);
    if (rc != SQLITE_OK) {
        *errmsg = sqlite3_mprintf("products_rank: %s", sqlite3_errstr(rc));
        return rc;
    }
    rc = sqlite3_create_function_v2(db, "products_top", 3, SQLITE_UTF8, NULL, NULL, top_step,
                                    top_final, NULL);
    if (rc != SQLITE_OK)
        *errmsg = sqlite3_mprintf("products_top: %s", sqlite3_errstr(rc));
    return rc;
}

int search_rank_register(void)
{
    /* sqlite3_auto_extension takes void (*)(void); SQLite calls it with rank_install's arguments */
    return sqlite3_auto_extension((void (*)(void))rank_install) == SQLITE_OK ? 0 : AG_ENOMEM;
}
