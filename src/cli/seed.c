/* `agora seed`: loads a demo catalog through the gateway's public API, idempotently. */
#include "cli/seed.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli/cli_util.h"
#include "cli/http_call.h"
#include "cli/platform.h"
#include "cli/token.h"
#include "core/buf.h"
#include "core/banned.h"

enum {
    CALL_TIMEOUT_MS = 30 * 1000,
    LIST_PAGE = 100,       /* per_page of the list calls: the API's largest */
    LIST_PAGES_MAX = 1000, /* a bound on a listing (100,000 objects of one kind) */
    PROGRESS_EVERY_MS = 2000,
    CONCURRENCY_MAX = 64,
    TOKEN_TTL_S = 6 * 3600, /* long enough for --products 1000000 on a slow machine */
    TRANSIENT_ATTEMPTS = 5, /* tries of a call the gateway answers 502, 503 or 504 */
    TRANSIENT_FIRST_MS = 200,
};

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/*
 * The gateway's answers when an upstream is momentarily away (starting, restarting). Trying
 * again is safe for every call of the seed: a create that did happen answers 409 the next time.
 */
static bool transient(int status)
{
    return status == 502 || status == 503 || status == 504;
}

static void sleep_ms(int64_t ms)
{
    struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0) {
    }
}

static bool cancelled(const struct seed_options *opt)
{
    return opt->cancel && atomic_load(opt->cancel);
}

/*
 * Turns a reply that is not the expected answer into the run's error: AG_EUNAVAIL when no
 * answer came (the gateway is down or unreachable), else AG_EPROTO naming the call.
 */
static int call_failed(const char *method, const char *path, const struct http_reply *reply,
                       struct ag_err *err)
{
    char why[300];
    http_reply_describe(reply, why, sizeof(why));
    if (reply->status == 0)
        return ag_err_set(err, AG_EUNAVAIL, "cannot reach the gateway: %s", why);
    return ag_err_set(err, AG_EPROTO, "%s %s: %s", method, path, why);
}

/*
 * One blocking call; any answer is returned in *reply (but 502, 503 and 504 are tried again a
 * few times first), no answer is an error.
 */
static int call(struct http_session *s, const char *method, const char *path, const json_t *body,
                struct http_reply *reply, struct ag_err *err)
{
    struct ag_err call_err = {0};
    int rc = http_session_call(s, method, path, body, reply, &call_err);
    for (int attempt = 1; rc == 0 && transient(reply->status) && attempt < TRANSIENT_ATTEMPTS;
         attempt++) {
        http_reply_release(reply);
        sleep_ms((int64_t)TRANSIENT_FIRST_MS << (attempt - 1));
        rc = http_session_call(s, method, path, body, reply, &call_err);
    }
    if (rc == AG_EUNAVAIL)
        return call_failed(method, path, reply, err);
    if (rc == AG_EINVAL) /* the paths are ours: only the gateway's address can be at fault */
        return ag_err_set(err, AG_EUNAVAIL, "cannot reach the gateway: %s", call_err.msg);
    if (rc < 0)
        return ag_err_set(err, rc, "%s %s: %s", method, path, call_err.msg);
    return 0;
}

/* ---- classifications ---- */

/* The key an object is found by: its slug, or the name for VAT rates (which have no slug). */
static const char *taxon_key(const struct seed_taxon *t)
{
    return t->slug ? t->slug : t->name;
}

/*
 * Lists every object of kind the tenant has, page by page, and notes the id of each one the
 * demo catalog names (matched by slug, VAT rates by name). Returns 0 or a run error.
 */
