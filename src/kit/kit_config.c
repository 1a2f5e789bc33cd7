/* The kit's settings: one table of AGORA_* variables that loads, validates and documents them. */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/config_yaml.h"
#include "kit/bus_driver.h"
#include "kit/kit_config.h"
#include "kit/kit_identity.h"
#include "core/banned.h"

enum setting_kind {
    S_STRING,  /* any non-empty text */
    S_ADDR,    /* HOST:PORT */
    S_COUNT,   /* an unsigned integer in [min, max] */
    S_SIZE,    /* bytes: 1048576, 512KiB, 1MiB */
    S_LEVEL,   /* debug, info, warn, error */
    S_ENV,     /* development, production */
    S_ALGS,    /* a comma list of JWS algorithms */
    S_ISSUERS, /* AGORA_ISSUERS syntax; may be empty */
    S_BUS,     /* a bus URL its driver accepts (kit_bus_driver_for) */
};

struct setting_def {
    const char *env;
    const char *key; /* in the YAML file; NULL: not allowed there */
    enum setting_kind kind;
    size_t offset;
    uint64_t min, max;
    const char *def; /* NULL: computed (AGORA_DB, AGORA_WORKERS) or none */
    const char *help;
};

#define OFF(m) offsetof(struct kit_settings, m)

static const struct setting_def defs[] = {
    {"AGORA_LISTEN", "listen", S_ADDR, OFF(listen), 0, 0, "127.0.0.1:0",
     "Address the service listens on (HOST:PORT; port 0 picks a free one)."},
    {"AGORA_DB", "db", S_STRING, OFF(db), 0, 0, NULL,
     "Database URL: sqlite:PATH or postgres://user:password@host:port/db "
     "(default sqlite:var/data/<service>.db)."},
    {"AGORA_WORKERS", "workers", S_COUNT, OFF(workers), 0, KIT_WORKERS_MAX, "0",
     "Handler threads, each with its own database connection (0: one per online CPU)."},
    {"AGORA_IO_THREADS", "io_threads", S_COUNT, OFF(io_threads), 1, KIT_IO_THREADS_MAX, "1",
     "HTTP I/O event loops."},
    {"AGORA_ISSUERS", "issuers", S_ISSUERS, OFF(issuers), 0, 0, "",
     "Trusted token issuers: ISSUER=http://HOST/jwks.json or ISSUER=file:PATH, separated by ';' "
     "or spaces. None: every protected route answers 401."},
    {"AGORA_AUDIENCE", "audience", S_STRING, OFF(audience), 0, 0, "agora",
     "The audience (aud) tokens must carry."},
    {"AGORA_ISSUER_ALGORITHMS", "issuer_algorithms", S_ALGS, OFF(issuer_algorithms), 0, 0, "ES256",
     "JWS algorithms accepted from the issuers, comma-separated."},
    {"AGORA_DEFAULT_TENANT", "default_tenant", S_STRING, OFF(default_tenant), 0, 0, "default",
     "Tenant of a request whose token names none (or of an anonymous request)."},
    {"AGORA_MAX_BODY", "max_body", S_SIZE, OFF(max_body), 0, 0, "1MiB",
     "Largest request body; a larger one is answered 413 before any handler runs."},
    {"AGORA_LOG_LEVEL", "log_level", S_LEVEL, OFF(log_level), 0, 0, "info",
     "Lowest level logged: debug, info, warn or error (JSON lines on stdout)."},
    {"AGORA_ENV", "env", S_ENV, OFF(env), 0, 0, "development",
     "development or production (production turns development conveniences off)."},
    {"AGORA_BUS", "bus", S_BUS, OFF(bus), 0, 0, "local:var/bus.db",
     "The event bus: local:PATH (an SQLite log shared by the services of one machine) or "
     "amqp://user:password@host:port/vhost (RabbitMQ)."},
    {"AGORA_BUS_BATCH", "bus_batch", S_COUNT, OFF(bus_batch), 1, 10000, "256",
     "Outbox rows published per batch, and events delivered per consumer transaction."},
    {"AGORA_BUS_POLL_MS", "bus_poll_ms", S_COUNT, OFF(bus_poll_ms), 1, 60000, "50",
     "How often the relay looks at the outbox when no commit woke it (ms)."},
    {"AGORA_BUS_RETRY_MS", "bus_retry_ms", S_COUNT, OFF(bus_retry_ms), 1, 600000, "200",
     "First wait before a failed event handler runs again (ms; doubling, at most 30 s)."},
    {"AGORA_BUS_MAX_ATTEMPTS", "bus_max_attempts", S_COUNT, OFF(bus_max_attempts), 1, 1000, "5",
     "Handler attempts before an event is parked as dead (GET /_kit/events/dead)."},
    {"AGORA_BUS_OUTBOX_KEEP_S", "bus_outbox_keep_s", S_COUNT, OFF(bus_outbox_keep_s), 0, 315360000,
     "86400", "Seconds a published outbox row is kept before the relay deletes it."},
    {"AGORA_CONFIG", NULL, S_STRING, OFF(config), 0, 0, NULL,
     "A YAML file with the settings above by their names lower-cased without AGORA_ "
     "(listen:, db:...) and settings: {VAR: value} for the service's own; the environment "
     "wins over it. Also --config FILE."},
};
enum { DEF_COUNT = sizeof defs / sizeof defs[0] };

