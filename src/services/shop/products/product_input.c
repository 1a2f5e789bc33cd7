/*
 * agora-products: a product's request body — the writable fields of a POST or PUT body (or of a
 * PATCH merged into the stored product) read and checked, then their ids against the tenant.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "product_input.h"
#include "core/json.h"
#include "core/banned.h"

enum {
    SKU_MAX = 64,
    DESCRIPTION_MAX = 10000,
    LINKS_MAX = 32, /* category_ids, catalog_ids */
    ATTRIBUTES_MAX = 64,
    ATTRIBUTE_NAME_MAX = 64,
    ATTRIBUTE_VALUE_MAX = 500,
};

void product_input_release(struct product_input *in)
{
    free(in->category_ids);
    free(in->catalog_ids);
    free(in->attributes);
}

static bool sku_valid(const char *s)
{
    for (size_t i = 0; s[i]; i++) {
        char c = s[i];
        bool alnum = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
        if (!alnum && (i == 0 || (c != '.' && c != '_' && c != '-')))
            return false;
    }
    return s[0] != '\0';
}

static void input_price(struct kit_req *req, const json_t *price, struct product_input *in)
{
    const char *key;
    json_t *v;
    char msg[96];
    json_object_foreach((json_t *)price, key, v)
    {
        if (strcmp(key, "amount") != 0 && strcmp(key, "currency") != 0) {
            snprintf(msg, sizeof msg, "price.%s", key);
            kit_req_invalid(req, msg, "is not a known member");
        }
    }
    v = json_object_get(price, "amount");
    snprintf(msg, sizeof msg, "must be an integer from 0 to %lld (minor units)",
             (long long)CATALOG_PRICE_MAX);
    if (!json_is_integer(v) || json_integer_value(v) < 0 ||
        json_integer_value(v) > (json_int_t)CATALOG_PRICE_MAX)
        kit_req_invalid(req, "price.amount", v ? msg : "is required");
    else
        in->amount = json_integer_value(v);
    v = json_object_get(price, "currency");
    in->currency = json_string_value(v);
    if (!in->currency || !catalog_currency_valid(in->currency))
        kit_req_invalid(req, "price.currency",
                        v ? "must be an ISO 4217 currency code in use" : "is required");
}

/* A nullable id member: NULL when absent or null. */
static void input_id(struct kit_req *req, const json_t *doc, const char *name, const char **out)
{
    *out = json_string_value(json_object_get(doc, name));
    if (*out && !kit_id_valid(*out))
        kit_req_invalid(req, name, "must be an id or null");
}

/* An id list member as JSON text; absent is []. */
static int input_ids(struct kit_req *req, const json_t *doc, const char *name, char **out,
                     size_t *count)
{
    const json_t *list = json_object_get(doc, name);
    json_t *item;
    size_t i;
    char msg[96];
    *count = json_array_size(list);
    if (*count > LINKS_MAX) {
        snprintf(msg, sizeof msg, "must hold at most %d ids", LINKS_MAX);
        kit_req_invalid(req, name, msg);
        return 0;
    }
    json_array_foreach(list, i, item)
    {
        const char *id = json_string_value(item);
        bool repeated = false;
        for (size_t j = 0; id && j < i; j++)
            repeated |= strcmp(id, json_string_value(json_array_get(list, j))) == 0;
        if (!id || !kit_id_valid(id) || repeated) {
            kit_req_invalid(req, name, "must hold distinct ids");
            return 0;
        }
    }
    *out = json_is_array(list) ? json_dumps(list, JSON_COMPACT) : strdup("[]");
    return *out ? 0 : AG_ENOMEM;
}

