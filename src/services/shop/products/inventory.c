/* Stock levels: POST /products/{id}/stock (set or delta) and the inventory events every stock
 * change emits (also used by reservations.c). */
#include <stdio.h>
#include <string.h>

#include "catalog.h"
#include "core/banned.h"

int inventory_emit(struct kit_db *tx, const char *product_id, const char *sku, int64_t on_hand,
                   int64_t reserved, int64_t available_before, int64_t low_threshold,
                   struct ag_err *err)
{
    int64_t available = on_hand - reserved;
    int rc;
    json_t *data =
        json_pack("{s:s, s:s, s:I, s:I, s:I, s:I}", "product_id", product_id, "sku", sku, "on_hand",
                  (json_int_t)on_hand, "reserved", (json_int_t)reserved, "available",
                  (json_int_t)available, "low_threshold", (json_int_t)low_threshold);
    if (!data)
        return ag_err_set(err, AG_ENOMEM, "out of memory building an inventory event");
    rc = kit_event_emit(tx, "products.inventory.updated", product_id, data, err);
    /* Only the crossing fires "low", so a product sitting below its threshold does not repeat
     * the alert on every sale. */
    if (rc == 0 && available_before > low_threshold && available <= low_threshold)
        rc = kit_event_emit(tx, "products.inventory.low", product_id, data, err);
    json_decref(data);
    return rc;
}

/* The request: exactly one of set / delta. Answers 422 itself and returns AG_EINVAL. */
static int stock_change_parse(struct kit_req *req, bool *is_set, int64_t *value)
{
    static const struct kit_field fields[] = {
        {"set", JSON_INTEGER, false, 0, 0, 0, CATALOG_QUANTITY_MAX},
        {"delta", JSON_INTEGER, false, 0, 0, -CATALOG_QUANTITY_MAX, CATALOG_QUANTITY_MAX},
    };
    json_t *body, *set, *delta;
    int rc = kit_req_json(req, &body);
    if (rc < 0)
        return rc;
    kit_req_fields(req, body, fields, sizeof fields / sizeof fields[0]);
    set = json_object_get(body, "set");
    delta = json_object_get(body, "delta");
    if (json_is_object(body) && !set == !delta)
        kit_req_invalid(req, set ? "delta" : "set",
                        set ? "cannot be given with set" : "either set or delta is required");
    if (kit_req_invalid_count(req) > 0) {
        kit_resp_invalid(req);
        return AG_EINVAL;
    }
    *is_set = set != NULL;
    *value = json_integer_value(set ? set : delta);
    return 0;
}

int inventory_stock(struct kit_req *req)
{
    /* Touching updated_at takes the row lock on PostgreSQL before the stock is read, so the
     * values returned are the latest and no concurrent change (stock or reservation) can slip
     * in before the write below. */
    static const char sql_touch[] =
        "UPDATE products SET updated_at = $3 WHERE id = $1 AND tenant = $2 "
        "RETURNING on_hand, reserved, low_stock_threshold, sku";
    /* The guard repeats the checks made in C: the last line of defence if the row changed. */
    static const char sql_write[] = "UPDATE products SET on_hand = $3 "
                                    "WHERE id = $1 AND tenant = $2 AND $3 >= reserved";
    struct kit_db *db = kit_req_db(req);
    const char *tenant = kit_req_tenant(req), *id;
    struct kit_db_rows *rows = NULL;
    struct ag_err err = {0};
    json_t *product = NULL;
    bool is_set = false;
    int64_t value = 0, on_hand, reserved, threshold, target;
    int rc;

    if ((rc = kit_req_param_id(req, "id", &id)) < 0 ||
        (rc = stock_change_parse(req, &is_set, &value)) < 0)
        return rc;
    rc = kit_db_begin(db, &err);
    if (rc < 0)
        return kit_req_db_fail(req, rc, &err);
    rc = kit_db_query(db, sql_touch,
                      KIT_DB_PARAMS(KIT_DB_TEXT(id), KIT_DB_TEXT(tenant), KIT_DB_INT(kit_now_ms())),
                      1, &rows, &err);
    if (rc < 0)
        goto db_fail;
    if (rc == 0) {
        kit_db_rollback(db);
        rc = kit_resp_problem(req, 404, "no product %s", id);
        goto out;
    }
    on_hand = kit_db_rows_int(rows, 0, 0);
    reserved = kit_db_rows_int(rows, 0, 1);
    threshold = kit_db_rows_int(rows, 0, 2);
    target = is_set ? value : on_hand + value; /* both within ±2·10^9: no overflow */
    if (target < 0 || target > CATALOG_QUANTITY_MAX || target < reserved) {
        kit_db_rollback(db);
        if (target < reserved)
            rc = kit_resp_problem(req, 409,
                                  "on_hand would become %lld, below the %lld units reserved "
                                  "(on_hand is %lld)",
                                  (long long)target, (long long)reserved, (long long)on_hand);
        else
            rc = kit_resp_problem(req, 409,
                                  "on_hand would become %lld, outside 0..%d "
                                  "(on_hand is %lld)",
                                  (long long)target, CATALOG_QUANTITY_MAX, (long long)on_hand);
        goto out;
    }
    rc = kit_db_exec(db, sql_write,
                     KIT_DB_PARAMS(KIT_DB_TEXT(id), KIT_DB_TEXT(tenant), KIT_DB_INT(target)), &err);
    if (rc == 0)
        rc = ag_err_set(&err, AG_ECONFLICT, "stock of %s changed under its row lock", id);
    if (rc > 0)
        rc = inventory_emit(db, id, kit_db_rows_text(rows, 0, 3, NULL), target, reserved,
                            on_hand - reserved, threshold, &err);
    if (rc >= 0)
        rc = products_load(db, tenant, id, &product, &err);
    if (rc >= 0 && !product)
        rc = ag_err_set(&err, AG_ENOTFOUND, "product %s vanished inside its transaction", id);
    if (rc >= 0)
        rc = kit_db_commit(db, &err);
    if (rc < 0)
        goto db_fail;
    rc = kit_resp_json(req, 200, product);
    product = NULL;
    goto out;
db_fail:
    rc = kit_req_db_fail(req, rc, &err);
out:
    json_decref(product);
    kit_db_rows_free(rows);
    return rc;
}
