/* YAML configuration text: libyaml events into an owned node tree, ${VAR}, scalar syntax. */
#include "core/config_yaml.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <yaml.h>

#include "core/banned.h"

/* One open collection while events arrive; key is a mapping's key still waiting for its value. */
struct parse_frame {
    struct ag_config_node *node;
    struct ag_config_node *key;
};

struct parse_state {
    struct ag_config_doc *doc;
    struct ag_err *err;
    struct parse_frame stack[AG_CONFIG_MAX_DEPTH];
    size_t depth;
    int documents;
};

static void node_free(struct ag_config_node *node)
{
    if (!node)
        return;
    /* Iterative over siblings, recursive over depth, which the parser caps at MAX_DEPTH. */
    for (size_t i = 0; i < node->count; i++) {
        if (node->keys)
            node_free(node->keys[i]);
        node_free(node->items[i]);
    }
    free(node->keys);
    free(node->items);
    free(node->text);
    free(node);
}

void ag_config_doc_release(struct ag_config_doc *doc)
{
    node_free(doc->root);
    free(doc->name);
    *doc = (struct ag_config_doc){0};
}

/* Writes the key path through the first `frames` open collections ("a.b[2]") to path. */
static void stack_path(const struct parse_state *st, size_t frames, char *path, size_t size)
{
    size_t len = 0;
    path[0] = '\0';
    for (size_t i = 0; i < frames && len < size; i++) {
        const struct parse_frame *f = &st->stack[i];
        const struct ag_config_node *c = f->node;
        /* Below the top, the open child is the collection's last entry; at the top, the entry
         * being added is the pending key's value or the next item. */
        bool top = i + 1 == st->depth;
        const struct ag_config_node *key = NULL;
        if (c->kind == AG_CONFIG_NODE_MAP)
            key = top ? f->key : c->count ? c->keys[c->count - 1] : NULL;
        int n = 0;
        if (c->kind == AG_CONFIG_NODE_MAP && key)
            n = snprintf(path + len, size - len, "%s%s", len ? "." : "", key->text);
        else if (c->kind == AG_CONFIG_NODE_SEQ)
            n = snprintf(path + len, size - len, "[%zu]", top ? c->count : c->count - 1);
        if (n < 0)
            break;
        len += (size_t)n;
    }
}

static int parse_fail(struct parse_state *st, int code, size_t line, const char *what)
{
    char path[160];
    stack_path(st, st->depth, path, sizeof path);
    if (path[0])
        return ag_err_set(st->err, code, "%s:%zu: %s: %s", st->doc->name, line, path, what);
    return ag_err_set(st->err, code, "%s:%zu: %s", st->doc->name, line, what);
}

static int node_new(struct parse_state *st, enum ag_config_node_kind kind, yaml_mark_t mark,
                    struct ag_config_node **out)
{
    if (st->doc->nodes >= AG_CONFIG_MAX_NODES)
        return ag_err_set(st->err, AG_ERANGE, "%s:%zu: more than %d values in one document",
                          st->doc->name, mark.line + 1, AG_CONFIG_MAX_NODES);
    struct ag_config_node *node = calloc(1, sizeof *node);
    if (!node)
        return ag_err_set(st->err, AG_ENOMEM, "%s: out of memory", st->doc->name);
    node->kind = kind;
    node->line = mark.line + 1;
    node->col = mark.column + 1;
    st->doc->nodes++;
    *out = node;
    return 0;
}

/* Makes room for one more entry in a collection; keys[] exists only for mappings. */
static int node_grow(struct ag_config_node *c)
{
    if (c->count < c->cap)
        return 0;
    size_t cap = c->cap ? c->cap * 2 : 4;
    struct ag_config_node **items = realloc(c->items, cap * sizeof *items);
    if (!items)
        return AG_ENOMEM;
    c->items = items;
    if (c->kind == AG_CONFIG_NODE_MAP) {
        struct ag_config_node **keys = realloc(c->keys, cap * sizeof *keys);
        if (!keys)
            return AG_ENOMEM;
        c->keys = keys;
    }
    c->cap = cap;
    return 0;
}