static int taxonomy_list(struct http_session *s, enum seed_kind kind, struct seed_ids *ids,
                         struct ag_err *err)
{
    const struct seed_resource *res = seed_resource(kind);
    const char *field = kind == SEED_VAT_RATE ? "name" : "slug";
    for (int page = 1; page <= LIST_PAGES_MAX; page++) {
        char path[200];
        struct http_reply reply;
        snprintf(path, sizeof(path), "%s?page=%d&per_page=%d", res->path, page, LIST_PAGE);
        int rc = call(s, "GET", path, NULL, &reply, err);
        if (rc < 0)
            return rc;
        json_t *items = json_object_get(reply.json, "items");
        if (reply.status != 200 || !json_is_array(items)) {
            rc = reply.status == 200
                     ? ag_err_set(err, AG_EPROTO, "GET %s: the answer has no items list", path)
                     : call_failed("GET", path, &reply, err);
            http_reply_release(&reply);
            return rc;
        }
        size_t i;
        json_t *item;
        json_array_foreach(items, i, item)
        {
            const char *key = json_string_value(json_object_get(item, field));
            const char *id = json_string_value(json_object_get(item, "id"));
            for (size_t k = 0; key && id && k < res->count; k++)
                if (strcmp(key, taxon_key(&res->items[k])) == 0 && strlen(id) < SEED_ID_SIZE)
                    memcpy(ids->id[kind][k], id, strlen(id) + 1);
        }
        size_t got = json_array_size(items);
        http_reply_release(&reply);
        if (got < LIST_PAGE)
            return 0;
    }
    return 0;
}

/* The body creating taxon t of kind (its parent's id must be known for a sub-category). */
static json_t *taxon_body(enum seed_kind kind, size_t index, const struct seed_ids *ids)
{
    const struct seed_taxon *t = &seed_resource(kind)->items[index];
    if (kind == SEED_VAT_RATE)
        return json_pack("{s:s, s:i}", "name", t->name, "rate_bp", t->rate_bp);
    json_t *body = json_pack("{s:s, s:s, s:s}", "name", t->name, "slug", t->slug, "description",
                             t->description);
    if (body && kind == SEED_CATEGORY && t->parent >= 0 &&
        json_object_set_new(body, "parent_id", json_string(ids->id[kind][t->parent])) < 0) {
        json_decref(body);
        return NULL;
    }
    return body;
}

/*
 * Makes sure every object of kind exists: reuses those listed, creates the others. A 409 means
 * another run created it meanwhile: the list is read again and the object must be in it.
 */
static int taxonomy_ensure(struct http_session *s, enum seed_kind kind, struct seed_ids *ids,
                           struct seed_result *res, struct ag_err *err)
{
    const struct seed_resource *r = seed_resource(kind);
    int rc = taxonomy_list(s, kind, ids, err);
    for (size_t k = 0; rc == 0 && k < r->count; k++) {
        if (ids->id[kind][k][0]) {
            res->found[kind]++;
            continue;
        }
        struct http_reply reply;
        json_t *body = taxon_body(kind, k, ids);
        if (!body)
            return ag_err_set(err, AG_ENOMEM, "out of memory");
        rc = call(s, "POST", r->path, body, &reply, err);
        json_decref(body);
        if (rc < 0)
            return rc;
        const char *id = json_string_value(json_object_get(reply.json, "id"));
        if ((reply.status == 201 || reply.status == 200) && id && strlen(id) < SEED_ID_SIZE) {
            memcpy(ids->id[kind][k], id, strlen(id) + 1);
            res->created[kind]++;
        } else if (reply.status == 409) {
            if ((rc = taxonomy_list(s, kind, ids, err)) == 0 && !ids->id[kind][k][0])
                rc = ag_err_set(err, AG_EPROTO,
                                "POST %s: 409 for %s \"%s\", which the list does not show", r->path,
                                r->label, taxon_key(&r->items[k]));
            res->found[kind] += rc == 0;
        } else {
            rc = reply.status == 201
                     ? ag_err_set(err, AG_EPROTO, "POST %s: no id in the answer", r->path)
                     : call_failed("POST", r->path, &reply, err);
        }
        http_reply_release(&reply);
    }
    return rc;
}

/* ---- products, C at a time ---- */

struct product_run {
    const struct seed_options *opt;
    struct seed_result *res;
    const struct seed_ids *ids;
    uint64_t next; /* the next product index to create */
    int64_t started_ms, progress_ms;
    int rc; /* the first failure: no new calls after it */
    struct ag_err *err;
};

/* One of the C chains of calls: creates a product, then the next free index, and so on. */
struct product_slot {
    struct product_run *run;
    uint64_t index;
    int attempts; /* of this index, counting 502/503/504 answers */
};

