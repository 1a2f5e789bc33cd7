/* Unit tests for src/core/config.c and config_yaml.c: YAML loading, schema binding, messages. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/config.h"
#include "core/banned.h"

/* A gateway-shaped configuration: every field type, nested three levels. */
struct target {
    char *address;
    int64_t weight;
    bool backup;
};

struct upstream {
    char *name;
    struct target *targets;
    size_t ntargets;
    uint64_t connect_timeout_ms;
    uint64_t retries;
    int balance;
    char **tags;
    size_t ntags;
};

struct tls {
    bool enabled;
    char *cert;
    char *key_password;
};

struct server {
    char *listen;
    uint64_t read_timeout_ms;
    uint64_t max_body;
    int64_t workers;
    struct tls tls;
};

struct gateway {
    char *name;
    int log_level;
    double sample_rate;
    struct server server;
    char **admins;
    size_t nadmins;
    struct upstream *upstreams;
    size_t nupstreams;
};

static const char *const log_levels[] = {"debug", "info", "warn", "error", NULL};
static const char *const balances[] = {"round_robin", "least_conn", "random", NULL};

static const struct ag_config_field target_fields[] = {
    {.key = "address",
     .type = AG_CONFIG_ADDR,
     .offset = offsetof(struct target, address),
     .required = true,
     .help = "host:port of the target."},
    {.key = "weight",
     .type = AG_CONFIG_INT,
     .offset = offsetof(struct target, weight),
     .min = 0,
     .max = 1000,
     .def = "100",
     .help = "Share of requests relative to the other targets."},
    {.key = "backup",
     .type = AG_CONFIG_BOOL,
     .offset = offsetof(struct target, backup),
     .def = "false",
     .help = "Used only when every other target is down."},
    {0},
};
static const struct ag_config_schema target_schema = {"target", sizeof(struct target),
                                                      target_fields};

static const struct ag_config_field upstream_fields[] = {
    {.key = "targets",
     .type = AG_CONFIG_LIST,
     .offset = offsetof(struct upstream, targets),
     .count_offset = offsetof(struct upstream, ntargets),
     .umin = 1,
     .schema = &target_schema,
     .help = "Where requests go."},
    {.key = "connect_timeout",
     .type = AG_CONFIG_DURATION,
     .offset = offsetof(struct upstream, connect_timeout_ms),
     .umin = 1,
     .umax = 60000,
     .def = "2s",
     .help = "Time allowed to connect to one target."},
    {.key = "retries",
     .type = AG_CONFIG_UINT,
     .offset = offsetof(struct upstream, retries),
     .umax = 10,
     .def = "2",
     .help = "Attempts after the first."},
    {.key = "balance",
     .type = AG_CONFIG_ENUM,
     .offset = offsetof(struct upstream, balance),
     .names = balances,
     .def = "round_robin",
     .help = "How a target is picked."},
    {.key = "tags",
     .type = AG_CONFIG_STRINGS,
     .offset = offsetof(struct upstream, tags),
     .count_offset = offsetof(struct upstream, ntags),
     .help = "Labels for metrics."},
    {0},
};
static const struct ag_config_schema upstream_schema = {"upstream", sizeof(struct upstream),
                                                        upstream_fields};

static const struct ag_config_field tls_fields[] = {
    {.key = "enabled", .type = AG_CONFIG_BOOL, .offset = offsetof(struct tls, enabled)},
    {.key = "cert", .type = AG_CONFIG_STRING, .offset = offsetof(struct tls, cert)},
    {.key = "key_password",
     .type = AG_CONFIG_STRING,
     .offset = offsetof(struct tls, key_password),
     .secret = true},
    {0},
};
static const struct ag_config_schema tls_schema = {"tls", sizeof(struct tls), tls_fields};

static const struct ag_config_field server_fields[] = {
    {.key = "listen",
     .type = AG_CONFIG_ADDR,
     .offset = offsetof(struct server, listen),
     .required = true,
     .help = "Address the gateway accepts connections on."},
    {.key = "read_timeout",
     .type = AG_CONFIG_DURATION,
     .offset = offsetof(struct server, read_timeout_ms),
     .umin = 1,
     .umax = 3600000,
     .def = "30s",
     .help = "Longest wait for a request."},
    {.key = "max_body",
     .type = AG_CONFIG_SIZE,
     .offset = offsetof(struct server, max_body),
     .umax = UINT64_C(1) << 30,
     .def = "1MiB",
     .help = "Largest request body accepted."},
    {.key = "workers",
     .type = AG_CONFIG_INT,
     .offset = offsetof(struct server, workers),
     .min = 1,
     .max = 256,
     .def = "4",
     .help = "Event loop threads."},
    {.key = "tls",
     .type = AG_CONFIG_STRUCT,
     .offset = offsetof(struct server, tls),
     .schema = &tls_schema},
    {0},
};
static const struct ag_config_schema server_schema = {"server", sizeof(struct server),
                                                      server_fields};