/* Hands node to its parent (or makes it the root). Takes ownership even when it fails. */
static int node_attach(struct parse_state *st, struct ag_config_node *node)
{
    int rc = 0;
    if (st->depth == 0) {
        st->doc->root = node;
        return 0;
    }
    struct parse_frame *top = &st->stack[st->depth - 1];
    if (top->node->kind == AG_CONFIG_NODE_MAP && !top->key) {
        if (node->kind != AG_CONFIG_NODE_SCALAR) {
            rc = parse_fail(st, AG_EINVAL, node->line, "mapping keys must be plain strings");
            goto out;
        }
        top->key = node;
        return 0;
    }
    if (node_grow(top->node) < 0) {
        rc = ag_err_set(st->err, AG_ENOMEM, "%s: out of memory", st->doc->name);
        goto out;
    }
    if (top->node->kind == AG_CONFIG_NODE_MAP) {
        top->node->keys[top->node->count] = top->key;
        top->key = NULL;
    }
    top->node->items[top->node->count++] = node;
    return 0;
out:
    node_free(node);
    return rc;
}

static int key_order(const void *a, const void *b)
{
    const struct ag_config_node *x = *(const struct ag_config_node *const *)a;
    const struct ag_config_node *y = *(const struct ag_config_node *const *)b;
    size_t n = x->len < y->len ? x->len : y->len;
    int c = n ? memcmp(x->text, y->text, n) : 0;
    if (c == 0 && x->len != y->len)
        c = x->len < y->len ? -1 : 1;
    if (c == 0 && x->line != y->line)
        c = x->line < y->line ? -1 : 1;
    if (c == 0 && x->col != y->col)
        c = x->col < y->col ? -1 : 1;
    return c;
}

/* Rejects a mapping that names one key twice; sorting keeps huge mappings O(n log n). */
static int map_check_duplicates(struct parse_state *st, const struct ag_config_node *map)
{
    int rc = 0;
    if (map->count < 2)
        return 0;
    struct ag_config_node **sorted = malloc(map->count * sizeof *sorted);
    if (!sorted)
        return ag_err_set(st->err, AG_ENOMEM, "%s: out of memory", st->doc->name);
    memcpy(sorted, map->keys, map->count * sizeof *sorted);
    qsort(sorted, map->count, sizeof *sorted, key_order);
    for (size_t i = 1; i < map->count; i++) {
        const struct ag_config_node *first = sorted[i - 1], *again = sorted[i];
        if (first->len != again->len || memcmp(first->text, again->text, again->len) != 0)
            continue;
        char path[160];
        stack_path(st, st->depth - 1, path, sizeof path);
        rc = ag_err_set(st->err, AG_EINVAL, "%s:%zu: %s%s%s: duplicate key (first on line %zu)",
                        st->doc->name, again->line, path, path[0] ? "." : "", again->text,
                        first->line);
        goto out;
    }
out:
    free(sorted);
    return rc;
}

static int on_collection_start(struct parse_state *st, enum ag_config_node_kind kind,
                               yaml_mark_t mark)
{
    if (st->depth == AG_CONFIG_MAX_DEPTH) {
        char what[64];
        snprintf(what, sizeof what, "nesting deeper than %d levels", AG_CONFIG_MAX_DEPTH);
        return parse_fail(st, AG_ERANGE, mark.line + 1, what);
    }
    struct ag_config_node *node = NULL;
    int rc = node_new(st, kind, mark, &node);
    if (rc < 0)
        return rc;
    rc = node_attach(st, node);
    if (rc < 0)
        return rc;
    st->stack[st->depth++] = (struct parse_frame){.node = node};
    return 0;
}

static int on_scalar(struct parse_state *st, const yaml_event_t *ev)
{
    struct ag_config_node *node = NULL;
    int rc = node_new(st, AG_CONFIG_NODE_SCALAR, ev->start_mark, &node);
    if (rc < 0)
        return rc;
    size_t len = ev->data.scalar.length;
    node->text = malloc(len + 1);
    if (!node->text) {
        node_free(node);
        return ag_err_set(st->err, AG_ENOMEM, "%s: out of memory", st->doc->name);
    }
    if (len)
        memcpy(node->text, ev->data.scalar.value, len);
    node->text[len] = '\0';
    node->len = len;
    node->plain = ev->data.scalar.style == YAML_PLAIN_SCALAR_STYLE;
    return node_attach(st, node);
}

