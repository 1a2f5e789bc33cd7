/* A query's rows held in one allocation, and the builder the database drivers fill it with. */
#ifndef KIT_DB_ROWS_H
#define KIT_DB_ROWS_H

#include <stdbool.h>
#include <stddef.h>

#include "core/buf.h"
#include "kit/db.h"

/*
 * The drivers hand cells to a builder in row-major order, column names first; finishing it
 * packs header, cell index and bytes into one allocation (struct kit_db_rows, db.h's readers).
 * Every cell's bytes are followed by a NUL, so text is always NUL-terminated.
 */
struct kit_db_rows_builder {
    size_t cols;         /* columns per row */
    size_t cells;        /* cells added so far, names included */
    size_t max_rows;     /* rows accepted; one more is AG_ERANGE */
    struct ag_buf index; /* struct kit_db_cell per cell */
    struct ag_buf data;  /* cell bytes, each followed by a NUL */
    struct ag_buf flags; /* one byte per column: KIT_DB_COL_* */
};

enum { KIT_DB_COL_BOOL = 1 }; /* a PostgreSQL boolean column: "t"/"f" read as 1/0 */

/* Prepares b for rows of cols columns, at most max_rows of them; allocates nothing. */
void kit_db_rows_builder_init(struct kit_db_rows_builder *b, size_t cols, size_t max_rows);

/*
 * Appends the next cell (the first cols cells are the column names): len bytes at p, or SQL
 * NULL when null is true (p is then ignored). flags (KIT_DB_COL_*) is kept for name cells only.
 * Returns 0, AG_ERANGE when the cell would start row max_rows + 1, AG_ENOMEM.
 */
int kit_db_rows_builder_add(struct kit_db_rows_builder *b, const char *p, size_t len, bool null,
                            unsigned flags);

/*
 * Packs what was added into one allocation: *out (free with kit_db_rows_free). The builder
 * is released either way. Returns 0, AG_EINVAL when the last row is incomplete, AG_ENOMEM.
 */
int kit_db_rows_builder_finish(struct kit_db_rows_builder *b, struct kit_db_rows **out);

/* Frees what the builder holds; it may be initialised again. */
void kit_db_rows_builder_release(struct kit_db_rows_builder *b);

#endif
