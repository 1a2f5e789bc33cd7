/* A query's rows in one allocation: the builder the drivers fill, and db.h's row readers. */
#include "kit/db_rows.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "kit/db.h"
#include "kit/kit.h"
#include "core/banned.h"

enum { ROWS_BUF_MAX = 1u << 30 }; /* 1 GiB of cells or bytes: far past any sane result */

#define CELL_NULL SIZE_MAX /* kit_db_cell.len of an SQL NULL */

struct kit_db_cell {
    size_t off; /* of the bytes in data */
    size_t len; /* CELL_NULL for SQL NULL */
};

/* Header, then (rows + 1) * cols cells (names first), cols flag bytes, then the bytes. */
struct kit_db_rows {
    size_t rows;
    size_t cols;
    const struct kit_db_cell *cells;
    const unsigned char *flags;
    const char *data;
};

void kit_db_rows_builder_init(struct kit_db_rows_builder *b, size_t cols, size_t max_rows)
{
    b->cols = cols;
    b->cells = 0;
    b->max_rows = max_rows;
    ag_buf_init(&b->index, ROWS_BUF_MAX);
    ag_buf_init(&b->data, ROWS_BUF_MAX);
    ag_buf_init(&b->flags, ROWS_BUF_MAX);
}

void kit_db_rows_builder_release(struct kit_db_rows_builder *b)
{
    ag_buf_release(&b->index);
    ag_buf_release(&b->data);
    ag_buf_release(&b->flags);
    b->cells = 0;
}

int kit_db_rows_builder_add(struct kit_db_rows_builder *b, const char *p, size_t len, bool null,
                            unsigned flags)
{
    int rc;
    if (b->cols > 0 && b->cells % b->cols == 0 && b->cells / b->cols > b->max_rows)
        return AG_ERANGE; /* names are row 0, so row max_rows + 1 is one too many */
    struct kit_db_cell cell = {.off = b->data.len, .len = null ? CELL_NULL : len};
    size_t need = null ? 1 : len + 1;
    if ((rc = ag_buf_reserve(&b->data, need)) < 0)
        return rc == AG_ERANGE ? AG_ENOMEM : rc;
    if (!null && len > 0)
        memcpy(ag_buf_tail(&b->data), p, len);
    ag_buf_tail(&b->data)[null ? 0 : len] = '\0';
    if ((rc = ag_buf_append(&b->index, &cell, sizeof cell)) < 0)
        return rc == AG_ERANGE ? AG_ENOMEM : rc;
    if (b->cells < b->cols) {
        unsigned char f = (unsigned char)flags;
        if ((rc = ag_buf_append(&b->flags, &f, 1)) < 0)
            return rc == AG_ERANGE ? AG_ENOMEM : rc;
    }
    ag_buf_commit(&b->data, need);
    b->cells++;
    return 0;
}

int kit_db_rows_builder_finish(struct kit_db_rows_builder *b, struct kit_db_rows **out)
{
    int rc = 0;
    *out = NULL;
    if (b->cols > 0 && (b->cells % b->cols != 0 || b->cells == 0)) {
        rc = AG_EINVAL;
        goto out;
    }
    size_t index_len = b->index.len, flags_len = b->flags.len, data_len = b->data.len;
    size_t total = sizeof(struct kit_db_rows) + index_len + flags_len + data_len + 1;
    char *mem = malloc(total);
    if (!mem) {
        rc = AG_ENOMEM;
        goto out;
    }
    struct kit_db_rows *rows = (struct kit_db_rows *)mem;
    char *p = mem + sizeof *rows; /* header size keeps cells (size_t pairs) aligned */
    if (index_len)
        memcpy(p, ag_buf_str(&b->index).p, index_len);
    rows->cells = (const struct kit_db_cell *)p;
    p += index_len;
    if (flags_len)
        memcpy(p, ag_buf_str(&b->flags).p, flags_len);
    rows->flags = (const unsigned char *)p;
    p += flags_len;
    if (data_len)
        memcpy(p, ag_buf_str(&b->data).p, data_len);
    p[data_len] = '\0';
    rows->data = p;
    rows->cols = b->cols;
    rows->rows = b->cols ? b->cells / b->cols - 1 : 0;
    *out = rows;
out:
    kit_db_rows_builder_release(b);
    return rc;
}

void kit_db_rows_free(struct kit_db_rows *rows)
{
    free(rows);
}

size_t kit_db_rows_count(const struct kit_db_rows *rows)
{
    return rows ? rows->rows : 0;
}

size_t kit_db_rows_columns(const struct kit_db_rows *rows)
{
    return rows ? rows->cols : 0;
}

/* The cell at (row, col) with row -1 being the names, or NULL when out of range. */
static const struct kit_db_cell *rows_cell(const struct kit_db_rows *rows, size_t row, size_t col)
{
    if (!rows || col >= rows->cols || row >= rows->rows + 1)
        return NULL;
    return &rows->cells[row * rows->cols + col];
}

const char *kit_db_rows_name(const struct kit_db_rows *rows, size_t col)
{
    const struct kit_db_cell *c = rows_cell(rows, 0, col);
    return c && c->len != CELL_NULL ? rows->data + c->off : "";
}

bool kit_db_rows_null(const struct kit_db_rows *rows, size_t row, size_t col)
{
    const struct kit_db_cell *c = rows && row < rows->rows ? rows_cell(rows, row + 1, col) : NULL;
    return !c || c->len == CELL_NULL;
}

const char *kit_db_rows_text(const struct kit_db_rows *rows, size_t row, size_t col, size_t *len)
{
    const struct kit_db_cell *c = rows && row < rows->rows ? rows_cell(rows, row + 1, col) : NULL;
    if (!c || c->len == CELL_NULL) {
        if (len)
            *len = 0;
        return "";
    }
    if (len)
        *len = c->len;
    return rows->data + c->off;
}

int64_t kit_db_rows_int(const struct kit_db_rows *rows, size_t row, size_t col)
{
    size_t len;
    const char *s = kit_db_rows_text(rows, row, col, &len);
    if (len == 0)
        return 0;
    if (col < rows->cols && (rows->flags[col] & KIT_DB_COL_BOOL))
        return s[0] == 't' ? 1 : 0;
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno != 0 || end != s + len || isspace((unsigned char)s[0]))
        return 0;
    return (int64_t)v;
}

json_t *kit_db_rows_json_text(const struct kit_db_rows *rows, size_t row, size_t col)
{
    size_t len = 0;
    const char *s = kit_db_rows_text(rows, row, col, &len);
    return json_stringn(s, len);
}

json_t *kit_db_rows_json_time(const struct kit_db_rows *rows, size_t row, size_t col)
{
    char ts[32];
    kit_time_rfc3339(kit_db_rows_int(rows, row, col), ts);
    return json_string(ts);
}

int kit_db_query_int(struct kit_db *db, const char *sql, const struct kit_db_value *params,
                     size_t count, int64_t *out, struct ag_err *err)
{
    struct kit_db_rows *rows = NULL;
    int rc = kit_db_query(db, sql, params, count, 1, &rows, err);
    if (rc >= 0) {
        *out = rc > 0 ? kit_db_rows_int(rows, 0, 0) : 0;
        rc = 0;
    }
    kit_db_rows_free(rows);
    return rc;
}