static int on_event(struct parse_state *st, const yaml_event_t *ev)
{
    size_t line = ev->start_mark.line + 1;
    switch (ev->type) {
    case YAML_DOCUMENT_START_EVENT:
        if (st->documents++ > 0)
            return ag_err_set(st->err, AG_EINVAL, "%s:%zu: more than one YAML document",
                              st->doc->name, line);
        return 0;
    case YAML_ALIAS_EVENT:
        return parse_fail(st, AG_EINVAL, line, "YAML aliases (*name) are not supported");
    case YAML_SCALAR_EVENT:
        return on_scalar(st, ev);
    case YAML_SEQUENCE_START_EVENT:
        return on_collection_start(st, AG_CONFIG_NODE_SEQ, ev->start_mark);
    case YAML_MAPPING_START_EVENT:
        return on_collection_start(st, AG_CONFIG_NODE_MAP, ev->start_mark);
    case YAML_SEQUENCE_END_EVENT:
    case YAML_MAPPING_END_EVENT: {
        int rc = 0;
        if (st->depth == 0)
            return ag_err_set(st->err, AG_EINVAL, "%s:%zu: unbalanced YAML events", st->doc->name,
                              line);
        if (ev->type == YAML_MAPPING_END_EVENT)
            rc = map_check_duplicates(st, st->stack[st->depth - 1].node);
        st->depth--;
        return rc;
    }
    default:
        return 0;
    }
}

static int syntax_error(const struct ag_config_doc *doc, const yaml_parser_t *parser,
                        struct ag_err *err)
{
    const char *problem = parser->problem ? parser->problem : "unknown problem";
    switch (parser->error) {
    case YAML_MEMORY_ERROR:
        return ag_err_set(err, AG_ENOMEM, "%s: out of memory", doc->name);
    case YAML_READER_ERROR:
        /* The reader reports a byte offset, not a mark: it fails before lines are counted. */
        return ag_err_set(err, AG_EINVAL, "%s: byte %zu: YAML syntax error: %s", doc->name,
                          parser->problem_offset, problem);
    default:
        return ag_err_set(err, AG_EINVAL, "%s:%zu: YAML syntax error: %s", doc->name,
                          parser->problem_mark.line + 1, problem);
    }
}

int ag_config_doc_parse(struct ag_config_doc *doc, const char *name, const char *text, size_t len,
                        struct ag_err *err)
{
    int rc = 0;
    bool parser_ready = false;
    yaml_parser_t parser;
    struct parse_state st = {.doc = doc, .err = err};

    *doc = (struct ag_config_doc){0};
    doc->name = strdup(name ? name : "<string>");
    if (!doc->name) {
        rc = ag_err_set(err, AG_ENOMEM, "out of memory");
        goto out;
    }
    if (len > AG_CONFIG_MAX_FILE_BYTES) {
        rc = ag_err_set(err, AG_ERANGE, "%s: file is larger than %u MiB", doc->name,
                        AG_CONFIG_MAX_FILE_BYTES >> 20);
        goto out;
    }
    if (!yaml_parser_initialize(&parser)) {
        rc = ag_err_set(err, AG_ENOMEM, "%s: out of memory", doc->name);
        goto out;
    }
    parser_ready = true;
    yaml_parser_set_input_string(&parser, (const unsigned char *)text, len);
    for (;;) {
        yaml_event_t ev;
        if (!yaml_parser_parse(&parser, &ev)) {
            rc = syntax_error(doc, &parser, err);
            goto out;
        }
        bool done = ev.type == YAML_STREAM_END_EVENT;
        rc = on_event(&st, &ev);
        yaml_event_delete(&ev);
        if (rc < 0)
            goto out;
        if (done)
            break;
    }
out:
    if (parser_ready)
        yaml_parser_delete(&parser);
    /* A key whose value never arrived belongs to no node yet. */
    for (size_t i = 0; i < st.depth; i++)
        node_free(st.stack[i].key);
    if (rc < 0)
        ag_config_doc_release(doc);
    return rc;
}

