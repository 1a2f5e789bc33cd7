/* agora-products: products_rank, the FTS5 auxiliary function of search_rank.h. */
#include "search_rank.h"

#include <sqlite3.h>

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

/* The auto-extension: adds products_rank to a connection being opened. */
static int rank_install(sqlite3 *db, char **errmsg, const struct sqlite3_api_routines *unused)
{
    (void)unused;
    fts5_api *api = fts5_api_of(db);
    if (!api || api->iVersion < 2) {
        *errmsg = sqlite3_mprintf("products_rank: this SQLite has no FTS5 (version 2 or later)");
        return SQLITE_ERROR;
    }
    int rc = api->xCreateFunction(api, "products_rank", NULL, products_rank, NULL);
    if (rc != SQLITE_OK)
        *errmsg = sqlite3_mprintf("products_rank: %s", sqlite3_errstr(rc));
    return rc;
}

int search_rank_register(void)
{
    /* sqlite3_auto_extension takes void (*)(void); SQLite calls it with rank_install's arguments */
    return sqlite3_auto_extension((void (*)(void))rank_install) == SQLITE_OK ? 0 : AG_ENOMEM;
}
