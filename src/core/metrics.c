/* Metrics registry: atomic counters, gauges and histograms, rendered as Prometheus text. */
#include "core/metrics.h"

#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/json.h"
#include "core/banned.h"

enum metric_kind { KIND_COUNTER, KIND_GAUGE, KIND_HISTOGRAM };

static const char *const kind_names[] = {"counter", "gauge", "histogram"};

static const double default_bounds[] = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10};

/*
 * One label-value combination. Counters keep their count in value; gauges keep the bits of a
 * double there. Histograms count each bucket separately (the last is +Inf) and keep the bits
 * of the sum; cumulative counts and _count are derived when rendering.
 */
struct ag_series {
    struct ag_metric *metric;
    enum metric_kind kind;
    uint64_t hash; /* of the label values, to skip most comparisons in lookups */
    const char *values[AG_METRICS_MAX_LABELS]; /* point into the same allocation */
    _Atomic uint64_t value;
    _Atomic uint64_t sum_bits;
    _Atomic uint64_t buckets[];
};

/* A family. Everything but the series list is fixed at registration and read without a lock. */
struct ag_metric {
    struct ag_metric *next; /* registration order */
    enum metric_kind kind;
    char *name;
    char *help;
    char *label_names[AG_METRICS_MAX_LABELS];
    size_t n_labels;
    size_t max_series;
    double bounds[AG_METRICS_MAX_BUCKETS];
    size_t n_bounds;

    pthread_mutex_t lock; /* guards the fields below */
    struct ag_series **series;
    size_t n_series, series_cap;
    bool overflow_made; /* the overflow series was created past max_series */
};

struct ag_metrics {
    pthread_mutex_t lock; /* guards the list and serialises rendering */
    struct ag_metric *head, *tail;
};

static struct ag_metrics default_registry = {.lock = PTHREAD_MUTEX_INITIALIZER};

/* What a registration asks for, gathered so it can be checked and compared in one place. */
struct metric_spec {
    enum metric_kind kind;
    const char *name;
    const char *help;
    const char *const *label_names;
    size_t n_labels;
    size_t max_series;
    const double *bounds;
    size_t n_bounds;
};

static uint64_t double_bits(double d)
{
    uint64_t u;
    memcpy(&u, &d, sizeof u);
    return u;
}

static double bits_double(uint64_t u)
{
    double d;
    memcpy(&d, &u, sizeof d);
    return d;
}

static void atomic_add_double(_Atomic uint64_t *target, double delta)
{
    uint64_t old = atomic_load_explicit(target, memory_order_relaxed);
    while (!atomic_compare_exchange_weak_explicit(target, &old,
                                                  double_bits(bits_double(old) + delta),
                                                  memory_order_relaxed, memory_order_relaxed))
        ;
}

static bool is_name_char(char c, bool first, bool colon_ok)
{
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_')
        return true;
    if (c == ':')
        return colon_ok;
    return !first && c >= '0' && c <= '9';
}

/* Metric names: [a-zA-Z_:][a-zA-Z0-9_:]*; label names: [a-zA-Z_][a-zA-Z0-9_]*, no "__". */
static bool valid_name(const char *s, bool is_label)
{
    if (!s || !*s)
        return false;
    if (is_label && s[0] == '_' && s[1] == '_')
        return false;
    for (size_t i = 0; s[i]; i++)
        if (!is_name_char(s[i], i == 0, !is_label))
            return false;
    return true;
}

/* True when s (NUL-terminated) is valid UTF-8. */
static bool valid_utf8(const char *s)
{
    size_t left = strlen(s);
    for (const unsigned char *p = (const unsigned char *)s; left > 0;) {
        size_t n = ag_utf8_sequence_len(p, left);
        if (n == 0)
            return false;
        p += n;
        left -= n;
    }
    return true;
}

/* Values kept as they are; others (too long, not UTF-8) fold into the overflow series. */
static bool label_value_ok(const char *value)
{
    return strnlen(value, AG_METRICS_LABEL_VALUE_MAX + 1) <= AG_METRICS_LABEL_VALUE_MAX &&
           valid_utf8(value);
}