int ag_config_doc_load(struct ag_config_doc *doc, const char *path, struct ag_err *err)
{
    int rc = 0;
    struct ag_buf text;
    int fd = -1;

    *doc = (struct ag_config_doc){0};
    ag_buf_init(&text, (size_t)AG_CONFIG_MAX_FILE_BYTES + 1);
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        rc = ag_err_sys(err, "%s: cannot open", path);
        goto out;
    }
    for (;;) {
        size_t want = text.max - text.len;
        if (want == 0) {
            rc = ag_err_set(err, AG_ERANGE, "%s: file is larger than %u MiB", path,
                            AG_CONFIG_MAX_FILE_BYTES >> 20);
            goto out;
        }
        if (want > 65536)
            want = 65536;
        rc = ag_buf_reserve(&text, want);
        if (rc < 0) {
            rc = ag_err_set(err, rc, "%s: out of memory", path);
            goto out;
        }
        ssize_t n = read(fd, ag_buf_tail(&text), want);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            rc = ag_err_sys(err, "%s: cannot read", path);
            goto out;
        }
        if (n == 0)
            break;
        ag_buf_commit(&text, (size_t)n);
    }
    struct ag_str s = ag_buf_str(&text);
    rc = ag_config_doc_parse(doc, path, s.p ? s.p : "", s.len, err);
out:
    if (fd >= 0)
        close(fd);
    ag_buf_release(&text);
    return rc;
}

const struct ag_config_node *ag_config_node_get(const struct ag_config_node *map, const char *key)
{
    if (!map || map->kind != AG_CONFIG_NODE_MAP)
        return NULL;
    size_t len = strlen(key);
    for (size_t i = 0; i < map->count; i++)
        if (map->keys[i]->len == len && memcmp(map->keys[i]->text, key, len) == 0)
            return map->items[i];
    return NULL;
}

bool ag_config_node_is_null(const struct ag_config_node *node)
{
    if (!node)
        return true;
    if (node->kind != AG_CONFIG_NODE_SCALAR || !node->plain)
        return false;
    struct ag_str s = {node->text, node->len};
    return s.len == 0 || ag_str_eq(s, AG_STR("~")) || ag_str_eq(s, AG_STR("null")) ||
           ag_str_eq(s, AG_STR("Null")) || ag_str_eq(s, AG_STR("NULL"));
}

static bool is_name_start(char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == '_';
}

static bool is_name_char(char c)
{
    return is_name_start(c) || (c >= '0' && c <= '9');
}

static int subst_append(struct ag_buf *out, const char *p, size_t n, struct ag_err *err)
{
    int rc = ag_buf_append(out, p, n);
    if (rc == AG_ERANGE)
        return ag_err_set(err, rc, "value is longer than %zu bytes after substitution", out->max);
    if (rc < 0)
        return ag_err_set(err, rc, "out of memory");
    return 0;
}

/* Expands one ${...} whose inside (between the braces) is ref. */
static int subst_reference(const struct ag_config_env *env, struct ag_str ref, struct ag_buf *out,
                           struct ag_err *err)
{
    char name[128];
    size_t name_len = 0;
    while (name_len < ref.len && is_name_char(ref.p[name_len]))
        name_len++;
    struct ag_str rest = {ref.p + name_len, ref.len - name_len};
    bool has_default = ag_str_has_prefix(rest, AG_STR(":-"));
    if (name_len == 0 || !is_name_start(ref.p[0]) || (rest.len > 0 && !has_default))
        return ag_err_set(err, AG_EINVAL,
                          "bad reference \"${%.*s}\": expected ${NAME} or "
                          "${NAME:-default}",
                          (int)(ref.len > 40 ? 40 : ref.len), ref.p);
    if (name_len >= sizeof name)
        return ag_err_set(err, AG_EINVAL, "variable name longer than %zu bytes", sizeof name - 1);
    memcpy(name, ref.p, name_len);
    name[name_len] = '\0';

    const char *value = env ? env->lookup(env->ctx, name) : getenv(name);
    if (has_default && (!value || !value[0]))
        return subst_append(out, rest.p + 2, rest.len - 2, err);
    if (!value)
        return ag_err_set(err, AG_ENOTFOUND, "environment variable %s is not set", name);
    return subst_append(out, value, strlen(value), err);
}