static int input_attributes(struct kit_req *req, const json_t *doc, struct product_input *in)
{
    const json_t *attrs = json_object_get(doc, "attributes");
    const char *key;
    json_t *v;
    char msg[128];
    if (json_object_size(attrs) > ATTRIBUTES_MAX) {
        snprintf(msg, sizeof msg, "must hold at most %d names", ATTRIBUTES_MAX);
        kit_req_invalid(req, "attributes", msg);
    }
    json_object_foreach((json_t *)attrs, key, v)
    {
        size_t klen = kit_text_chars(key, strlen(key));
        size_t vlen = json_is_string(v)
                          ? kit_text_chars(json_string_value(v), json_string_length(v))
                          : SIZE_MAX;
        snprintf(msg, sizeof msg,
                 "names must be 1 to %d characters and values strings of at most %d characters, "
                 "without control characters",
                 ATTRIBUTE_NAME_MAX, ATTRIBUTE_VALUE_MAX);
        if (klen == 0 || klen > ATTRIBUTE_NAME_MAX || vlen > ATTRIBUTE_VALUE_MAX) {
            kit_req_invalid(req, "attributes", msg);
            break;
        }
    }
    in->attributes =
        json_is_object(attrs) ? json_dumps(attrs, JSON_COMPACT | JSON_SORT_KEYS) : strdup("{}");
    return in->attributes ? 0 : AG_ENOMEM;
}

/*
 * Reads doc (a POST or PUT body, or a PATCH merged into the stored product) into in. Every
 * violation becomes an errors[] entry; returns AG_ENOMEM or 0 (then check
 * kit_req_invalid_count). with_stock: on_hand may be given (creation only).
 */
int product_input_read(struct kit_req *req, const json_t *doc, bool with_stock,
                       struct product_input *in)
{
    static const struct kit_field fields[] = {
        {"sku", JSON_STRING, true, 1, SKU_MAX, 0, 0},
        {"name", JSON_STRING, true, 1, PRODUCT_INPUT_NAME_MAX, 0, 0},
        {"slug", JSON_STRING, false, 1, 120, 0, 0},
        {"description", JSON_STRING, false, 0, DESCRIPTION_MAX, 0, 0},
        {"price", JSON_OBJECT, true, 0, 0, 0, 0},
        {"vat_rate_id", JSON_STRING, false, 0, 0, 0, 0},
        {"brand_id", JSON_STRING, false, 0, 0, 0, 0},
        {"type_id", JSON_STRING, false, 0, 0, 0, 0},
        {"category_ids", JSON_ARRAY, false, 0, 0, 0, 0},
        {"catalog_ids", JSON_ARRAY, false, 0, 0, 0, 0},
        {"attributes", JSON_OBJECT, false, 0, 0, 0, 0},
        {"active", JSON_TRUE, false, 0, 0, 0, 0},
        {"low_threshold", JSON_INTEGER, false, 0, 0, 0, CATALOG_QUANTITY_MAX},
        {"on_hand", JSON_INTEGER, false, 0, 0, 0, CATALOG_QUANTITY_MAX},
    };
    static const char *const nullable[] = {"vat_rate_id", "brand_id", "type_id"};
    size_t field_count = sizeof fields / sizeof fields[0] - (with_stock ? 0 : 1);
    json_t *checked = json_copy((json_t *)doc); /* shallow: without the null ids */
    int rc = 0;

    if (!checked)
        return AG_ENOMEM;
    for (size_t i = 0; i < sizeof nullable / sizeof nullable[0]; i++)
        if (json_is_null(json_object_get(checked, nullable[i])))
            json_object_del(checked, nullable[i]);
    if (!with_stock && json_object_get(checked, "on_hand")) {
        kit_req_invalid(req, "on_hand",
                        "is changed through POST /api/v1/products/{id}/stock, not here");
        json_object_del(checked, "on_hand");
    }
    kit_req_fields(req, checked, fields, field_count);
    json_decref(checked);

    in->sku = json_string_value(json_object_get(doc, "sku"));
    in->name = json_string_value(json_object_get(doc, "name"));
    in->description = json_string_value(json_object_get(doc, "description"));
    if (!in->description)
        in->description = "";
    if (in->sku && !sku_valid(in->sku))
        kit_req_invalid(req, "sku", "must be letters and digits, then also '.', '_' or '-'");
    const char *slug = json_string_value(json_object_get(doc, "slug"));
    if (slug && !catalog_slug_valid(slug))
        kit_req_invalid(req, "slug", "must be lowercase letters and digits in words joined by '-'");
    else if (slug)
        snprintf(in->slug, sizeof in->slug, "%s", slug);
    else if (in->name && !catalog_slugify(in->name, in->slug))
        kit_req_invalid(req, "slug", "cannot be made from this name: give one");
    if (json_is_object(json_object_get(doc, "price")))
        input_price(req, json_object_get(doc, "price"), in);
    input_id(req, doc, "vat_rate_id", &in->vat_rate_id);
    input_id(req, doc, "brand_id", &in->brand_id);
    input_id(req, doc, "type_id", &in->type_id);
    rc = input_ids(req, doc, "category_ids", &in->category_ids, &in->category_count);
    if (rc == 0)
        rc = input_ids(req, doc, "catalog_ids", &in->catalog_ids, &in->catalog_count);
    if (rc == 0)
        rc = input_attributes(req, doc, in);
    in->active = !json_is_false(json_object_get(doc, "active"));
    in->on_hand = json_integer_value(json_object_get(doc, "on_hand"));
    in->low_threshold = json_is_integer(json_object_get(doc, "low_threshold"))
                            ? json_integer_value(json_object_get(doc, "low_threshold"))
                            : catalog_ctx_of(req)->default_low_threshold;
    return rc;
}

