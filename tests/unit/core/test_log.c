/* Unit tests for src/core/log.c: exact JSON lines, escaping, truncation, levels, threads. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/err.h"
#include "core/log.h"

/* Every test logs into this unlinked temp file and reads back what was written. */
static int log_file = -1;

static int setup_log_file(void **state)
{
    (void)state;
    char path[] = "/tmp/agora-test-log-XXXXXX";
    log_file = mkstemp(path);
    if (log_file < 0)
        return -1;
    unlink(path);
    ag_log_setup(NULL, AG_LOG_DEBUG, log_file);
    return 0;
}

static int teardown_log_file(void **state)
{
    (void)state;
    ag_log_setup(NULL, AG_LOG_INFO, 1);
    close(log_file);
    log_file = -1;
    return 0;
}

/* Everything logged since the last call, NUL-terminated; the caller frees it. */
static char *take_output(size_t *len_out)
{
    off_t end = lseek(log_file, 0, SEEK_END);
    assert_true(end >= 0);
    size_t len = (size_t)end;
    char *text = malloc(len + 1);
    assert_non_null(text);
    assert_int_equal(pread(log_file, text, len, 0), (ssize_t)len);
    text[len] = '\0';
    assert_int_equal(ftruncate(log_file, 0), 0);
    assert_int_equal(lseek(log_file, 0, SEEK_SET), 0);
    if (len_out)
        *len_out = len;
    return text;
}

/* Checks the `{"ts":"<RFC 3339>",` opening of a line and returns what follows it. */
static const char *after_ts(const char *line)
{
    static const char pattern[] = "dddd-dd-ddTdd:dd:dd.dddZ";
    assert_memory_equal(line, "{\"ts\":\"", 7);
    line += 7;
    for (size_t i = 0; i < sizeof pattern - 1; i++) {
        if (pattern[i] == 'd')
            assert_true(line[i] >= '0' && line[i] <= '9');
        else
            assert_int_equal(line[i], pattern[i]);
    }
    line += AG_LOG_TS_LEN;
    assert_memory_equal(line, "\",", 2);
    return line + 2;
}

/* Asserts that exactly one line was logged and that after its timestamp it reads expected. */
static void expect_line(const char *expected)
{
    char *out = take_output(NULL);
    assert_string_equal(after_ts(out), expected);
    free(out);
}

static void expect_nothing(void)
{
    size_t len;
    char *out = take_output(&len);
    assert_int_equal(len, 0);
    free(out);
}

static void test_level_parse(void **state)
{
    (void)state;
    enum ag_log_level level = AG_LOG_ERROR;
    assert_int_equal(ag_log_level_parse("debug", &level), 0);
    assert_int_equal(level, AG_LOG_DEBUG);
    assert_int_equal(ag_log_level_parse("INFO", &level), 0);
    assert_int_equal(level, AG_LOG_INFO);
    assert_int_equal(ag_log_level_parse("Warning", &level), 0);
    assert_int_equal(level, AG_LOG_WARN);
    assert_int_equal(ag_log_level_parse("warn", &level), 0);
    assert_int_equal(level, AG_LOG_WARN);
    assert_int_equal(ag_log_level_parse("error", &level), 0);
    assert_int_equal(level, AG_LOG_ERROR);
    assert_int_equal(ag_log_level_parse("fatal", &level), AG_EINVAL);
    assert_int_equal(ag_log_level_parse("", &level), AG_EINVAL);
    assert_int_equal(ag_log_level_parse("info ", &level), AG_EINVAL);
    assert_int_equal(ag_log_level_parse(NULL, &level), AG_EINVAL);
    assert_int_equal(level, AG_LOG_ERROR);
    assert_string_equal(ag_log_level_name(AG_LOG_DEBUG), "debug");
    assert_string_equal(ag_log_level_name(AG_LOG_WARN), "warn");
    assert_string_equal(ag_log_level_name((enum ag_log_level)42), "error");
}