static void product_done(struct http_session *s, void *ctx, struct http_reply *reply);

/* Starts (again) the slot's product, unless something failed or the run is cancelled. */
static void product_start(struct http_session *s, struct product_slot *slot)
{
    struct product_run *run = slot->run;
    if (run->rc < 0)
        return;
    if (cancelled(run->opt)) {
        run->rc = ag_err_set(run->err, AG_ECLOSED, "cancelled");
        return;
    }
    json_t *body = seed_product_json(slot->index, run->ids);
    struct ag_err start_err = {0};
    int rc = body ? http_session_start(s, "POST", "/api/v1/products", body, product_done, slot,
                                       &start_err)
                  : ag_err_set(&start_err, AG_ENOMEM, "out of memory");
    json_decref(body);
    if (rc < 0)
        run->rc = ag_err_set(run->err, rc == AG_EINVAL ? AG_EUNAVAIL : rc,
                             "POST /api/v1/products: %s", start_err.msg);
}

/* Starts the slot's next product, if any is left. */
static void product_start_next(struct http_session *s, struct product_slot *slot)
{
    struct product_run *run = slot->run;
    if (run->rc < 0 || run->next >= run->opt->products)
        return;
    slot->index = run->next++;
    slot->attempts = 0;
    product_start(s, slot);
}

static void product_progress(struct product_run *run)
{
    int64_t now = mono_ms();
    if (!run->opt->progress || now - run->progress_ms < PROGRESS_EVERY_MS)
        return;
    run->progress_ms = now;
    uint64_t done = run->res->products_created + run->res->products_found;
    double seconds = (double)(now - run->started_ms) / 1000.0;
    fprintf(stderr, "agora seed: %" PRIu64 "/%" PRIu64 " products (%.0f/s)\n", done,
            run->opt->products, seconds > 0 ? (double)done / seconds : 0.0);
}

static void product_done(struct http_session *s, void *ctx, struct http_reply *reply)
{
    struct product_slot *slot = ctx;
    struct product_run *run = slot->run;
    if (transient(reply->status) && ++slot->attempts < TRANSIENT_ATTEMPTS) {
        /* Rare (an upstream restarting): a short pause of the whole run is acceptable. */
        sleep_ms((int64_t)TRANSIENT_FIRST_MS << (slot->attempts - 1));
        product_start(s, slot);
        return;
    }
    if (reply->status == 201 || reply->status == 200) {
        run->res->products_created++;
    } else if (reply->status == 409) {
        run->res->products_found++; /* the SKU is there: an earlier seed made it */
    } else if (run->rc == 0) {
        char what[80];
        snprintf(what, sizeof(what), "/api/v1/products (DEMO-%06" PRIu64 ")", slot->index + 1);
        run->rc = call_failed("POST", what, reply, run->err);
    }
    product_progress(run);
    product_start_next(s, slot);
}

static int products_create(struct http_session *s, const struct seed_options *opt,
                           const struct seed_ids *ids, struct seed_result *res, struct ag_err *err)
{
    struct product_run run = {opt, res, ids, 0, mono_ms(), mono_ms(), 0, err};
    struct product_slot slots[CONCURRENCY_MAX];
    for (unsigned i = 0; i < opt->concurrency; i++) {
        slots[i] = (struct product_slot){&run, 0, 0};
        product_start_next(s, &slots[i]);
    }
    int rc = http_session_wait(s);
    res->product_seconds = (double)(mono_ms() - run.started_ms) / 1000.0;
    if (rc < 0)
        return ag_err_set(err, rc, "the event loop failed");
    return run.rc;
}

/* ---- the run ---- */

/* How many products the tenant has (GET /api/v1/products?per_page=1, its total). */
static int products_total(struct http_session *s, uint64_t *total, struct ag_err *err)
{
    static const char path[] = "/api/v1/products?per_page=1";
    struct http_reply reply;
    int rc = call(s, "GET", path, NULL, &reply, err);
    if (rc < 0)
        return rc;
    json_t *value = json_object_get(reply.json, "total");
    if (reply.status != 200)
        rc = call_failed("GET", path, &reply, err);
    else if (!json_is_integer(value) || json_integer_value(value) < 0)
        rc = ag_err_set(err, AG_EPROTO, "GET %s: the answer has no total", path);
    else
        *total = (uint64_t)json_integer_value(value);
    http_reply_release(&reply);
    return rc;
}

