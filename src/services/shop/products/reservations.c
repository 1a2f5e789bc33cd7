/* Inventory reservations for the checkout: hold units all or nothing, commit or release them, and
 * the thread that releases the ones whose time ran out. */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "catalog.h"
#include "core/digest.h"
#include "core/log.h"
#include "core/banned.h"

enum {
    RESERVATION_ID_MAX = 64,
    RESERVATION_ITEMS_MAX = 100,
    RESERVATION_TTL_DEFAULT = 900,
    RESERVATION_FIELD_MAX = 48, /* "items[99].product_id" */
    EXPIRY_BATCH = 100,         /* reservations read per sweep query */
    EXPIRY_PERIOD_MS = 1000,
};

struct reservation_item {
    char product_id[KIT_ID_LEN + 1]; /* lowercase: ids are stored lowercase */
    int64_t quantity;
    size_t index; /* in the request, for messages */
};

/*
 * How a change of a reservation's state moves a product's units: the product UPDATE (with
 * $1 id, $2 tenant, $3 quantity, $4 now, RETURNING on_hand, reserved, low_stock_threshold, sku) and
 * how much it adds to available (for the products.inventory.low crossing).
 */
struct stock_move {
    const char *sql;
    int available_sign; /* available_after - available_before = sign * quantity */
};

static const struct stock_move move_reserve = {
    "UPDATE products SET reserved = reserved + $3, updated_at = $4 "
    "WHERE id = $1 AND tenant = $2 AND active = 1 AND on_hand - reserved >= $3 "
    "RETURNING on_hand, reserved, low_stock_threshold, sku",
    -1};
static const struct stock_move move_release = {
    "UPDATE products SET reserved = reserved - $3, updated_at = $4 "
    "WHERE id = $1 AND tenant = $2 RETURNING on_hand, reserved, low_stock_threshold, sku",
    1};
static const struct stock_move move_commit = {
    "UPDATE products SET on_hand = on_hand - $3, reserved = reserved - $3, updated_at = $4 "
    "WHERE id = $1 AND tenant = $2 RETURNING on_hand, reserved, low_stock_threshold, sku",
    0};

/* True for 1..64 bytes of [A-Za-z0-9._:-]. */
static bool reservation_id_valid(const char *s)
{
    size_t len = s ? strlen(s) : 0;
    if (len == 0 || len > RESERVATION_ID_MAX)
        return false;
    for (size_t i = 0; i < len; i++)
        if (!isalnum((unsigned char)s[i]) && !strchr("._:-", s[i]))
            return false;
    return true;
}

/*
 * Moves quantity units of one product inside tx and emits its inventory events. Returns 1
 * when the row changed, 0 when no row matched (no such product, or the reserve guard refused),
 * or a kit_db code.
 */
static int stock_move_apply(struct kit_db *tx, const struct stock_move *move, const char *tenant,
                            const char *product_id, int64_t quantity, int64_t now,
                            struct ag_err *err)
{
    struct kit_db_rows *rows = NULL;
    int rc = kit_db_query(tx, move->sql,
                          KIT_DB_PARAMS(KIT_DB_TEXT(product_id), KIT_DB_TEXT(tenant),
                                        KIT_DB_INT(quantity), KIT_DB_INT(now)),
                          1, &rows, err);
    if (rc > 0) {
        int64_t on_hand = kit_db_rows_int(rows, 0, 0), reserved = kit_db_rows_int(rows, 0, 1);
        int64_t before = on_hand - reserved - move->available_sign * quantity;
        rc = inventory_emit(tx, product_id, kit_db_rows_text(rows, 0, 3, NULL), on_hand, reserved,
                            before, kit_db_rows_int(rows, 0, 2), err);
        if (rc == 0)
            rc = 1;
    }
    kit_db_rows_free(rows);
    return rc;
}