static void test_format_ts(void **state)
{
    (void)state;
    char ts[AG_LOG_TS_LEN + 1];
    ag_log_format_ts(&(struct timespec){.tv_sec = 1795261080, .tv_nsec = 123456789}, ts);
    assert_string_equal(ts, "2026-11-21T11:38:00.123Z");
    ag_log_format_ts(&(struct timespec){.tv_sec = 0, .tv_nsec = 0}, ts);
    assert_string_equal(ts, "1970-01-01T00:00:00.000Z");
    ag_log_format_ts(&(struct timespec){.tv_sec = 951825599, .tv_nsec = 999999999}, ts);
    assert_string_equal(ts, "2000-02-29T11:59:59.999Z");
}

static void test_fields_of_every_type(void **state)
{
    (void)state;
    ag_log_info("request done", AG_F_STR("path", "/x"), AG_F_INT("status", -200),
                AG_F_UINT("bytes", UINT64_MAX), AG_F_BOOL("ok", true), AG_F_BOOL("bad", false),
                AG_F_DOUBLE("ratio", 0.1), AG_F_DOUBLE("third", 1.0 / 3), AG_F_DOUBLE("whole", 3.0),
                AG_F_DOUBLE("big", 1e300), AG_F_SLICE("method", AG_STR("GET")));
    expect_line("\"level\":\"info\",\"msg\":\"request done\",\"path\":\"/x\",\"status\":-200,"
                "\"bytes\":18446744073709551615,\"ok\":true,\"bad\":false,\"ratio\":0.1,"
                "\"third\":0.33333333333333331,\"whole\":3,\"big\":1e+300,\"method\":\"GET\"}\n");

    ag_log_error("no fields");
    expect_line("\"level\":\"error\",\"msg\":\"no fields\"}\n");

    struct ag_str part = {"abcdef", 3}; /* a slice is not NUL-terminated */
    ag_log_warn("slice", AG_F_SLICE("s", part));
    expect_line("\"level\":\"warn\",\"msg\":\"slice\",\"s\":\"abc\"}\n");

    const struct ag_log_field fields[] = {AG_F_INT("a", 1), AG_F_INT("b", 2)};
    ag_log_fields(AG_LOG_DEBUG, "array", fields, 2);
    expect_line("\"level\":\"debug\",\"msg\":\"array\",\"a\":1,\"b\":2}\n");
}

static void test_nulls_and_non_finite(void **state)
{
    (void)state;
    ag_log_info(NULL, AG_F_STR("s", NULL), AG_F_SLICE("sl", AG_STR_NULL), AG_F_STR(NULL, "x"),
                AG_F_DOUBLE("nan", NAN), AG_F_DOUBLE("inf", -INFINITY), AG_F_STR("", ""));
    expect_line("\"level\":\"info\",\"msg\":null,\"s\":null,\"sl\":null,\"nan\":null,\"inf\":null,"
                "\"\":\"\"}\n");
    ag_log_fields(AG_LOG_INFO, "none", NULL, 0);
    expect_line("\"level\":\"info\",\"msg\":\"none\"}\n");
    ag_log_fields((enum ag_log_level)42, "odd level", NULL, 0);
    expect_line("\"level\":\"error\",\"msg\":\"odd level\"}\n");
}