static const struct ag_config_field gateway_fields[] = {
    {.key = "name",
     .type = AG_CONFIG_STRING,
     .offset = offsetof(struct gateway, name),
     .umin = 1,
     .umax = 64,
     .def = "gateway",
     .help = "Name in logs and metrics."},
    {.key = "log_level",
     .type = AG_CONFIG_ENUM,
     .offset = offsetof(struct gateway, log_level),
     .names = log_levels,
     .def = "info"},
    {.key = "sample_rate",
     .type = AG_CONFIG_DOUBLE,
     .offset = offsetof(struct gateway, sample_rate),
     .dmin = 0,
     .dmax = 1,
     .def = "0.5"},
    {.key = "server",
     .type = AG_CONFIG_STRUCT,
     .offset = offsetof(struct gateway, server),
     .schema = &server_schema},
    {.key = "admins",
     .type = AG_CONFIG_STRINGS,
     .offset = offsetof(struct gateway, admins),
     .count_offset = offsetof(struct gateway, nadmins)},
    {.key = "upstreams",
     .type = AG_CONFIG_MAP,
     .offset = offsetof(struct gateway, upstreams),
     .count_offset = offsetof(struct gateway, nupstreams),
     .name_offset = offsetof(struct upstream, name),
     .schema = &upstream_schema,
     .help = "Backends by name."},
    {0},
};
static const struct ag_config_schema gateway_schema = {"gateway", sizeof(struct gateway),
                                                       gateway_fields};

static const char full_yaml[] = "name: edge-1\n"
                                "log_level: warn\n"
                                "sample_rate: 0.25\n"
                                "server:\n"
                                "  listen: 0.0.0.0:8080\n"
                                "  read_timeout: 250ms\n"
                                "  max_body: 10MiB\n"
                                "  workers: 8\n"
                                "  tls:\n"
                                "    enabled: yes\n"
                                "    cert: /etc/agora/cert.pem\n"
                                "    key_password: hunter2\n"
                                "admins: [alice, \"bob\"]\n"
                                "upstreams:\n"
                                "  hello:\n"
                                "    targets:\n"
                                "      - address: 10.0.0.1:9000\n"
                                "        weight: 300\n"
                                "      - address: \"[::1]:9001\"\n"
                                "        backup: true\n"
                                "    connect_timeout: 1500\n"
                                "    balance: least_conn\n"
                                "    tags: [edge, blue]\n"
                                "  world:\n"
                                "    targets:\n"
                                "      - address: world.internal:80\n";

/* The environment for ${VAR} in tests: NAME=value pairs, no process state. */
static const char *test_env_lookup(void *ctx, const char *name)
{
    for (const char *const *kv = ctx; *kv; kv += 2)
        if (strcmp(kv[0], name) == 0)
            return kv[1];
    return NULL;
}

static const char *const test_vars[] = {"LISTEN", "127.0.0.1:7000", "EMPTY", "",  "LEVEL",
                                        "debug",  "WORKERS",        "16",    NULL};
static const struct ag_config_env test_env = {test_env_lookup, (void *)test_vars};

static int load(struct gateway *gw, const char *yaml, struct ag_err *err)
{
    return ag_config_load_string(&gateway_schema, gw, "gw.yaml", yaml, strlen(yaml), &test_env,
                                 err);
}

/* Loads yaml expecting failure with code and exactly msg; out must come back zeroed. */
static void expect_error(const char *yaml, int code, const char *msg)
{
    struct gateway gw;
    struct ag_err err = {0};
    int rc = load(&gw, yaml, &err);
    assert_string_equal(err.msg, msg);
    assert_int_equal(rc, code);
    assert_int_equal(err.code, code);
    static const struct gateway zero;
    assert_memory_equal(&gw, &zero, sizeof gw);
}

static void test_full_config(void **state)
{
    (void)state;
    struct gateway gw;
    struct ag_err err = {0};
    assert_int_equal(load(&gw, full_yaml, &err), 0);
    assert_string_equal(gw.name, "edge-1");
    assert_int_equal(gw.log_level, 2);
    assert_true(gw.sample_rate == 0.25);
    assert_string_equal(gw.server.listen, "0.0.0.0:8080");
    assert_int_equal(gw.server.read_timeout_ms, 250);
    assert_int_equal(gw.server.max_body, 10 * 1024 * 1024);
    assert_int_equal(gw.server.workers, 8);
    assert_true(gw.server.tls.enabled);
    assert_string_equal(gw.server.tls.cert, "/etc/agora/cert.pem");
    assert_string_equal(gw.server.tls.key_password, "hunter2");
    assert_int_equal(gw.nadmins, 2);
    assert_string_equal(gw.admins[0], "alice");
    assert_string_equal(gw.admins[1], "bob");
    assert_int_equal(gw.nupstreams, 2);

    struct upstream *hello = &gw.upstreams[0];
    assert_string_equal(hello->name, "hello");
    assert_int_equal(hello->ntargets, 2);
    assert_string_equal(hello->targets[0].address, "10.0.0.1:9000");
    assert_int_equal(hello->targets[0].weight, 300);
    assert_false(hello->targets[0].backup);
    assert_string_equal(hello->targets[1].address, "[::1]:9001");
    assert_int_equal(hello->targets[1].weight, 100);
    assert_true(hello->targets[1].backup);
    assert_int_equal(hello->connect_timeout_ms, 1500);
    assert_int_equal(hello->retries, 2);
    assert_int_equal(hello->balance, 1);
    assert_int_equal(hello->ntags, 2);
    assert_string_equal(hello->tags[1], "blue");

    struct upstream *world = &gw.upstreams[1];
    assert_string_equal(world->name, "world");
    assert_int_equal(world->connect_timeout_ms, 2000);
    assert_int_equal(world->balance, 0);
    assert_int_equal(world->ntags, 0);
    assert_null(world->tags);
    ag_config_release(&gateway_schema, &gw);
}