/* The reservation as JSON (components/schemas/Reservation); *out NULL when there is none. */
static int reservation_load(struct kit_db *db, const char *tenant, const char *id, json_t **out,
                            struct ag_err *err)
{
    static const char sql[] =
        "SELECT r.state, r.expires_at, r.created_at, r.updated_at, i.product_id, i.quantity "
        "FROM reservations r JOIN reservation_items i "
        "ON i.tenant = r.tenant AND i.reservation_id = r.id "
        "WHERE r.tenant = $1 AND r.id = $2 ORDER BY i.product_id";
    struct kit_db_rows *rows = NULL;
    json_t *items = NULL;
    int rc;

    *out = NULL;
    rc = kit_db_query(db, sql, KIT_DB_PARAMS(KIT_DB_TEXT(tenant), KIT_DB_TEXT(id)),
                      RESERVATION_ITEMS_MAX, &rows, err);
    if (rc <= 0)
        goto out;
    rc = AG_ENOMEM;
    items = json_array();
    for (size_t r = 0; items && r < kit_db_rows_count(rows); r++)
        if (json_array_append_new(items, json_pack("{s:o, s:I}", "product_id",
                                                   kit_db_rows_json_text(rows, r, 4), "quantity",
                                                   (json_int_t)kit_db_rows_int(rows, r, 5))) < 0)
            goto out;
    if (!items)
        goto out;
    *out = json_pack("{s:s, s:o, s:o, s:o, s:o, s:o}", "reservation_id", id, "state",
                     kit_db_rows_json_text(rows, 0, 0), "items", items, "expires_at",
                     kit_db_rows_json_time(rows, 0, 1), "created_at",
                     kit_db_rows_json_time(rows, 0, 2), "updated_at",
                     kit_db_rows_json_time(rows, 0, 3));
    items = NULL; /* stolen by json_pack, even when it fails */
    rc = *out ? 0 : AG_ENOMEM;
out:
    if (rc == AG_ENOMEM)
        ag_err_set(err, rc, "out of memory building a reservation");
    json_decref(items);
    kit_db_rows_free(rows);
    return rc < 0 ? rc : 0;
}

static int item_compare(const void *a, const void *b)
{
    return strcmp(((const struct reservation_item *)a)->product_id,
                  ((const struct reservation_item *)b)->product_id);
}

/* Checks one member of items[] into *item; adds errors[] entries for what is wrong. */
static void reservation_item_parse(struct kit_req *req, const json_t *value, size_t index,
                                   struct reservation_item *item)
{
    char field[RESERVATION_FIELD_MAX];
    const char *key;
    json_t *member;

    item->index = index;
    snprintf(field, sizeof field, "items[%zu]", index);
    if (!json_is_object(value)) {
        kit_req_invalid(req, field, "must be an object {product_id, quantity}");
        return;
    }
    json_object_foreach((json_t *)value, key, member)
    {
        if (strcmp(key, "product_id") != 0 && strcmp(key, "quantity") != 0) {
            snprintf(field, sizeof field, "items[%zu].%.16s", index, key);
            kit_req_invalid(req, field, "is not a known member");
        }
    }
    const char *product_id = json_string_value(json_object_get(value, "product_id"));
    snprintf(field, sizeof field, "items[%zu].product_id", index);
    if (!product_id || !kit_id_valid(product_id))
        kit_req_invalid(req, field, "must be a product id (a UUID)");
    else
        for (size_t i = 0; i <= KIT_ID_LEN; i++)
            item->product_id[i] = (char)tolower((unsigned char)product_id[i]);
    json_t *quantity = json_object_get(value, "quantity");
    snprintf(field, sizeof field, "items[%zu].quantity", index);
    if (!json_is_integer(quantity) || json_integer_value(quantity) < 1 ||
        json_integer_value(quantity) > CATALOG_QUANTITY_MAX)
        kit_req_invalid(req, field, "must be an integer from 1 to 1000000000");
    else
        item->quantity = json_integer_value(quantity);
}

/* SHA-256 (hex) of the canonical items: sorted by product id, "id:quantity\n" each. */
static int reservation_hash(const struct reservation_item *items, size_t count,
                            char out[AG_SHA256_HEX_LEN + 1])
{
    char text[RESERVATION_ITEMS_MAX * (KIT_ID_LEN + 13)];
    size_t len = 0;
    for (size_t i = 0; i < count; i++)
        len += (size_t)snprintf(text + len, sizeof text - len, "%s:%lld\n", items[i].product_id,
                                (long long)items[i].quantity);
    return ag_sha256_hex(text, len, out);
}

