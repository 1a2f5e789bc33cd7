/* Unit tests for src/kit/blob_fs.c: keys, atomic commit, abort, modes, read limits, remove. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "kit/blob.h"

struct fixture {
    char dir[64];  /* a fresh temporary directory */
    char root[96]; /* dir/store: created by kit_blob_open */
    char url[128]; /* file:root */
    struct kit_blob_store *store;
};

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof *f);
    struct ag_err err = {0};
    if (!f)
        return -1;
    snprintf(f->dir, sizeof f->dir, "/tmp/agora-test-blob-XXXXXX");
    if (!mkdtemp(f->dir))
        return -1;
    snprintf(f->root, sizeof f->root, "%s/a/store", f->dir);
    snprintf(f->url, sizeof f->url, "file:%s", f->root);
    if (kit_blob_open(f->url, &f->store, &err) != 0) {
        fprintf(stderr, "open: %s\n", err.msg);
        return -1;
    }
    *state = f;
    return 0;
}

static void remove_tree(const char *path)
{
    DIR *d = opendir(path);
    struct dirent *e;
    char child[512];
    if (!d) {
        unlink(path);
        return;
    }
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        snprintf(child, sizeof child, "%s/%s", path, e->d_name);
        remove_tree(child);
    }
    closedir(d);
    rmdir(path);
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    kit_blob_close(f->store);
    remove_tree(f->dir);
    free(f);
    return 0;
}

/* The number of entries in root/dir (without . and ..); -1 when it cannot be opened. */
static int entries(const struct fixture *f, const char *dir)
{
    char path[512];
    int n = 0;
    snprintf(path, sizeof path, "%s/%s", f->root, dir);
    DIR *d = opendir(path);
    struct dirent *e;
    if (!d)
        return -1;
    while ((e = readdir(d)) != NULL)
        if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0)
            n++;
    closedir(d);
    return n;
}

static void put(struct fixture *f, const char *key, const char *text)
{
    struct kit_blob_writer *w = NULL;
    struct ag_err err = {0};
    assert_int_equal(kit_blob_begin(f->store, key, &w, &err), 0);
    assert_int_equal(kit_blob_write(w, text, strlen(text), &err), 0);
    assert_int_equal(kit_blob_commit(w, &err), 0);
}

static void expect(struct fixture *f, const char *key, const char *text)
{
    void *data = NULL;
    size_t len = 0;
    struct ag_err err = {0};
    assert_int_equal(kit_blob_read(f->store, key, 1000, &data, &len, &err), 0);
    assert_int_equal(len, strlen(text));
    assert_memory_equal(data, text, len);
    free(data);
}

static void open_refuses_bad_urls(void **state)
{
    (void)state;
    struct kit_blob_store *s = (struct kit_blob_store *)1;
    struct ag_err err = {0};
    assert_int_equal(kit_blob_open("s3://bucket", &s, &err), AG_EINVAL);
    assert_null(s);
    assert_int_equal(kit_blob_open("file:", &s, &err), AG_EINVAL);
    assert_int_equal(kit_blob_open(NULL, &s, &err), AG_EINVAL);
    assert_int_equal(kit_blob_open("/tmp/x", &s, &err), AG_EINVAL);
    kit_blob_close(NULL);
}

static void open_creates_root_0700(void **state)
{
    struct fixture *f = *state;
    struct stat st;
    assert_int_equal(stat(f->root, &st), 0);
    assert_true(S_ISDIR(st.st_mode));
    assert_int_equal(st.st_mode & 0777, 0700);
    /* opening an existing store again is fine */
    struct kit_blob_store *again = NULL;
    struct ag_err err = {0};
    assert_int_equal(kit_blob_open(f->url, &again, &err), 0);
    kit_blob_close(again);
}

static void write_commit_read(void **state)
{
    struct fixture *f = *state;
    struct kit_blob_writer *w = NULL;
    struct ag_err err = {0};
    struct stat st;
    char path[512];

    assert_int_equal(kit_blob_begin(f->store, "products/ab12/p-1/img.1", &w, &err), 0);
    assert_int_equal(kit_blob_write(w, "hello ", 6, &err), 0);
    assert_int_equal(kit_blob_write(w, "", 0, &err), 0);
    /* before the commit nothing is visible under the key */
    void *data = NULL;
    size_t len = 0;
    assert_int_equal(kit_blob_read(f->store, "products/ab12/p-1/img.1", 100, &data, &len, &err),
                     AG_ENOTFOUND);
    assert_null(data);
    assert_int_equal(kit_blob_write(w, "world", 5, &err), 0);
    assert_int_equal(kit_blob_commit(w, &err), 0);
    expect(f, "products/ab12/p-1/img.1", "hello world");

    /* only the blob is left in its directory: no temporary file */
    assert_int_equal(entries(f, "products/ab12/p-1"), 1);
    snprintf(path, sizeof path, "%s/products/ab12/p-1/img.1", f->root);
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    snprintf(path, sizeof path, "%s/products/ab12", f->root);
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0700);
}

static void commit_replaces(void **state)
{
    struct fixture *f = *state;
    put(f, "k", "first version");
    put(f, "k", "second");
    expect(f, "k", "second");
    assert_int_equal(entries(f, "."), 1);
}