int ag_config_subst(const struct ag_config_env *env, const char *text, size_t len,
                    struct ag_buf *out, struct ag_err *err)
{
    int rc = 0;
    size_t i = 0;
    while (i < len) {
        const char *dollar = memchr(text + i, '$', len - i);
        size_t at = dollar ? (size_t)(dollar - text) : len;
        rc = subst_append(out, text + i, at - i, err);
        if (rc < 0 || !dollar)
            goto out;
        if (at + 1 < len && text[at + 1] == '$') {
            rc = subst_append(out, "$", 1, err);
            i = at + 2;
        } else if (at + 1 < len && text[at + 1] == '{') {
            const char *close = memchr(text + at + 2, '}', len - at - 2);
            if (!close) {
                rc = ag_err_set(err, AG_EINVAL, "unterminated \"${\"");
                goto out;
            }
            struct ag_str ref = {text + at + 2, (size_t)(close - text) - at - 2};
            rc = subst_reference(env, ref, out, err);
            i = (size_t)(close - text) + 1;
        } else {
            rc = subst_append(out, "$", 1, err);
            i = at + 1;
        }
        if (rc < 0)
            goto out;
    }
out:
    return rc;
}

int ag_config_parse_bool(struct ag_str s, bool *out)
{
    if (ag_str_eq_nocase(s, AG_STR("true")) || ag_str_eq_nocase(s, AG_STR("yes")) ||
        ag_str_eq_nocase(s, AG_STR("on")))
        *out = true;
    else if (ag_str_eq_nocase(s, AG_STR("false")) || ag_str_eq_nocase(s, AG_STR("no")) ||
             ag_str_eq_nocase(s, AG_STR("off")))
        *out = false;
    else
        return AG_EINVAL;
    return 0;
}

/* Copies a short number into a NUL-terminated buffer for strtoll/strtod; longer is no number. */
static bool number_text(struct ag_str s, char *buf, size_t size)
{
    if (s.len == 0 || s.len >= size || memchr(s.p, '\0', s.len))
        return false;
    memcpy(buf, s.p, s.len);
    buf[s.len] = '\0';
    return true;
}

int ag_config_parse_i64(struct ag_str s, int64_t *out)
{
    char buf[32];
    size_t sign = (s.len > 0 && (s.p[0] == '-' || s.p[0] == '+')) ? 1 : 0;
    if (s.len <= sign || s.p[sign] < '0' || s.p[sign] > '9')
        return AG_EINVAL;
    size_t digits = sign;
    while (digits < s.len && s.p[digits] >= '0' && s.p[digits] <= '9')
        digits++;
    if (digits != s.len)
        return AG_EINVAL;
    if (!number_text(s, buf, sizeof buf))
        return AG_ERANGE; /* only digits, but more than any int64_t has */
    char *end;
    errno = 0;
    long long v = strtoll(buf, &end, 10);
    if (*end != '\0')
        return AG_EINVAL;
    if (errno == ERANGE)
        return AG_ERANGE;
    *out = v;
    return 0;
}

int ag_config_parse_double(struct ag_str s, double *out)
{
    char buf[64];
    if (!number_text(s, buf, sizeof buf) || strcspn(buf, "xXnNiI") != s.len)
        return AG_EINVAL;
    if (!((buf[0] >= '0' && buf[0] <= '9') || buf[0] == '-' || buf[0] == '+' || buf[0] == '.'))
        return AG_EINVAL;
    char *end;
    double v = strtod(buf, &end);
    if (*end != '\0')
        return AG_EINVAL;
    if (!isfinite(v))
        return AG_ERANGE;
    *out = v;
    return 0;
}

struct unit {
    const char *suffix;
    uint64_t mult;
};

