/* Declarative configuration: schema tables that load YAML into C structs, document, dump. */
#include "core/config.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/banned.h"

/* Schemas nest through lists and maps and may refer to themselves; walks over them stop here. */
#define SCHEMA_MAX_DEPTH 16

/* Where a bind is, for messages: the file, the dotted key path, and whether a default is read. */
struct bind_ctx {
    const char *name;
    const struct ag_config_env *env;
    struct ag_err *err;
    char path[256];
    size_t path_len;
    size_t depth;
    bool in_default;
};

static bool is_scalar_type(enum ag_config_type t)
{
    return t <= AG_CONFIG_ADDR;
}

static bool int_bounded(const struct ag_config_field *f)
{
    return f->min < f->max;
}

static bool double_bounded(const struct ag_config_field *f)
{
    return f->dmin < f->dmax;
}

static uint64_t umax_of(const struct ag_config_field *f)
{
    return f->umax ? f->umax : UINT64_MAX;
}

static void *slot_at(void *obj, size_t offset)
{
    return (char *)obj + offset;
}

/* Reads and writes of pointer and count members go through memcpy: the member's pointee type
 * belongs to the caller's struct, not to us. */
static void *get_ptr(void *obj, size_t offset)
{
    void *p;
    memcpy(&p, slot_at(obj, offset), sizeof p);
    return p;
}

static void set_ptr(void *obj, size_t offset, void *p)
{
    memcpy(slot_at(obj, offset), &p, sizeof p);
}

static size_t get_count(const void *obj, size_t offset)
{
    size_t n;
    memcpy(&n, (const char *)obj + offset, sizeof n);
    return n;
}

static void set_count(void *obj, size_t offset, size_t n)
{
    memcpy(slot_at(obj, offset), &n, sizeof n);
}

/* Appends "a, b, c" (the names of an enum) to a fixed buffer. */
static void format_names(const char *const *names, char *out, size_t size)
{
    size_t len = 0;
    out[0] = '\0';
    for (size_t i = 0; names && names[i] && len < size; i++) {
        int n = snprintf(out + len, size - len, "%s%s", i ? ", " : "", names[i]);
        if (n < 0)
            break;
        len += (size_t)n;
    }
}

/* What a field accepts, as the noun phrase of "expected ...". */
static void describe(const struct ag_config_field *f, char *out, size_t size)
{
    char lo[32], hi[32], names[160];
    switch (f->type) {
    case AG_CONFIG_BOOL:
        snprintf(out, size, "true or false");
        break;
    case AG_CONFIG_INT:
        if (int_bounded(f))
            snprintf(out, size, "an integer from %" PRId64 " to %" PRId64, f->min, f->max);
        else
            snprintf(out, size, "an integer");
        break;
    case AG_CONFIG_UINT:
        if (f->umax)
            snprintf(out, size, "an integer from %" PRIu64 " to %" PRIu64, f->umin, f->umax);
        else if (f->umin)
            snprintf(out, size, "an integer of at least %" PRIu64, f->umin);
        else
            snprintf(out, size, "a non-negative integer");
        break;
    case AG_CONFIG_DOUBLE:
        if (double_bounded(f))
            snprintf(out, size, "a number from %g to %g", f->dmin, f->dmax);
        else
            snprintf(out, size, "a number");
        break;
    case AG_CONFIG_DURATION:
    case AG_CONFIG_SIZE: {
        bool ms = f->type == AG_CONFIG_DURATION;
        (ms ? ag_config_format_duration : ag_config_format_size)(f->umin, lo, sizeof lo);
        (ms ? ag_config_format_duration : ag_config_format_size)(f->umax, hi, sizeof hi);
        if (f->umax)
            snprintf(out, size, "a %s from %s to %s", ms ? "duration" : "size", lo, hi);
        else if (f->umin)
            snprintf(out, size, "a %s of at least %s", ms ? "duration" : "size", lo);
        else
            snprintf(out, size, "a %s", ms ? "duration" : "size");
        break;
    }
    case AG_CONFIG_ENUM:
        format_names(f->names, names, sizeof names);
        snprintf(out, size, "one of %s", names);
        break;
    case AG_CONFIG_ADDR:
        snprintf(out, size, "host:port with a port from 0 to 65535");
        break;
    case AG_CONFIG_STRING:
        if (f->umax)
            snprintf(out, size, "a string of %" PRIu64 " to %" PRIu64 " bytes", f->umin, f->umax);
        else if (f->umin)
            snprintf(out, size, "a string of at least %" PRIu64 " bytes", f->umin);
        else
            snprintf(out, size, "a string");
        break;
    case AG_CONFIG_STRINGS:
    case AG_CONFIG_LIST:
    case AG_CONFIG_MAP:
    case AG_CONFIG_STRUCT: {
        const char *what = f->type == AG_CONFIG_STRINGS ? "a list of strings"
                           : f->type == AG_CONFIG_LIST  ? "a list of mappings"
                           : f->type == AG_CONFIG_MAP   ? "a mapping of names to mappings"
                                                        : "a mapping";
        if (f->type != AG_CONFIG_STRUCT && f->umax)
            snprintf(out, size, "%s with %" PRIu64 " to %" PRIu64 " entries", what, f->umin,
                     f->umax);
        else if (f->type != AG_CONFIG_STRUCT && f->umin)
            snprintf(out, size, "%s with at least %" PRIu64 " %s", what, f->umin,
                     f->umin == 1 ? "entry" : "entries");
        else
            snprintf(out, size, "%s", what);
        break;
    }
    }
}