static void test_defaults(void **state)
{
    (void)state;
    struct gateway gw;
    struct ag_err err = {0};
    assert_int_equal(load(&gw, "server: {listen: \"localhost:80\"}\n", &err), 0);
    assert_string_equal(gw.name, "gateway");
    assert_int_equal(gw.log_level, 1);
    assert_true(gw.sample_rate == 0.5);
    assert_int_equal(gw.server.read_timeout_ms, 30000);
    assert_int_equal(gw.server.max_body, 1024 * 1024);
    assert_int_equal(gw.server.workers, 4);
    assert_false(gw.server.tls.enabled);
    assert_null(gw.server.tls.cert);
    assert_int_equal(gw.nadmins, 0);
    assert_null(gw.admins);
    assert_int_equal(gw.nupstreams, 0);
    assert_null(gw.upstreams);
    ag_config_release(&gateway_schema, &gw);
}

static void test_null_value_means_default(void **state)
{
    (void)state;
    struct gateway gw;
    struct ag_err err = {0};
    assert_int_equal(load(&gw, "name: ~\nserver:\n  listen: a:1\n  workers:\n  tls: null\n", &err),
                     0);
    assert_string_equal(gw.name, "gateway");
    assert_int_equal(gw.server.workers, 4);
    ag_config_release(&gateway_schema, &gw);
    /* Quoted, "~" is a string, not null. */
    assert_int_equal(load(&gw, "name: \"~\"\nserver: {listen: a:1}\n", &err), 0);
    assert_string_equal(gw.name, "~");
    ag_config_release(&gateway_schema, &gw);
}

static void test_subst_set_and_default(void **state)
{
    (void)state;
    struct gateway gw;
    struct ag_err err = {0};
    const char *yaml = "name: gw-${LEVEL}-${MISSING:-x}-${EMPTY:-e}\n"
                       "log_level: ${LEVEL}\n"
                       "server:\n"
                       "  listen: ${LISTEN}\n"
                       "  workers: \"${WORKERS}\"\n"
                       "  read_timeout: ${TIMEOUT:-5s}\n";
    assert_int_equal(load(&gw, yaml, &err), 0);
    assert_string_equal(gw.name, "gw-debug-x-e");
    assert_int_equal(gw.log_level, 0);
    assert_string_equal(gw.server.listen, "127.0.0.1:7000");
    assert_int_equal(gw.server.workers, 16);
    assert_int_equal(gw.server.read_timeout_ms, 5000);
    ag_config_release(&gateway_schema, &gw);
}

static void test_subst_empty_set_without_default(void **state)
{
    (void)state;
    struct gateway gw;
    struct ag_err err = {0};
    assert_int_equal(load(&gw, "server: {listen: a:1, tls: {cert: \"${EMPTY}\"}}\n", &err), 0);
    assert_string_equal(gw.server.tls.cert, "");
    ag_config_release(&gateway_schema, &gw);
}

static void test_subst_process_environment(void **state)
{
    (void)state;
    struct gateway gw;
    struct ag_err err = {0};
    const char *yaml = "server: {listen: \"${AGORA_TEST_LISTEN}\"}\n";
    assert_int_equal(setenv("AGORA_TEST_LISTEN", "example.org:443", 1), 0);
    assert_int_equal(
        ag_config_load_string(&gateway_schema, &gw, "env.yaml", yaml, strlen(yaml), NULL, &err), 0);
    assert_string_equal(gw.server.listen, "example.org:443");
    ag_config_release(&gateway_schema, &gw);
    unsetenv("AGORA_TEST_LISTEN");
}

static void test_subst_unset_is_error(void **state)
{
    (void)state;
    expect_error("name: x\nserver:\n  listen: ${NOPE}\n", AG_ENOTFOUND,
                 "gw.yaml:3: server.listen: environment variable NOPE is not set");
}

static void test_subst_dollar_escape(void **state)
{
    (void)state;
    struct gateway gw;
    struct ag_err err = {0};
    assert_int_equal(load(&gw,
                          "name: \"p$$w${EMPTY}$5 $ $$${LEVEL}\"\nserver: {listen: a:1, tls: "
                          "{cert: \"$${LISTEN}\"}}\n",
                          &err),
                     0);
    assert_string_equal(gw.name, "p$w$5 $ $debug");
    assert_string_equal(gw.server.tls.cert, "${LISTEN}");
    ag_config_release(&gateway_schema, &gw);
}

static void test_subst_unterminated(void **state)
{
    (void)state;
    expect_error("name: \"abc${LEVEL\"\n", AG_EINVAL, "gw.yaml:1: name: unterminated \"${\"");
    expect_error("name: \"${1X}\"\n", AG_EINVAL,
                 "gw.yaml:1: name: bad reference \"${1X}\": expected ${NAME} or ${NAME:-default}");
    expect_error("name: \"${X-y}\"\n", AG_EINVAL,
                 "gw.yaml:1: name: bad reference \"${X-y}\": expected ${NAME} or "
                 "${NAME:-default}");
}

