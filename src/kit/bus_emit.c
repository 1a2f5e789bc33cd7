/* Events as data: kit_event_emit into the outbox, envelope checks, types, traceparents. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "core/json.h"
#include "kit/bus_internal.h"
#include "kit/db.h"
#include "kit/kit.h"
#include "core/banned.h"

bool kit_event_type_valid(const char *type)
{
    if (!type)
        return false;
    size_t words = 0, word_len = 0, n = 0;
    for (const char *p = type;; p++, n++) {
        if (n > KIT_EVENT_TYPE_MAX)
            return false;
        char c = *p;
        if (c == '.' || c == '\0') {
            if (word_len == 0)
                return false;
            words++;
            word_len = 0;
            if (c == '\0')
                break;
            continue;
        }
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '-'))
            return false;
        word_len++;
    }
    return words == 3;
}

static bool is_lower_hex(char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
}

/* True when s[0..n) are lowercase hex digits, not all '0'. */
static bool hex_id(const char *s, size_t n)
{
    bool nonzero = false;
    for (size_t i = 0; i < n; i++) {
        if (!is_lower_hex(s[i]))
            return false;
        nonzero |= s[i] != '0';
    }
    return nonzero;
}

bool kit_traceparent_valid(const char *s)
{
    /* W3C trace context: version "00" has exactly this shape (ids lowercase, not all zero). */
    if (!s || strlen(s) != KIT_BUS_TRACEPARENT_LEN)
        return false;
    if (s[0] != '0' || s[1] != '0' || s[2] != '-' || s[35] != '-' || s[52] != '-')
        return false;
    return hex_id(s + 3, 32) && hex_id(s + 36, 16) && is_lower_hex(s[53]) && is_lower_hex(s[54]);
}

void kit_traceparent_new(char out[KIT_BUS_TRACEPARENT_LEN + 1])
{
    static const char hex[] = "0123456789abcdef";
    unsigned char rnd[24];
    size_t got = 0;
    while (got < sizeof rnd) {
        ssize_t r = getrandom(rnd + got, sizeof rnd - got, 0);
        if (r > 0)
            got += (size_t)r;
    }
    rnd[0] |= 1; /* never all zero */
    rnd[16] |= 1;
    char *p = out;
    memcpy(p, "00-", 3);
    p += 3;
    for (size_t i = 0; i < 16; i++) {
        *p++ = hex[rnd[i] >> 4];
        *p++ = hex[rnd[i] & 15];
    }
    *p++ = '-';
    for (size_t i = 16; i < 24; i++) {
        *p++ = hex[rnd[i] >> 4];
        *p++ = hex[rnd[i] & 15];
    }
    memcpy(p, "-01", 4); /* sampled; the NUL too */
}

/* True when s is non-empty, at most max bytes, valid UTF-8 without control characters. */
static bool text_valid(const char *s, size_t max)
{
    size_t n = strlen(s);
    if (n == 0 || n > max)
        return false;
    for (size_t i = 0; i < n;) {
        size_t len = ag_utf8_sequence_len((const unsigned char *)s + i, n - i);
        if (len == 0 || (len == 1 && ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)))
            return false;
        i += len;
    }
    return true;
}

int kit_event_emit(struct kit_db *tx, const char *type, const char *subject, const json_t *data,
                   struct ag_err *err)
{
    int rc = 0;
    json_t *env = NULL;
    char *text = NULL;
    if (!tx || !kit_db_in_transaction(tx))
        return ag_err_set(err, AG_EINVAL,
                          "kit_event_emit needs a connection inside a transaction: the event "
                          "must commit with the change it reports");
    if (!kit_event_type_valid(type))
        return ag_err_set(err, AG_EINVAL,
                          "event type \"%.*s\" is not <service>.<entity>.<action> (three words "
                          "of a-z, 0-9, '_', '-')",
                          64, type ? type : "(null)");
    if (!subject || !text_valid(subject, KIT_EVENT_SUBJECT_MAX))
        return ag_err_set(err, AG_EINVAL,
                          "event subject must be 1 to %d bytes of UTF-8 text without control "
                          "characters",
                          KIT_EVENT_SUBJECT_MAX);
    if (!json_is_object(data))
        return ag_err_set(err, AG_EINVAL, "event data must be a JSON object");

