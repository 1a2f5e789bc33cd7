/* The kit's settings: one table of AGORA_* variables that loads, validates and documents them. */
#ifndef KIT_CONFIG_H
#define KIT_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "core/err.h"
#include "core/log.h"
#include "kit/kit.h"

/*
 * Every setting comes from its environment variable when that is set and not empty, else from
 * the YAML file (--config FILE or AGORA_CONFIG) under its name lower-cased without "AGORA_"
 * ("listen:", "db:", "max_body:"; ${VAR} references are expanded), else its default. The
 * file's "settings:" mapping holds the service's own variables by their full names
 * ("settings: {AGORA_AUTH_TOKEN_TTL: 900}"); a key the service does not declare is an error,
 * as is any other unknown top-level key.
 */
enum kit_env_kind { KIT_ENV_DEVELOPMENT = 0, KIT_ENV_PRODUCTION = 1 };

struct kit_settings {
    char *listen;
    char *db;
    uint64_t workers;    /* handler threads; 0 in the table means online CPUs, resolved here */
    uint64_t io_threads; /* HTTP I/O loops */
    char *issuers;       /* AGORA_ISSUERS text, "" for none */
    char *audience;
    char *issuer_algorithms;
    unsigned algorithms; /* AG_JWT_* bits from issuer_algorithms */
    char *default_tenant;
    uint64_t max_body;
    enum ag_log_level log_level;
    enum kit_env_kind env;
    char *config; /* the YAML file, or NULL */

    /* the event bus (kit/bus.h, docs/events.md) */
    char *bus;                  /* AGORA_BUS: local:PATH or amqp://... */
    uint64_t bus_batch;         /* rows per publish, events per fetch */
    uint64_t bus_poll_ms;       /* the relay's poll interval */
    uint64_t bus_retry_ms;      /* a failed handler's first retry delay */
    uint64_t bus_max_attempts;  /* handler attempts before an event is parked as dead */
    uint64_t bus_outbox_keep_s; /* sent outbox rows are deleted after this */

    /* the service's own settings, resolved: values[i] for svc->settings[i] (NULL: none) */
    size_t service_count;
    char **service_values;
};

enum { KIT_WORKERS_MAX = 1024, KIT_IO_THREADS_MAX = 256 };

/*
 * Loads settings for svc: config_path (may be NULL: AGORA_CONFIG, else no file), the
 * environment, the defaults. Returns 0 (release with kit_settings_release), or AG_EINVAL with
 * err holding one line naming the variable (or file:line and key) and the problem; AG_ESYS
 * when the file cannot be read; AG_ENOMEM.
 */
int kit_settings_load(struct kit_settings *s, const struct kit_service *svc,
                      const char *config_path, struct ag_err *err);
void kit_settings_release(struct kit_settings *s);

/* Writes the --help text: summary, usage, every kit setting and every service setting. */
void kit_settings_help(FILE *out, const struct kit_service *svc);

#endif