static void test_subst_function(void **state)
{
    (void)state;
    struct ag_buf out;
    struct ag_err err = {0};
    ag_buf_init(&out, 16);
    const char *t = "${LISTEN}${LISTEN}";
    assert_int_equal(ag_config_subst(&test_env, t, strlen(t), &out, &err), AG_ERANGE);
    assert_string_equal(err.msg, "value is longer than 16 bytes after substitution");
    ag_buf_clear(&out);
    assert_int_equal(ag_config_subst(&test_env, "a$", 2, &out, &err), 0);
    assert_int_equal(out.len, 2);
    assert_memory_equal(out.data + out.off, "a$", 2);
    ag_buf_release(&out);
}

static void test_example_message(void **state)
{
    (void)state;
    struct gateway gw;
    struct ag_err err = {0};
    const char *yaml = "# Gateway configuration\n"
                       "name: edge\n"
                       "\n"
                       "server:\n"
                       "  listen: 0.0.0.0:80\n"
                       "\n"
                       "upstreams:\n"
                       "  hello:\n"
                       "    connect_timeout: 1s\n"
                       "    targets:\n"
                       "      - address: 10.0.0.1:9000\n"
                       "        weight: heavy\n";
    int rc = ag_config_load_string(&gateway_schema, &gw, "config/gateway.yaml", yaml, strlen(yaml),
                                   &test_env, &err);
    assert_int_equal(rc, AG_EINVAL);
    assert_string_equal(err.msg, "config/gateway.yaml:12: upstreams.hello.targets[0].weight: "
                                 "expected an integer from 0 to 1000, got \"heavy\"");
}

static void test_unknown_key(void **state)
{
    (void)state;
    expect_error("server:\n  listen: a:1\n  listne: b:2\n", AG_EINVAL,
                 "gw.yaml:3: server.listne: unknown key (did you mean \"listen\"?)");
    expect_error("name: x\ncolour: blue\n", AG_EINVAL, "gw.yaml:2: colour: unknown key");
    expect_error("server: {listen: a:1}\nupstreams:\n  a:\n    targets:\n"
                 "      - {address: a:1, wieght: 3}\n",
                 AG_EINVAL,
                 "gw.yaml:5: upstreams.a.targets[0].wieght: unknown key (did you mean "
                 "\"weight\"?)");
}

static void test_wrong_type(void **state)
{
    (void)state;
    expect_error("server: yes\n", AG_EINVAL, "gw.yaml:1: server: expected a mapping, got \"yes\"");
    expect_error("server:\n  listen: [a, b]\n", AG_EINVAL,
                 "gw.yaml:2: server.listen: expected host:port with a port from 0 to 65535, got "
                 "a list");
    expect_error("server: {listen: a:1}\n"
                 "admins: root\n",
                 AG_EINVAL, "gw.yaml:2: admins: expected a list of strings, got \"root\"");
    expect_error("server: {listen: a:1}\n"
                 "admins: [a, {b: c}]\n",
                 AG_EINVAL, "gw.yaml:2: admins[1]: expected a string, got a mapping");
    expect_error("server: {listen: a:1}\n"
                 "upstreams: [a]\n",
                 AG_EINVAL,
                 "gw.yaml:2: upstreams: expected a mapping of names to mappings, got a list");
    expect_error("server: {listen: a:1, tls: {enabled: maybe}}\n", AG_EINVAL,
                 "gw.yaml:1: server.tls.enabled: expected true or false, got \"maybe\"");
    expect_error("server: {listen: a:1}\n"
                 "sample_rate: 0x10\n",
                 AG_EINVAL, "gw.yaml:2: sample_rate: expected a number from 0 to 1, got \"0x10\"");
    expect_error("server: {listen: a:1}\n"
                 "log_level: loud\n",
                 AG_EINVAL,
                 "gw.yaml:2: log_level: expected one of debug, info, warn, error, got \"loud\"");
    expect_error("server:\n  listen: localhost\n", AG_EINVAL,
                 "gw.yaml:2: server.listen: expected host:port with a port from 0 to 65535, got "
                 "\"localhost\"");
    expect_error("- a\n- b\n", AG_EINVAL, "gw.yaml:1: expected a mapping, got a list");
}

static void test_out_of_range(void **state)
{
    (void)state;
    expect_error("server:\n  listen: a:1\n  workers: 1000\n", AG_ERANGE,
                 "gw.yaml:3: server.workers: expected an integer from 1 to 256, got \"1000\"");
    expect_error("server:\n  listen: a:1\n  workers: 99999999999999999999\n", AG_ERANGE,
                 "gw.yaml:3: server.workers: expected an integer from 1 to 256, got "
                 "\"99999999999999999999\"");
    expect_error("server: {listen: a:1}\n"
                 "sample_rate: 1.5\n",
                 AG_ERANGE, "gw.yaml:2: sample_rate: expected a number from 0 to 1, got \"1.5\"");
    expect_error(
        "server: {listen: a:1}\nupstreams:\n  a:\n    retries: 11\n    targets: [{address: a:1}]\n",
        AG_ERANGE, "gw.yaml:4: upstreams.a.retries: expected an integer from 0 to 10, got \"11\"");
    expect_error("server:\n  listen: a:65536\n", AG_EINVAL,
                 "gw.yaml:2: server.listen: expected host:port with a port from 0 to 65535, got "
                 "\"a:65536\"");
    expect_error("server: {listen: a:1}\n"
                 "name: \"\"\n",
                 AG_ERANGE, "gw.yaml:2: name: expected a string of 1 to 64 bytes, got 0 bytes");
}