int seed_run(const struct seed_options *opt, struct seed_result *res, struct ag_err *err)
{
    struct http_session *s = NULL;
    struct seed_ids *ids = NULL;
    int64_t started = mono_ms();
    int rc = 0;
    memset(res, 0, sizeof(*res));
    if (opt->products < 1 || opt->products > SEED_PRODUCTS_MAX || opt->concurrency < 1 ||
        opt->concurrency > CONCURRENCY_MAX)
        return ag_err_set(err, AG_EINVAL, "products must be 1..%d, concurrency 1..%d",
                          SEED_PRODUCTS_MAX, CONCURRENCY_MAX);
    ids = calloc(1, sizeof(*ids));
    if (!ids)
        return ag_err_set(err, AG_ENOMEM, "out of memory");
    if ((rc = http_session_new(opt->url, opt->token, CALL_TIMEOUT_MS, &s, err)) < 0)
        goto out;
    if (opt->only_if_empty) {
        if ((rc = products_total(s, &res->existing_total, err)) < 0)
            goto out;
        if (res->existing_total > 0) {
            res->skipped = true;
            goto out;
        }
    }
    /* In this order: a product refers to every kind, a sub-category to its parent. */
    for (int kind = 0; kind < SEED_KIND_COUNT && rc == 0; kind++) {
        if (cancelled(opt))
            rc = ag_err_set(err, AG_ECLOSED, "cancelled");
        else
            rc = taxonomy_ensure(s, (enum seed_kind)kind, ids, res, err);
    }
    if (rc == 0)
        rc = products_create(s, opt, ids, res, err);
out:
    res->seconds = (double)(mono_ms() - started) / 1000.0;
    http_session_free(s);
    free(ids);
    return rc;
}

void seed_summary(const struct seed_result *res, char *out, size_t size)
{
    if (res->skipped) {
        snprintf(out, size, "not seeding: the catalog has %" PRIu64 " products already",
                 res->existing_total);
        return;
    }
    uint64_t total[SEED_KIND_COUNT], created = res->products_created, found = 0;
    for (int k = 0; k < SEED_KIND_COUNT; k++) {
        total[k] = res->created[k] + res->found[k];
        created += res->created[k];
        found += res->found[k];
    }
    double rate = res->product_seconds > 0
                      ? (double)(res->products_created + res->products_found) / res->product_seconds
                      : 0.0;
    snprintf(out, size,
             "seeded %" PRIu64 " products (%" PRIu64 " already there), %" PRIu64
             " categories, %" PRIu64 " brands, %" PRIu64 " types, %" PRIu64 " catalogs, %" PRIu64
             " VAT rates (%" PRIu64 " new, %" PRIu64 " already there) in %.1f s, %.0f products/s%s",
             res->products_created, res->products_found, total[SEED_CATEGORY], total[SEED_BRAND],
             total[SEED_TYPE], total[SEED_CATALOG], total[SEED_VAT_RATE],
             created - res->products_created, found, res->seconds, rate,
             created == 0 ? "; nothing to add: the catalog was seeded already" : "");
}

/* ---- the command ---- */

