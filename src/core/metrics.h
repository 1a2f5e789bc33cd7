/* Metrics registry: counters, gauges and histograms with bounded labels, in Prometheus text. */
#ifndef AG_METRICS_H
#define AG_METRICS_H

#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"
#include "core/err.h"

/*
 * A registry holds metric families (struct ag_metric); a family holds one series (struct
 * ag_series) per distinct combination of label values. Registration and series lookup take a
 * lock; updates through a series handle are lock-free atomics, so hot paths look a series up
 * once, keep the handle and update it from any thread. Handles stay valid until the registry
 * is freed.
 */
struct ag_metrics;
struct ag_metric;
struct ag_series;

enum {
    AG_METRICS_MAX_LABELS = 8,           /* label names per family */
    AG_METRICS_MAX_BUCKETS = 32,         /* histogram upper bounds, +Inf not counted */
    AG_METRICS_DEFAULT_MAX_SERIES = 64,  /* distinct label combinations when 0 is given */
    AG_METRICS_MAX_SERIES_LIMIT = 10000, /* the largest max_series accepted */
    AG_METRICS_LABEL_VALUE_MAX = 128,    /* longer label values fold into the overflow series */
};

/* The label value given to every label of a family's overflow series. */
#define AG_METRICS_OVERFLOW_VALUE "other"

/*
 * Creates an empty registry. Returns 0 and *out (free it with ag_metrics_free), or AG_ENOMEM.
 */
int ag_metrics_new(struct ag_metrics **out);

/*
 * Frees reg with every family and series in it; all their handles become invalid. Accepts
 * NULL. The process-wide registry from ag_metrics_default is never freed (this is a no-op).
 */
void ag_metrics_free(struct ag_metrics *reg);

/* The process-wide registry, created on first use; never NULL, never freed. */
struct ag_metrics *ag_metrics_default(void);

/*
 * Registers a counter family. name must match [a-zA-Z_:][a-zA-Z0-9_:]*; help (may be NULL) is
 * copied and written as # HELP. label_names holds n_labels names (NULL when n_labels is 0),
 * each matching [a-zA-Z_][a-zA-Z0-9_]*, not starting with "__", all distinct; they are copied.
 * max_series bounds the distinct label-value combinations (0 means
 * AG_METRICS_DEFAULT_MAX_SERIES); past it lookups fold into one overflow series whose label
 * values are all AG_METRICS_OVERFLOW_VALUE, so a family holds at most max_series + 1 series.
 * A family without labels has exactly one series, created now.
 *
 * Registering a name again with the same type, label names (and bucket bounds) returns the
 * family already there, so modules can register idempotently; help and max_series of the
 * first registration stay.
 *
 * Returns 0 with *out set (owned by reg), AG_EINVAL for a bad name, label name or bound, or a
 * name already used by an incompatible family (including a histogram's _bucket/_sum/_count
 * names), AG_ERANGE for too many labels, bounds or series, AG_ENOMEM. err (may be NULL) gets
 * the reason.
 */
int ag_metrics_counter(struct ag_metrics *reg, const char *name, const char *help,
                       const char *const label_names[], size_t n_labels, size_t max_series,
                       struct ag_metric **out, struct ag_err *err);

/* Registers a gauge family; everything as ag_metrics_counter. */
int ag_metrics_gauge(struct ag_metrics *reg, const char *name, const char *help,
                     const char *const label_names[], size_t n_labels, size_t max_series,
                     struct ag_metric **out, struct ag_err *err);

/*
 * Registers a histogram family: as ag_metrics_counter, plus bounds, n_bounds bucket upper
 * bounds (copied) that must be finite and strictly increasing, at most AG_METRICS_MAX_BUCKETS;
 * the +Inf bucket is implicit. bounds NULL (with n_bounds 0) selects the default latency
 * buckets in seconds: .005 .01 .025 .05 .1 .25 .5 1 2.5 5 10. "le" may not be a label name.
 */
int ag_metrics_histogram(struct ag_metrics *reg, const char *name, const char *help,
                         const char *const label_names[], size_t n_labels, size_t max_series,
                         const double *bounds, size_t n_bounds, struct ag_metric **out,
                         struct ag_err *err);

/*
 * Finds or creates the series of metric for values, an array of the family's n_labels label
 * values in registration order (ignored, and may be NULL, for a family without labels). Values
 * are copied; any bytes are accepted and escaped on output. When the family already holds
 * max_series combinations, or a value is longer than AG_METRICS_LABEL_VALUE_MAX or not valid
 * UTF-8, the overflow series is returned instead. Takes the family's lock: cache the handle.
 * Returns 0 with *out set (owned by the registry), AG_EINVAL for a NULL metric, out, values
 * array or value, AG_ENOMEM.
 */
int ag_metric_series(struct ag_metric *metric, const char *const values[], struct ag_series **out);

/*
 * Updates. All are lock-free, safe from any thread, and do nothing for a NULL series or a
 * series of another metric type, so a failed lookup never crashes a hot path.
 */

/* Adds n to a counter. */
void ag_counter_add(struct ag_series *series, uint64_t n);
/* Adds 1 to a counter. */
void ag_counter_inc(struct ag_series *series);
/* Sets a gauge to value. */
void ag_gauge_set(struct ag_series *series, double value);
/* Adds delta (may be negative) to a gauge. */
void ag_gauge_add(struct ag_series *series, double delta);
/* Records one observation in a histogram; NaN is ignored. */
void ag_histogram_observe(struct ag_series *series, double value);

/* A counter's current value (0 for NULL or a non-counter). */
uint64_t ag_counter_value(const struct ag_series *series);
/* A gauge's current value (0 for NULL or a non-gauge). */
double ag_gauge_value(const struct ag_series *series);

/*
 * Appends every family of reg with at least one series to out, in Prometheus text exposition
 * format 0.0.4 (# HELP, # TYPE, one line per sample), families in registration order and
 * series in creation order. Returns 0, AG_EINVAL for a NULL reg, AG_ERANGE when out would grow
 * past its max, AG_ENOMEM; on failure out is unchanged. Values are read atomically one by one while
 * updates go on.
 */
int ag_metrics_render(struct ag_metrics *reg, struct ag_buf *out);

#endif