static void test_escaping(void **state)
{
    (void)state;
    ag_log_info("say \"hi\" \\ \n\r\t\b\f\x01\x1f\x7f/",
                AG_F_STR("k\"ey", "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80"));
    expect_line(
        "\"level\":\"info\",\"msg\":\"say \\\"hi\\\" \\\\ \\n\\r\\t\\b\\f\\u0001\\u001f\x7f/\","
        "\"k\\\"ey\":\"caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80\"}\n");

    /* Each byte that is not part of valid UTF-8 becomes one \ufffd. */
    ag_log_info("bad",
                AG_F_STR("lone", "a\xff"
                                 "b\x80"
                                 "c"),
                AG_F_STR("overlong", "\xc0\xaf"), AG_F_STR("surrogate", "\xed\xa0\x80"),
                AG_F_STR("too_big", "\xf4\x90\x80\x80"), AG_F_STR("cut_short", "x\xe2\x82"));
    expect_line(
        "\"level\":\"info\",\"msg\":\"bad\",\"lone\":\"a\\ufffdb\\ufffdc\","
        "\"overlong\":\"\\ufffd\\ufffd\",\"surrogate\":\"\\ufffd\\ufffd\\ufffd\","
        "\"too_big\":\"\\ufffd\\ufffd\\ufffd\\ufffd\",\"cut_short\":\"x\\ufffd\\ufffd\"}\n");

    struct ag_str with_nul = {"a\0b", 3};
    ag_log_info("nul", AG_F_SLICE("v", with_nul));
    expect_line("\"level\":\"info\",\"msg\":\"nul\",\"v\":\"a\\u0000b\"}\n");
}

static void test_service(void **state)
{
    (void)state;
    ag_log_setup("gate\"way", AG_LOG_DEBUG, log_file);
    ag_log_info("up", AG_F_INT("port", 8080));
    expect_line("\"level\":\"info\",\"msg\":\"up\",\"service\":\"gate\\\"way\",\"port\":8080}\n");

    char long_name[200];
    memset(long_name, 's', sizeof long_name - 1);
    long_name[sizeof long_name - 1] = '\0';
    ag_log_setup(long_name, AG_LOG_DEBUG, log_file);
    ag_log_info("up");
    char expected[300];
    snprintf(expected, sizeof expected, "\"level\":\"info\",\"msg\":\"up\",\"service\":\"%.*s\"}\n",
             AG_LOG_SERVICE_MAX, long_name);
    expect_line(expected);

    ag_log_setup("", AG_LOG_DEBUG, log_file);
    ag_log_info("up");
    expect_line("\"level\":\"info\",\"msg\":\"up\"}\n");
}

static void test_level_filtering(void **state)
{
    (void)state;
    ag_log_setup(NULL, AG_LOG_WARN, log_file);
    assert_false(ag_log_enabled(AG_LOG_DEBUG));
    assert_false(ag_log_enabled(AG_LOG_INFO));
    assert_true(ag_log_enabled(AG_LOG_WARN));
    assert_true(ag_log_enabled(AG_LOG_ERROR));

    int evaluated = 0;
    ag_log_debug("hidden", AG_F_INT("n", ++evaluated));
    ag_log_info("hidden");
    ag_log_fields(AG_LOG_INFO, "hidden", NULL, 0);
    assert_int_equal(evaluated, 0);
    expect_nothing();

    ag_log_warn("shown");
    ag_log_error("shown too");
    char *out = take_output(NULL);
    char *second = strchr(out, '\n') + 1;
    second[-1] = '\0';
    assert_string_equal(after_ts(out), "\"level\":\"warn\",\"msg\":\"shown\"}");
    assert_string_equal(after_ts(second), "\"level\":\"error\",\"msg\":\"shown too\"}\n");
    free(out);

    ag_log_set_level(AG_LOG_DEBUG);
    assert_true(ag_log_enabled(AG_LOG_DEBUG));
    ag_log_debug("now shown");
    expect_line("\"level\":\"debug\",\"msg\":\"now shown\"}\n");
}

/* Checks that out is one line, within the maximum, ending in the truncation tail. */
static void assert_truncated_line(const char *out, size_t len, const char *tail)
{
    assert_true(len <= AG_LOG_LINE_MAX);
    assert_true(len >= AG_LOG_LINE_MAX - 64); /* the budget was used, not thrown away */
    assert_ptr_equal(strchr(out, '\n'), out + len - 1);
    assert_true(len > strlen(tail));
    assert_string_equal(out + len - strlen(tail), tail);
}