void cmd_seed_help(void)
{
    fputs("usage: agora seed [--config FILE] [--url URL] [--products N] [--tenant T]\n"
          "                  [--concurrency C]\n"
          "\n"
          "Loads a demo catalog through the gateway's public API: 3 VAT rates (20 %, 10 %,\n"
          "5.5 %), 12 brands, 4 types, 2 catalogs, 23 categories in a two-level tree, then N\n"
          "products with generated names, descriptions, EUR prices, attributes and stock (some\n"
          "sold out, some low). Product i is the same in every run (SKU DEMO-00000i), and what\n"
          "exists already is reused (classifications by slug, VAT rates by name, products by\n"
          "SKU), so running it again adds nothing. Calls carry an admin token minted the way\n"
          "agora token does. Progress goes to stderr every 2 s, the summary line to stdout.\n"
          "\n"
          "  --config FILE      the platform file: keys, and the gateway URL "
          "(default " CLI_DEFAULT_CONFIG ")\n"
          "  --url URL          the gateway (default: the url of its `gateway` process, else\n"
          "                     http://127.0.0.1:8080)\n"
          "  --products N       how many products, 1 to 1000000 (default 240)\n"
          "  --tenant T         the tenant to seed (default: none, the services' default tenant)\n"
          "  --concurrency C    product creations in flight, 1 to 64 (default 4)\n"
          "\n"
          "Exit status: 0, 1 when the gateway is unreachable or refuses a call (the problem's\n"
          "detail is printed), 2 for usage.\n",
          stdout);
}

static int parse_count(const char *text, uint64_t max, uint64_t *out)
{
    return ag_str_to_u64(ag_str_from_cstr(text), max, out) < 0 || *out == 0 ? -1 : 0;
}

const char *seed_gateway_url(const struct platform *p)
{
    const struct platform_process *gateway = platform_find(p, "gateway");
    return gateway && gateway->url ? gateway->url : "http://127.0.0.1:8080";
}

int cmd_seed(int argc, char **argv)
{
    const char *config = CLI_DEFAULT_CONFIG, *url = NULL, *tenant = NULL;
    const char *products_text = NULL, *concurrency_text = NULL;
    struct {
        const char *name;
        const char **value;
    } options[] = {{"--config", &config},
                   {"--url", &url},
                   {"--products", &products_text},
                   {"--tenant", &tenant},
                   {"--concurrency", &concurrency_text}};
    for (int i = 1; i < argc; i++) {
        if (cli_is_help(argv[i])) {
            cmd_seed_help();
            return CLI_EXIT_OK;
        }
        int r = 0;
        for (size_t k = 0; k < sizeof(options) / sizeof(options[0]) && r == 0; k++)
            r = cli_option("seed", argc, argv, &i, options[k].name, options[k].value);
        if (r < 0)
            return CLI_EXIT_USAGE;
        if (r == 0)
            return cli_usage("seed", "unknown argument %s", argv[i]);
    }
    uint64_t products = SEED_DEFAULT_PRODUCTS, concurrency = SEED_DEFAULT_CONCURRENCY;
    if (products_text && parse_count(products_text, SEED_PRODUCTS_MAX, &products) < 0)
        return cli_usage("seed", "--products %s: expected a number from 1 to %d", products_text,
                         SEED_PRODUCTS_MAX);
    if (concurrency_text && parse_count(concurrency_text, CONCURRENCY_MAX, &concurrency) < 0)
        return cli_usage("seed", "--concurrency %s: expected a number from 1 to %d",
                         concurrency_text, CONCURRENCY_MAX);
    if (tenant && !*tenant)
        return cli_usage("seed", "--tenant: expected a tenant name");

    struct platform platform;
    struct ag_err err = {0};
    struct seed_result res;
    char *token = NULL, summary[512];
    int rc = CLI_EXIT_OK;
    if (platform_load(&platform, config, &err) < 0)
        return cli_fail("%s", err.msg);
    if (!url)
        url = seed_gateway_url(&platform);
    if (token_mint_admin(&platform, "agora-seed", tenant, TOKEN_TTL_S, &token, &err) < 0) {
        rc = cli_fail("%s", err.msg);
        goto out;
    }
    struct seed_options opt = {.url = url,
                               .token = token,
                               .products = products,
                               .concurrency = (unsigned)concurrency,
                               .progress = true};
    if (seed_run(&opt, &res, &err) < 0) {
        rc = err.code == AG_EINVAL ? cli_usage("seed", "%s", err.msg)
                                   : cli_fail("seed failed: %s", err.msg);
        goto out;
    }
    seed_summary(&res, summary, sizeof(summary));
    printf("%s\n", summary);
out:
    free(token);
    platform_release(&platform);
    return rc;
}