struct reservation_request {
    const char *id;
    struct reservation_item items[RESERVATION_ITEMS_MAX];
    size_t count;
    int64_t ttl_s;
    char hash[AG_SHA256_HEX_LEN + 1];
};

/* Reads and checks the POST body into r (items sorted by product id). Answers 4xx itself. */
static int reservation_request_parse(struct kit_req *req, struct reservation_request *r)
{
    static const struct kit_field fields[] = {
        {"reservation_id", JSON_STRING, true, 1, RESERVATION_ID_MAX, 0, 0},
        {"items", JSON_ARRAY, true, 0, 0, 0, 0},
        {"expires_in_s", JSON_INTEGER, false, 0, 0, 1, CATALOG_RESERVATION_TTL_MAX},
    };
    json_t *body, *items, *value;
    size_t index;
    int rc = kit_req_json(req, &body);
    if (rc < 0)
        return rc;
    kit_req_fields(req, body, fields, sizeof fields / sizeof fields[0]);
    r->id = json_string_value(json_object_get(body, "reservation_id"));
    if (r->id && !reservation_id_valid(r->id))
        kit_req_invalid(req, "reservation_id", "must be 1 to 64 of A-Z a-z 0-9 . _ : -");
    items = json_object_get(body, "items");
    if (json_is_array(items)) {
        if (json_array_size(items) < 1 || json_array_size(items) > RESERVATION_ITEMS_MAX)
            kit_req_invalid(req, "items", "must hold 1 to 100 items");
        else
            json_array_foreach(items, index, value)
                reservation_item_parse(req, value, index, &r->items[r->count++]);
    }
    if (kit_req_invalid_count(req) == 0) {
        qsort(r->items, r->count, sizeof r->items[0], item_compare);
        for (size_t i = 1; i < r->count; i++)
            if (strcmp(r->items[i - 1].product_id, r->items[i].product_id) == 0) {
                char field[RESERVATION_FIELD_MAX];
                size_t later = r->items[i].index > r->items[i - 1].index ? r->items[i].index
                                                                         : r->items[i - 1].index;
                snprintf(field, sizeof field, "items[%zu].product_id", later);
                kit_req_invalid(req, field, "names a product already listed in items");
            }
    }
    if (kit_req_invalid_count(req) > 0) {
        kit_resp_invalid(req);
        return AG_EINVAL;
    }
    value = json_object_get(body, "expires_in_s");
    r->ttl_s = value ? json_integer_value(value) : RESERVATION_TTL_DEFAULT;
    return reservation_hash(r->items, r->count, r->hash);
}

/*
 * The answer to a create whose reservation_id exists: 200 with it when the items are the same
 * (a retry), 409 otherwise. Returns 1 when it answered, 0 when there is no such reservation.
 */
static int reservation_replay(struct kit_req *req, const struct reservation_request *r)
{
    struct kit_db *db = kit_req_db(req);
    struct kit_db_rows *rows = NULL;
    struct ag_err err = {0};
    json_t *existing = NULL;
    int rc = kit_db_query(db, "SELECT request_hash FROM reservations WHERE tenant = $1 AND id = $2",
                          KIT_DB_PARAMS(KIT_DB_TEXT(kit_req_tenant(req)), KIT_DB_TEXT(r->id)), 1,
                          &rows, &err);
    if (rc <= 0)
        goto out;
    if (strcmp(kit_db_rows_text(rows, 0, 0, NULL), r->hash) != 0) {
        rc = kit_resp_problem(req, 409, "reservation %s already exists with other items", r->id);
        rc = rc < 0 ? rc : 1;
        goto out;
    }
    rc = reservation_load(db, kit_req_tenant(req), r->id, &existing, &err);
    if (rc == 0 && !existing)
        rc = ag_err_set(&err, AG_ENOTFOUND, "reservation %s has no items", r->id);
    if (rc == 0)
        rc = kit_resp_json(req, 200, existing) < 0 ? AG_ENOMEM : 1;
out:
    kit_db_rows_free(rows);
    return rc < 0 ? kit_req_db_fail(req, rc, &err) : rc;
}