static uint64_t hash_values(const char *const values[], size_t n)
{
    uint64_t h = 1469598103934665603u; /* FNV-1a */
    for (size_t i = 0; i < n; i++) {
        for (const unsigned char *p = (const unsigned char *)values[i]; *p; p++)
            h = (h ^ *p) * 1099511628211u;
        h = (h ^ 0xFF) * 1099511628211u; /* 0xFF never occurs in UTF-8: a safe separator */
    }
    return h;
}

/* True when name is one of the sample names of histogram hist (hist_bucket, _sum, _count). */
static bool is_histogram_sample(const char *hist, const char *name)
{
    size_t n = strlen(hist);
    if (strncmp(name, hist, n) != 0)
        return false;
    name += n;
    return strcmp(name, "_bucket") == 0 || strcmp(name, "_sum") == 0 || strcmp(name, "_count") == 0;
}

static int check_spec(const struct metric_spec *spec, struct ag_err *err)
{
    if (!valid_name(spec->name, false))
        return ag_err_set(err, AG_EINVAL, "metric name \"%.64s\" is not [a-zA-Z_:][a-zA-Z0-9_:]*",
                          spec->name ? spec->name : "(null)");
    if (spec->n_labels > AG_METRICS_MAX_LABELS)
        return ag_err_set(err, AG_ERANGE, "metric %.64s: %zu labels, at most %d", spec->name,
                          spec->n_labels, AG_METRICS_MAX_LABELS);
    if (spec->n_labels > 0 && !spec->label_names)
        return ag_err_set(err, AG_EINVAL, "metric %.64s: no label names", spec->name);
    for (size_t i = 0; i < spec->n_labels; i++) {
        const char *label = spec->label_names[i];
        if (!valid_name(label, true))
            return ag_err_set(err, AG_EINVAL,
                              "metric %.64s: label name \"%.64s\" is not [a-zA-Z_][a-zA-Z0-9_]* "
                              "or starts with __",
                              spec->name, label ? label : "(null)");
        if (spec->kind == KIND_HISTOGRAM && strcmp(label, "le") == 0)
            return ag_err_set(err, AG_EINVAL, "histogram %.64s: label name le is reserved",
                              spec->name);
        for (size_t j = 0; j < i; j++)
            if (strcmp(label, spec->label_names[j]) == 0)
                return ag_err_set(err, AG_EINVAL, "metric %.64s: label %.64s given twice",
                                  spec->name, label);
    }
    if (spec->max_series > AG_METRICS_MAX_SERIES_LIMIT)
        return ag_err_set(err, AG_ERANGE, "metric %.64s: max_series %zu over %d", spec->name,
                          spec->max_series, AG_METRICS_MAX_SERIES_LIMIT);
    if (spec->kind != KIND_HISTOGRAM)
        return 0;
    if (spec->n_bounds == 0 || spec->n_bounds > AG_METRICS_MAX_BUCKETS)
        return ag_err_set(err, AG_ERANGE, "histogram %.64s: %zu buckets, 1 to %d allowed",
                          spec->name, spec->n_bounds, AG_METRICS_MAX_BUCKETS);
    for (size_t i = 0; i < spec->n_bounds; i++)
        if (!isfinite(spec->bounds[i]) || (i > 0 && !(spec->bounds[i] > spec->bounds[i - 1])))
            return ag_err_set(err, AG_EINVAL,
                              "histogram %.64s: bucket bounds must be finite and increasing",
                              spec->name);
    return 0;
}

/* True when an existing family can stand for what spec asks (same type, labels, buckets). */
static bool same_shape(const struct ag_metric *m, const struct metric_spec *spec)
{
    if (m->kind != spec->kind || m->n_labels != spec->n_labels)
        return false;
    for (size_t i = 0; i < m->n_labels; i++)
        if (strcmp(m->label_names[i], spec->label_names[i]) != 0)
            return false;
    if (m->kind != KIND_HISTOGRAM)
        return true;
    return m->n_bounds == spec->n_bounds &&
           memcmp(m->bounds, spec->bounds, m->n_bounds * sizeof m->bounds[0]) == 0;
}

static void series_free_all(struct ag_metric *m)
{
    for (size_t i = 0; i < m->n_series; i++)
        free(m->series[i]);
    free(m->series);
}