/*
 * Checks, inside the transaction, that every id in names an object of the tenant, and reads the
 * brand's name. Violations become errors[] entries. Returns 0 or a database code.
 */
int product_input_check_refs(struct kit_req *req, struct kit_db *db, struct product_input *in,
                             struct ag_err *err)
{
    static const char sql_sqlite[] =
        "SELECT (SELECT COUNT(*) FROM vat_rates WHERE tenant = $1 AND id = $2), "
        "(SELECT name FROM brands WHERE tenant = $1 AND id = $3), "
        "(SELECT COUNT(*) FROM types WHERE tenant = $1 AND id = $4), "
        "(SELECT COUNT(*) FROM categories WHERE tenant = $1 AND id IN "
        "(SELECT value FROM json_each($5))), "
        "(SELECT COUNT(*) FROM catalogs WHERE tenant = $1 AND id IN "
        "(SELECT value FROM json_each($6)))";
    static const char sql_postgres[] =
        "SELECT (SELECT COUNT(*) FROM vat_rates WHERE tenant = $1 AND id = $2), "
        "(SELECT name FROM brands WHERE tenant = $1 AND id = $3), "
        "(SELECT COUNT(*) FROM types WHERE tenant = $1 AND id = $4), "
        "(SELECT COUNT(*) FROM categories WHERE tenant = $1 AND id IN "
        "(SELECT json_array_elements_text($5::json))), "
        "(SELECT COUNT(*) FROM catalogs WHERE tenant = $1 AND id IN "
        "(SELECT json_array_elements_text($6::json)))";
    struct kit_db_rows *rows = NULL;
    in->brand_name[0] = '\0';
    if (!in->vat_rate_id && !in->brand_id && !in->type_id && !in->category_count &&
        !in->catalog_count)
        return 0;
    int rc =
        kit_db_query(db, kit_db_driver(db) == KIT_DB_SQLITE ? sql_sqlite : sql_postgres,
                     KIT_DB_PARAMS(KIT_DB_TEXT(kit_req_tenant(req)), KIT_DB_TEXT(in->vat_rate_id),
                                   KIT_DB_TEXT(in->brand_id), KIT_DB_TEXT(in->type_id),
                                   KIT_DB_TEXT(in->category_ids), KIT_DB_TEXT(in->catalog_ids)),
                     1, &rows, err);
    if (rc < 0)
        return rc;
    if (in->vat_rate_id && kit_db_rows_int(rows, 0, 0) == 0)
        kit_req_invalid(req, "vat_rate_id", "names no VAT rate of this tenant");
    if (in->brand_id && kit_db_rows_null(rows, 0, 1))
        kit_req_invalid(req, "brand_id", "names no brand of this tenant");
    else if (in->brand_id)
        snprintf(in->brand_name, sizeof in->brand_name, "%s", kit_db_rows_text(rows, 0, 1, NULL));
    if (in->type_id && kit_db_rows_int(rows, 0, 2) == 0)
        kit_req_invalid(req, "type_id", "names no product type of this tenant");
    if ((size_t)kit_db_rows_int(rows, 0, 3) != in->category_count)
        kit_req_invalid(req, "category_ids", "must name categories of this tenant");
    if ((size_t)kit_db_rows_int(rows, 0, 4) != in->catalog_count)
        kit_req_invalid(req, "catalog_ids", "must name catalogs of this tenant");
    kit_db_rows_free(rows);
    return 0;
}