static void test_truncation_of_huge_values(void **state)
{
    (void)state;
    size_t huge_len = 100000, len;
    char *huge = malloc(huge_len + 1);
    assert_non_null(huge);

    memset(huge, 'a', huge_len);
    huge[huge_len] = '\0';
    ag_log_info("big", AG_F_INT("before", 1), AG_F_STR("v", huge), AG_F_INT("after", 2));
    char *out = take_output(&len);
    assert_truncated_line(out, len, "a...\",\"truncated\":true}\n");
    const char *rest = after_ts(out);
    const char *head = "\"level\":\"info\",\"msg\":\"big\",\"before\":1,\"v\":\"";
    assert_memory_equal(rest, head, strlen(head));
    rest += strlen(head);
    size_t kept = strspn(rest, "a");
    assert_memory_equal(rest + kept, "...\"", 4);
    assert_null(strstr(out, "after"));
    free(out);

    /* Escapes are never split: the kept part is whole \u0001 sequences. */
    memset(huge, '\x01', huge_len);
    ag_log_info("ctl", AG_F_STR("v", huge));
    out = take_output(&len);
    assert_truncated_line(out, len, "\\u0001...\",\"truncated\":true}\n");
    rest = strstr(out, "\"v\":\"") + 5;
    kept = (size_t)(strstr(rest, "...\"") - rest);
    assert_int_equal(kept % 6, 0);
    for (size_t i = 0; i < kept; i += 6)
        assert_memory_equal(rest + i, "\\u0001", 6);
    free(out);

    /* Multi-byte characters are never split either. */
    for (size_t i = 0; i + 3 <= huge_len; i += 3)
        memcpy(huge + i, "\xe2\x82\xac", 3);
    huge[huge_len - huge_len % 3] = '\0';
    ag_log_info("euro", AG_F_STR("v", huge));
    out = take_output(&len);
    assert_truncated_line(out, len, "\xe2\x82\xac...\",\"truncated\":true}\n");
    rest = strstr(out, "\"v\":\"") + 5;
    kept = (size_t)(strstr(rest, "...\"") - rest);
    assert_int_equal(kept % 3, 0);
    free(out);

    /* A huge message is cut, and the service field still follows it. */
    memset(huge, 'm', huge_len);
    huge[huge_len] = '\0';
    ag_log_setup("svc", AG_LOG_DEBUG, log_file);
    ag_log_warn(huge, AG_F_INT("dropped", 1));
    out = take_output(&len);
    assert_truncated_line(out, len, "m...\",\"service\":\"svc\",\"truncated\":true}\n");
    assert_null(strstr(out, "dropped"));
    free(out);

    /* A key that cannot fit drops its whole field. */
    ag_log_setup(NULL, AG_LOG_DEBUG, log_file);
    ag_log_info("m", AG_F_INT(huge, 1));
    expect_line("\"level\":\"info\",\"msg\":\"m\",\"truncated\":true}\n");
    free(huge);
}

static void test_truncation_of_many_fields(void **state)
{
    (void)state;
    enum { N_FIELDS = 2000 }; /* 2000 x `,"n":12345` = 20000 bytes */
    struct ag_log_field *fields = calloc(N_FIELDS, sizeof *fields);
    assert_non_null(fields);
    for (size_t i = 0; i < N_FIELDS; i++)
        fields[i] = AG_F_INT("n", 12345);
    ag_log_fields(AG_LOG_INFO, "many", fields, N_FIELDS);
    size_t len;
    char *out = take_output(&len);
    assert_truncated_line(out, len, ",\"n\":12345,\"truncated\":true}\n");
    const char *rest = after_ts(out) + strlen("\"level\":\"info\",\"msg\":\"many\"");
    size_t whole = 0;
    while (memcmp(rest, ",\"n\":12345", 10) == 0) {
        rest += 10;
        whole++;
    }
    assert_true(whole > 1000 && whole < N_FIELDS);
    assert_string_equal(rest, ",\"truncated\":true}\n");
    free(out);
    free(fields);
}