/*
 * Inside tx: the answer when reserving item changed no row. 422 for a product the tenant does
 * not have, 409 for one that is inactive or has too few units. Returns the kit_resp code.
 */
static int reservation_refuse_item(struct kit_req *req, const struct reservation_item *item)
{
    struct kit_db *db = kit_req_db(req);
    struct kit_db_rows *rows = NULL;
    struct ag_err err = {0};
    int rc =
        kit_db_query(db,
                     "SELECT on_hand - reserved, active FROM products "
                     "WHERE id = $1 AND tenant = $2",
                     KIT_DB_PARAMS(KIT_DB_TEXT(item->product_id), KIT_DB_TEXT(kit_req_tenant(req))),
                     1, &rows, &err);
    if (rc < 0)
        return kit_req_db_fail(req, rc, &err);
    kit_db_rollback(db);
    if (rc == 0) {
        char field[RESERVATION_FIELD_MAX];
        snprintf(field, sizeof field, "items[%zu].product_id", item->index);
        kit_req_invalid(req, field, "names no product");
        rc = kit_resp_invalid(req);
    } else if (kit_db_rows_int(rows, 0, 1) == 0) {
        rc = kit_resp_problem(req, 409, "product %s is not active", item->product_id);
    } else {
        rc = kit_resp_problem(req, 409, "product %s has %lld available, %lld requested",
                              item->product_id, (long long)kit_db_rows_int(rows, 0, 0),
                              (long long)item->quantity);
    }
    kit_db_rows_free(rows);
    return rc;
}

int reservations_create(struct kit_req *req)
{
    static const char sql_insert[] =
        "INSERT INTO reservations (tenant, id, state, request_hash, expires_at, created_at, "
        "updated_at) VALUES ($1, $2, 'held', $3, $4, $5, $5)";
    static const char sql_item[] = "INSERT INTO reservation_items (tenant, reservation_id, "
                                   "product_id, quantity) VALUES ($1, $2, $3, $4)";
    struct kit_db *db = kit_req_db(req);
    const char *tenant = kit_req_tenant(req);
    struct reservation_request *r = calloc(1, sizeof *r);
    struct ag_err err = {0};
    json_t *created = NULL;
    char location[128];
    int64_t now = kit_now_ms();
    int rc;

    if (!r)
        return AG_ENOMEM;
    rc = reservation_request_parse(req, r);
    if (rc < 0)
        goto out;
    rc = reservation_replay(req, r);
    if (rc != 0)
        goto out;
    rc = kit_db_begin(db, &err);
    if (rc < 0)
        goto db_fail;
    rc = kit_db_exec(db, sql_insert,
                     KIT_DB_PARAMS(KIT_DB_TEXT(tenant), KIT_DB_TEXT(r->id), KIT_DB_TEXT(r->hash),
                                   KIT_DB_INT(now + r->ttl_s * 1000), KIT_DB_INT(now)),
                     &err);
    if (rc == AG_ECONFLICT) { /* a concurrent create with this id committed first */
        kit_db_rollback(db);
        rc = reservation_replay(req, r);
        if (rc == 0)
            rc = kit_resp_problem(req, 409, "reservation %s is being created concurrently", r->id);
        goto out;
    }
    if (rc < 0)
        goto db_fail;
    /* Products are locked in id order (the items are sorted), so two reservations over the
     * same products cannot deadlock on PostgreSQL. */
    for (size_t i = 0; i < r->count; i++) {
        const struct reservation_item *item = &r->items[i];
        rc = stock_move_apply(db, &move_reserve, tenant, item->product_id, item->quantity, now,
                              &err);
        if (rc == 0) {
            rc = reservation_refuse_item(req, item);
            goto out;
        }
        if (rc > 0)
            rc = kit_db_exec(db, sql_item,
                             KIT_DB_PARAMS(KIT_DB_TEXT(tenant), KIT_DB_TEXT(r->id),
                                           KIT_DB_TEXT(item->product_id),
                                           KIT_DB_INT(item->quantity)),
                             &err);
        if (rc < 0)
            goto db_fail;
    }
    rc = reservation_load(db, tenant, r->id, &created, &err);
    if (rc == 0)
        rc = kit_db_commit(db, &err);
    if (rc < 0)
        goto db_fail;
    snprintf(location, sizeof location, "/api/v1/inventory/reservations/%s", r->id);
    rc = kit_resp_created(req, location, created);
    created = NULL;
    goto out;
db_fail:
    rc = kit_req_db_fail(req, rc, &err);
out:
    json_decref(created);
    free(r);
    return rc < 0 ? rc : 0; /* reservation_replay's 1: answered */
}