static void abort_leaves_nothing(void **state)
{
    struct fixture *f = *state;
    struct kit_blob_writer *w = NULL;
    struct ag_err err = {0};
    void *data = NULL;
    size_t len = 0;

    put(f, "x/kept", "old");
    assert_int_equal(kit_blob_begin(f->store, "x/kept", &w, &err), 0);
    assert_int_equal(kit_blob_write(w, "new bytes", 9, &err), 0);
    kit_blob_abort(w);
    expect(f, "x/kept", "old");
    assert_int_equal(kit_blob_begin(f->store, "x/never", &w, &err), 0);
    assert_int_equal(kit_blob_write(w, "abc", 3, &err), 0);
    kit_blob_abort(w);
    assert_int_equal(kit_blob_read(f->store, "x/never", 100, &data, &len, &err), AG_ENOTFOUND);
    assert_int_equal(entries(f, "x"), 1);
    kit_blob_abort(NULL);
}

static void keys_are_checked(void **state)
{
    struct fixture *f = *state;
    static const char *const bad[] = {
        "",   "/abs", "a//b", "a/",   "../up", "a/../b",      "a/./b",  ".",
        "..", "A",    "a b",  "a\\b", "a#1",   "caf\xc3\xa9", "a/b/..",
    };
    struct kit_blob_writer *w = (struct kit_blob_writer *)1;
    struct ag_err err = {0};
    void *data = NULL;
    size_t len = 0;
    char long_key[202];

    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_int_equal(kit_blob_begin(f->store, bad[i], &w, &err), AG_EINVAL);
        assert_null(w);
        assert_int_equal(kit_blob_read(f->store, bad[i], 10, &data, &len, &err), AG_EINVAL);
        assert_int_equal(kit_blob_remove(f->store, bad[i], &err), AG_EINVAL);
    }
    memset(long_key, 'a', 201);
    long_key[201] = '\0';
    assert_int_equal(kit_blob_begin(f->store, long_key, &w, &err), AG_EINVAL);
    long_key[200] = '\0';
    assert_int_equal(kit_blob_begin(f->store, long_key, &w, &err), 0);
    kit_blob_abort(w);
    /* dots inside a segment are fine */
    put(f, "a.b/..c/.d", "dots");
    expect(f, "a.b/..c/.d", "dots");
    /* nothing escaped the store */
    assert_int_equal(entries(f, ".."), 1);
}

static void read_limits_and_missing(void **state)
{
    struct fixture *f = *state;
    struct ag_err err = {0};
    void *data = NULL;
    size_t len = 7;

    put(f, "ten", "0123456789");
    assert_int_equal(kit_blob_read(f->store, "ten", 9, &data, &len, &err), AG_ERANGE);
    assert_null(data);
    assert_int_equal(len, 0);
    assert_int_equal(kit_blob_read(f->store, "ten", 10, &data, &len, &err), 0);
    assert_int_equal(len, 10);
    free(data);
    assert_int_equal(kit_blob_read(f->store, "missing", 10, &data, &len, &err), AG_ENOTFOUND);
    assert_int_equal(kit_blob_read(f->store, "ten/below", 10, &data, &len, &err), AG_ENOTFOUND);
    /* a directory is not a blob */
    put(f, "dir/inside", "x");
    assert_int_equal(kit_blob_read(f->store, "dir", 10, &data, &len, &err), AG_ENOTFOUND);
    /* an empty blob reads as zero bytes */
    put(f, "empty", "");
    assert_int_equal(kit_blob_read(f->store, "empty", 10, &data, &len, &err), 0);
    assert_int_equal(len, 0);
    free(data);
}

static void remove_blobs(void **state)
{
    struct fixture *f = *state;
    struct ag_err err = {0};
    void *data = NULL;
    size_t len = 0;

    put(f, "r/one", "1");
    assert_int_equal(kit_blob_remove(f->store, "r/one", &err), 0);
    assert_int_equal(kit_blob_read(f->store, "r/one", 10, &data, &len, &err), AG_ENOTFOUND);
    assert_int_equal(kit_blob_remove(f->store, "r/one", &err), 0);
    assert_int_equal(kit_blob_remove(f->store, "nowhere/at/all", &err), 0);
}

static void large_blob_in_pieces(void **state)
{
    struct fixture *f = *state;
    struct kit_blob_writer *w = NULL;
    struct ag_err err = {0};
    size_t size = 3 * 65536 + 17;
    unsigned char *src = malloc(size);
    void *data = NULL;
    size_t len = 0;

    assert_non_null(src);
    for (size_t i = 0; i < size; i++)
        src[i] = (unsigned char)(i * 31 + 7);
    assert_int_equal(kit_blob_begin(f->store, "big", &w, &err), 0);
    for (size_t off = 0; off < size; off += 65536)
        assert_int_equal(
            kit_blob_write(w, src + off, size - off < 65536 ? size - off : 65536, &err), 0);
    assert_int_equal(kit_blob_commit(w, &err), 0);
    assert_int_equal(kit_blob_read(f->store, "big", size, &data, &len, &err), 0);
    assert_int_equal(len, size);
    assert_memory_equal(data, src, size);
    free(data);
    free(src);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(open_refuses_bad_urls),
        cmocka_unit_test_setup_teardown(open_creates_root_0700, setup, teardown),
        cmocka_unit_test_setup_teardown(write_commit_read, setup, teardown),
        cmocka_unit_test_setup_teardown(commit_replaces, setup, teardown),
        cmocka_unit_test_setup_teardown(abort_leaves_nothing, setup, teardown),
        cmocka_unit_test_setup_teardown(keys_are_checked, setup, teardown),
        cmocka_unit_test_setup_teardown(read_limits_and_missing, setup, teardown),
        cmocka_unit_test_setup_teardown(remove_blobs, setup, teardown),
        cmocka_unit_test_setup_teardown(large_blob_in_pieces, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