static void test_missing_required(void **state)
{
    (void)state;
    expect_error("name: x\n", AG_EINVAL, "gw.yaml:1: server.listen: missing required key");
    expect_error("", AG_EINVAL, "gw.yaml:1: server.listen: missing required key");
    expect_error("server:\n  workers: 2\n", AG_EINVAL,
                 "gw.yaml:2: server.listen: missing required key");
    expect_error("server: {listen: a:1}\nupstreams:\n  hello:\n    targets:\n"
                 "      - weight: 5\n",
                 AG_EINVAL, "gw.yaml:5: upstreams.hello.targets[0].address: missing required key");
    expect_error("server:\n  listen:\n", AG_EINVAL,
                 "gw.yaml:2: server.listen: missing required key");
}

static void test_list_count_bounds(void **state)
{
    (void)state;
    expect_error("server: {listen: a:1}\nupstreams:\n  hello:\n    targets: []\n", AG_ERANGE,
                 "gw.yaml:4: upstreams.hello.targets: expected a list of mappings with at least 1 "
                 "entry, got 0");
    expect_error("server: {listen: a:1}\nupstreams:\n  hello:\n    retries: 1\n", AG_ERANGE,
                 "gw.yaml:4: upstreams.hello.targets: expected a list of mappings with at least 1 "
                 "entry, got 0");
}

static void test_bad_duration(void **state)
{
    (void)state;
    expect_error("server:\n  listen: a:1\n  read_timeout: 5 seconds\n", AG_EINVAL,
                 "gw.yaml:3: server.read_timeout: expected a duration such as 1500, 250ms, 1s, "
                 "2m or 1h, got \"5 seconds\"");
    expect_error("server:\n  listen: a:1\n  read_timeout: 1.5s\n", AG_EINVAL,
                 "gw.yaml:3: server.read_timeout: expected a duration such as 1500, 250ms, 1s, "
                 "2m or 1h, got \"1.5s\"");
    expect_error("server:\n  listen: a:1\n  read_timeout: 2h\n", AG_ERANGE,
                 "gw.yaml:3: server.read_timeout: expected a duration from 1ms to 1h, got \"2h\"");
    expect_error("server:\n  listen: a:1\n  read_timeout: 0\n", AG_ERANGE,
                 "gw.yaml:3: server.read_timeout: expected a duration from 1ms to 1h, got \"0\"");
}

static void test_bad_size(void **state)
{
    (void)state;
    expect_error("server:\n  listen: a:1\n  max_body: 10MB\n", AG_EINVAL,
                 "gw.yaml:3: server.max_body: expected a size such as 1048576, 512KiB, 10MiB or "
                 "1GiB, got \"10MB\"");
    expect_error("server:\n  listen: a:1\n  max_body: 2GiB\n", AG_ERANGE,
                 "gw.yaml:3: server.max_body: expected a size from 0 to 1GiB, got \"2GiB\"");
    expect_error("server:\n  listen: a:1\n  max_body: 99999999999TiB\n", AG_ERANGE,
                 "gw.yaml:3: server.max_body: expected a size from 0 to 1GiB, got "
                 "\"99999999999TiB\"");
}

static void test_sizes_and_durations(void **state)
{
    (void)state;
    static const struct {
        const char *text;
        uint64_t ms, bytes;
    } cases[] = {
        {"1048576", 1048576, 1048576},
        {"250ms", 250, 0},
        {"1s", 1000, 0},
        {"2m", 120000, 0},
        {"1h", 3600000, 0},
        {"512KiB", 0, 512 * 1024},
        {"10MiB", 0, 10 << 20},
        {"1GiB", 0, UINT64_C(1) << 30},
        {"3B", 0, 3},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        uint64_t v = 0;
        struct ag_str s = ag_str_from_cstr(cases[i].text);
        assert_int_equal(ag_config_parse_duration(s, &v), cases[i].ms ? 0 : AG_EINVAL);
        if (cases[i].ms)
            assert_int_equal(v, cases[i].ms);
        assert_int_equal(ag_config_parse_size(s, &v), cases[i].bytes ? 0 : AG_EINVAL);
        if (cases[i].bytes)
            assert_int_equal(v, cases[i].bytes);
    }
    uint64_t v;
    assert_int_equal(ag_config_parse_duration(AG_STR("9999999999999999999h"), &v), AG_ERANGE);
    assert_int_equal(ag_config_parse_size(AG_STR("-1"), &v), AG_EINVAL);
    assert_int_equal(ag_config_parse_size(AG_STR("KiB"), &v), AG_EINVAL);
    int64_t i64;
    assert_int_equal(ag_config_parse_i64(AG_STR("-9223372036854775808"), &i64), 0);
    assert_true(i64 == INT64_MIN);
    assert_int_equal(ag_config_parse_i64(AG_STR("9223372036854775808"), &i64), AG_ERANGE);
    assert_int_equal(ag_config_parse_i64(AG_STR(" 1"), &i64), AG_EINVAL);
    assert_int_equal(ag_config_parse_i64(AG_STR("1 "), &i64), AG_EINVAL);
    assert_int_equal(ag_config_parse_i64(AG_STR("-"), &i64), AG_EINVAL);
    char text[32];
    ag_config_format_duration(90000, text, sizeof text);
    assert_string_equal(text, "90s");
    ag_config_format_duration(1500, text, sizeof text);
    assert_string_equal(text, "1500ms");
    ag_config_format_size(3 << 20, text, sizeof text);
    assert_string_equal(text, "3MiB");
    ag_config_format_size(1000, text, sizeof text);
    assert_string_equal(text, "1000");
    assert_true(ag_config_addr_valid(AG_STR("[fe80::1]:0")));
    assert_false(ag_config_addr_valid(AG_STR("fe80::1:80")));
    assert_false(ag_config_addr_valid(AG_STR(":80")));
    assert_false(ag_config_addr_valid(AG_STR("a b:80")));
}