static void metric_free(struct ag_metric *m)
{
    if (!m)
        return;
    series_free_all(m);
    pthread_mutex_destroy(&m->lock);
    for (size_t i = 0; i < m->n_labels; i++)
        free(m->label_names[i]);
    free(m->help);
    free(m->name);
    free(m);
}

/* Creates a series of m for values (n_labels of them) and appends it; m->lock is held. */
static int series_create(struct ag_metric *m, const char *const values[], uint64_t hash,
                         struct ag_series **out)
{
    size_t n_buckets = m->kind == KIND_HISTOGRAM ? m->n_bounds + 1 : 0;
    size_t value_bytes = 0, lens[AG_METRICS_MAX_LABELS];
    for (size_t i = 0; i < m->n_labels; i++) {
        lens[i] = strlen(values[i]);
        value_bytes += lens[i] + 1;
    }
    if (m->n_series == m->series_cap) {
        size_t cap = m->series_cap ? m->series_cap * 2 : 4;
        struct ag_series **grown = realloc(m->series, cap * sizeof *grown);
        if (!grown)
            return AG_ENOMEM;
        m->series = grown;
        m->series_cap = cap;
    }
    size_t head = sizeof(struct ag_series) + n_buckets * sizeof(_Atomic uint64_t);
    struct ag_series *s = calloc(1, head + value_bytes);
    if (!s)
        return AG_ENOMEM;
    s->metric = m;
    s->kind = m->kind;
    s->hash = hash;
    atomic_init(&s->value, m->kind == KIND_GAUGE ? double_bits(0.0) : 0);
    atomic_init(&s->sum_bits, double_bits(0.0));
    for (size_t i = 0; i < n_buckets; i++)
        atomic_init(&s->buckets[i], 0);
    char *copy = (char *)s + head;
    for (size_t i = 0; i < m->n_labels; i++) {
        memcpy(copy, values[i], lens[i] + 1);
        s->values[i] = copy;
        copy += lens[i] + 1;
    }
    m->series[m->n_series++] = s;
    *out = s;
    return 0;
}

static struct ag_series *series_find(const struct ag_metric *m, const char *const values[],
                                     uint64_t hash)
{
    for (size_t i = 0; i < m->n_series; i++) {
        struct ag_series *s = m->series[i];
        if (s->hash != hash)
            continue;
        size_t j = 0;
        while (j < m->n_labels && strcmp(s->values[j], values[j]) == 0)
            j++;
        if (j == m->n_labels)
            return s;
    }
    return NULL;
}

static char *copy_string(const char *s, bool *failed)
{
    char *copy = s ? strdup(s) : NULL;
    if (s && !copy)
        *failed = true;
    return copy;
}

static int metric_create(const struct metric_spec *spec, struct ag_metric **out)
{
    int rc = 0;
    bool failed = false;
    struct ag_metric *m = calloc(1, sizeof *m);
    if (!m)
        return AG_ENOMEM;
    pthread_mutex_init(&m->lock, NULL);
    m->kind = spec->kind;
    m->name = copy_string(spec->name, &failed);
    m->help = copy_string(spec->help, &failed);
    m->n_labels = spec->n_labels;
    for (size_t i = 0; i < spec->n_labels; i++)
        m->label_names[i] = copy_string(spec->label_names[i], &failed);
    if (failed) {
        rc = AG_ENOMEM;
        goto out;
    }
    m->max_series = spec->n_labels == 0    ? 1
                    : spec->max_series > 0 ? spec->max_series
                                           : AG_METRICS_DEFAULT_MAX_SERIES;
    if (spec->kind == KIND_HISTOGRAM) {
        memcpy(m->bounds, spec->bounds, spec->n_bounds * sizeof spec->bounds[0]);
        m->n_bounds = spec->n_bounds;
    }
    if (spec->n_labels == 0) {
        struct ag_series *only;
        rc = series_create(m, NULL, hash_values(NULL, 0), &only);
    }
out:
    if (rc < 0) {
        metric_free(m);
        m = NULL;
    }
    *out = m;
    return rc;
}