    struct kit_db_event_ctx ctx;
    kit_db_event_context_get(tx, &ctx);
    char id[KIT_ID_LEN + 1], time_text[32];
    kit_id_new(id);
    int64_t now = kit_now_ms();
    kit_time_rfc3339(now, time_text);
    /* member order as in docs/events.md: readers of the log see the envelope as written */
    env = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s}", "specversion", "1.0", "id", id,
                    "source", ctx.source, "type", type, "subject", subject, "time", time_text,
                    "datacontenttype", "application/json", "tenant", ctx.tenant);
    if (!env) {
        rc = ag_err_set(err, AG_ENOMEM, "out of memory building an event");
        goto out;
    }
    if (ctx.traceparent[0] &&
        json_object_set_new(env, "traceparent", json_string(ctx.traceparent)) < 0) {
        rc = ag_err_set(err, AG_ENOMEM, "out of memory building an event");
        goto out;
    }
    /* borrowed: the extra reference is dropped with env (jansson's counts are atomic) */
    if (json_object_set(env, "data", (json_t *)data) < 0) {
        rc = ag_err_set(err, AG_ENOMEM, "out of memory building an event");
        goto out;
    }
    text = json_dumps(env, JSON_COMPACT | JSON_PRESERVE_ORDER);
    if (!text) {
        rc = ag_err_set(err, AG_EINVAL, "event data cannot be serialized");
        goto out;
    }
    size_t len = strlen(text);
    if (len > KIT_EVENT_MAX_BYTES) {
        rc = ag_err_set(err, AG_EINVAL, "the event is %zu bytes serialized: at most %d", len,
                        KIT_EVENT_MAX_BYTES);
        goto out;
    }
    rc = kit_db_exec(tx,
                     "INSERT INTO outbox (id, type, subject, tenant, created_at, envelope) "
                     "VALUES ($1, $2, $3, $4, $5, $6)",
                     KIT_DB_PARAMS(KIT_DB_TEXT(id), KIT_DB_TEXT(type), KIT_DB_TEXT(subject),
                                   KIT_DB_TEXT(ctx.tenant), KIT_DB_INT(now),
                                   KIT_DB_TEXTN(text, len)),
                     err);
    if (rc < 0)
        goto out;
    kit_db_event_mark(tx);
    rc = 0;
out:
    free(text);
    json_decref(env);
    return rc;
}

/* ---- parsing what the bus delivers ---- */

/* Reads n decimal digits at s into *v; false when one is not a digit. */
static bool digits(const char *s, int n, int *v)
{
    *v = 0;
    for (int i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
        *v = *v * 10 + (s[i] - '0');
    }
    return true;
}