/* The {id} path parameter as a reservation id; answers 404 for one that cannot exist. */
static int reservation_param(struct kit_req *req, const char **out)
{
    *out = kit_req_param(req, "id");
    if (!reservation_id_valid(*out)) {
        kit_resp_problem(req, 404, "no such reservation");
        return AG_EINVAL;
    }
    return 0;
}

int reservations_get(struct kit_req *req)
{
    struct ag_err err = {0};
    json_t *reservation = NULL;
    const char *id;
    int rc = reservation_param(req, &id);
    if (rc < 0)
        return rc;
    rc = reservation_load(kit_req_db(req), kit_req_tenant(req), id, &reservation, &err);
    if (rc < 0)
        return kit_req_db_fail(req, rc, &err);
    if (!reservation)
        return kit_resp_problem(req, 404, "no reservation %s", id);
    return kit_resp_json(req, 200, reservation);
}

/*
 * Inside tx: moves every item of a held reservation's units with move (product id order) and
 * sets its state. Returns 0 or a kit_db code.
 */
static int reservation_settle(struct kit_db *tx, const char *tenant, const char *id,
                              const struct stock_move *move, const char *state, int64_t now,
                              struct ag_err *err)
{
    struct kit_db_rows *rows = NULL;
    int rc = kit_db_query(tx,
                          "SELECT product_id, quantity FROM reservation_items "
                          "WHERE tenant = $1 AND reservation_id = $2 ORDER BY product_id",
                          KIT_DB_PARAMS(KIT_DB_TEXT(tenant), KIT_DB_TEXT(id)),
                          RESERVATION_ITEMS_MAX, &rows, err);
    /* A product deleted meanwhile (products.c refuses that while a reservation holds it) has
     * no units left to move: its item is skipped. */
    for (size_t r = 0; rc >= 0 && r < kit_db_rows_count(rows); r++)
        rc = stock_move_apply(tx, move, tenant, kit_db_rows_text(rows, r, 0, NULL),
                              kit_db_rows_int(rows, r, 1), now, err);
    kit_db_rows_free(rows);
    if (rc < 0)
        return rc;
    rc = kit_db_exec(
        tx,
        "UPDATE reservations SET state = $3, updated_at = $4 "
        "WHERE tenant = $1 AND id = $2",
        KIT_DB_PARAMS(KIT_DB_TEXT(tenant), KIT_DB_TEXT(id), KIT_DB_TEXT(state), KIT_DB_INT(now)),
        err);
    return rc < 0 ? rc : 0;
}

/* What a commit or a release asks for, and its answers. */
struct reservation_action {
    const struct stock_move *move;
    const char *target;     /* the state a held reservation moves to */
    const char *done_again; /* a state that answers success again (idempotent) */
    const char *also_done;  /* another such state, or NULL */
    int status;             /* 200 (with the reservation) or 204 */
};