static int register_metric(struct ag_metrics *reg, struct metric_spec *spec, struct ag_metric **out,
                           struct ag_err *err)
{
    int rc = 0;
    struct ag_metric *m = NULL;
    if (!reg || !out)
        return ag_err_set(err, AG_EINVAL, "no registry or no place for the metric");
    if (spec->kind == KIND_HISTOGRAM && !spec->bounds) {
        if (spec->n_bounds != 0)
            return ag_err_set(err, AG_EINVAL, "histogram %.64s: n_bounds without bounds",
                              spec->name ? spec->name : "(null)");
        spec->bounds = default_bounds;
        spec->n_bounds = sizeof default_bounds / sizeof default_bounds[0];
    }
    rc = check_spec(spec, err);
    if (rc < 0)
        return rc;

    pthread_mutex_lock(&reg->lock);
    for (struct ag_metric *e = reg->head; e; e = e->next) {
        if (strcmp(e->name, spec->name) == 0) {
            if (same_shape(e, spec)) {
                m = e;
                goto out;
            }
            rc = ag_err_set(err, AG_EINVAL,
                            "metric %.64s is already registered with another type or labels",
                            spec->name);
            goto out;
        }
        if ((e->kind == KIND_HISTOGRAM && is_histogram_sample(e->name, spec->name)) ||
            (spec->kind == KIND_HISTOGRAM && is_histogram_sample(spec->name, e->name))) {
            rc = ag_err_set(err, AG_EINVAL, "metric %.64s clashes with the samples of %.64s",
                            spec->name, e->name);
            goto out;
        }
    }
    rc = metric_create(spec, &m);
    if (rc < 0) {
        ag_err_set(err, rc, "out of memory registering metric %.64s", spec->name);
        goto out;
    }
    if (reg->tail)
        reg->tail->next = m;
    else
        reg->head = m;
    reg->tail = m;
out:
    pthread_mutex_unlock(&reg->lock);
    if (rc == 0)
        *out = m;
    return rc;
}

int ag_metrics_counter(struct ag_metrics *reg, const char *name, const char *help,
                       const char *const label_names[], size_t n_labels, size_t max_series,
                       struct ag_metric **out, struct ag_err *err)
{
    struct metric_spec spec = {
        .kind = KIND_COUNTER,
        .name = name,
        .help = help,
        .label_names = label_names,
        .n_labels = n_labels,
        .max_series = max_series,
    };
    return register_metric(reg, &spec, out, err);
}

int ag_metrics_gauge(struct ag_metrics *reg, const char *name, const char *help,
                     const char *const label_names[], size_t n_labels, size_t max_series,
                     struct ag_metric **out, struct ag_err *err)
{
    struct metric_spec spec = {
        .kind = KIND_GAUGE,
        .name = name,
        .help = help,
        .label_names = label_names,
        .n_labels = n_labels,
        .max_series = max_series,
    };
    return register_metric(reg, &spec, out, err);
}

int ag_metrics_histogram(struct ag_metrics *reg, const char *name, const char *help,
                         const char *const label_names[], size_t n_labels, size_t max_series,
                         const double *bounds, size_t n_bounds, struct ag_metric **out,
                         struct ag_err *err)
{
    struct metric_spec spec = {
        .kind = KIND_HISTOGRAM,
        .name = name,
        .help = help,
        .label_names = label_names,
        .n_labels = n_labels,
        .max_series = max_series,
        .bounds = bounds,
        .n_bounds = n_bounds,
    };
    return register_metric(reg, &spec, out, err);
}

int ag_metric_series(struct ag_metric *metric, const char *const values[], struct ag_series **out)
{
    int rc = 0;
    const char *overflow[AG_METRICS_MAX_LABELS];
    bool fold = false;
    if (!metric || !out)
        return AG_EINVAL;
    if (metric->n_labels == 0) {
        *out = metric->series[0];
        return 0;
    }
    if (!values)
        return AG_EINVAL;
    for (size_t i = 0; i < metric->n_labels; i++) {
        if (!values[i])
            return AG_EINVAL;
        if (!label_value_ok(values[i]))
            fold = true;
        overflow[i] = AG_METRICS_OVERFLOW_VALUE;
    }
    if (fold)
        values = overflow;
    uint64_t hash = hash_values(values, metric->n_labels);

    pthread_mutex_lock(&metric->lock);
    struct ag_series *s = series_find(metric, values, hash);
    if (!s) {
        bool full = metric->n_series - metric->overflow_made >= metric->max_series;
        if (full && values != overflow) {
            values = overflow;
            hash = hash_values(values, metric->n_labels);
            s = series_find(metric, values, hash);
        }
        if (!s) {
            rc = series_create(metric, values, hash, &s);
            if (rc == 0 && full)
                metric->overflow_made = true;
        }
    }
    pthread_mutex_unlock(&metric->lock);
    if (rc == 0)
        *out = s;
    return rc;
}

