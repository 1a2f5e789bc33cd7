/* The blob port's file driver (file:PATH): one file per blob, written atomically. */
#include "kit/blob.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/banned.h"

enum {
    BLOB_KEY_MAX = 200,
    BLOB_TMP_TRIES = 16, /* fresh random names tried when one is taken */
};

/*
 * Every path below is relative to root_fd (openat and friends), so a key can never reach out of
 * the store, and a change of the working directory after open does not move the store.
 */
struct kit_blob_store {
    int root_fd;
    char *root; /* for messages */
};

struct kit_blob_writer {
    struct kit_blob_store *store;
    int fd;
    char key[BLOB_KEY_MAX + 1];
    /* The key plus "#" and 12 hex digits: '#' is outside the key alphabet, so a temporary file
     * never shadows a blob and a crash's leftovers are recognisable. */
    char tmp[BLOB_KEY_MAX + 16];
};

/* True for a key of [a-z0-9._-] segments joined by '/', no empty, "." or ".." segment. */
static bool blob_key_valid(const char *key)
{
    size_t len = strlen(key), seg_start = 0;
    if (len == 0 || len > BLOB_KEY_MAX)
        return false;
    for (size_t i = 0; i <= len; i++) {
        char c = key[i];
        if (c == '/' || c == '\0') {
            size_t seg = i - seg_start;
            if (seg == 0 || (seg == 1 && key[seg_start] == '.') ||
                (seg == 2 && key[seg_start] == '.' && key[seg_start + 1] == '.'))
                return false;
            seg_start = i + 1;
            continue;
        }
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-'))
            return false;
    }
    return true;
}

static int blob_key_check(const char *key, struct ag_err *err)
{
    if (!key || !blob_key_valid(key))
        return ag_err_set(err, AG_EINVAL,
                          "blob key \"%.64s\" is not [a-z0-9._-] segments joined by '/' "
                          "(1..%d bytes, no \".\" or \"..\")",
                          key ? key : "", BLOB_KEY_MAX);
    return 0;
}