static int reservation_act(struct kit_req *req, const struct reservation_action *act)
{
    /* Touch first: on PostgreSQL the row lock orders this against the expiry sweep and a
     * concurrent commit/release of the same reservation. */
    static const char sql_touch[] = "UPDATE reservations SET updated_at = $3 "
                                    "WHERE tenant = $1 AND id = $2 RETURNING state, expires_at";
    struct kit_db *db = kit_req_db(req);
    const char *tenant = kit_req_tenant(req), *id, *state;
    struct kit_db_rows *rows = NULL;
    struct ag_err err = {0};
    json_t *reservation = NULL;
    int64_t now = kit_now_ms();
    int rc = reservation_param(req, &id);
    if (rc < 0)
        return rc;
    rc = kit_db_begin(db, &err);
    if (rc < 0)
        return kit_req_db_fail(req, rc, &err);
    rc = kit_db_query(db, sql_touch,
                      KIT_DB_PARAMS(KIT_DB_TEXT(tenant), KIT_DB_TEXT(id), KIT_DB_INT(now)), 1,
                      &rows, &err);
    if (rc < 0)
        goto db_fail;
    if (rc == 0) {
        kit_db_rollback(db);
        rc = kit_resp_problem(req, 404, "no reservation %s", id);
        goto out;
    }
    state = kit_db_rows_text(rows, 0, 0, NULL);
    if (strcmp(state, act->done_again) == 0 || (act->also_done && !strcmp(state, act->also_done))) {
        kit_db_rollback(db);
        goto answer;
    }
    if (strcmp(state, "held") != 0) {
        kit_db_rollback(db);
        rc = kit_resp_problem(req, 409, "reservation %s is %s", id, state);
        goto out;
    }
    if (act->move == &move_commit && kit_db_rows_int(rows, 0, 1) <= now) {
        char at[32];
        kit_time_rfc3339(kit_db_rows_int(rows, 0, 1), at);
        kit_db_rollback(db); /* the sweep releases it */
        rc = kit_resp_problem(req, 409, "reservation %s expired at %s", id, at);
        goto out;
    }
    rc = reservation_settle(db, tenant, id, act->move, act->target, now, &err);
    if (rc == 0)
        rc = kit_db_commit(db, &err);
    if (rc < 0)
        goto db_fail;
answer:
    if (act->status == 204) {
        rc = kit_resp_status(req, 204);
        goto out;
    }
    rc = reservation_load(db, tenant, id, &reservation, &err);
    if (rc == 0 && !reservation)
        rc = ag_err_set(&err, AG_ENOTFOUND, "reservation %s has no items", id);
    if (rc < 0)
        goto db_fail;
    rc = kit_resp_json(req, act->status, reservation);
    goto out;
db_fail:
    rc = kit_req_db_fail(req, rc, &err);
out:
    kit_db_rows_free(rows);
    return rc;
}

int reservations_commit(struct kit_req *req)
{
    static const struct reservation_action commit = {&move_commit, "committed", "committed", NULL,
                                                     200};
    return reservation_act(req, &commit);
}

int reservations_release(struct kit_req *req)
{
    /* Releasing what expired is a no-op success too: its units went back already. */
    static const struct reservation_action release = {&move_release, "released", "released",
                                                      "expired", 204};
    return reservation_act(req, &release);
}

/* ---- the expiry sweep ---- */

/* One sweep thread per process (one catalog_ctx), so its state lives here. */
static struct {
    pthread_mutex_t mu;
    pthread_cond_t wake;
    bool stop;
    struct kit_db *db; /* the thread's own connection */
} expiry = {.mu = PTHREAD_MUTEX_INITIALIZER};

static bool expiry_stopping(void)
{
    pthread_mutex_lock(&expiry.mu);
    bool stop = expiry.stop;
    pthread_mutex_unlock(&expiry.mu);
    return stop;
}

/*
 * Expires one reservation in its own transaction, if it is still held and past its time (a
 * commit or release may have won the race since the sweep's query). Returns 0 or a kit_db code.
 */
static int expiry_one(struct kit_db *db, const char *tenant, const char *id, struct ag_err *err)
{
    int64_t now = kit_now_ms();
    int rc = kit_db_begin(db, err);
    if (rc < 0)
        return rc;
    kit_db_event_context(db, tenant, NULL); /* the events belong to the reservation's tenant */
    rc = kit_db_exec(db,
                     "UPDATE reservations SET updated_at = $3 WHERE tenant = $1 AND id = $2 "
                     "AND state = 'held' AND expires_at <= $3",
                     KIT_DB_PARAMS(KIT_DB_TEXT(tenant), KIT_DB_TEXT(id), KIT_DB_INT(now)), err);
    if (rc > 0)
        rc = reservation_settle(db, tenant, id, &move_release, "expired", now, err);
    if (rc == 0)
        rc = kit_db_commit(db, err);
    if (rc < 0)
        kit_db_rollback(db);
    return rc;
}