static void test_yaml_syntax_error(void **state)
{
    (void)state;
    expect_error("name: x\nserver:\n  listen: a:1\n    workers: 2\n", AG_EINVAL,
                 "gw.yaml:4: YAML syntax error: mapping values are not allowed in this context");
    expect_error("name: x\nadmins: [a, b\n", AG_EINVAL,
                 "gw.yaml:3: YAML syntax error: did not find expected ',' or ']'");
    expect_error("name: \"unclosed\n", AG_EINVAL,
                 "gw.yaml:2: YAML syntax error: found unexpected end of stream");
    expect_error("name: \xff\n", AG_EINVAL,
                 "gw.yaml: byte 6: YAML syntax error: invalid leading UTF-8 octet");
}

static void test_yaml_refusals(void **state)
{
    (void)state;
    expect_error("name: &n x\nserver:\n  listen: *n\n", AG_EINVAL,
                 "gw.yaml:3: server.listen: YAML aliases (*name) are not supported");
    expect_error("name: a\nname: b\n", AG_EINVAL,
                 "gw.yaml:2: name: duplicate key (first on line 1)");
    expect_error("upstreams:\n  a: {}\n  b: {}\n  a: {}\n", AG_EINVAL,
                 "gw.yaml:4: upstreams.a: duplicate key (first on line 2)");
    expect_error("name: a\n---\nname: b\n", AG_EINVAL, "gw.yaml:2: more than one YAML document");
    expect_error("? [a]\n: b\n", AG_EINVAL, "gw.yaml:1: mapping keys must be plain strings");
    expect_error("name: \"a\\0b\"\n", AG_EINVAL,
                 "gw.yaml:1: name: expected text without NUL bytes");
}

static void test_depth_limit(void **state)
{
    (void)state;
    size_t depth = 100000;
    char *yaml = malloc(2 * depth + 16);
    assert_non_null(yaml);
    size_t len = 0;
    memcpy(yaml, "admins: ", 8);
    len = 8;
    for (size_t i = 0; i < depth; i++)
        yaml[len++] = '[';
    for (size_t i = 0; i < depth; i++)
        yaml[len++] = ']';
    yaml[len] = '\0';
    struct gateway gw;
    struct ag_err err = {0};
    assert_int_equal(load(&gw, yaml, &err), AG_ERANGE);
    /* The path is as long as the message allows; the reason is kept at its end. */
    const char *prefix = "gw.yaml:1: admins[0][0][0]";
    const char *suffix = "[0]: nesting deeper than 64 levels";
    assert_memory_equal(err.msg, prefix, strlen(prefix));
    assert_string_equal(err.msg + strlen(err.msg) - strlen(suffix), suffix);
    free(yaml);
}

static void test_size_limit(void **state)
{
    (void)state;
    size_t len = AG_CONFIG_MAX_FILE_BYTES + 1;
    char *yaml = malloc(len + 1);
    assert_non_null(yaml);
    memset(yaml, '#', len);
    yaml[len] = '\0';
    expect_error(yaml, AG_ERANGE, "gw.yaml: file is larger than 4 MiB");

    /* The same through a file, which is read only up to the limit. */
    char path[] = "/tmp/agora-test-config-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, yaml, len), (ssize_t)len);
    close(fd);
    struct gateway gw;
    struct ag_err err = {0};
    assert_int_equal(ag_config_load_file(&gateway_schema, &gw, path, NULL, &err), AG_ERANGE);
    char want[128];
    snprintf(want, sizeof want, "%s: file is larger than 4 MiB", path);
    assert_string_equal(err.msg, want);
    unlink(path);
    free(yaml);
}

static void test_node_limit(void **state)
{
    (void)state;
    size_t n = AG_CONFIG_MAX_NODES + 10;
    char *yaml = malloc(2 * n + 16);
    assert_non_null(yaml);
    size_t len = 0;
    memcpy(yaml, "admins: [", 9);
    len = 9;
    for (size_t i = 0; i < n; i++) {
        yaml[len++] = 'a';
        yaml[len++] = ',';
    }
    yaml[len++] = ']';
    yaml[len] = '\0';
    expect_error(yaml, AG_ERANGE, "gw.yaml:1: more than 262144 values in one document");
    free(yaml);
}