void ag_counter_add(struct ag_series *series, uint64_t n)
{
    if (series && series->kind == KIND_COUNTER)
        atomic_fetch_add_explicit(&series->value, n, memory_order_relaxed);
}

void ag_counter_inc(struct ag_series *series)
{
    ag_counter_add(series, 1);
}

void ag_gauge_set(struct ag_series *series, double value)
{
    if (series && series->kind == KIND_GAUGE)
        atomic_store_explicit(&series->value, double_bits(value), memory_order_relaxed);
}

void ag_gauge_add(struct ag_series *series, double delta)
{
    if (series && series->kind == KIND_GAUGE)
        atomic_add_double(&series->value, delta);
}

void ag_histogram_observe(struct ag_series *series, double value)
{
    if (!series || series->kind != KIND_HISTOGRAM || isnan(value))
        return;
    const struct ag_metric *m = series->metric;
    size_t i = 0;
    while (i < m->n_bounds && value > m->bounds[i])
        i++;
    atomic_fetch_add_explicit(&series->buckets[i], 1, memory_order_relaxed);
    atomic_add_double(&series->sum_bits, value);
}

uint64_t ag_counter_value(const struct ag_series *series)
{
    if (!series || series->kind != KIND_COUNTER)
        return 0;
    return atomic_load_explicit(&series->value, memory_order_relaxed);
}

double ag_gauge_value(const struct ag_series *series)
{
    if (!series || series->kind != KIND_GAUGE)
        return 0;
    return bits_double(atomic_load_explicit(&series->value, memory_order_relaxed));
}

/* Output with a sticky error: after the first failure every write is skipped. */
struct out {
    struct ag_buf *b;
    int rc;
};

static void out_bytes(struct out *o, const char *s, size_t n)
{
    if (o->rc == 0)
        o->rc = ag_buf_append(o->b, s, n);
}

static void out_cstr(struct out *o, const char *s)
{
    out_bytes(o, s, strlen(s));
}

/* Writes s with backslash and newline escaped, and double quotes too when quotes is set. */
static void out_escaped(struct out *o, const char *s, bool quotes)
{
    const char *run = s;
    for (; *s; s++) {
        const char *esc = *s == '\\'            ? "\\\\"
                          : *s == '\n'          ? "\\n"
                          : *s == '"' && quotes ? "\\\""
                                                : NULL;
        if (!esc)
            continue;
        out_bytes(o, run, (size_t)(s - run));
        out_bytes(o, esc, 2);
        run = s + 1;
    }
    out_bytes(o, run, (size_t)(s - run));
}

/* Prometheus float text: +Inf, -Inf, NaN, or the shortest of %.15g / %.17g that reads back. */
static void format_double(char out[32], double d)
{
    if (isnan(d)) {
        memcpy(out, "NaN", 4);
        return;
    }
    if (isinf(d)) {
        memcpy(out, d > 0 ? "+Inf" : "-Inf", 5);
        return;
    }
    snprintf(out, 32, "%.15g", d);
    if (strtod(out, NULL) != d)
        snprintf(out, 32, "%.17g", d);
    for (char *p = out; *p; p++)
        if (*p == ',') /* a locale with a decimal comma */
            *p = '.';
}

/* Writes name+suffix{labels[,le="le"]} followed by a space. */
static void out_sample_name(struct out *o, const struct ag_metric *m, const char *suffix,
                            const struct ag_series *s, const char *le)
{
    out_cstr(o, m->name);
    out_cstr(o, suffix);
    if (m->n_labels == 0 && !le) {
        out_bytes(o, " ", 1);
        return;
    }
    out_bytes(o, "{", 1);
    for (size_t i = 0; i < m->n_labels; i++) {
        if (i > 0)
            out_bytes(o, ",", 1);
        out_cstr(o, m->label_names[i]);
        out_bytes(o, "=\"", 2);
        out_escaped(o, s->values[i], true);
        out_bytes(o, "\"", 1);
    }
    if (le) {
        out_cstr(o, m->n_labels > 0 ? ",le=\"" : "le=\"");
        out_cstr(o, le);
        out_bytes(o, "\"", 1);
    }
    out_bytes(o, "} ", 2);
}