/* Digits followed by one of the units' suffixes ("" included: the value has no unit). */
static int parse_with_unit(struct ag_str s, const struct unit *units, size_t nunits, uint64_t *out)
{
    size_t digits = 0;
    while (digits < s.len && s.p[digits] >= '0' && s.p[digits] <= '9')
        digits++;
    if (digits == 0)
        return AG_EINVAL;
    struct ag_str suffix = {s.p + digits, s.len - digits};
    for (size_t i = 0; i < nunits; i++) {
        if (!ag_str_eq(suffix, ag_str_from_cstr(units[i].suffix)))
            continue;
        uint64_t v;
        int rc = ag_str_to_u64((struct ag_str){s.p, digits}, UINT64_MAX, &v);
        if (rc < 0)
            return rc;
        if (v > UINT64_MAX / units[i].mult)
            return AG_ERANGE;
        *out = v * units[i].mult;
        return 0;
    }
    return AG_EINVAL;
}

static const struct unit duration_units[] = {
    {"", 1}, {"ms", 1}, {"s", 1000}, {"m", 60000}, {"h", 3600000},
};

static const struct unit size_units[] = {
    {"", 1},
    {"B", 1},
    {"KiB", UINT64_C(1) << 10},
    {"MiB", UINT64_C(1) << 20},
    {"GiB", UINT64_C(1) << 30},
    {"TiB", UINT64_C(1) << 40},
};

int ag_config_parse_duration(struct ag_str s, uint64_t *out)
{
    return parse_with_unit(s, duration_units, sizeof duration_units / sizeof duration_units[0],
                           out);
}

int ag_config_parse_size(struct ag_str s, uint64_t *out)
{
    return parse_with_unit(s, size_units, sizeof size_units / sizeof size_units[0], out);
}

bool ag_config_addr_valid(struct ag_str s)
{
    const char *colon = s.len ? memrchr(s.p, ':', s.len) : NULL;
    if (!colon || colon == s.p)
        return false;
    struct ag_str host = {s.p, (size_t)(colon - s.p)};
    struct ag_str port = {colon + 1, s.len - host.len - 1};
    uint64_t port_num;
    if (ag_str_to_u64(port, 65535, &port_num) < 0)
        return false;
    bool v6 = host.p[0] == '[';
    if (v6) {
        if (host.len < 3 || host.p[host.len - 1] != ']')
            return false;
        host = (struct ag_str){host.p + 1, host.len - 2};
    }
    for (size_t i = 0; i < host.len; i++) {
        char ch = host.p[i];
        bool ok =
            (ch >= '0' && ch <= '9') || ch == '.' ||
            (v6 ? ch == ':' || (ch >= 'a' && ch <= 'f') || (ch >= 'A' && ch <= 'F')
                : (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || ch == '-' || ch == '_');
        if (!ok)
            return false;
    }
    return true;
}

void ag_config_format_duration(uint64_t ms, char *out, size_t size)
{
    static const struct unit units[] = {{"h", 3600000}, {"m", 60000}, {"s", 1000}};
    for (size_t i = 0; ms && i < sizeof units / sizeof units[0]; i++)
        if (ms % units[i].mult == 0) {
            snprintf(out, size, "%" PRIu64 "%s", ms / units[i].mult, units[i].suffix);
            return;
        }
    snprintf(out, size, "%" PRIu64 "ms", ms);
}

void ag_config_format_size(uint64_t bytes, char *out, size_t size)
{
    for (size_t i = sizeof size_units / sizeof size_units[0] - 1; bytes && i >= 2; i--)
        if (bytes % size_units[i].mult == 0) {
            snprintf(out, size, "%" PRIu64 "%s", bytes / size_units[i].mult, size_units[i].suffix);
            return;
        }
    snprintf(out, size, "%" PRIu64, bytes);
}

int ag_config_append_quoted(struct ag_buf *out, struct ag_str s)
{
    int rc = ag_buf_append(out, "\"", 1);
    for (size_t i = 0; i < s.len && rc == 0; i++) {
        unsigned char ch = (unsigned char)s.p[i];
        if (ch == '"' || ch == '\\')
            rc = ag_buf_appendf(out, "\\%c", ch);
        else if (ch == '$')
            rc = ag_buf_append(out, "$$", 2);
        else if (ch < 0x20 || ch == 0x7f)
            rc = ag_buf_appendf(out, "\\x%02x", ch);
        else
            rc = ag_buf_append(out, &s.p[i], 1);
    }
    return rc ? rc : ag_buf_append(out, "\"", 1);
}