static void test_load_file(void **state)
{
    (void)state;
    char path[] = "/tmp/agora-test-config-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, full_yaml, strlen(full_yaml)), (ssize_t)strlen(full_yaml));
    close(fd);
    struct gateway gw;
    struct ag_err err = {0};
    assert_int_equal(ag_config_load_file(&gateway_schema, &gw, path, &test_env, &err), 0);
    assert_string_equal(gw.upstreams[1].targets[0].address, "world.internal:80");
    ag_config_release(&gateway_schema, &gw);
    unlink(path);

    assert_int_equal(ag_config_load_file(&gateway_schema, &gw, path, &test_env, &err), AG_ESYS);
    char want[128];
    snprintf(want, sizeof want, "%s: cannot open: No such file or directory", path);
    assert_string_equal(err.msg, want);
}

static void test_release(void **state)
{
    (void)state;
    struct gateway gw;
    struct ag_err err = {0};
    assert_int_equal(load(&gw, full_yaml, &err), 0);
    ag_config_release(&gateway_schema, &gw);
    assert_null(gw.name);
    assert_null(gw.server.listen);
    assert_null(gw.server.tls.key_password);
    assert_null(gw.admins);
    assert_int_equal(gw.nadmins, 0);
    assert_null(gw.upstreams);
    assert_int_equal(gw.nupstreams, 0);
    ag_config_release(&gateway_schema, &gw); /* twice is harmless */
}

static void test_every_prefix_fails_cleanly(void **state)
{
    (void)state;
    /* Every truncation and every single-byte corruption of a real configuration: each either
     * loads or fails with a message, and ASan sees no leak or bad access either way. */
    size_t len = strlen(full_yaml);
    char *copy = malloc(len + 1);
    assert_non_null(copy);
    for (size_t cut = 0; cut <= len; cut++) {
        struct gateway gw;
        struct ag_err err = {0};
        int rc =
            ag_config_load_string(&gateway_schema, &gw, "p.yaml", full_yaml, cut, &test_env, &err);
        if (rc == 0)
            ag_config_release(&gateway_schema, &gw);
        else
            assert_true(err.msg[0] != '\0');
    }
    static const char bytes[] = {'[', ']', '{', '}', ':', '-', '$', '"', '\'', '&', '*', '\n', 0};
    for (size_t at = 0; at < len; at++)
        for (size_t b = 0; b < sizeof bytes; b++) {
            memcpy(copy, full_yaml, len + 1);
            copy[at] = bytes[b];
            struct gateway gw;
            struct ag_err err = {0};
            int rc =
                ag_config_load_string(&gateway_schema, &gw, "p.yaml", copy, len, &test_env, &err);
            if (rc == 0)
                ag_config_release(&gateway_schema, &gw);
            else
                assert_true(err.msg[0] != '\0');
        }
    free(copy);
}

static void test_document(void **state)
{
    (void)state;
    struct ag_buf out;
    ag_buf_init(&out, 1 << 16);
    assert_int_equal(ag_config_document(&gateway_schema, &out), 0);
    assert_int_equal(ag_buf_append(&out, "", 1), 0);
    const char *text = out.data + out.off;
    assert_non_null(strstr(text, "name: a string of 1 to 64 bytes; default gateway\n"
                                 "    Name in logs and metrics.\n"));
    assert_non_null(strstr(text, "log_level: one of debug, info, warn, error; default info\n"));
    assert_non_null(strstr(text, "server.listen: host:port with a port from 0 to 65535; required\n"
                                 "    Address the gateway accepts connections on.\n"));
    assert_non_null(strstr(text, "server.read_timeout: a duration from 1ms to 1h; default 30s\n"));
    assert_non_null(strstr(text, "server.tls.key_password: a string\n"));
    assert_non_null(strstr(text, "upstreams.<name>.targets[].weight: an integer from 0 to 1000; "
                                 "default 100\n"));
    assert_non_null(strstr(text, "upstreams.<name>.tags: a list of strings\n"));
    ag_buf_release(&out);

    /* A buffer too small fails with AG_ERANGE instead of cutting silently. */
    ag_buf_init(&out, 64);
    assert_int_equal(ag_config_document(&gateway_schema, &out), AG_ERANGE);
    ag_buf_release(&out);
}

static void test_dump_round_trip(void **state)
{
    (void)state;
    struct gateway gw, again;
    struct ag_err err = {0};
    struct ag_buf first, second;
    ag_buf_init(&first, 1 << 16);
    ag_buf_init(&second, 1 << 16);
    assert_int_equal(load(&gw, full_yaml, &err), 0);
    free(gw.name);
    gw.name = strdup("we\"ird $name\\\t");
    assert_non_null(gw.name);
    assert_int_equal(ag_config_dump(&gateway_schema, &gw, &first), 0);
    struct ag_str text = ag_buf_str(&first);
    assert_non_null(memmem(text.p, text.len, "key_password: \"<redacted>\"", 26));
    assert_non_null(memmem(text.p, text.len, "name: \"we\\\"ird $$name\\\\\\x09\"\n", 29));
    assert_non_null(memmem(text.p, text.len,
                           "upstreams:\n"
                           "  hello:\n"
                           "    targets:\n"
                           "      - address: \"10.0.0.1:9000\"\n"
                           "        weight: 300\n"
                           "        backup: false\n"
                           "      - address: \"[::1]:9001\"\n",
                           135));
    assert_int_equal(ag_config_load_string(&gateway_schema, &again, "dump.yaml", text.p, text.len,
                                           &test_env, &err),
                     0);
    assert_string_equal(again.name, gw.name);
    assert_string_equal(again.server.tls.key_password, "<redacted>");
    assert_int_equal(ag_config_dump(&gateway_schema, &again, &second), 0);
    struct ag_str text2 = ag_buf_str(&second);
    assert_int_equal(text.len, text2.len);
    assert_memory_equal(text.p, text2.p, text.len);
    ag_config_release(&gateway_schema, &gw);
    ag_config_release(&gateway_schema, &again);
    ag_buf_release(&first);
    ag_buf_release(&second);
}