/* A setting's text and where it came from, for messages. */
struct raw_value {
    char *text; /* owned */
    char where[160];
};

void kit_settings_release(struct kit_settings *s)
{
    free(s->listen);
    free(s->db);
    free(s->issuers);
    free(s->audience);
    free(s->issuer_algorithms);
    free(s->default_tenant);
    free(s->config);
    free(s->bus);
    for (size_t i = 0; i < s->service_count; i++)
        free(s->service_values[i]);
    free(s->service_values);
    memset(s, 0, sizeof *s);
}

/* The text of a scalar node with ${VAR} expanded (malloc'd), or NULL with err set. */
static char *scalar_text(const struct ag_config_doc *doc, const struct ag_config_node *node,
                         const char *key, struct ag_err *err)
{
    if (node->kind != AG_CONFIG_NODE_SCALAR) {
        ag_err_set(err, AG_EINVAL, "%s:%zu: %s: a single value is expected", doc->name, node->line,
                   key);
        return NULL;
    }
    struct ag_buf b;
    ag_buf_init(&b, AG_CONFIG_MAX_VALUE);
    struct ag_err e;
    int rc = ag_config_subst(NULL, node->text, node->len, &b, &e);
    if (rc == 0)
        rc = ag_buf_append(&b, "", 1);
    if (rc < 0) {
        ag_err_set(err, rc == AG_ENOMEM ? AG_ENOMEM : AG_EINVAL, "%s:%zu: %s: %s", doc->name,
                   node->line, key, rc == AG_ENOMEM ? "out of memory" : e.msg);
        ag_buf_release(&b);
        return NULL;
    }
    if (memchr(b.data, '\0', b.len - 1)) {
        ag_err_set(err, AG_EINVAL, "%s:%zu: %s: the value holds a NUL byte", doc->name, node->line,
                   key);
        ag_buf_release(&b);
        return NULL;
    }
    return b.data; /* the buffer's storage, NUL-terminated, becomes the caller's */
}

static int read_file(const char *path, const struct kit_service *svc,
                     struct raw_value raw[DEF_COUNT], char **service_raw, struct ag_err *err)
{
    int rc = 0;
    struct ag_config_doc doc;
    memset(&doc, 0, sizeof doc);
    rc = ag_config_doc_load(&doc, path, err);
    if (rc < 0)
        goto out;
    const struct ag_config_node *root = doc.root;
    if (!root || ag_config_node_is_null(root))
        goto out;
    if (root->kind != AG_CONFIG_NODE_MAP) {
        rc = ag_err_set(err, AG_EINVAL, "%s:%zu: a mapping of settings is expected", doc.name,
                        root->line);
        goto out;
    }
    for (size_t i = 0; i < root->count; i++) {
        const char *key = root->keys[i]->text;
        const struct ag_config_node *v = root->items[i];
        if (strcmp(key, "settings") == 0) {
            if (ag_config_node_is_null(v))
                continue;
            if (v->kind != AG_CONFIG_NODE_MAP) {
                rc =
                    ag_err_set(err, AG_EINVAL, "%s:%zu: settings: a mapping VAR: value is expected",
                               doc.name, v->line);
                goto out;
            }
            for (size_t k = 0; k < v->count; k++) {
                const char *name = v->keys[k]->text;
                size_t idx = 0;
                while (idx < svc->setting_count && strcmp(svc->settings[idx].env, name) != 0)
                    idx++;
                if (idx == svc->setting_count) {
                    rc = ag_err_set(err, AG_EINVAL, "%s:%zu: settings.%s: not a setting of %s",
                                    doc.name, v->keys[k]->line, name, svc->name);
                    goto out;
                }
                if (ag_config_node_is_null(v->items[k]))
                    continue;
                char *text = scalar_text(&doc, v->items[k], name, err);
                if (!text) {
                    rc = err->code;
                    goto out;
                }
                free(service_raw[idx]);
                service_raw[idx] = text;
            }
            continue;
        }
        size_t d = 0;
        while (d < DEF_COUNT && !(defs[d].key && strcmp(defs[d].key, key) == 0))
            d++;
        if (d == DEF_COUNT) {
            rc = ag_err_set(err, AG_EINVAL, "%s:%zu: %s: unknown setting", doc.name,
                            root->keys[i]->line, key);
            goto out;
        }
        if (ag_config_node_is_null(v))
            continue;
        char *text = scalar_text(&doc, v, key, err);
        if (!text) {
            rc = err->code;
            goto out;
        }
        free(raw[d].text);
        raw[d].text = text;
        snprintf(raw[d].where, sizeof raw[d].where, "%s:%zu: %s", doc.name, v->line, key);
    }
out:
    ag_config_doc_release(&doc);
    return rc;
}

