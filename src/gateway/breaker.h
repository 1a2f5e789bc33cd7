/* Circuit breaker of one upstream, shared lock-free by every worker thread. */
#ifndef GW_BREAKER_H
#define GW_BREAKER_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "core/err.h"

/*
 * States: closed (requests flow, outcomes are counted in a rolling window), open (every request
 * is refused until open_ms has passed), half-open (one probe request at a time is let through;
 * its success closes the breaker with an empty window, its failure opens it again).
 *
 * What counts as a failure is the caller's decision (the gateway: connect errors, timeouts and
 * 5xx answers). Times are the caller's monotonic milliseconds (ag_loop_now); workers may pass
 * slightly different values, which the breaker tolerates.
 *
 * Every call is safe from any thread: the state (with the open deadline and the probe slot) is
 * one atomic word changed by compare-exchange, and the window is GW_BREAKER_BUCKETS atomic
 * words, so the hot path (admit + record) takes no lock.
 */

enum {
    GW_BREAKER_BUCKETS = 10, /* the window is this many buckets of window_ms / 10 each */
};

/* What gw_breaker_admit tells the caller to do with one request. */
enum gw_breaker_admit {
    GW_BREAKER_ALLOW = 0,  /* closed: send it, then gw_breaker_record(was_probe = false) */
    GW_BREAKER_PROBE = 1,  /* half-open: send it as the probe; record or abandon it, once */
    GW_BREAKER_REFUSE = 2, /* open, or half-open with the probe taken: answer 503 */
};

/* The state, as a metrics gauge value. */
enum gw_breaker_state {
    GW_BREAKER_CLOSED = 0,
    GW_BREAKER_OPEN = 1,
    GW_BREAKER_HALF_OPEN = 2,
};

struct gw_breaker_config {
    uint64_t window_ms;    /* rolling window of outcomes, 10 ms .. 1 day; default 10000 */
    uint32_t min_requests; /* outcomes needed in the window before it can open, >= 1; 20 */
    double failure_ratio;  /* opens when failures / outcomes >= this, in (0, 1]; 0.5 */
    uint64_t open_ms;      /* time open before the probe, 1 ms .. 1 day; default 5000 */
};

/* One upstream's breaker. Embed it; the fields are private (use the functions below). */
struct gw_breaker {
    struct gw_breaker_config cfg;
    uint64_t bucket_ms;
    /* state | probe taken << 2 | open deadline << 3 */
    _Atomic uint64_t word;
    /* per bucket: bucket number (low 16 bits) << 48 | outcomes << 24 | failures */
    _Atomic uint64_t buckets[GW_BREAKER_BUCKETS];
    _Atomic uint64_t transitions;
};

/* Fills cfg with the defaults: 10000 ms window, 20 requests, ratio 0.5, open 5000 ms. */
void gw_breaker_config_defaults(struct gw_breaker_config *cfg);

/*
 * Checks cfg against the bounds given in struct gw_breaker_config. Returns 0, or AG_EINVAL
 * with err (may be NULL) naming the setting.
 */
int gw_breaker_config_check(const struct gw_breaker_config *cfg, struct ag_err *err);

/*
 * Prepares b, closed with an empty window, from cfg (copied). Returns 0, or AG_EINVAL as
 * gw_breaker_config_check (b is then unusable). Not thread-safe: initialise before sharing.
 * There is nothing to release.
 */
int gw_breaker_init(struct gw_breaker *b, const struct gw_breaker_config *cfg, struct ag_err *err);

/*
 * Decides about one request at now_ms. Closed: GW_BREAKER_ALLOW. Open: GW_BREAKER_REFUSE until
 * open_ms has passed, then the breaker turns half-open. Half-open: GW_BREAKER_PROBE to exactly
 * one caller (the probe slot is taken by compare-exchange), GW_BREAKER_REFUSE to every other
 * until the probe's outcome is recorded or the probe is abandoned. A caller given PROBE must
 * later call exactly one of gw_breaker_record(was_probe = true) or gw_breaker_abandon_probe;
 * otherwise the breaker stays half-open and refuses everything.
 */
enum gw_breaker_admit gw_breaker_admit(struct gw_breaker *b, uint64_t now_ms);

/*
 * Records the outcome of a request that admit let through. was_probe says whether admit
 * answered GW_BREAKER_PROBE for it.
 *   - Not a probe, breaker closed: counted in the window; a failure that brings the window to
 *     at least min_requests outcomes with failures / outcomes >= failure_ratio opens it.
 *   - Not a probe, breaker open or half-open (a request admitted before the breaker opened):
 *     ignored.
 *   - The probe: success closes the breaker with an empty window; failure opens it again for
 *     open_ms from now_ms.
 * Returns true when this call changed the state (so the caller may log it once), else false.
 */
bool gw_breaker_record(struct gw_breaker *b, uint64_t now_ms, bool success, bool was_probe);

/*
 * Gives the probe slot back without an outcome (the client went away, or the request was never
 * sent): the next admit may probe again. Harmless when no probe is out.
 */
void gw_breaker_abandon_probe(struct gw_breaker *b);

/*
 * The state at now_ms, for metrics: open reads as half-open once open_ms has passed, although
 * the switch itself happens in the next admit. Does not change anything.
 */
enum gw_breaker_state gw_breaker_state(const struct gw_breaker *b, uint64_t now_ms);

/* State changes since init (closed -> open, open -> half-open, half-open -> closed or open). */
uint64_t gw_breaker_transitions(const struct gw_breaker *b);

/* A static name for a state: "closed", "open", "half-open". */
const char *gw_breaker_state_name(enum gw_breaker_state state);

#endif