static void test_schema_check(void **state)
{
    (void)state;
    struct ag_err err = {0};
    assert_int_equal(ag_config_schema_check(&gateway_schema, &err), 0);

    struct holder {
        uint64_t ms;
        int64_t n;
    };
    static const struct ag_config_field bad_default[] = {
        {.key = "timeout",
         .type = AG_CONFIG_DURATION,
         .offset = offsetof(struct holder, ms),
         .def = "5 minutes"},
        {0},
    };
    static const struct ag_config_schema bad_default_schema = {"holder", sizeof(struct holder),
                                                               bad_default};
    assert_int_equal(ag_config_schema_check(&bad_default_schema, &err), AG_EINVAL);
    assert_string_equal(err.msg, "holder: timeout: bad schema default: expected a duration such "
                                 "as 1500, 250ms, 1s, 2m or 1h, got \"5 minutes\"");

    static const struct ag_config_field inverted[] = {
        {.key = "n", .type = AG_CONFIG_INT, .offset = offsetof(struct holder, n), .min = 5},
        {0},
    };
    static const struct ag_config_schema inverted_schema = {"holder", sizeof(struct holder),
                                                            inverted};
    assert_int_equal(ag_config_schema_check(&inverted_schema, &err), AG_EINVAL);
    assert_string_equal(err.msg, "holder: n: lower bound over upper bound");

    /* Binding reports a bad default the same way when the key is absent. */
    struct holder h;
    assert_int_equal(ag_config_load_string(&bad_default_schema, &h, "h.yaml", "", 0, NULL, &err),
                     AG_EINVAL);
    assert_string_equal(err.msg, "h.yaml: timeout: bad schema default: expected a duration such "
                                 "as 1500, 250ms, 1s, 2m or 1h, got \"5 minutes\"");
}

static void test_doc_tree(void **state)
{
    (void)state;
    struct ag_config_doc doc;
    struct ag_err err = {0};
    const char *yaml = "a: 1\nb:\n  - x\n  - 'y'\n  -   z: ~\n";
    assert_int_equal(ag_config_doc_parse(&doc, "t.yaml", yaml, strlen(yaml), &err), 0);
    assert_int_equal(doc.root->kind, AG_CONFIG_NODE_MAP);
    assert_int_equal(doc.root->count, 2);
    const struct ag_config_node *b = ag_config_node_get(doc.root, "b");
    assert_non_null(b);
    assert_int_equal(b->kind, AG_CONFIG_NODE_SEQ);
    assert_int_equal(b->count, 3);
    assert_int_equal(b->items[1]->line, 4);
    assert_int_equal(b->items[1]->col, 5);
    assert_false(b->items[1]->plain);
    assert_true(b->items[0]->plain);
    const struct ag_config_node *z = ag_config_node_get(b->items[2], "z");
    assert_true(ag_config_node_is_null(z));
    assert_int_equal(z->line, 5);
    assert_null(ag_config_node_get(doc.root, "c"));
    assert_null(ag_config_node_get(b, "x"));
    ag_config_doc_release(&doc);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_full_config),
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_null_value_means_default),
        cmocka_unit_test(test_subst_set_and_default),
        cmocka_unit_test(test_subst_empty_set_without_default),
        cmocka_unit_test(test_subst_process_environment),
        cmocka_unit_test(test_subst_unset_is_error),
        cmocka_unit_test(test_subst_dollar_escape),
        cmocka_unit_test(test_subst_unterminated),
        cmocka_unit_test(test_subst_function),
        cmocka_unit_test(test_example_message),
        cmocka_unit_test(test_unknown_key),
        cmocka_unit_test(test_wrong_type),
        cmocka_unit_test(test_out_of_range),
        cmocka_unit_test(test_missing_required),
        cmocka_unit_test(test_list_count_bounds),
        cmocka_unit_test(test_bad_duration),
        cmocka_unit_test(test_bad_size),
        cmocka_unit_test(test_sizes_and_durations),
        cmocka_unit_test(test_yaml_syntax_error),
        cmocka_unit_test(test_yaml_refusals),
        cmocka_unit_test(test_depth_limit),
        cmocka_unit_test(test_size_limit),
        cmocka_unit_test(test_node_limit),
        cmocka_unit_test(test_load_file),
        cmocka_unit_test(test_release),
        cmocka_unit_test(test_every_prefix_fails_cleanly),
        cmocka_unit_test(test_document),
        cmocka_unit_test(test_dump_round_trip),
        cmocka_unit_test(test_schema_check),
        cmocka_unit_test(test_doc_tree),
    };
    return cmocka_run_group_tests_name("config", tests, NULL, NULL);
}
