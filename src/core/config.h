/* Declarative configuration: schema tables that load YAML into C structs, document, dump. */
#ifndef AG_CONFIG_H
#define AG_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"
#include "core/config_yaml.h"
#include "core/err.h"

/*
 * What a field holds, and the C type at its offset. Bounds are inclusive:
 *  - signed (INT, DOUBLE): [min, max] or [dmin, dmax] apply when min < max; both 0 means none;
 *  - unsigned (UINT, DURATION, SIZE, and the length of STRING / count of STRINGS, LIST, MAP):
 *    umin always applies, umax applies when it is not 0.
 */
enum ag_config_type {
    AG_CONFIG_BOOL,     /* bool: true/false, yes/no, on/off (any case) */
    AG_CONFIG_INT,      /* int64_t: decimal, optional sign */
    AG_CONFIG_UINT,     /* uint64_t: decimal digits */
    AG_CONFIG_DOUBLE,   /* double: finite decimal number */
    AG_CONFIG_STRING,   /* char *, owned; no NUL bytes; length bounds in bytes */
    AG_CONFIG_DURATION, /* uint64_t milliseconds: 1500 (ms), "250ms", "1s", "2m", "1h" */
    AG_CONFIG_SIZE,     /* uint64_t bytes: 1048576, "512B", "512KiB", "10MiB", "1GiB", "1TiB" */
    AG_CONFIG_ENUM,     /* int: index of the value in names[] (matched ignoring case) */
    AG_CONFIG_ADDR,     /* char *, owned: "host:port" or "[v6]:port", port 0..65535 */
    AG_CONFIG_STRINGS,  /* char **, owned, plus a size_t count at count_offset */
    AG_CONFIG_STRUCT,   /* a struct embedded at offset, described by schema */
    AG_CONFIG_LIST,     /* an owned array of schema structs (pointer at offset) + size_t count */
    AG_CONFIG_MAP,      /* as LIST, from a mapping of name to struct; each element's char *name
                           (owned) is at name_offset inside the element */
};

struct ag_config_schema;

/*
 * One key of a mapping. Tables end with an entry whose key is NULL ({0}). The default is text,
 * read exactly as a YAML value would be (without ${VAR}), so it documents itself: "250ms",
 * "10MiB", "info". Absent keys without a default keep the zero value (false, 0, NULL, names[0]);
 * absent STRUCT keys get their own defaults; absent lists and maps are empty. A key given as
 * null (`key:`, `key: ~`) counts as absent.
 */
struct ag_config_field {
    const char *key;
    enum ag_config_type type;
    size_t offset;            /* offsetof the value (or array pointer) in the parent struct */
    size_t count_offset;      /* STRINGS, LIST, MAP: offsetof the size_t element count */
    size_t name_offset;       /* MAP: offsetof the char * name inside one element */
    int64_t min, max;         /* INT */
    uint64_t umin, umax;      /* UINT, DURATION (ms), SIZE (bytes), lengths and counts */
    double dmin, dmax;        /* DOUBLE */
    const char *def;          /* default as text, or NULL */
    bool required;            /* absent or null is an error; cannot have a default */
    bool secret;              /* STRING: never dumped, wiped before it is freed */
    const char *help;         /* one sentence for documentation */
    const char *const *names; /* ENUM: value names, NULL-terminated */
    const struct ag_config_schema *schema; /* STRUCT, LIST, MAP: the nested struct */
};

/* A struct described field by field. */
struct ag_config_schema {
    const char *name; /* names the schema in ag_config_schema_check messages */
    size_t size;      /* sizeof the struct */
    const struct ag_config_field *fields;
};

/*
 * Fills out (schema->size bytes of caller memory, overwritten) from a parsed document. Scalar
 * values (not keys or map names) get ${VAR} substitution from env (NULL: the process
 * environment) before they are typed.
 * Rejects, naming "file:line: dotted.key[0].path: problem": unknown keys (suggesting a close
 * known one), values of the wrong type or out of bounds, missing required keys, unset variables
 * and bad references. Returns 0 (free with ag_config_release), or AG_EINVAL, AG_ERANGE (a value
 * outside its bounds), AG_ENOTFOUND (an unset variable), AG_ENOMEM, with err filled and out
 * zeroed holding nothing.
 */
int ag_config_bind(const struct ag_config_schema *schema, void *out,
                   const struct ag_config_doc *doc, const struct ag_config_env *env,
                   struct ag_err *err);

/*
 * Reads the YAML file at path and binds it into out as ag_config_bind. Returns as
 * ag_config_bind, plus the errors of ag_config_doc_load (syntax errors with their line, AG_ESYS
 * for a file that cannot be read, AG_ERANGE for one over 4 MiB). On failure out is zeroed.
 */
int ag_config_load_file(const struct ag_config_schema *schema, void *out, const char *path,
                        const struct ag_config_env *env, struct ag_err *err);

/* As ag_config_load_file for len bytes of text; name stands for the file name in messages. */
int ag_config_load_string(const struct ag_config_schema *schema, void *out, const char *name,
                          const char *text, size_t len, const struct ag_config_env *env,
                          struct ag_err *err);

/*
 * Frees everything a bind put into obj (strings, arrays, nested elements; secrets are wiped
 * first) and leaves those members NULL / 0. Safe on a zeroed struct and on one released before.
 */
void ag_config_release(const struct ag_config_schema *schema, void *obj);

/*
 * Checks a schema for programmer errors: missing keys or nested schemas, duplicate keys, enums
 * without names, inverted bounds, a default on a required key or a collection, and defaults
 * that do not parse or break their bounds. Meant for a unit test per schema. Returns 0 or
 * AG_EINVAL with err naming the key path.
 */
int ag_config_schema_check(const struct ag_config_schema *schema, struct ag_err *err);

/*
 * Appends a description of every key to out, one entry per key path (nested keys as
 * "upstreams.<name>.targets[].weight"): its type and bounds, its default or "required", and
 * its help on an indented second line. Returns 0, AG_ERANGE when out reaches its maximum, or
 * AG_ENOMEM; out then holds a partial text.
 */
int ag_config_document(const struct ag_config_schema *schema, struct ag_buf *out);

/*
 * Appends obj as YAML to out, in schema order, such that loading the text again gives the
 * same values (strings are double-quoted with '$' doubled; durations and sizes use the largest
 * exact unit; secrets read "<redacted>"). Returns 0, AG_ERANGE or AG_ENOMEM as
 * ag_config_document.
 */
int ag_config_dump(const struct ag_config_schema *schema, const void *obj, struct ag_buf *out);

#endif