/* Expires every held reservation past its time, a batch per query. Stops early on stop. */
static void expiry_sweep(struct kit_db *db)
{
    struct ag_err err = {0};
    for (;;) {
        struct kit_db_rows *rows = NULL;
        int rc = kit_db_query(db,
                              "SELECT tenant, id FROM reservations "
                              "WHERE state = 'held' AND expires_at <= $1 "
                              "ORDER BY expires_at LIMIT 100",
                              KIT_DB_PARAMS(KIT_DB_INT(kit_now_ms())), EXPIRY_BATCH, &rows, &err);
        size_t n = rc > 0 ? kit_db_rows_count(rows) : 0;
        if (rc < 0)
            ag_log_warn("reservation expiry: cannot list expired reservations",
                        AG_F_STR("error", err.msg));
        for (size_t r = 0; r < n && !expiry_stopping(); r++) {
            rc = expiry_one(db, kit_db_rows_text(rows, r, 0, NULL),
                            kit_db_rows_text(rows, r, 1, NULL), &err);
            if (rc < 0) {
                ag_log_warn("reservation expiry failed; retried next sweep",
                            AG_F_STR("reservation_id", kit_db_rows_text(rows, r, 1, NULL)),
                            AG_F_STR("error", err.msg));
                n = 0; /* a failing database: wait for the next period */
            }
        }
        kit_db_rows_free(rows);
        if (n < EXPIRY_BATCH || expiry_stopping())
            return;
    }
}

static void *expiry_main(void *arg)
{
    (void)arg;
    struct timespec deadline;
    pthread_mutex_lock(&expiry.mu);
    while (!expiry.stop) {
        pthread_mutex_unlock(&expiry.mu);
        expiry_sweep(expiry.db);
        pthread_mutex_lock(&expiry.mu);
        clock_gettime(CLOCK_MONOTONIC, &deadline);
        deadline.tv_sec += EXPIRY_PERIOD_MS / 1000;
        while (!expiry.stop && pthread_cond_timedwait(&expiry.wake, &expiry.mu, &deadline) == 0)
            ; /* a wake-up without stop (spurious): keep waiting for the deadline */
    }
    pthread_mutex_unlock(&expiry.mu);
    return NULL;
}

int reservations_expiry_start(struct kit_app *app, struct catalog_ctx *ctx, struct ag_err *err)
{
    pthread_condattr_t attr;
    int rc = kit_app_db_open(app, &expiry.db, err);
    if (rc < 0)
        return rc;
    /* A monotonic clock, so a change of the wall clock neither stalls nor rushes the sweep. */
    if (pthread_condattr_init(&attr) != 0 ||
        pthread_condattr_setclock(&attr, CLOCK_MONOTONIC) != 0 ||
        pthread_cond_init(&expiry.wake, &attr) != 0) {
        kit_db_close(expiry.db);
        expiry.db = NULL;
        return ag_err_set(err, AG_ENOMEM, "cannot set up the reservation expiry thread");
    }
    pthread_condattr_destroy(&attr);
    expiry.stop = false;
    if (pthread_create(&ctx->expiry_thread, NULL, expiry_main, NULL) != 0) {
        pthread_cond_destroy(&expiry.wake);
        kit_db_close(expiry.db);
        expiry.db = NULL;
        return ag_err_set(err, AG_ENOMEM, "cannot start the reservation expiry thread");
    }
    ctx->expiry_running = true;
    return 0;
}

void reservations_expiry_stop(struct catalog_ctx *ctx)
{
    if (!ctx || !ctx->expiry_running)
        return;
    pthread_mutex_lock(&expiry.mu);
    expiry.stop = true;
    pthread_cond_signal(&expiry.wake);
    pthread_mutex_unlock(&expiry.mu);
    pthread_join(ctx->expiry_thread, NULL);
    ctx->expiry_running = false;
    pthread_cond_destroy(&expiry.wake);
    kit_db_close(expiry.db);
    expiry.db = NULL;
}
