/* YAML configuration text: an owned node tree with source lines, ${VAR}, scalar syntax. */
#ifndef AG_CONFIG_YAML_H
#define AG_CONFIG_YAML_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"
#include "core/err.h"

/* Limits that keep any input, hostile or mistaken, from crashing, hanging or exhausting memory. */
#define AG_CONFIG_MAX_FILE_BYTES (4u << 20) /* a configuration file over 4 MiB is refused */
#define AG_CONFIG_MAX_DEPTH      64         /* mappings and sequences nested deeper are refused */
#define AG_CONFIG_MAX_NODES      262144     /* keys + values + collections in one document */
#define AG_CONFIG_MAX_VALUE      (1u << 20) /* one scalar after ${VAR} substitution */

enum ag_config_node_kind {
    AG_CONFIG_NODE_SCALAR,
    AG_CONFIG_NODE_MAP,
    AG_CONFIG_NODE_SEQ,
};

/*
 * One node of a parsed document; read-only for everyone but the parser. A mapping holds count
 * key scalars in keys[] and their values in items[] (source order, keys unique); a sequence
 * holds count items in items[]; a scalar holds its bytes, NUL-terminated, in text (len bytes,
 * which may include NULs written as "\0" escapes).
 */
struct ag_config_node {
    enum ag_config_node_kind kind;
    size_t line; /* 1-based line of the node's first character */
    size_t col;  /* 1-based column */
    bool plain;  /* scalar written without quotes: may mean null ("", "~", "null") */
    char *text;
    size_t len;
    size_t count;
    size_t cap;
    struct ag_config_node **keys;
    struct ag_config_node **items;
};

/* A parsed document; owns every node. root is NULL for an empty document. */
struct ag_config_doc {
    char *name; /* file name (or the name given for a string), used in every message */
    struct ag_config_node *root;
    size_t nodes;
};

/*
 * Parses len bytes of YAML text into doc (caller memory, overwritten). name stands for the file
 * in messages. Accepts one document of mappings, sequences and scalars; tags are ignored.
 * Rejects syntax errors ("name:line: YAML syntax error: <libyaml's problem>"), aliases, more
 * than one document, non-scalar mapping keys, duplicate keys, nesting deeper than
 * AG_CONFIG_MAX_DEPTH, more than AG_CONFIG_MAX_NODES nodes and text over
 * AG_CONFIG_MAX_FILE_BYTES. Returns 0 (release doc later with ag_config_doc_release), or
 * AG_EINVAL / AG_ERANGE / AG_ENOMEM with err filled and doc left empty (releasing it is harmless).
 */
int ag_config_doc_parse(struct ag_config_doc *doc, const char *name, const char *text, size_t len,
                        struct ag_err *err);

/*
 * Reads the file at path (at most AG_CONFIG_MAX_FILE_BYTES) and parses it as ag_config_doc_parse,
 * with path as the name. Returns as ag_config_doc_parse, plus AG_ESYS when the file cannot be
 * opened or read, and AG_ERANGE for a file over the limit.
 */
int ag_config_doc_load(struct ag_config_doc *doc, const char *path, struct ag_err *err);

/* Frees every node and the name; doc is empty afterwards and may be parsed into again. */
void ag_config_doc_release(struct ag_config_doc *doc);

/* The value stored under key in a mapping node; NULL when map is not a mapping or lacks key. */
const struct ag_config_node *ag_config_node_get(const struct ag_config_node *map, const char *key);

/* True when node is NULL or a plain scalar spelling null: empty, "~", "null", "Null", "NULL". */
bool ag_config_node_is_null(const struct ag_config_node *node);

/*
 * Where ${VAR} takes its values: lookup returns the value of name or NULL when it is unset. The
 * returned string must stay valid until the next lookup. A NULL struct ag_config_env * means
 * the process environment (getenv).
 */
struct ag_config_env {
    const char *(*lookup)(void *ctx, const char *name);
    void *ctx;
};

/*
 * Appends text (len bytes) to out with environment references expanded: ${NAME} is NAME's
 * value, ${NAME:-default} is NAME's value or the literal default when NAME is unset or empty,
 * and $$ is one '$'. Any other '$' is kept as is. The result is plain text, never parsed again.
 * NAME is [A-Za-z_][A-Za-z0-9_]*. Returns 0; AG_ENOTFOUND for ${NAME} with NAME unset and no
 * default ("environment variable NAME is not set"), AG_EINVAL for an unterminated "${" or a bad
 * name, AG_ERANGE when out would pass its maximum, AG_ENOMEM. err gets a message without any
 * location: callers prefix file, line and key. On failure out may hold part of the result.
 */
int ag_config_subst(const struct ag_config_env *env, const char *text, size_t len,
                    struct ag_buf *out, struct ag_err *err);

/*
 * Scalar syntax, shared by the schema layer and by anyone reading such values elsewhere. Each
 * parser takes the whole of s (no surrounding space) and returns 0 with *out set, AG_EINVAL
 * when s is not in the syntax, or AG_ERANGE when it is but the value does not fit.
 */

/* true/yes/on and false/no/off, ignoring case. */
int ag_config_parse_bool(struct ag_str s, bool *out);
/* A decimal integer with an optional sign. */
int ag_config_parse_i64(struct ag_str s, int64_t *out);
/* A finite decimal number ("1.5", "-2", "1e3"); not hex, inf or nan. */
int ag_config_parse_double(struct ag_str s, double *out);
/* Milliseconds: digits alone, or digits with ms, s, m or h ("1500", "250ms", "1s", "2m"). */
int ag_config_parse_duration(struct ag_str s, uint64_t *out);
/* Bytes: digits alone, or digits with B, KiB, MiB, GiB or TiB ("512KiB", "10MiB"). */
int ag_config_parse_size(struct ag_str s, uint64_t *out);
/*
 * True for "host:port" (host of letters, digits, '.', '-', '_') or "[v6]:port" (hex digits,
 * ':' and '.'), with a decimal port from 0 to 65535. No name resolution.
 */
bool ag_config_addr_valid(struct ag_str s);

/* Writes ms with the largest unit that divides it exactly ("1h", "2m", "1s", "250ms"). */
void ag_config_format_duration(uint64_t ms, char *out, size_t size);
/* Writes bytes with the largest binary unit that divides it exactly ("1GiB", "512KiB", "100"). */
void ag_config_format_size(uint64_t bytes, char *out, size_t size);
/*
 * Appends s as a double-quoted YAML scalar that reads back (through ag_config_subst) as s:
 * '"' and '\\' escaped, control bytes as \xNN, '$' doubled. Returns 0, AG_ERANGE or AG_ENOMEM.
 */
int ag_config_append_quoted(struct ag_buf *out, struct ag_str s);

#endif