static void test_errno_kept_and_failed_writes_counted(void **state)
{
    (void)state;
    errno = ENOSPC;
    ag_log_info("keeps errno");
    assert_int_equal(errno, ENOSPC);
    free(take_output(NULL));

    int read_only = open("/dev/null", O_RDONLY);
    assert_true(read_only >= 0);
    uint64_t dropped = ag_log_dropped();
    ag_log_setup(NULL, AG_LOG_DEBUG, read_only);
    ag_log_info("lost");
    assert_int_equal(ag_log_dropped(), dropped + 1);
    assert_int_equal(errno, ENOSPC);
    close(read_only);

    ag_log_setup(NULL, AG_LOG_DEBUG, -1); /* discards without counting */
    ag_log_info("discarded");
    assert_int_equal(ag_log_dropped(), dropped + 1);
    ag_log_setup(NULL, AG_LOG_DEBUG, log_file);
    expect_nothing();
}

enum { THREADS = 4, LINES_PER_THREAD = 2000, PAD_LEN = 3000 };

static void *log_from_thread(void *arg)
{
    char pad[PAD_LEN + 1];
    memset(pad, 'x', PAD_LEN);
    pad[PAD_LEN] = '\0';
    int64_t thread_no = (int64_t)(intptr_t)arg;
    for (int64_t i = 0; i < LINES_PER_THREAD; i++)
        ag_log_info("t", AG_F_INT("thread", thread_no), AG_F_INT("i", i), AG_F_STR("pad", pad));
    return NULL;
}

static void test_threads_never_interleave(void **state)
{
    (void)state;
    pthread_t threads[THREADS];
    for (intptr_t t = 0; t < THREADS; t++)
        assert_int_equal(pthread_create(&threads[t], NULL, log_from_thread, (void *)t), 0);
    for (int t = 0; t < THREADS; t++)
        pthread_join(threads[t], NULL);

    char *out = take_output(NULL);
    int64_t next_i[THREADS] = {0};
    size_t lines = 0;
    for (char *line = out, *end; *line; line = end + 1) {
        end = strchr(line, '\n');
        assert_non_null(end);
        *end = '\0';
        const char *rest = after_ts(line);
        int thread_no = -1;
        long long i = -1;
        int used = 0;
        assert_int_equal(sscanf(rest, "\"level\":\"info\",\"msg\":\"t\",\"thread\":%d,\"i\":%lld%n",
                                &thread_no, &i, &used),
                         2);
        assert_true(thread_no >= 0 && thread_no < THREADS);
        assert_int_equal(i, next_i[thread_no]++); /* each thread's lines in order, none lost */
        rest += used;
        assert_memory_equal(rest, ",\"pad\":\"", 8);
        assert_int_equal(strspn(rest + 8, "x"), PAD_LEN);
        assert_string_equal(rest + 8 + PAD_LEN, "\"}");
        lines++;
    }
    assert_int_equal(lines, THREADS * LINES_PER_THREAD);
    free(out);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_level_parse),
        cmocka_unit_test(test_format_ts),
        cmocka_unit_test_setup_teardown(test_fields_of_every_type, setup_log_file,
                                        teardown_log_file),
        cmocka_unit_test_setup_teardown(test_nulls_and_non_finite, setup_log_file,
                                        teardown_log_file),
        cmocka_unit_test_setup_teardown(test_escaping, setup_log_file, teardown_log_file),
        cmocka_unit_test_setup_teardown(test_service, setup_log_file, teardown_log_file),
        cmocka_unit_test_setup_teardown(test_level_filtering, setup_log_file, teardown_log_file),
        cmocka_unit_test_setup_teardown(test_truncation_of_huge_values, setup_log_file,
                                        teardown_log_file),
        cmocka_unit_test_setup_teardown(test_truncation_of_many_fields, setup_log_file,
                                        teardown_log_file),
        cmocka_unit_test_setup_teardown(test_errno_kept_and_failed_writes_counted, setup_log_file,
                                        teardown_log_file),
        cmocka_unit_test_setup_teardown(test_threads_never_interleave, setup_log_file,
                                        teardown_log_file),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