/* What was found instead, for "..., got X": a quoted, shortened value or the kind of node. */
static void describe_found(const struct ag_config_node *node, const char *text, size_t len,
                           char *out, size_t size)
{
    if (node && node->kind == AG_CONFIG_NODE_MAP) {
        snprintf(out, size, "a mapping");
        return;
    }
    if (node && node->kind == AG_CONFIG_NODE_SEQ) {
        snprintf(out, size, "a list");
        return;
    }
    if (node && ag_config_node_is_null(node)) {
        snprintf(out, size, "null");
        return;
    }
    char shown[48];
    size_t n = len < 40 ? len : 40;
    for (size_t i = 0; i < n; i++)
        shown[i] = (text[i] >= 0x20 && text[i] != 0x7f) ? text[i] : '?';
    shown[n] = '\0';
    snprintf(out, size, "\"%s%s\"", shown, len > n ? "..." : "");
}

static int bind_fail(struct bind_ctx *c, int code, size_t line, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int bind_fail(struct bind_ctx *c, int code, size_t line, const char *fmt, ...)
{
    char what[200];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    if (c->in_default)
        return ag_err_set(c->err, code, "%s: %s: bad schema default: %s", c->name, c->path, what);
    if (line == 0) /* a schema problem, not a document one */
        return ag_err_set(c->err, code, "%s: %s: %s", c->name, c->path, what);
    if (c->path_len == 0)
        return ag_err_set(c->err, code, "%s:%zu: %s", c->name, line, what);
    return ag_err_set(c->err, code, "%s:%zu: %s: %s", c->name, line, c->path, what);
}

/* Fails with "expected <field's type>, got <what was there>". */
static int fail_expected(struct bind_ctx *c, int code, const struct ag_config_field *f,
                         const struct ag_config_node *node, const char *text, size_t len)
{
    char want[200], got[64];
    describe(f, want, sizeof want);
    describe_found(node, text, len, got, sizeof got);
    return bind_fail(c, code, node ? node->line : 0, "expected %s, got %s", want, got);
}

static size_t path_push(struct bind_ctx *c, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Appends to the key path and returns its old length, for path_pop. Long paths are cut. */
static size_t path_push(struct bind_ctx *c, const char *fmt, ...)
{
    size_t old = c->path_len;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(c->path + old, sizeof c->path - old, fmt, ap);
    va_end(ap);
    if (n > 0)
        c->path_len = old + (size_t)n < sizeof c->path ? old + (size_t)n : sizeof c->path - 1;
    return old;
}

static size_t path_push_key(struct bind_ctx *c, const char *key)
{
    return path_push(c, "%s%s", c->path_len ? "." : "", key);
}

static void path_pop(struct bind_ctx *c, size_t old)
{
    c->path_len = old;
    c->path[old] = '\0';
}

static int copy_string(struct bind_ctx *c, const char *s, size_t len, char **out)
{
    char *copy = malloc(len + 1);
    if (!copy)
        return ag_err_set(c->err, AG_ENOMEM, "%s: out of memory", c->name);
    memcpy(copy, s, len);
    copy[len] = '\0';
    *out = copy;
    return 0;
}

/*
 * Types one scalar's text (after substitution) into the member at slot. node is where the text
 * came from, or NULL for a schema default.
 */
static int set_scalar(struct bind_ctx *c, const struct ag_config_field *f, void *slot,
                      const struct ag_config_node *node, struct ag_str s)
{
    int rc = 0;
    size_t line = node ? node->line : 0;
    switch (f->type) {
    case AG_CONFIG_BOOL:
        rc = ag_config_parse_bool(s, slot);
        break;
    case AG_CONFIG_INT: {
        int64_t v = 0;
        rc = ag_config_parse_i64(s, &v);
        if (rc == 0 && int_bounded(f) && (v < f->min || v > f->max))
            rc = AG_ERANGE;
        if (rc == 0)
            *(int64_t *)slot = v;
        break;
    }
    case AG_CONFIG_DOUBLE: {
        double v = 0;
        rc = ag_config_parse_double(s, &v);
        if (rc == 0 && double_bounded(f) && (v < f->dmin || v > f->dmax))
            rc = AG_ERANGE;
        if (rc == 0)
            *(double *)slot = v;
        break;
    }
    case AG_CONFIG_UINT:
    case AG_CONFIG_DURATION:
    case AG_CONFIG_SIZE: {
        uint64_t v = 0;
        rc = f->type == AG_CONFIG_UINT       ? ag_str_to_u64(s, UINT64_MAX, &v)
             : f->type == AG_CONFIG_DURATION ? ag_config_parse_duration(s, &v)
                                             : ag_config_parse_size(s, &v);
        if (rc == AG_EINVAL && f->type != AG_CONFIG_UINT) {
            /* A bad unit is better answered with the syntax than with the bounds. */
            char got[64];
            describe_found(node, s.p, s.len, got, sizeof got);
            return bind_fail(c, rc, line,
                             f->type == AG_CONFIG_DURATION
                                 ? "expected a duration such as 1500, 250ms, 1s, 2m or 1h, got %s"
                                 : "expected a size such as 1048576, 512KiB, 10MiB or 1GiB, got %s",
                             got);
        }
        if (rc == 0 && (v < f->umin || v > umax_of(f)))
            rc = AG_ERANGE;
        if (rc == 0)
            *(uint64_t *)slot = v;
        break;
    }
    case AG_CONFIG_ENUM:
        rc = AG_EINVAL;
        for (int i = 0; f->names && f->names[i]; i++)
            if (ag_str_eq_nocase(s, ag_str_from_cstr(f->names[i]))) {
                *(int *)slot = i;
                rc = 0;
                break;
            }
        break;
    case AG_CONFIG_ADDR:
    case AG_CONFIG_STRING:
        if (s.len && memchr(s.p, '\0', s.len))
            return bind_fail(c, AG_EINVAL, line, "expected text without NUL bytes");
        if (f->type == AG_CONFIG_ADDR && !ag_config_addr_valid(s)) {
            rc = AG_EINVAL;
        } else if (f->type == AG_CONFIG_STRING && (s.len < f->umin || s.len > umax_of(f))) {
            /* The length, not the value: the value may be a secret. */
            char want[200];
            describe(f, want, sizeof want);
            return bind_fail(c, AG_ERANGE, line, "expected %s, got %zu bytes", want, s.len);
        } else {
            return copy_string(c, s.p, s.len, (char **)slot);
        }
        break;
    default:
        rc = AG_EINVAL;
        break;
    }
    if (rc < 0)
        return fail_expected(c, rc, f, node, s.p, s.len);
    return 0;
}

/* The text of a scalar with ${VAR} expanded, NUL-terminated, in val (released by the caller). */
static int scalar_value(struct bind_ctx *c, const struct ag_config_node *node, struct ag_buf *val)
{
    struct ag_err sub = {0};
    int rc = ag_config_subst(c->env, node->text, node->len, val, &sub);
    if (rc == 0)
        rc = ag_buf_append(val, "", 1);
    if (rc < 0)
        return bind_fail(c, rc, node->line, "%s", sub.msg[0] ? sub.msg : "value too long");
    return 0;
}

static int bind_scalar(struct bind_ctx *c, const struct ag_config_field *f, void *slot,
                       const struct ag_config_node *node)
{
    if (node->kind != AG_CONFIG_NODE_SCALAR)
        return fail_expected(c, AG_EINVAL, f, node, node->text, node->len);
    struct ag_buf val;
    ag_buf_init(&val, AG_CONFIG_MAX_VALUE + 1);
    int rc = scalar_value(c, node, &val);
    if (rc == 0)
        rc = set_scalar(c, f, slot, node, (struct ag_str){val.data + val.off, val.len - 1});
    ag_buf_release(&val);
    return rc;
}

/* Edit distance between two short keys, capped: used only to suggest a key for a typo. */
static size_t key_distance(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    size_t row[33];
    if (la > 32 || lb > 32)
        return SIZE_MAX;
    for (size_t j = 0; j <= lb; j++)
        row[j] = j;
    for (size_t i = 1; i <= la; i++) {
        size_t diag = row[0];
        row[0] = i;
        for (size_t j = 1; j <= lb; j++) {
            size_t up = row[j];
            size_t best = diag + (a[i - 1] != b[j - 1]);
            if (up + 1 < best)
                best = up + 1;
            if (row[j - 1] + 1 < best)
                best = row[j - 1] + 1;
            row[j] = best;
            diag = up;
        }
    }
    return row[lb];
}

static const struct ag_config_field *field_find(const struct ag_config_schema *s,
                                                const struct ag_config_node *key)
{
    for (const struct ag_config_field *f = s->fields; f->key; f++)
        if (strlen(f->key) == key->len && memcmp(f->key, key->text, key->len) == 0)
            return f;
    return NULL;
}

static int fail_unknown_key(struct bind_ctx *c, const struct ag_config_schema *s,
                            const struct ag_config_node *key)
{
    const char *close = NULL;
    size_t best = 3;
    for (const struct ag_config_field *f = s->fields; f->key; f++) {
        size_t d = key_distance(key->text, f->key);
        if (d < best && d * 2 < strlen(f->key)) {
            best = d;
            close = f->key;
        }
    }
    size_t old = path_push_key(c, key->text);
    int rc = close ? bind_fail(c, AG_EINVAL, key->line, "unknown key (did you mean \"%s\"?)", close)
                   : bind_fail(c, AG_EINVAL, key->line, "unknown key");
    path_pop(c, old);
    return rc;
}

static int bind_struct(struct bind_ctx *c, const struct ag_config_schema *s, void *obj,
                       const struct ag_config_node *node, size_t line);

/* Counts of lists and maps against umin/umax; absent collections count as empty. */
static int check_count(struct bind_ctx *c, const struct ag_config_field *f, size_t n, size_t line)
{
    if (n >= f->umin && n <= umax_of(f))
        return 0;
    char want[200];
    describe(f, want, sizeof want);
    return bind_fail(c, AG_ERANGE, line, "expected %s, got %zu", want, n);
}

static int bind_strings(struct bind_ctx *c, const struct ag_config_field *f, void *obj,
                        const struct ag_config_node *node)
{
    if (node->kind != AG_CONFIG_NODE_SEQ)
        return fail_expected(c, AG_EINVAL, f, node, node->text, node->len);
    int rc = check_count(c, f, node->count, node->line);
    if (rc < 0 || node->count == 0)
        return rc;
    char **items = calloc(node->count, sizeof *items);
    if (!items)
        return ag_err_set(c->err, AG_ENOMEM, "%s: out of memory", c->name);
    set_ptr(obj, f->offset, items);
    set_count(obj, f->count_offset, node->count);
    /* Each item is typed as a plain string field would be. */
    struct ag_config_field item = {.type = AG_CONFIG_STRING};
    for (size_t i = 0; i < node->count && rc == 0; i++) {
        size_t old = path_push(c, "[%zu]", i);
        const struct ag_config_node *it = node->items[i];
        if (ag_config_node_is_null(it) || it->kind != AG_CONFIG_NODE_SCALAR)
            rc = fail_expected(c, AG_EINVAL, &item, it, it->text, it->len);
        else
            rc = bind_scalar(c, &item, &items[i], it);
        path_pop(c, old);
    }
    return rc;
}

/* LIST (from a sequence) and MAP (from a mapping, names copied to name_offset). */
static int bind_elements(struct bind_ctx *c, const struct ag_config_field *f, void *obj,
                         const struct ag_config_node *node)
{
    bool map = f->type == AG_CONFIG_MAP;
    if (node->kind != (map ? AG_CONFIG_NODE_MAP : AG_CONFIG_NODE_SEQ))
        return fail_expected(c, AG_EINVAL, f, node, node->text, node->len);
    int rc = check_count(c, f, node->count, node->line);
    if (rc < 0 || node->count == 0)
        return rc;
    char *elems = calloc(node->count, f->schema->size);
    if (!elems)
        return ag_err_set(c->err, AG_ENOMEM, "%s: out of memory", c->name);
    set_ptr(obj, f->offset, elems);
    set_count(obj, f->count_offset, node->count);
    for (size_t i = 0; i < node->count && rc == 0; i++) {
        char *elem = elems + i * f->schema->size;
        size_t old = map ? path_push_key(c, node->keys[i]->text) : path_push(c, "[%zu]", i);
        if (map && strlen(node->keys[i]->text) != node->keys[i]->len) {
            rc = bind_fail(c, AG_EINVAL, node->keys[i]->line, "expected a name without NUL bytes");
        } else if (map) {
            char *name = NULL;
            rc = copy_string(c, node->keys[i]->text, node->keys[i]->len, &name);
            if (rc == 0)
                set_ptr(elem, f->name_offset, name);
        }
        if (rc == 0)
            rc = bind_struct(c, f->schema, elem, node->items[i], node->items[i]->line);
        path_pop(c, old);
    }
    return rc;
}

static int bind_default(struct bind_ctx *c, const struct ag_config_field *f, void *obj, size_t line)
{
    void *slot = slot_at(obj, f->offset);
    if (f->type == AG_CONFIG_STRUCT)
        return bind_struct(c, f->schema, slot, NULL, line);
    if (!is_scalar_type(f->type))
        return check_count(c, f, 0, line);
    if (!f->def)
        return 0;
    c->in_default = true;
    int rc = set_scalar(c, f, slot, NULL, ag_str_from_cstr(f->def));
    c->in_default = false;
    return rc;
}

static int bind_field(struct bind_ctx *c, const struct ag_config_field *f, void *obj,
                      const struct ag_config_node *node)
{
    switch (f->type) {
    case AG_CONFIG_STRUCT:
        return bind_struct(c, f->schema, slot_at(obj, f->offset), node, node->line);
    case AG_CONFIG_STRINGS:
        return bind_strings(c, f, obj, node);
    case AG_CONFIG_LIST:
    case AG_CONFIG_MAP:
        return bind_elements(c, f, obj, node);
    default:
        return bind_scalar(c, f, slot_at(obj, f->offset), node);
    }
}

/* Fills obj from a mapping node (NULL or null: every key absent); line locates missing keys. */
static int bind_struct(struct bind_ctx *c, const struct ag_config_schema *s, void *obj,
                       const struct ag_config_node *node, size_t line)
{
    int rc = 0;
    if (ag_config_node_is_null(node))
        node = NULL;
    if (node && node->kind != AG_CONFIG_NODE_MAP) {
        struct ag_config_field as_struct = {.type = AG_CONFIG_STRUCT};
        return fail_expected(c, AG_EINVAL, &as_struct, node, node->text, node->len);
    }
    if (c->depth >= AG_CONFIG_MAX_DEPTH)
        return bind_fail(c, AG_ERANGE, line, "nesting deeper than %d levels", AG_CONFIG_MAX_DEPTH);
    c->depth++;
    /* Unknown keys first: then the document has at most one key per field, so the lookups
     * below stay linear in the schema whatever the input. */
    for (size_t i = 0; node && i < node->count; i++)
        if (!field_find(s, node->keys[i])) {
            rc = fail_unknown_key(c, s, node->keys[i]);
            goto out;
        }
    for (const struct ag_config_field *f = s->fields; f->key; f++) {
        const struct ag_config_node *value = ag_config_node_get(node, f->key);
        size_t old = path_push_key(c, f->key);
        if (!ag_config_node_is_null(value))
            rc = bind_field(c, f, obj, value);
        else if (f->required)
            rc = bind_fail(c, AG_EINVAL, value ? value->line : line, "missing required key");
        else
            rc = bind_default(c, f, obj, value ? value->line : line);
        path_pop(c, old);
        if (rc < 0)
            goto out;
    }
out:
    c->depth--;
    return rc;
}

int ag_config_bind(const struct ag_config_schema *schema, void *out,
                   const struct ag_config_doc *doc, const struct ag_config_env *env,
                   struct ag_err *err)
{
    struct bind_ctx c = {.name = doc->name ? doc->name : "<string>", .env = env, .err = err};
    memset(out, 0, schema->size);
    size_t line = doc->root ? doc->root->line : 1;
    int rc = bind_struct(&c, schema, out, doc->root, line);
    if (rc < 0) {
        ag_config_release(schema, out);
        memset(out, 0, schema->size);
    }
    return rc;
}

int ag_config_load_string(const struct ag_config_schema *schema, void *out, const char *name,
                          const char *text, size_t len, const struct ag_config_env *env,
                          struct ag_err *err)
{
    struct ag_config_doc doc;
    memset(out, 0, schema->size);
    int rc = ag_config_doc_parse(&doc, name, text, len, err);
    if (rc == 0)
        rc = ag_config_bind(schema, out, &doc, env, err);
    ag_config_doc_release(&doc);
    return rc;
}

int ag_config_load_file(const struct ag_config_schema *schema, void *out, const char *path,
                        const struct ag_config_env *env, struct ag_err *err)
{
    struct ag_config_doc doc;
    memset(out, 0, schema->size);
    int rc = ag_config_doc_load(&doc, path, err);
    if (rc == 0)
        rc = ag_config_bind(schema, out, &doc, env, err);
    ag_config_doc_release(&doc);
    return rc;
}

static void free_string(char *s, bool secret)
{
    if (s && secret)
        explicit_bzero(s, strlen(s));
    free(s);
}

void ag_config_release(const struct ag_config_schema *schema, void *obj)
{
    for (const struct ag_config_field *f = schema->fields; f->key; f++) {
        switch (f->type) {
        case AG_CONFIG_STRING:
        case AG_CONFIG_ADDR:
            free_string(get_ptr(obj, f->offset), f->secret);
            set_ptr(obj, f->offset, NULL);
            break;
        case AG_CONFIG_STRUCT:
            ag_config_release(f->schema, slot_at(obj, f->offset));
            break;
        case AG_CONFIG_STRINGS: {
            char **items = get_ptr(obj, f->offset);
            for (size_t i = 0; items && i < get_count(obj, f->count_offset); i++)
                free_string(items[i], f->secret);
            free(items);
            set_ptr(obj, f->offset, NULL);
            set_count(obj, f->count_offset, 0);
            break;
        }
        case AG_CONFIG_LIST:
        case AG_CONFIG_MAP: {
            char *elems = get_ptr(obj, f->offset);
            for (size_t i = 0; elems && i < get_count(obj, f->count_offset); i++) {
                char *elem = elems + i * f->schema->size;
                ag_config_release(f->schema, elem);
                if (f->type == AG_CONFIG_MAP) {
                    free(get_ptr(elem, f->name_offset));
                    set_ptr(elem, f->name_offset, NULL);
                }
            }
            free(elems);
            set_ptr(obj, f->offset, NULL);
            set_count(obj, f->count_offset, 0);
            break;
        }
        default:
            break;
        }
    }
}

static int check_field(struct bind_ctx *c, const struct ag_config_field *f, size_t depth);

static int check_schema(struct bind_ctx *c, const struct ag_config_schema *s, size_t depth)
{
    if (!s || !s->fields || s->size == 0)
        return bind_fail(c, AG_EINVAL, 0, "nested schema missing, empty or without a size");
    if (depth > SCHEMA_MAX_DEPTH)
        return 0; /* a schema that contains itself through a list: checked once is enough */
    for (const struct ag_config_field *f = s->fields; f->key; f++) {
        size_t old = path_push_key(c, f->key);
        int rc = check_field(c, f, depth);
        for (const struct ag_config_field *g = s->fields; rc == 0 && g < f; g++)
            if (strcmp(g->key, f->key) == 0)
                rc = bind_fail(c, AG_EINVAL, 0, "key appears twice in the schema");
        path_pop(c, old);
        if (rc < 0)
            return rc;
    }
    return 0;
}

static int check_field(struct bind_ctx *c, const struct ag_config_field *f, size_t depth)
{
    int rc = 0;
    bool nested =
        f->type == AG_CONFIG_STRUCT || f->type == AG_CONFIG_LIST || f->type == AG_CONFIG_MAP;
    if (f->key[0] == '\0' || (unsigned)f->type > AG_CONFIG_MAP)
        return bind_fail(c, AG_EINVAL, 0, "empty key or unknown type");
    if (f->type == AG_CONFIG_ENUM && (!f->names || !f->names[0]))
        return bind_fail(c, AG_EINVAL, 0, "enum without names");
    if (f->min > f->max || f->dmin > f->dmax || (f->umax && f->umin > f->umax))
        return bind_fail(c, AG_EINVAL, 0, "lower bound over upper bound");
    if (f->def && (f->required || !is_scalar_type(f->type)))
        return bind_fail(c, AG_EINVAL, 0, "a default on a required key or a collection");
    if (nested)
        return check_schema(c, f->schema, depth + 1);
    if (f->def) {
        union {
            bool b;
            int64_t i;
            uint64_t u;
            double d;
            int e;
            char *s;
        } tmp = {0};
        c->in_default = true;
        rc = set_scalar(c, f, &tmp, NULL, ag_str_from_cstr(f->def));
        c->in_default = false;
        if (rc == 0 && (f->type == AG_CONFIG_STRING || f->type == AG_CONFIG_ADDR))
            free(tmp.s);
    }
    return rc;
}

int ag_config_schema_check(const struct ag_config_schema *schema, struct ag_err *err)
{
    struct bind_ctx c = {.name = schema && schema->name ? schema->name : "schema", .err = err};
    return check_schema(&c, schema, 0);
}

static int document_schema(struct ag_buf *out, const struct ag_config_schema *s, char *prefix,
                           size_t prefix_len, size_t prefix_size, size_t depth)
{
    int rc = 0;
    if (depth > SCHEMA_MAX_DEPTH)
        return 0;
    for (const struct ag_config_field *f = s->fields; f->key && rc == 0; f++) {
        char what[200];
        describe(f, what, sizeof what);
        rc = ag_buf_appendf(out, "%.*s%s: %s", (int)prefix_len, prefix, f->key, what);
        if (rc == 0 && f->required)
            rc = ag_buf_appendf(out, "; required");
        else if (rc == 0 && f->def)
            rc = ag_buf_appendf(out, "; default %s", f->def);
        if (rc == 0)
            rc = ag_buf_appendf(out, "\n%s%s%s", f->help ? "    " : "", f->help ? f->help : "",
                                f->help ? "\n" : "");
        if (rc < 0 || is_scalar_type(f->type) || f->type == AG_CONFIG_STRINGS)
            continue;
        const char *sep = f->type == AG_CONFIG_LIST  ? "[]."
                          : f->type == AG_CONFIG_MAP ? ".<name>."
                                                     : ".";
        int n = snprintf(prefix + prefix_len, prefix_size - prefix_len, "%s%s", f->key, sep);
        if (n < 0 || (size_t)n >= prefix_size - prefix_len)
            continue; /* too deep to name; the first levels are documented */
        rc =
            document_schema(out, f->schema, prefix, prefix_len + (size_t)n, prefix_size, depth + 1);
    }
    return rc;
}

int ag_config_document(const struct ag_config_schema *schema, struct ag_buf *out)
{
    char prefix[256];
    return document_schema(out, schema, prefix, 0, sizeof prefix, 0);
}

/* A mapping key: plain when it is simple enough to read back unchanged, else quoted. */
static int dump_key(struct ag_buf *out, const char *key)
{
    bool plain = key[0] != '\0' && key[0] != '-' && key[0] != '.';
    for (const char *p = key; *p && plain; p++)
        plain = (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
                *p == '_' || *p == '-' || *p == '.';
    return plain ? ag_buf_appendf(out, "%s", key)
                 : ag_config_append_quoted(out, ag_str_from_cstr(key));
}

static int dump_scalar(struct ag_buf *out, const struct ag_config_field *f, const void *slot)
{
    char text[64];
    switch (f->type) {
    case AG_CONFIG_BOOL:
        return ag_buf_appendf(out, "%s", *(const bool *)slot ? "true" : "false");
    case AG_CONFIG_INT:
        return ag_buf_appendf(out, "%" PRId64, *(const int64_t *)slot);
    case AG_CONFIG_UINT:
        return ag_buf_appendf(out, "%" PRIu64, *(const uint64_t *)slot);
    case AG_CONFIG_DOUBLE: {
        double v = *(const double *)slot;
        snprintf(text, sizeof text, "%.15g", v);
        if (strtod(text, NULL) != v)
            snprintf(text, sizeof text, "%.17g", v);
        return ag_buf_appendf(out, "%s", text);
    }
    case AG_CONFIG_DURATION:
        ag_config_format_duration(*(const uint64_t *)slot, text, sizeof text);
        return ag_buf_appendf(out, "%s", text);
    case AG_CONFIG_SIZE:
        ag_config_format_size(*(const uint64_t *)slot, text, sizeof text);
        return ag_buf_appendf(out, "%s", text);
    case AG_CONFIG_ENUM: {
        int v = *(const int *)slot;
        for (int i = 0; f->names && f->names[i]; i++)
            if (i == v)
                return ag_buf_appendf(out, "%s", f->names[i]);
        return ag_buf_appendf(out, "%d", v);
    }
    default: {
        const char *s;
        memcpy(&s, slot, sizeof s);
        if (!s)
            return ag_buf_appendf(out, "~");
        return f->secret ? ag_buf_appendf(out, "\"<redacted>\"")
                         : ag_config_append_quoted(out, ag_str_from_cstr(s));
    }
    }
}

static int dump_struct(struct ag_buf *out, const struct ag_config_schema *s, const void *obj,
                       size_t indent);

/* One element of a list: its mapping at indent + 2, the first line's indent turned into "- ". */
static int dump_list_item(struct ag_buf *out, const struct ag_config_schema *s, const void *elem,
                          size_t indent)
{
    if (!s->fields[0].key)
        return ag_buf_appendf(out, "%*s- {}\n", (int)indent, "");
    size_t start = out->len;
    int rc = dump_struct(out, s, elem, indent + 2);
    if (rc == 0)
        memcpy(out->data + out->off + start + indent, "- ", 2);
    return rc;
}

static int dump_field(struct ag_buf *out, const struct ag_config_field *f, const void *obj,
                      size_t indent)
{
    const char *slot = (const char *)obj + f->offset;
    int rc = 0;
    if (is_scalar_type(f->type)) {
        rc = ag_buf_appendf(out, " ");
        if (rc == 0)
            rc = dump_scalar(out, f, slot);
        return rc ? rc : ag_buf_appendf(out, "\n");
    }
    if (f->type == AG_CONFIG_STRUCT) {
        if (!f->schema->fields[0].key)
            return ag_buf_appendf(out, " {}\n");
        rc = ag_buf_appendf(out, "\n");
        return rc ? rc : dump_struct(out, f->schema, slot, indent + 2);
    }
    const char *items;
    memcpy(&items, slot, sizeof items);
    size_t n = get_count(obj, f->count_offset);
    if (n == 0 || !items)
        return ag_buf_appendf(out, f->type == AG_CONFIG_MAP ? " {}\n" : " []\n");
    rc = ag_buf_appendf(out, "\n");
    for (size_t i = 0; i < n && rc == 0; i++) {
        if (f->type == AG_CONFIG_STRINGS) {
            const char *s;
            memcpy(&s, items + i * sizeof s, sizeof s);
            rc = ag_buf_appendf(out, "%*s- ", (int)indent + 2, "");
            if (rc == 0)
                rc = f->secret ? ag_buf_appendf(out, "\"<redacted>\"")
                               : ag_config_append_quoted(out, ag_str_from_cstr(s));
            if (rc == 0)
                rc = ag_buf_appendf(out, "\n");
            continue;
        }
        const char *elem = items + i * f->schema->size;
        if (f->type == AG_CONFIG_LIST) {
            rc = dump_list_item(out, f->schema, elem, indent + 2);
            continue;
        }
        const char *name;
        memcpy(&name, elem + f->name_offset, sizeof name);
        rc = ag_buf_appendf(out, "%*s", (int)indent + 2, "");
        if (rc == 0)
            rc = dump_key(out, name ? name : "");
        if (rc == 0 && !f->schema->fields[0].key)
            rc = ag_buf_appendf(out, ": {}\n");
        else if (rc == 0)
            rc = ag_buf_appendf(out, ":\n");
        if (rc == 0 && f->schema->fields[0].key)
            rc = dump_struct(out, f->schema, elem, indent + 4);
    }
    return rc;
}

static int dump_struct(struct ag_buf *out, const struct ag_config_schema *s, const void *obj,
                       size_t indent)
{
    int rc = 0;
    for (const struct ag_config_field *f = s->fields; f->key && rc == 0; f++) {
        rc = ag_buf_appendf(out, "%*s%s:", (int)indent, "", f->key);
        if (rc == 0)
            rc = dump_field(out, f, obj, indent);
    }
    return rc;
}

int ag_config_dump(const struct ag_config_schema *schema, const void *obj, struct ag_buf *out)
{
    return dump_struct(out, schema, obj, 0);
}
