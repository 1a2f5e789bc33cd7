/* Product images: raw uploads checked by their magic bytes, kept in the blob store, served with
 * an ETag. The row and the blob are two stores: the blob is written first and removed again when
 * the row's transaction fails, so a row never names a missing blob. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "catalog.h"
#include "core/digest.h"
#include "core/log.h"
#include "core/banned.h"

enum {
    IMAGES_PER_PRODUCT_MAX = 20,
    IMAGE_KEY_MAX = 160,
    IMAGE_URL_MAX = 128,
    TENANT_HASH_HEX = 16, /* the tenant's part of a blob key: a hash prefix, since a tenant
                             name may hold bytes that a key may not */
};

struct image_type {
    const char *media_type;
    const char *name; /* for messages */
    bool (*matches)(const unsigned char *p, size_t len);
};

static uint32_t be32(const unsigned char *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static uint32_t le32(const unsigned char *p)
{
    return (uint32_t)p[3] << 24 | (uint32_t)p[2] << 16 | (uint32_t)p[1] << 8 | p[0];
}

/* The PNG signature, then the IHDR chunk first (length 13), with a non-zero width and height. */
static bool image_is_png(const unsigned char *p, size_t len)
{
    static const unsigned char signature[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    if (len < 8 + 8 + 13 + 4 || memcmp(p, signature, 8) != 0)
        return false;
    return be32(p + 8) == 13 && memcmp(p + 12, "IHDR", 4) == 0 && be32(p + 16) != 0 &&
           be32(p + 20) != 0;
}

/* SOI and the first marker's FF (FF D8 FF), and the EOI marker (FF D9) as the last bytes. */
static bool image_is_jpeg(const unsigned char *p, size_t len)
{
    return len >= 5 && p[0] == 0xff && p[1] == 0xd8 && p[2] == 0xff && p[len - 2] == 0xff &&
           p[len - 1] == 0xd9;
}

/* "RIFF", the RIFF size (little-endian: the bytes after these 8), "WEBP", and a VP8 chunk. */
static bool image_is_webp(const unsigned char *p, size_t len)
{
    if (len < 20 || memcmp(p, "RIFF", 4) != 0 || memcmp(p + 8, "WEBP", 4) != 0)
        return false;
    if ((uint64_t)le32(p + 4) != (uint64_t)len - 8)
        return false;
    return memcmp(p + 12, "VP8 ", 4) == 0 || memcmp(p + 12, "VP8L", 4) == 0 ||
           memcmp(p + 12, "VP8X", 4) == 0;
}

static const struct image_type image_types[] = {
    {"image/png", "PNG", image_is_png},
    {"image/jpeg", "JPEG", image_is_jpeg},
    {"image/webp", "WebP", image_is_webp},
};

/* The accepted type named by a Content-Type field (parameters ignored), or NULL. */
static const struct image_type *image_type_of(const char *content_type)
{
    struct ag_str media;
    if (!content_type)
        return NULL;
    ag_str_split(ag_str_from_cstr(content_type), ';', &media);
    media = ag_str_trim_ows(media);
    for (size_t i = 0; i < sizeof image_types / sizeof image_types[0]; i++)
        if (ag_str_eq_nocase(media, ag_str_from_cstr(image_types[i].media_type)))
            return &image_types[i];
    return NULL;
}

/* "products/<tenant hash prefix>/<product id>/<image id>". */
static int image_blob_key(const char *tenant, const char *product_id, const char *image_id,
                          char out[IMAGE_KEY_MAX])
{
    char tenant_hash[AG_SHA256_HEX_LEN + 1];
    int rc = ag_sha256_hex(tenant, strlen(tenant), tenant_hash);
    if (rc < 0)
        return rc;
    snprintf(out, IMAGE_KEY_MAX, "products/%.*s/%s/%s", TENANT_HASH_HEX, tenant_hash, product_id,
             image_id);
    return 0;
}

/* Writes body to the blob store under key; nothing is left under key when it fails. */
static int image_blob_put(struct kit_blob_store *blobs, const char *key, struct ag_str body,
                          struct ag_err *err)
{
    struct kit_blob_writer *w = NULL;
    int rc = kit_blob_begin(blobs, key, &w, err);
    if (rc == 0)
        rc = kit_blob_write(w, body.p, body.len, err);
    if (rc < 0) {
        kit_blob_abort(w);
        return rc;
    }
    return kit_blob_commit(w, err);
}

/*
 * Inside tx: marks the product changed (its row lock on PostgreSQL also serialises concurrent
 * image changes of one product, so the per-product limit holds). Returns 1, 0 when the product
 * is not in the tenant, or a kit_db_exec code.
 */
static int image_touch_product(struct kit_db *tx, const char *tenant, const char *product_id,
                               int64_t now, struct ag_err *err)
{
    return kit_db_exec(tx, "UPDATE products SET updated_at = $3 WHERE id = $1 AND tenant = $2",
                       KIT_DB_PARAMS(KIT_DB_TEXT(product_id), KIT_DB_TEXT(tenant), KIT_DB_INT(now)),
                       err);
}

/* The upload's checks that need no database: 415, 413, 422. Answers and returns AG_EINVAL. */
static int image_check_body(struct kit_req *req, const struct image_type **type)
{
    struct ag_str body = kit_req_body(req);
    *type = image_type_of(kit_req_header(req, "Content-Type"));
    if (!*type) {
        kit_resp_problem(req, 415, "an image must be sent as image/png, image/jpeg or image/webp");
        return AG_EINVAL;
    }
    if (body.len == 0) {
        kit_resp_problem(req, 422, "the image is empty");
        return AG_EINVAL;
    }
    if (body.len > CATALOG_IMAGE_MAX) {
        kit_resp_problem(req, 413, "an image is at most %d bytes; this one is %zu",
                         CATALOG_IMAGE_MAX, body.len);
        return AG_EINVAL;
    }
    if (!(*type)->matches((const unsigned char *)body.p, body.len)) {
        kit_resp_problem(req, 422, "the body is not a %s image (its bytes do not match %s)",
                         (*type)->name, (*type)->media_type);
        return AG_EINVAL;
    }
    return 0;
}

int images_upload(struct kit_req *req)
{
    static const char sql_count[] =
        "SELECT (SELECT COUNT(*) FROM product_images i WHERE i.product_id = p.id) "
        "FROM products p WHERE p.id = $1 AND p.tenant = $2";
    static const char sql_insert[] =
        "INSERT INTO product_images (id, tenant, product_id, content_type, size, etag, blob_key, "
        "position, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)";
    struct catalog_ctx *ctx = catalog_ctx_of(req);
    struct kit_db *db = kit_req_db(req);
    const char *tenant = kit_req_tenant(req);
    const struct image_type *type = NULL;
    struct ag_str body = kit_req_body(req);
    struct ag_err err = {0};
    char image_id[KIT_ID_LEN + 1], key[IMAGE_KEY_MAX], etag[AG_SHA256_HEX_LEN + 1];
    char url[IMAGE_URL_MAX], created[32];
    const char *product_id;
    int64_t count = 0, position = 0, now = kit_now_ms();
    bool blob_written = false;
    int rc;

    rc = kit_req_param_id(req, "id", &product_id);
    if (rc < 0)
        return rc;
    rc = image_check_body(req, &type);
    if (rc < 0)
        return rc;

    /* Refuse what is sure to fail before writing megabytes; the transaction checks again. */
    struct kit_db_rows *rows = NULL;
    rc = kit_db_query(db, sql_count, KIT_DB_PARAMS(KIT_DB_TEXT(product_id), KIT_DB_TEXT(tenant)), 1,
                      &rows, &err);
    if (rc < 0)
        return kit_req_db_fail(req, rc, &err);
    count = rc > 0 ? kit_db_rows_int(rows, 0, 0) : 0;
    kit_db_rows_free(rows);
    if (rc == 0)
        return kit_resp_problem(req, 404, "no product %s", product_id);
    if (count >= IMAGES_PER_PRODUCT_MAX)
        return kit_resp_problem(req, 409, "product %s already has %lld images, the most allowed",
                                product_id, (long long)count);

    kit_id_new(image_id);
    rc = ag_sha256_hex(body.p, body.len, etag);
    if (rc == 0)
        rc = image_blob_key(tenant, product_id, image_id, key);
    if (rc < 0)
        return rc;
    rc = image_blob_put(ctx->blobs, key, body, &err);
    if (rc < 0)
        return kit_req_db_fail(req, rc, &err);
    blob_written = true;

    rc = kit_db_begin(db, &err);
    if (rc < 0)
        goto db_fail;
    rc = image_touch_product(db, tenant, product_id, now, &err);
    if (rc < 0)
        goto db_fail;
    if (rc == 0) { /* deleted since the first look */
        kit_db_rollback(db);
        rc = kit_resp_problem(req, 404, "no product %s", product_id);
        goto out;
    }
    rows = NULL;
    rc = kit_db_query(db,
                      "SELECT COUNT(*), COALESCE(MAX(position) + 1, 0) FROM product_images "
                      "WHERE product_id = $1",
                      KIT_DB_PARAMS(KIT_DB_TEXT(product_id)), 1, &rows, &err);
    if (rc > 0) {
        count = kit_db_rows_int(rows, 0, 0);
        position = kit_db_rows_int(rows, 0, 1);
    }
    kit_db_rows_free(rows);
    if (rc < 0)
        goto db_fail;
    if (count >= IMAGES_PER_PRODUCT_MAX) {
        kit_db_rollback(db);
        rc = kit_resp_problem(req, 409, "product %s already has %lld images, the most allowed",
                              product_id, (long long)count);
        goto out;
    }
    rc = kit_db_exec(db, sql_insert,
                     KIT_DB_PARAMS(KIT_DB_TEXT(image_id), KIT_DB_TEXT(tenant),
                                   KIT_DB_TEXT(product_id), KIT_DB_TEXT(type->media_type),
                                   KIT_DB_INT(body.len), KIT_DB_TEXT(etag), KIT_DB_TEXT(key),
                                   KIT_DB_INT(position), KIT_DB_INT(now)),
                     &err);
    if (rc < 0)
        goto db_fail;
    rc = products_emit(db, tenant, product_id, "products.product.updated", NULL, &err);
    if (rc < 0)
        goto db_fail;
    rc = kit_db_commit(db, &err);
    if (rc < 0)
        goto db_fail;
    blob_written = false; /* the row owns it now */

    snprintf(url, sizeof url, "/api/v1/products/%s/images/%s", product_id, image_id);
    kit_time_rfc3339(now, created);
    rc = kit_resp_created(req, url,
                          json_pack("{s:s, s:s, s:I, s:s, s:s}", "id", image_id, "content_type",
                                    type->media_type, "size", (json_int_t)body.len, "url", url,
                                    "created_at", created));
    goto out;
db_fail:
    rc = kit_req_db_fail(req, rc, &err);
out:
    if (blob_written) {
        struct ag_err rm_err = {0};
        if (kit_blob_remove(ctx->blobs, key, &rm_err) < 0)
            ag_log_warn("an image blob outlived its failed upload", AG_F_STR("key", key),
                        AG_F_STR("error", rm_err.msg), AG_F_STR("request_id", kit_req_id(req)));
    }
    return rc;
}

/* True when an If-None-Match field value lists etag (quoted; weak or strong) or is "*". */
static bool image_etag_listed(const char *if_none_match, const char *quoted_etag)
{
    struct ag_str rest = ag_str_from_cstr(if_none_match), item;
    struct ag_str want = ag_str_from_cstr(quoted_etag);
    while (rest.p) {
        rest = ag_str_split(rest, ',', &item);
        item = ag_str_trim_ows(item);
        if (item.len == 1 && item.p[0] == '*')
            return true;
        if (item.len > 2 && item.p[0] == 'W' && item.p[1] == '/') {
            item.p += 2;
            item.len -= 2;
        }
        if (ag_str_eq(item, want))
            return true;
    }
    return false;
}

int images_get(struct kit_req *req)
{
    static const char sql[] = "SELECT content_type, etag, blob_key FROM product_images "
                              "WHERE id = $1 AND product_id = $2 AND tenant = $3";
    struct catalog_ctx *ctx = catalog_ctx_of(req);
    struct kit_db_rows *rows = NULL;
    struct ag_err err = {0};
    const char *product_id, *image_id, *if_none_match;
    char quoted_etag[AG_SHA256_HEX_LEN + 3];
    void *data = NULL;
    size_t len = 0;
    int rc;

    if ((rc = kit_req_param_id(req, "id", &product_id)) < 0 ||
        (rc = kit_req_param_id(req, "image_id", &image_id)) < 0)
        return rc;
    rc = kit_db_query(kit_req_db(req), sql,
                      KIT_DB_PARAMS(KIT_DB_TEXT(image_id), KIT_DB_TEXT(product_id),
                                    KIT_DB_TEXT(kit_req_tenant(req))),
                      1, &rows, &err);
    if (rc < 0)
        return kit_req_db_fail(req, rc, &err);
    if (rc == 0) {
        rc = kit_resp_problem(req, 404, "product %s has no image %s", product_id, image_id);
        goto out;
    }
    snprintf(quoted_etag, sizeof quoted_etag, "\"%s\"", kit_db_rows_text(rows, 0, 1, NULL));
    /* Image bytes never change under an id (a new upload is a new id): caches may keep them. */
    if ((rc = kit_resp_header(req, "ETag", quoted_etag)) < 0 ||
        (rc = kit_resp_header(req, "Cache-Control", "public, max-age=86400")) < 0)
        goto out;
    if_none_match = kit_req_header(req, "If-None-Match");
    if (if_none_match && image_etag_listed(if_none_match, quoted_etag)) {
        rc = kit_resp_status(req, 304);
        goto out;
    }
    rc = kit_blob_read(ctx->blobs, kit_db_rows_text(rows, 0, 2, NULL), CATALOG_IMAGE_MAX, &data,
                       &len, &err);
    if (rc < 0) {
        rc = kit_req_db_fail(req, rc, &err); /* a row without its blob: a 500 and a log line */
        goto out;
    }
    rc = kit_resp_raw(req, 200, kit_db_rows_text(rows, 0, 0, NULL), data, len);
out:
    free(data);
    kit_db_rows_free(rows);
    return rc;
}

int images_delete(struct kit_req *req)
{
    static const char sql_key[] = "SELECT blob_key FROM product_images "
                                  "WHERE id = $1 AND product_id = $2 AND tenant = $3";
    struct catalog_ctx *ctx = catalog_ctx_of(req);
    struct kit_db *db = kit_req_db(req);
    const char *tenant = kit_req_tenant(req);
    struct kit_db_rows *rows = NULL;
    struct ag_err err = {0};
    const char *product_id, *image_id;
    char key[IMAGE_KEY_MAX] = "";
    int rc;

    if ((rc = kit_req_param_id(req, "id", &product_id)) < 0 ||
        (rc = kit_req_param_id(req, "image_id", &image_id)) < 0)
        return rc;
    rc = kit_db_begin(db, &err);
    if (rc < 0)
        return kit_req_db_fail(req, rc, &err);
    /* The product's row first: the same lock order as an upload. */
    rc = image_touch_product(db, tenant, product_id, kit_now_ms(), &err);
    if (rc < 0)
        goto db_fail;
    if (rc > 0)
        rc = kit_db_query(
            db, sql_key,
            KIT_DB_PARAMS(KIT_DB_TEXT(image_id), KIT_DB_TEXT(product_id), KIT_DB_TEXT(tenant)), 1,
            &rows, &err);
    if (rc < 0)
        goto db_fail;
    if (rc == 0) {
        kit_db_rollback(db);
        rc = kit_resp_problem(req, 404, "product %s has no image %s", product_id, image_id);
        goto out;
    }
    snprintf(key, sizeof key, "%s", kit_db_rows_text(rows, 0, 0, NULL));
    rc = kit_db_exec(db, "DELETE FROM product_images WHERE id = $1 AND tenant = $2",
                     KIT_DB_PARAMS(KIT_DB_TEXT(image_id), KIT_DB_TEXT(tenant)), &err);
    if (rc >= 0)
        rc = products_emit(db, tenant, product_id, "products.product.updated", NULL, &err);
    if (rc >= 0)
        rc = kit_db_commit(db, &err);
    if (rc < 0)
        goto db_fail;
    /* The row is gone: a blob left behind by a failed remove is unreachable, only wasted. */
    if (kit_blob_remove(ctx->blobs, key, &err) < 0)
        ag_log_warn("an image blob outlived its row", AG_F_STR("key", key),
                    AG_F_STR("error", err.msg), AG_F_STR("request_id", kit_req_id(req)));
    rc = kit_resp_status(req, 204);
    goto out;
db_fail:
    rc = kit_req_db_fail(req, rc, &err);
out:
    kit_db_rows_free(rows);
    return rc;
}