/* Types raw text into the field of def; err names where. */
static int set_value(struct kit_settings *s, const struct setting_def *def, const char *text,
                     const char *where, struct ag_err *err)
{
    char *base = (char *)s;
    struct ag_str t = ag_str_from_cstr(text);
    switch (def->kind) {
    case S_STRING:
    case S_BUS:
    case S_ISSUERS:
    case S_ALGS:
    case S_ADDR: {
        if (def->kind == S_ADDR && !ag_config_addr_valid(t))
            return ag_err_set(err, AG_EINVAL, "%s: \"%s\" is not HOST:PORT", where, text);
        if (def->kind == S_STRING && t.len == 0)
            return ag_err_set(err, AG_EINVAL, "%s: must not be empty", where);
        if (def->kind == S_ISSUERS) {
            struct kit_issuers iss;
            int rc = kit_issuers_parse(text, &iss, err);
            if (rc < 0)
                return rc;
            kit_issuers_release(&iss);
        }
        struct ag_err why;
        if (def->kind == S_BUS && !kit_bus_driver_for(text, &why))
            return ag_err_set(err, AG_EINVAL, "%s: %s", where, why.msg);
        if (def->kind == S_ALGS) {
            int rc = kit_algorithms_parse(text, &s->algorithms, err);
            if (rc < 0)
                return rc;
        }
        char *copy = strdup(text);
        if (!copy)
            return ag_err_set(err, AG_ENOMEM, "out of memory");
        char **field = (char **)(void *)(base + def->offset);
        free(*field);
        *field = copy;
        return 0;
    }
    case S_COUNT:
    case S_SIZE: {
        uint64_t v;
        int rc =
            def->kind == S_SIZE ? ag_config_parse_size(t, &v) : ag_str_to_u64(t, UINT64_MAX, &v);
        if (rc < 0 || v < def->min || (def->max && v > def->max)) {
            if (def->kind == S_SIZE)
                return ag_err_set(err, AG_EINVAL,
                                  "%s: \"%s\" is not a size (1048576, 512KiB, 1MiB)", where, text);
            return ag_err_set(err, AG_EINVAL, "%s: \"%s\" is not an integer from %llu to %llu",
                              where, text, (unsigned long long)def->min,
                              (unsigned long long)def->max);
        }
        if (def->kind == S_SIZE && v == 0)
            return ag_err_set(err, AG_EINVAL, "%s: must be at least 1 byte", where);
        *(uint64_t *)(void *)(base + def->offset) = v;
        return 0;
    }
    case S_LEVEL:
        if (ag_log_level_parse(text, &s->log_level) < 0)
            return ag_err_set(err, AG_EINVAL, "%s: \"%s\" is not debug, info, warn or error", where,
                              text);
        return 0;
    case S_ENV:
        if (strcmp(text, "development") == 0)
            s->env = KIT_ENV_DEVELOPMENT;
        else if (strcmp(text, "production") == 0)
            s->env = KIT_ENV_PRODUCTION;
        else
            return ag_err_set(err, AG_EINVAL, "%s: \"%s\" is not development or production", where,
                              text);
        return 0;
    }
    return AG_EINVAL;
}