int kit_bus_time_parse(const char *s, int64_t *out_ms)
{
    int year, mon, day, hour, min, sec, ms = 0;
    if (!s || strlen(s) < 20 || !digits(s, 4, &year) || s[4] != '-' || !digits(s + 5, 2, &mon) ||
        s[7] != '-' || !digits(s + 8, 2, &day) || (s[10] != 'T' && s[10] != 't') ||
        !digits(s + 11, 2, &hour) || s[13] != ':' || !digits(s + 14, 2, &min) || s[16] != ':' ||
        !digits(s + 17, 2, &sec))
        return AG_EINVAL;
    if (mon < 1 || mon > 12 || day < 1 || day > 31 || hour > 23 || min > 59 || sec > 60)
        return AG_EINVAL;
    const char *p = s + 19;
    if (*p == '.') {
        int n = 0;
        p++;
        while (*p >= '0' && *p <= '9') {
            if (n < 3)
                ms = ms * 10 + (*p - '0');
            n++;
            p++;
        }
        if (n == 0)
            return AG_EINVAL;
        for (; n < 3; n++)
            ms *= 10;
    }
    int offset_min = 0;
    if (*p == 'Z' || *p == 'z') {
        p++;
    } else if (*p == '+' || *p == '-') {
        int oh, om;
        if (!digits(p + 1, 2, &oh) || p[3] != ':' || !digits(p + 4, 2, &om) || oh > 23 || om > 59)
            return AG_EINVAL;
        offset_min = (oh * 60 + om) * (*p == '-' ? -1 : 1);
        p += 6;
    } else {
        return AG_EINVAL;
    }
    if (*p)
        return AG_EINVAL;
    struct tm tm = {.tm_year = year - 1900,
                    .tm_mon = mon - 1,
                    .tm_mday = day,
                    .tm_hour = hour,
                    .tm_min = min,
                    .tm_sec = sec};
    time_t t = timegm(&tm);
    *out_ms = ((int64_t)t - (int64_t)offset_min * 60) * 1000 + ms;
    return 0;
}

/* The string member name of obj, or NULL when absent or not a string. */
static const char *member(const json_t *obj, const char *name)
{
    return json_string_value(json_object_get(obj, name));
}

int kit_bus_envelope_parse(const char *text, size_t len, struct kit_bus_envelope *out,
                           struct ag_err *err)
{
    memset(out, 0, sizeof *out);
    if (len > KIT_EVENT_MAX_BYTES)
        return ag_err_set(err, AG_EINVAL, "the envelope is %zu bytes: at most %d", len,
                          KIT_EVENT_MAX_BYTES);
    json_error_t jerr;
    json_t *root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!root)
        return ag_err_set(err, AG_EINVAL, "the envelope is not JSON: %s (line %d, column %d)",
                          jerr.text, jerr.line, jerr.column);
    struct kit_event *ev = &out->ev;
    const char *what = NULL, *spec = member(root, "specversion"), *time_text = member(root, "time");
    ev->id = member(root, "id");
    ev->type = member(root, "type");
    ev->source = member(root, "source");
    ev->subject = member(root, "subject");
    ev->tenant = member(root, "tenant");
    ev->data = json_object_get(root, "data");
    ev->envelope = root;
    json_t *trace = json_object_get(root, "traceparent");
    ev->traceparent = json_is_string(trace) ? json_string_value(trace) : "";
    if (!json_is_object(root))
        what = "the envelope is not a JSON object";
    else if (!spec || strcmp(spec, "1.0") != 0)
        what = "specversion is not \"1.0\"";
    else if (!ev->id || !text_valid(ev->id, 128))
        what = "id is missing or not 1 to 128 bytes of text";
    else if (!kit_event_type_valid(ev->type))
        what = "type is missing or not <service>.<entity>.<action>";
    else if (!ev->source || !text_valid(ev->source, 256))
        what = "source is missing or malformed";
    else if (!ev->subject || !text_valid(ev->subject, KIT_EVENT_SUBJECT_MAX))
        what = "subject is missing or malformed";
    else if (!ev->tenant || !text_valid(ev->tenant, 256))
        what = "tenant is missing or malformed";
    else if (trace && !(json_is_string(trace) && kit_traceparent_valid(ev->traceparent)))
        what = "traceparent is not a W3C traceparent";
    else if (!time_text || kit_bus_time_parse(time_text, &ev->time_ms) < 0)
        what = "time is missing or not RFC 3339";
    else if (!json_is_object(ev->data))
        what = "data is missing or not an object";
    if (what) {
        json_decref(root);
        memset(out, 0, sizeof *out);
        return ag_err_set(err, AG_EINVAL, "malformed envelope: %s", what);
    }
    out->root = root;
    return 0;
}

void kit_bus_envelope_release(struct kit_bus_envelope *e)
{
    if (!e)
        return;
    json_decref(e->root);
    memset(e, 0, sizeof *e);
}
