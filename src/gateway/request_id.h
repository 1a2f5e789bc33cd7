/* Request identity at the gateway: X-Request-Id and W3C traceparent, checked or made anew. */
#ifndef GW_REQUEST_ID_H
#define GW_REQUEST_ID_H

#include <stdbool.h>
#include <stddef.h>

#include "core/buf.h"

enum {
    GW_REQUEST_ID_MAX = 128, /* longest client-supplied X-Request-Id passed on */
    GW_REQUEST_ID_LEN = 32,  /* a new request id: lowercase hex digits */
    GW_TRACEPARENT_LEN = 55, /* "00-" 32 hex "-" 16 hex "-" 2 hex */
    GW_TRACE_ID_AT = 3,      /* where the 32 hex digits of the trace id start */
};

/*
 * Random numbers for identifiers: a per-thread xoshiro256** generator seeded from getrandom(2)
 * on first use. Not for secrets; cheap enough for every request.
 */
void gw_random_bytes(void *out, size_t len);

/*
 * True when a client-supplied X-Request-Id may be passed on and logged as it is: 1 to
 * GW_REQUEST_ID_MAX bytes of letters, digits and "-_.:@/+=". Anything else is replaced, so that
 * an id can never inject into a log line or a header.
 */
bool gw_request_id_acceptable(struct ag_str id);

/* Writes a new request id: GW_REQUEST_ID_LEN lowercase hex digits and a NUL. */
void gw_request_id_new(char *out);

/*
 * Writes the traceparent to send upstream into out (GW_TRACEPARENT_LEN + 1 bytes): when
 * incoming is a valid version-00 traceparent (lowercase hex, trace and parent ids not all zero)
 * the trace id and flags are kept and the gateway's own new span id becomes the parent;
 * otherwise a new trace is started (flags 01). Returns true when the incoming one was kept.
 */
bool gw_traceparent_next(struct ag_str incoming, char *out);

#endif