/* Makes a directory's entries (a new file name, a rename, an unlink) survive a crash. */
static int blob_sync_dir(int at, const char *dir, struct ag_err *err)
{
    int fd = openat(at, dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return ag_err_sys(err, "cannot open directory %s to sync it", dir);
    int rc = fsync(fd) < 0 ? ag_err_sys(err, "cannot sync directory %s", dir) : 0;
    close(fd);
    return rc;
}

/*
 * Creates the directories of path up to its last '/' (0700), relative to at; syncs the parent
 * of each directory it creates, so the new file's directory chain is durable too.
 */
static int blob_mkdirs(int at, const char *path, struct ag_err *err)
{
    char dir[BLOB_KEY_MAX + 1];
    size_t len = strlen(path);
    if (len > BLOB_KEY_MAX)
        return ag_err_set(err, AG_EINVAL, "path too long");
    for (size_t i = 0; i < len; i++) {
        if (path[i] != '/')
            continue;
        memcpy(dir, path, i);
        dir[i] = '\0';
        if (mkdirat(at, dir, 0700) == 0) {
            char *slash = strrchr(dir, '/');
            if (slash)
                *slash = '\0';
            int rc = blob_sync_dir(at, slash ? dir : ".", err);
            if (rc < 0)
                return rc;
        } else if (errno != EEXIST) {
            return ag_err_sys(err, "cannot create blob directory %s", dir);
        }
    }
    return 0;
}

/* The directory part of key ("." for a key without '/') into out. */
static void blob_key_dir(const char *key, char out[BLOB_KEY_MAX + 1])
{
    const char *slash = strrchr(key, '/');
    if (!slash) {
        memcpy(out, ".", 2);
        return;
    }
    memcpy(out, key, (size_t)(slash - key));
    out[slash - key] = '\0';
}

/* mkdir -p for the store's root itself (relative to the working directory), 0700. */
static int blob_mkdir_root(const char *root, struct ag_err *err)
{
    size_t len = strlen(root);
    char *dir = malloc(len + 1);
    int rc = 0;
    if (!dir)
        return ag_err_set(err, AG_ENOMEM, "out of memory");
    memcpy(dir, root, len + 1);
    for (size_t i = 1; i <= len && rc == 0; i++) {
        if (dir[i] != '/' && dir[i] != '\0')
            continue;
        char saved = dir[i];
        dir[i] = '\0';
        if (mkdir(dir, 0700) < 0 && errno != EEXIST)
            rc = ag_err_sys(err, "cannot create blob directory %s", dir);
        dir[i] = saved;
    }
    free(dir);
    return rc;
}

int kit_blob_open(const char *url, struct kit_blob_store **out, struct ag_err *err)
{
    struct kit_blob_store *store = NULL;
    int rc;

    *out = NULL;
    if (!url || strncmp(url, "file:", 5) != 0 || url[5] == '\0')
        return ag_err_set(err, AG_EINVAL, "blob store URL \"%s\": expected file:PATH",
                          url ? url : "");
    const char *root = url + 5;
    rc = blob_mkdir_root(root, err);
    if (rc < 0)
        return rc;
    store = calloc(1, sizeof *store);
    if (!store || !(store->root = strdup(root))) {
        free(store);
        return ag_err_set(err, AG_ENOMEM, "out of memory");
    }
    store->root_fd = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (store->root_fd < 0) {
        rc = ag_err_sys(err, "cannot open blob directory %s", root);
        free(store->root);
        free(store);
        return rc;
    }
    *out = store;
    return 0;
}

void kit_blob_close(struct kit_blob_store *store)
{
    if (!store)
        return;
    close(store->root_fd);
    free(store->root);
    free(store);
}

/* Opens a fresh temporary file next to w->key (0600, exclusive), its name in w->tmp. */
static int blob_open_tmp(struct kit_blob_writer *w, struct ag_err *err)
{
    for (int attempt = 0; attempt < BLOB_TMP_TRIES; attempt++) {
        uint8_t r[6];
        if (getrandom(r, sizeof r, 0) != (ssize_t)sizeof r)
            return ag_err_sys(err, "getrandom");
        snprintf(w->tmp, sizeof w->tmp, "%s#%02x%02x%02x%02x%02x%02x", w->key, r[0], r[1], r[2],
                 r[3], r[4], r[5]);
        w->fd = openat(w->store->root_fd, w->tmp,
                       O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
        if (w->fd >= 0)
            return 0;
        if (errno != EEXIST)
            return ag_err_sys(err, "cannot create blob %s/%s", w->store->root, w->tmp);
    }
    return ag_err_set(err, AG_ESYS, "no free temporary name for blob %s", w->key);
}

int kit_blob_begin(struct kit_blob_store *store, const char *key, struct kit_blob_writer **out,
                   struct ag_err *err)
{
    struct kit_blob_writer *w = NULL;
    int rc;

    *out = NULL;
    if (!store)
        return ag_err_set(err, AG_EINVAL, "no blob store");
    rc = blob_key_check(key, err);
    if (rc < 0)
        return rc;
    w = calloc(1, sizeof *w);
    if (!w)
        return ag_err_set(err, AG_ENOMEM, "out of memory");
    w->store = store;
    w->fd = -1;
    memcpy(w->key, key, strlen(key) + 1);
    rc = blob_mkdirs(store->root_fd, key, err);
    if (rc == 0)
        rc = blob_open_tmp(w, err);
    if (rc < 0) {
        free(w);
        return rc;
    }
    *out = w;
    return 0;
}

int kit_blob_write(struct kit_blob_writer *w, const void *data, size_t len, struct ag_err *err)
{
    const char *p = data;
    if (!w || w->fd < 0)
        return ag_err_set(err, AG_EINVAL, "blob writer is not open");
    while (len > 0) {
        ssize_t n = write(w->fd, p, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return ag_err_sys(err, "cannot write blob %s", w->key);
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

int kit_blob_commit(struct kit_blob_writer *w, struct ag_err *err)
{
    char dir[BLOB_KEY_MAX + 1];
    int rc = 0;

    if (!w)
        return ag_err_set(err, AG_EINVAL, "no blob writer");
    /* The bytes first, then the name: after the rename a reader sees the whole blob or the
     * old one, and after the directory sync the new name survives a power cut. */
    if (fsync(w->fd) < 0) {
        rc = ag_err_sys(err, "cannot sync blob %s", w->key);
        goto out;
    }
    if (close(w->fd) < 0) {
        w->fd = -1;
        rc = ag_err_sys(err, "cannot close blob %s", w->key);
        goto out;
    }
    w->fd = -1;
    if (renameat(w->store->root_fd, w->tmp, w->store->root_fd, w->key) < 0) {
        rc = ag_err_sys(err, "cannot rename blob %s into place", w->key);
        goto out;
    }
    w->tmp[0] = '\0'; /* nothing to clean up any more */
    blob_key_dir(w->key, dir);
    rc = blob_sync_dir(w->store->root_fd, dir, err);
out:
    if (w->fd >= 0)
        close(w->fd);
    if (w->tmp[0])
        unlinkat(w->store->root_fd, w->tmp, 0);
    free(w);
    return rc;
}

void kit_blob_abort(struct kit_blob_writer *w)
{
    if (!w)
        return;
    if (w->fd >= 0)
        close(w->fd);
    unlinkat(w->store->root_fd, w->tmp, 0);
    free(w);
}

int kit_blob_read(struct kit_blob_store *store, const char *key, size_t max, void **data,
                  size_t *len, struct ag_err *err)
{
    struct stat st;
    char *buf = NULL;
    size_t size, got = 0;
    int fd = -1, rc;

    *data = NULL;
    *len = 0;
    if (!store)
        return ag_err_set(err, AG_EINVAL, "no blob store");
    rc = blob_key_check(key, err);
    if (rc < 0)
        return rc;
    fd = openat(store->root_fd, key, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0) {
        if (errno == ENOENT || errno == ENOTDIR)
            return ag_err_set(err, AG_ENOTFOUND, "no blob %s", key);
        return ag_err_sys(err, "cannot open blob %s", key);
    }
    if (fstat(fd, &st) < 0) {
        rc = ag_err_sys(err, "cannot stat blob %s", key);
        goto out;
    }
    if (!S_ISREG(st.st_mode)) {
        rc = ag_err_set(err, AG_ENOTFOUND, "no blob %s (not a file)", key);
        goto out;
    }
    if ((uint64_t)st.st_size > max) {
        rc = ag_err_set(err, AG_ERANGE, "blob %s is %lld bytes, over %zu", key,
                        (long long)st.st_size, max);
        goto out;
    }
    size = (size_t)st.st_size;
    buf = malloc(size ? size : 1);
    if (!buf) {
        rc = ag_err_set(err, AG_ENOMEM, "out of memory");
        goto out;
    }
    /* Blobs are replaced by rename, never rewritten in place, so the size stays true. */
    while (got < size) {
        ssize_t n = read(fd, buf + got, size - got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            rc = ag_err_sys(err, "cannot read blob %s", key);
            goto out;
        }
        if (n == 0) {
            rc = ag_err_set(err, AG_ESYS, "blob %s ended early", key);
            goto out;
        }
        got += (size_t)n;
    }
    *data = buf;
    *len = size;
    buf = NULL;
out:
    free(buf);
    close(fd);
    return rc;
}

int kit_blob_remove(struct kit_blob_store *store, const char *key, struct ag_err *err)
{
    char dir[BLOB_KEY_MAX + 1];
    if (!store)
        return ag_err_set(err, AG_EINVAL, "no blob store");
    int rc = blob_key_check(key, err);
    if (rc < 0)
        return rc;
    if (unlinkat(store->root_fd, key, 0) < 0) {
        if (errno == ENOENT || errno == ENOTDIR)
            return 0;
        return ag_err_sys(err, "cannot remove blob %s", key);
    }
    blob_key_dir(key, dir);
    return blob_sync_dir(store->root_fd, dir, err);
}