static void out_u64_line(struct out *o, uint64_t v)
{
    char num[32];
    snprintf(num, sizeof num, "%" PRIu64 "\n", v);
    out_cstr(o, num);
}

static void out_double_line(struct out *o, double v)
{
    char num[32];
    format_double(num, v);
    out_cstr(o, num);
    out_bytes(o, "\n", 1);
}

static void render_histogram_series(struct out *o, const struct ag_metric *m,
                                    const struct ag_series *s)
{
    char le[32];
    uint64_t cumulative = 0;
    for (size_t i = 0; i <= m->n_bounds; i++) {
        cumulative += atomic_load_explicit(&s->buckets[i], memory_order_relaxed);
        if (i < m->n_bounds)
            format_double(le, m->bounds[i]);
        else
            memcpy(le, "+Inf", 5);
        out_sample_name(o, m, "_bucket", s, le);
        out_u64_line(o, cumulative);
    }
    out_sample_name(o, m, "_sum", s, NULL);
    out_double_line(o, bits_double(atomic_load_explicit(&s->sum_bits, memory_order_relaxed)));
    out_sample_name(o, m, "_count", s, NULL);
    out_u64_line(o, cumulative); /* equal to the +Inf bucket, as the format requires */
}

static void render_metric(struct out *o, struct ag_metric *m)
{
    pthread_mutex_lock(&m->lock);
    if (m->n_series == 0)
        goto out;
    if (m->help && m->help[0]) {
        out_cstr(o, "# HELP ");
        out_cstr(o, m->name);
        out_bytes(o, " ", 1);
        out_escaped(o, m->help, false);
        out_bytes(o, "\n", 1);
    }
    out_cstr(o, "# TYPE ");
    out_cstr(o, m->name);
    out_bytes(o, " ", 1);
    out_cstr(o, kind_names[m->kind]);
    out_bytes(o, "\n", 1);
    for (size_t i = 0; i < m->n_series && o->rc == 0; i++) {
        const struct ag_series *s = m->series[i];
        switch (m->kind) {
        case KIND_COUNTER:
            out_sample_name(o, m, "", s, NULL);
            out_u64_line(o, atomic_load_explicit(&s->value, memory_order_relaxed));
            break;
        case KIND_GAUGE:
            out_sample_name(o, m, "", s, NULL);
            out_double_line(o, bits_double(atomic_load_explicit(&s->value, memory_order_relaxed)));
            break;
        case KIND_HISTOGRAM:
            render_histogram_series(o, m, s);
            break;
        }
    }
out:
    pthread_mutex_unlock(&m->lock);
}

int ag_metrics_render(struct ag_metrics *reg, struct ag_buf *out)
{
    struct out o = {.b = out};
    size_t saved_len = out->len;
    if (!reg)
        return AG_EINVAL;
    pthread_mutex_lock(&reg->lock);
    for (struct ag_metric *m = reg->head; m && o.rc == 0; m = m->next)
        render_metric(&o, m);
    pthread_mutex_unlock(&reg->lock);
    if (o.rc < 0)
        out->len = saved_len;
    return o.rc;
}

int ag_metrics_new(struct ag_metrics **out)
{
    struct ag_metrics *reg = calloc(1, sizeof *reg);
    if (!reg)
        return AG_ENOMEM;
    pthread_mutex_init(&reg->lock, NULL);
    *out = reg;
    return 0;
}

void ag_metrics_free(struct ag_metrics *reg)
{
    if (!reg || reg == &default_registry)
        return;
    for (struct ag_metric *m = reg->head, *next; m; m = next) {
        next = m->next;
        metric_free(m);
    }
    pthread_mutex_destroy(&reg->lock);
    free(reg);
}

struct ag_metrics *ag_metrics_default(void)
{
    return &default_registry;
}