int kit_settings_load(struct kit_settings *s, const struct kit_service *svc,
                      const char *config_path, struct ag_err *err)
{
    int rc = 0;
    struct raw_value raw[DEF_COUNT];
    memset(raw, 0, sizeof raw);
    memset(s, 0, sizeof *s);
    size_t nsvc = svc->setting_count;
    char **service_raw = calloc(nsvc ? nsvc : 1, sizeof *service_raw);
    s->service_values = calloc(nsvc ? nsvc : 1, sizeof *s->service_values);
    s->service_count = nsvc;
    if (!service_raw || !s->service_values) {
        rc = ag_err_set(err, AG_ENOMEM, "out of memory");
        goto out;
    }
    const char *path = config_path;
    if (!path) {
        const char *e = getenv("AGORA_CONFIG");
        path = e && *e ? e : NULL;
    }
    if (path) {
        if (!(s->config = strdup(path))) {
            rc = ag_err_set(err, AG_ENOMEM, "out of memory");
            goto out;
        }
        rc = read_file(path, svc, raw, service_raw, err);
        if (rc < 0)
            goto out;
    }
    for (size_t d = 0; d < DEF_COUNT; d++) {
        if (defs[d].offset == OFF(config))
            continue;
        const char *env = getenv(defs[d].env);
        const char *text = NULL;
        char where[200];
        if (env && *env) {
            text = env;
            snprintf(where, sizeof where, "%s", defs[d].env);
        } else if (raw[d].text) {
            text = raw[d].text;
            snprintf(where, sizeof where, "%s (%s)", raw[d].where, defs[d].env);
        } else {
            text = defs[d].def;
            snprintf(where, sizeof where, "%s (default)", defs[d].env);
        }
        char dbdef[160];
        if (!text && defs[d].offset == OFF(db)) {
            snprintf(dbdef, sizeof dbdef, "sqlite:var/data/%s.db", svc->name);
            text = dbdef;
        }
        if (!text)
            continue;
        rc = set_value(s, &defs[d], text, where, err);
        if (rc < 0)
            goto out;
    }
    if (s->workers == 0) {
        long n = sysconf(_SC_NPROCESSORS_ONLN);
        s->workers = n > 0 ? (uint64_t)(n > KIT_WORKERS_MAX ? KIT_WORKERS_MAX : n) : 1;
    }
    for (size_t i = 0; i < nsvc; i++) {
        const char *env = getenv(svc->settings[i].env);
        const char *v = env && *env      ? env
                        : service_raw[i] ? service_raw[i]
                                         : svc->settings[i].default_value;
        if (v && !(s->service_values[i] = strdup(v))) {
            rc = ag_err_set(err, AG_ENOMEM, "out of memory");
            goto out;
        }
    }
out:
    for (size_t d = 0; d < DEF_COUNT; d++)
        free(raw[d].text);
    for (size_t i = 0; service_raw && i < nsvc; i++)
        free(service_raw[i]);
    free(service_raw);
    if (rc < 0)
        kit_settings_release(s);
    return rc;
}

static void help_entry(FILE *out, const char *env, const char *def, const char *help)
{
    fprintf(out, "  %s", env);
    if (def && *def)
        fprintf(out, " (default: %s)", def);
    fprintf(out, "\n      %s\n", help ? help : "");
}

void kit_settings_help(FILE *out, const struct kit_service *svc)
{
    fprintf(out, "agora-%s: %s\n\n", svc->name, svc->summary ? svc->summary : "");
    fprintf(out, "Usage: agora-%s [--config FILE] [--check] [--help]\n", svc->name);
    fprintf(out, "  --config FILE  read settings from a YAML file (the environment wins)\n");
    fprintf(out, "  --check        validate the settings and exit (0: valid, 2: not)\n");
    fprintf(out, "  --help         print this text\n\n");
    fprintf(out, "Kit settings (environment variables):\n");
    for (size_t d = 0; d < DEF_COUNT; d++) {
        char dbdef[160];
        const char *def = defs[d].def;
        if (defs[d].offset == OFF(db)) {
            snprintf(dbdef, sizeof dbdef, "sqlite:var/data/%s.db", svc->name);
            def = dbdef;
        }
        help_entry(out, defs[d].env, def, defs[d].help);
    }
    if (svc->setting_count) {
        fprintf(out, "\nService settings (environment, or settings: in the YAML file):\n");
        for (size_t i = 0; i < svc->setting_count; i++)
            help_entry(out, svc->settings[i].env, svc->settings[i].default_value,
                       svc->settings[i].help);
    }
}
