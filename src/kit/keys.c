/* Token signing keys: the ES256 key directory, its rotation and its JWK Set (see keys.h). */
#include "kit/keys.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <limits.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "core/base64url.h"
#include "kit/keys_internal.h"
#include "core/banned.h"

enum {
    KID_BYTES = 16,             /* random bytes of a kid */
    KID_MAX = 63,               /* longest kid accepted in state.json (fits kid[64]) */
    MAX_RETIRED = 64,           /* most retired keys state.json may list */
    MAX_FILE_BYTES = 64 * 1024, /* state.json and PEM files are far smaller */
    RELOAD_INTERVAL_MS = 1000,
    P256_FIELD = 32,
};

/* One key named by state.json; pkey is NULL for a retired key past its time (not loaded). */
struct key_entry {
    char kid[KID_MAX + 1];
    int64_t until_unix_s; /* retired keys: published until then; 0 for current and next */
    EVP_PKEY *pkey;
};

/* What state.json says, with the keys loaded: [0] current, [1] next, [2..] retired. */
struct key_state {
    size_t count;
    struct key_entry entries[2 + MAX_RETIRED];
};

/* Identity of state.json as last read, to notice a rename over it. */
struct file_id {
    dev_t dev;
    ino_t ino;
    off_t size;
    struct timespec mtime, ctime;
};

struct kit_keys {
    char *dir;
    char *passphrase;            /* NULL or a copy, wiped on free */
    pthread_mutex_t lock;        /* guards state and id */
    pthread_mutex_t reload_lock; /* one reload at a time */
    struct key_state state;
    struct file_id id;
    atomic_int_fast64_t last_check_ms;
};

/* ---- small helpers ---- */

static int64_t monotonic_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int64_t unix_now_s(void)
{
    return (int64_t)time(NULL);
}

static void state_release(struct key_state *st)
{
    for (size_t i = 0; i < st->count; i++)
        EVP_PKEY_free(st->entries[i].pkey);
    memset(st, 0, sizeof(*st));
}

/* A kid is a file name: only base64url characters, 1 to KID_MAX of them. */
static bool kid_valid(const char *kid)
{
    size_t n = strlen(kid);
    if (n == 0 || n > KID_MAX)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = kid[i];
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '_'))
            return false;
    }
    return true;
}

static int random_b64(char *out, size_t out_size, struct ag_err *err)
{
    unsigned char raw[KID_BYTES];
    if (out_size < ag_base64url_encoded_len(sizeof(raw)) + 1)
        return ag_err_set(err, AG_EINVAL, "random id buffer too small");
    if (RAND_bytes(raw, sizeof(raw)) != 1) {
        ERR_clear_error();
        return ag_err_set(err, AG_ESYS, "the random generator failed");
    }
    ag_base64url_encode(raw, sizeof(raw), out);
    return 0;
}

static int path_join(char *out, size_t size, const char *dir, const char *name, struct ag_err *err)
{
    int n = snprintf(out, size, "%s/%s", dir, name);
    if (n < 0 || (size_t)n >= size)
        return ag_err_set(err, AG_EINVAL, "path too long: %s/%s", dir, name);
    return 0;
}

/* Reads a whole small file, refusing one readable by others when private is set. */
static int read_file(const char *path, bool private_file, char **out, size_t *out_len,
                     struct ag_err *err)
{
    int rc = 0;
    char *data = NULL;
    size_t len = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0) {
        if (errno == ENOENT)
            return ag_err_set(err, AG_ENOTFOUND, "%s does not exist", path);
        return ag_err_sys(err, "cannot open %s", path);
    }
    struct stat sb;
    if (fstat(fd, &sb) != 0) {
        rc = ag_err_sys(err, "cannot stat %s", path);
        goto out;
    }
    if (!S_ISREG(sb.st_mode)) {
        rc = ag_err_set(err, AG_EINVAL, "%s is not a regular file", path);
        goto out;
    }
    if (private_file && (sb.st_mode & 077) != 0) {
        rc = ag_err_set(
            err, AG_EINVAL,
            "%s has mode 0%03o: it must not be accessible to group or others (chmod 600)", path,
            (unsigned)(sb.st_mode & 0777));
        goto out;
    }
    if (sb.st_size > MAX_FILE_BYTES) {
        rc = ag_err_set(err, AG_EINVAL, "%s is too large", path);
        goto out;
    }
    data = malloc((size_t)sb.st_size + 1);
    if (!data) {
        rc = ag_err_set(err, AG_ENOMEM, "out of memory");
        goto out;
    }
    while (len < (size_t)sb.st_size) {
        ssize_t r = read(fd, data + len, (size_t)sb.st_size - len);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            rc = ag_err_sys(err, "cannot read %s", path);
            goto out;
        }
        if (r == 0)
            break;
        len += (size_t)r;
    }
    data[len] = '\0';
    *out = data;
    *out_len = len;
    data = NULL;
out:
    if (data) {
        OPENSSL_cleanse(data, (size_t)sb.st_size + 1);
        free(data);
    }
    close(fd);
    return rc;
}

/* Replaces dir/name with data: a temporary file, fsync, rename, fsync of the directory. */
static int write_file_atomic(const char *dir, const char *name, const void *data, size_t len,
                             mode_t mode, struct ag_err *err)
{
    int rc = 0;
    char path[PATH_MAX], tmp[PATH_MAX], suffix[32];
    int fd = -1;
    if ((rc = path_join(path, sizeof(path), dir, name, err)) < 0)
        return rc;
    if ((rc = random_b64(suffix, sizeof(suffix), err)) < 0)
        return rc;
    int n = snprintf(tmp, sizeof(tmp), "%s/.%s.%s.tmp", dir, name, suffix);
    if (n < 0 || (size_t)n >= sizeof(tmp))
        return ag_err_set(err, AG_EINVAL, "path too long: %s", path);
    fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, mode);
    if (fd < 0)
        return ag_err_sys(err, "cannot create %s", tmp);
    if (fchmod(fd, mode) != 0) {
        rc = ag_err_sys(err, "cannot chmod %s", tmp);
        goto out;
    }
    for (size_t off = 0; off < len;) {
        ssize_t w = write(fd, (const char *)data + off, len - off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0) {
            rc = ag_err_sys(err, "cannot write %s", tmp);
            goto out;
        }
        off += (size_t)w;
    }
    if (fsync(fd) != 0) {
        rc = ag_err_sys(err, "cannot fsync %s", tmp);
        goto out;
    }
    if (close(fd) != 0) {
        fd = -1;
        rc = ag_err_sys(err, "cannot close %s", tmp);
        goto out;
    }
    fd = -1;
    if (rename(tmp, path) != 0) {
        rc = ag_err_sys(err, "cannot rename %s to %s", tmp, path);
        goto out;
    }
    int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
        (void)fsync(dfd);
        close(dfd);
    }
out:
    if (fd >= 0)
        close(fd);
    if (rc < 0)
        (void)unlink(tmp);
    return rc;
}

/* ---- keys and PEM files ---- */

/* OpenSSL's passphrase callback: never prompts; without a passphrase, decryption fails. */
static int passphrase_cb(char *buf, int size, int rwflag, void *u)
{
    (void)rwflag;
    const char *pass = u;
    if (!pass)
        return -1;
    size_t n = strlen(pass);
    if (n > (size_t)size || n > INT_MAX)
        return -1;
    memcpy(buf, pass, n);
    return (int)n;
}

static int key_generate(EVP_PKEY **out, struct ag_err *err)
{
    *out = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    if (!*out) {
        ERR_clear_error();
        return ag_err_set(err, AG_ESYS, "cannot generate a P-256 key");
    }
    return 0;
}

static int key_write(const char *dir, const char *kid, EVP_PKEY *pkey, const char *passphrase,
                     struct ag_err *err)
{
    int rc = 0;
    char name[KID_MAX + 8];
    BIO *bio = BIO_new(BIO_s_secmem());
    if (!bio)
        return ag_err_set(err, AG_ENOMEM, "out of memory");
    size_t plen = passphrase ? strlen(passphrase) : 0;
    if (plen > INT_MAX) {
        rc = ag_err_set(err, AG_EINVAL, "passphrase too long");
        goto out;
    }
    int ok = passphrase ? PEM_write_bio_PrivateKey(bio, pkey, EVP_aes_256_cbc(),
                                                   (const unsigned char *)passphrase, (int)plen,
                                                   NULL, NULL)
                        : PEM_write_bio_PrivateKey(bio, pkey, NULL, NULL, 0, NULL, NULL);
    if (ok != 1) {
        ERR_clear_error();
        rc = ag_err_set(err, AG_ESYS, "cannot encode key %s", kid);
        goto out;
    }
    char *pem = NULL;
    long pem_len = BIO_get_mem_data(bio, &pem);
    if (pem_len <= 0) {
        rc = ag_err_set(err, AG_ESYS, "cannot encode key %s", kid);
        goto out;
    }
    snprintf(name, sizeof(name), "%s.pem", kid);
    rc = write_file_atomic(dir, name, pem, (size_t)pem_len, 0600, err);
out:
    BIO_free(bio);
    return rc;
}

static int key_read(const char *dir, const char *kid, const char *passphrase, EVP_PKEY **out,
                    struct ag_err *err)
{
    int rc = 0;
    char path[PATH_MAX], name[KID_MAX + 8];
    char *data = NULL;
    size_t len = 0;
    BIO *bio = NULL;
    EVP_PKEY *pkey = NULL;
    snprintf(name, sizeof(name), "%s.pem", kid);
    if ((rc = path_join(path, sizeof(path), dir, name, err)) < 0)
        return rc;
    if ((rc = read_file(path, true, &data, &len, err)) < 0) {
        if (rc == AG_ENOTFOUND) /* state.json names it: the directory is damaged */
            rc = ag_err_set(err, AG_EINVAL, "key file %s named by state.json is missing", path);
        return rc;
    }
    bio = BIO_new_mem_buf(data, (int)len);
    if (!bio) {
        rc = ag_err_set(err, AG_ENOMEM, "out of memory");
        goto out;
    }
    pkey = PEM_read_bio_PrivateKey(bio, NULL, passphrase_cb, (void *)passphrase);
    if (!pkey) {
        ERR_clear_error();
        rc = ag_err_set(err, AG_EINVAL, "cannot read key %s: %s", path,
                        passphrase ? "wrong passphrase or not a PEM private key"
                                   : "encrypted (a passphrase is needed) or not a PEM private key");
        goto out;
    }
    char group[32] = "";
    size_t glen = 0;
    if (!EVP_PKEY_is_a(pkey, "EC") ||
        EVP_PKEY_get_utf8_string_param(pkey, OSSL_PKEY_PARAM_GROUP_NAME, group, sizeof(group),
                                       &glen) != 1 ||
        strcmp(group, "prime256v1") != 0) {
        ERR_clear_error();
        rc = ag_err_set(err, AG_EINVAL, "key %s is not a P-256 EC key", path);
        goto out;
    }
    *out = pkey;
    pkey = NULL;
out:
    EVP_PKEY_free(pkey);
    BIO_free(bio);
    OPENSSL_cleanse(data, len);
    free(data);
    return rc;
}

/* ---- state.json ---- */

/* Parses state.json into st (kids and times only; no key loaded). */
static int state_parse(const char *path, const char *text, size_t len, struct key_state *st,
                       struct ag_err *err)
{
    int rc = 0;
    json_error_t jerr;
    json_t *root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
    memset(st, 0, sizeof(*st));
    if (!root || !json_is_object(root)) {
        rc = ag_err_set(err, AG_EINVAL, "%s: not a JSON object", path);
        goto out;
    }
    const char *cur = json_string_value(json_object_get(root, "current"));
    const char *next = json_string_value(json_object_get(root, "next"));
    json_t *retired = json_object_get(root, "retired");
    if (!cur || !next || !kid_valid(cur) || !kid_valid(next) || strcmp(cur, next) == 0) {
        rc = ag_err_set(err, AG_EINVAL, "%s: \"current\" and \"next\" must be two distinct kids",
                        path);
        goto out;
    }
    if (retired && !json_is_array(retired)) {
        rc = ag_err_set(err, AG_EINVAL, "%s: \"retired\" must be an array", path);
        goto out;
    }
    if (json_array_size(retired) > MAX_RETIRED) {
        rc = ag_err_set(err, AG_EINVAL, "%s: more than %d retired keys", path, MAX_RETIRED);
        goto out;
    }
    memcpy(st->entries[0].kid, cur, strlen(cur) + 1);
    memcpy(st->entries[1].kid, next, strlen(next) + 1);
    st->count = 2;
    size_t i;
    json_t *r;
    json_array_foreach(retired, i, r)
    {
        const char *kid = json_string_value(json_object_get(r, "kid"));
        json_t *until = json_object_get(r, "until_unix_s");
        if (!kid || !kid_valid(kid) || !json_is_integer(until) || json_integer_value(until) < 0) {
            rc = ag_err_set(err, AG_EINVAL,
                            "%s: retired[%zu] needs a valid \"kid\" and \"until_unix_s\"", path, i);
            goto out;
        }
        for (size_t j = 0; j < st->count; j++) {
            if (strcmp(st->entries[j].kid, kid) == 0) {
                rc = ag_err_set(err, AG_EINVAL, "%s: kid %s is listed twice", path, kid);
                goto out;
            }
        }
        struct key_entry *e = &st->entries[st->count++];
        memcpy(e->kid, kid, strlen(kid) + 1);
        e->until_unix_s = (int64_t)json_integer_value(until);
    }
out:
    json_decref(root);
    return rc;
}

static int state_write(const char *dir, const struct key_state *st, struct ag_err *err)
{
    int rc = 0;
    char *text = NULL;
    json_t *retired = json_array();
    json_t *root = json_object();
    if (!retired || !root) {
        rc = ag_err_set(err, AG_ENOMEM, "out of memory");
        goto out;
    }
    for (size_t i = 2; i < st->count; i++) {
        json_t *r = json_pack("{s:s, s:I}", "kid", st->entries[i].kid, "until_unix_s",
                              (json_int_t)st->entries[i].until_unix_s);
        if (!r || json_array_append_new(retired, r) != 0) {
            rc = ag_err_set(err, AG_ENOMEM, "out of memory");
            goto out;
        }
    }
    if (json_object_set_new(root, "current", json_string(st->entries[0].kid)) != 0 ||
        json_object_set_new(root, "next", json_string(st->entries[1].kid)) != 0 ||
        json_object_set(root, "retired", retired) != 0) {
        rc = ag_err_set(err, AG_ENOMEM, "out of memory");
        goto out;
    }
    text = json_dumps(root, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    if (!text) {
        rc = ag_err_set(err, AG_ENOMEM, "out of memory");
        goto out;
    }
    size_t len = strlen(text);
    char *with_nl = realloc(text, len + 2);
    if (!with_nl) {
        rc = ag_err_set(err, AG_ENOMEM, "out of memory");
        goto out;
    }
    text = with_nl;
    text[len++] = '\n';
    text[len] = '\0';
    rc = write_file_atomic(dir, "state.json", text, len, 0600, err);
out:
    free(text);
    json_decref(root);
    json_decref(retired);
    return rc;
}

/* Appends the public JWK of pkey. */
static int jwk_append(struct ag_buf *out, const char *kid, EVP_PKEY *pkey)
{
    int rc = 0;
    BIGNUM *x = NULL, *y = NULL;
    unsigned char xb[P256_FIELD], yb[P256_FIELD];
    char xs[64], ys[64];
    if (EVP_PKEY_get_bn_param(pkey, OSSL_PKEY_PARAM_EC_PUB_X, &x) != 1 ||
        EVP_PKEY_get_bn_param(pkey, OSSL_PKEY_PARAM_EC_PUB_Y, &y) != 1 ||
        BN_bn2binpad(x, xb, sizeof(xb)) != P256_FIELD ||
        BN_bn2binpad(y, yb, sizeof(yb)) != P256_FIELD) {
        ERR_clear_error();
        rc = AG_ESYS;
        goto out;
    }
    ag_base64url_encode(xb, sizeof(xb), xs);
    ag_base64url_encode(yb, sizeof(yb), ys);
    rc =
        ag_buf_appendf(out,
                       "{\"kty\":\"EC\",\"crv\":\"P-256\",\"x\":\"%s\",\"y\":\"%s\",\"kid\":\"%s\","
                       "\"alg\":\"ES256\",\"use\":\"sig\"}",
                       xs, ys, kid);
out:
    BN_free(x);
    BN_free(y);
    return rc;
}

/* The JWK Set of st's keys published at now_s: current, next, and retired not yet past. */
static int state_jwks(const struct key_state *st, int64_t now_s, struct ag_buf *out)
{
    int rc = ag_buf_append_str(out, AG_STR("{\"keys\":["));
    bool first = true;
    for (size_t i = 0; rc == 0 && i < st->count; i++) {
        const struct key_entry *e = &st->entries[i];
        if (!e->pkey || (i >= 2 && e->until_unix_s <= now_s))
            continue;
        if (!first)
            rc = ag_buf_append_str(out, AG_STR(","));
        if (rc == 0)
            rc = jwk_append(out, e->kid, e->pkey);
        first = false;
    }
    if (rc == 0)
        rc = ag_buf_append_str(out, AG_STR("]}\n"));
    return rc;
}

static int jwks_write(const char *dir, const struct key_state *st, struct ag_err *err)
{
    struct ag_buf b;
    ag_buf_init(&b, 1024 * 1024);
    int rc = state_jwks(st, unix_now_s(), &b);
    if (rc < 0)
        rc = ag_err_set(err, rc, "cannot build the JWK Set of %s", dir);
    else
        rc = write_file_atomic(dir, "jwks.json", b.data + b.off, b.len, 0644, err);
    ag_buf_release(&b);
    return rc;
}

/*
 * Reads state.json and loads every key still published (retired keys past their time are
 * listed in st with pkey NULL). id (may be NULL) gets the identity of the file read.
 */
static int state_load(const char *dir, const char *passphrase, struct key_state *st,
                      struct file_id *id, struct ag_err *err)
{
    int rc = 0;
    char path[PATH_MAX];
    char *text = NULL;
    size_t len = 0;
    memset(st, 0, sizeof(*st));
    if ((rc = path_join(path, sizeof(path), dir, "state.json", err)) < 0)
        return rc;
    if (id) {
        struct stat sb;
        if (stat(path, &sb) == 0)
            *id = (struct file_id){sb.st_dev, sb.st_ino, sb.st_size, sb.st_mtim, sb.st_ctim};
    }
    if ((rc = read_file(path, false, &text, &len, err)) < 0)
        goto out;
    if ((rc = state_parse(path, text, len, st, err)) < 0)
        goto out;
    int64_t now = unix_now_s();
    for (size_t i = 0; i < st->count; i++) {
        if (i >= 2 && st->entries[i].until_unix_s <= now)
            continue;
        if ((rc = key_read(dir, st->entries[i].kid, passphrase, &st->entries[i].pkey, err)) < 0)
            goto out;
    }
out:
    free(text);
    if (rc < 0)
        state_release(st);
    return rc;
}

/* ---- the directory and its lock ---- */

/* Creates dir (mode 0700) and missing parents (mode 0755, as umask allows). */
static int dir_create(const char *dir, struct ag_err *err)
{
    char path[PATH_MAX];
    size_t n = strlen(dir);
    if (n == 0 || n >= sizeof(path))
        return ag_err_set(err, AG_EINVAL, "bad key directory name");
    memcpy(path, dir, n + 1);
    for (size_t i = 1; i < n; i++) {
        if (path[i] != '/')
            continue;
        path[i] = '\0';
        if (mkdir(path, 0755) != 0 && errno != EEXIST)
            return ag_err_sys(err, "cannot create %s", path);
        path[i] = '/';
    }
    if (mkdir(dir, 0700) == 0) {
        if (chmod(dir, 0700) != 0)
            return ag_err_sys(err, "cannot chmod %s", dir);
    } else if (errno != EEXIST) {
        return ag_err_sys(err, "cannot create %s", dir);
    }
    return 0;
}

static int dir_check(const char *dir, struct ag_err *err)
{
    struct stat sb;
    if (stat(dir, &sb) != 0) {
        if (errno == ENOENT)
            return ag_err_set(err, AG_ENOTFOUND, "key directory %s does not exist", dir);
        return ag_err_sys(err, "cannot stat %s", dir);
    }
    if (!S_ISDIR(sb.st_mode))
        return ag_err_set(err, AG_EINVAL, "%s is not a directory", dir);
    if ((sb.st_mode & 077) != 0)
        return ag_err_set(err, AG_EINVAL,
                          "key directory %s has mode 0%03o: it must not be accessible to group or "
                          "others (chmod 700)",
                          dir, (unsigned)(sb.st_mode & 0777));
    return 0;
}

/*
 * Takes an flock on dir/.lock (exclusive for writers, shared for readers) and returns its
 * descriptor, or -1 when the lock file cannot be opened by a reader (a read-only directory:
 * then nobody rotates there either).
 */
static int dir_lock(const char *dir, bool exclusive, int *fd_out, struct ag_err *err)
{
    char path[PATH_MAX];
    int rc = path_join(path, sizeof(path), dir, ".lock", err);
    if (rc < 0)
        return rc;
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0) {
        if (!exclusive && (errno == EACCES || errno == EROFS)) {
            *fd_out = -1;
            return 0;
        }
        return ag_err_sys(err, "cannot open %s", path);
    }
    while (flock(fd, exclusive ? LOCK_EX : LOCK_SH) != 0) {
        if (errno != EINTR) {
            rc = ag_err_sys(err, "cannot lock %s", path);
            close(fd);
            return rc;
        }
    }
    *fd_out = fd;
    return 0;
}

static void dir_unlock(int fd)
{
    if (fd >= 0)
        close(fd); /* releases the flock */
}

/* Makes a current and a next key in an empty directory (the caller holds the lock). */
static int dir_initialise(const char *dir, const char *passphrase, struct ag_err *err)
{
    int rc = 0;
    struct key_state st;
    memset(&st, 0, sizeof(st));
    st.count = 2;
    for (size_t i = 0; i < 2; i++) {
        if ((rc = random_b64(st.entries[i].kid, sizeof(st.entries[i].kid), err)) < 0 ||
            (rc = key_generate(&st.entries[i].pkey, err)) < 0 ||
            (rc = key_write(dir, st.entries[i].kid, st.entries[i].pkey, passphrase, err)) < 0)
            goto out;
    }
    if ((rc = jwks_write(dir, &st, err)) < 0)
        goto out;
    rc = state_write(dir, &st, err);
out:
    state_release(&st);
    return rc;
}

/* ---- the exported functions ---- */

int kit_keys_open(const char *dir, const char *passphrase, bool create, struct kit_keys **out,
                  struct ag_err *err)
{
    int rc = 0;
    int lock_fd = -1;
    struct kit_keys *keys = NULL;
    *out = NULL;
    if (!dir || !*dir)
        return ag_err_set(err, AG_EINVAL, "no key directory given");
    if (create && (rc = dir_create(dir, err)) < 0)
        return rc;
    if ((rc = dir_check(dir, err)) < 0)
        return rc;
    keys = calloc(1, sizeof(*keys));
    if (!keys)
        return ag_err_set(err, AG_ENOMEM, "out of memory");
    pthread_mutex_init(&keys->lock, NULL);
    pthread_mutex_init(&keys->reload_lock, NULL);
    keys->dir = strdup(dir);
    keys->passphrase = passphrase ? strdup(passphrase) : NULL;
    if (!keys->dir || (passphrase && !keys->passphrase)) {
        rc = ag_err_set(err, AG_ENOMEM, "out of memory");
        goto out;
    }
    if ((rc = dir_lock(dir, create, &lock_fd, err)) < 0)
        goto out;
    if (create) {
        char path[PATH_MAX];
        struct stat sb;
        if ((rc = path_join(path, sizeof(path), dir, "state.json", err)) < 0)
            goto out;
        if (stat(path, &sb) != 0) {
            if (errno != ENOENT) {
                rc = ag_err_sys(err, "cannot stat %s", path);
                goto out;
            }
            if ((rc = dir_initialise(dir, passphrase, err)) < 0)
                goto out;
        }
    }
    rc = state_load(dir, passphrase, &keys->state, &keys->id, err);
    if (rc == AG_ENOTFOUND)
        rc = ag_err_set(err, AG_ENOTFOUND, "no keys in %s (state.json is missing)", dir);
    if (rc < 0)
        goto out;
    atomic_store(&keys->last_check_ms, monotonic_ms());
    *out = keys;
    keys = NULL;
out:
    dir_unlock(lock_fd);
    kit_keys_free(keys);
    return rc;
}

void kit_keys_free(struct kit_keys *keys)
{
    if (!keys)
        return;
    state_release(&keys->state);
    if (keys->passphrase) {
        OPENSSL_cleanse(keys->passphrase, strlen(keys->passphrase));
        free(keys->passphrase);
    }
    free(keys->dir);
    pthread_mutex_destroy(&keys->lock);
    pthread_mutex_destroy(&keys->reload_lock);
    free(keys);
}

int kit_keys_rotate(const char *dir, const char *passphrase, uint32_t keep_s, char new_kid[64],
                    struct ag_err *err)
{
    int rc = 0;
    int lock_fd = -1;
    struct key_state old, st;
    memset(&old, 0, sizeof(old));
    memset(&st, 0, sizeof(st));
    if (!dir || !*dir)
        return ag_err_set(err, AG_EINVAL, "no key directory given");
    if ((rc = dir_check(dir, err)) < 0)
        return rc;
    if ((rc = dir_lock(dir, true, &lock_fd, err)) < 0)
        return rc;
    rc = state_load(dir, passphrase, &old, NULL, err);
    if (rc == AG_ENOTFOUND)
        rc = ag_err_set(err, AG_ENOTFOUND, "no keys in %s (state.json is missing)", dir);
    if (rc < 0)
        goto out;
    int64_t now = unix_now_s();

    /* The new state: next → current, a new next, old current retired, expired ones dropped. */
    st.entries[0] = old.entries[1];
    old.entries[1].pkey = NULL;
    if ((rc = random_b64(st.entries[1].kid, sizeof(st.entries[1].kid), err)) < 0 ||
        (rc = key_generate(&st.entries[1].pkey, err)) < 0)
        goto out;
    st.count = 2;
    st.entries[2] = old.entries[0];
    st.entries[2].until_unix_s = now + (int64_t)keep_s;
    old.entries[0].pkey = NULL;
    st.count = 3;
    for (size_t i = 2; i < old.count; i++) {
        if (old.entries[i].until_unix_s <= now || st.count >= 2 + MAX_RETIRED)
            continue;
        st.entries[st.count++] = old.entries[i];
        old.entries[i].pkey = NULL;
        old.entries[i].kid[0] = '\0'; /* kept: not to be deleted below */
    }

    if ((rc = key_write(dir, st.entries[1].kid, st.entries[1].pkey, passphrase, err)) < 0)
        goto out;
    /* jwks.json first: a verifier never sees state.json name a key it cannot find there. */
    if ((rc = jwks_write(dir, &st, err)) < 0)
        goto out;
    if ((rc = state_write(dir, &st, err)) < 0)
        goto out;
    for (size_t i = 2; i < old.count; i++) {
        char path[PATH_MAX], name[KID_MAX + 8];
        if (!old.entries[i].kid[0])
            continue;
        snprintf(name, sizeof(name), "%s.pem", old.entries[i].kid);
        if (path_join(path, sizeof(path), dir, name, NULL) == 0)
            (void)unlink(path);
    }
    if (new_kid)
        memcpy(new_kid, st.entries[0].kid, strlen(st.entries[0].kid) + 1);
out:
    state_release(&st);
    state_release(&old);
    dir_unlock(lock_fd);
    return rc;
}

int kit_keys_reload(struct kit_keys *keys, struct ag_err *err)
{
    int rc = 0;
    int lock_fd = -1;
    struct key_state st;
    struct file_id id;
    memset(&st, 0, sizeof(st));
    memset(&id, 0, sizeof(id));
    int64_t now = monotonic_ms();
    int_fast64_t last = atomic_load(&keys->last_check_ms);
    if (now - last < RELOAD_INTERVAL_MS)
        return 0;
    if (!atomic_compare_exchange_strong(&keys->last_check_ms, &last, now))
        return 0; /* another thread looks right now */
    if (pthread_mutex_trylock(&keys->reload_lock) != 0)
        return 0;

    char path[PATH_MAX];
    struct stat sb;
    if ((rc = path_join(path, sizeof(path), keys->dir, "state.json", err)) < 0)
        goto out;
    if (stat(path, &sb) != 0) {
        rc = errno == ENOENT ? ag_err_set(err, AG_ENOTFOUND, "%s does not exist", path)
                             : ag_err_sys(err, "cannot stat %s", path);
        goto out;
    }
    pthread_mutex_lock(&keys->lock);
    bool same = keys->id.dev == sb.st_dev && keys->id.ino == sb.st_ino &&
                keys->id.size == sb.st_size && keys->id.mtime.tv_sec == sb.st_mtim.tv_sec &&
                keys->id.mtime.tv_nsec == sb.st_mtim.tv_nsec &&
                keys->id.ctime.tv_sec == sb.st_ctim.tv_sec &&
                keys->id.ctime.tv_nsec == sb.st_ctim.tv_nsec;
    pthread_mutex_unlock(&keys->lock);
    if (same)
        goto out;
    if ((rc = dir_check(keys->dir, err)) < 0)
        goto out;
    if ((rc = dir_lock(keys->dir, false, &lock_fd, err)) < 0)
        goto out;
    if ((rc = state_load(keys->dir, keys->passphrase, &st, &id, err)) < 0)
        goto out;
    pthread_mutex_lock(&keys->lock);
    struct key_state old = keys->state;
    keys->state = st;
    keys->id = id;
    pthread_mutex_unlock(&keys->lock);
    memset(&st, 0, sizeof(st));
    state_release(&old);
out:
    dir_unlock(lock_fd);
    state_release(&st);
    pthread_mutex_unlock(&keys->reload_lock);
    return rc;
}

int kit_keys_jwks(struct kit_keys *keys, struct ag_buf *out)
{
    pthread_mutex_lock(&keys->lock);
    int rc = state_jwks(&keys->state, unix_now_s(), out);
    pthread_mutex_unlock(&keys->lock);
    return rc;
}

void kit_keys_current_kid(struct kit_keys *keys, char out[64])
{
    pthread_mutex_lock(&keys->lock);
    const char *kid = keys->state.entries[0].kid;
    memcpy(out, kid, strlen(kid) + 1);
    pthread_mutex_unlock(&keys->lock);
}

int kit_keys_signing_key(struct kit_keys *keys, EVP_PKEY **pkey, char kid[64], struct ag_err *err)
{
    pthread_mutex_lock(&keys->lock);
    const struct key_entry *current = &keys->state.entries[0];
    *pkey = current->pkey;
    if (*pkey) {
        EVP_PKEY_up_ref(*pkey);
        memcpy(kid, current->kid, strlen(current->kid) + 1);
    }
    pthread_mutex_unlock(&keys->lock);
    return *pkey ? 0 : ag_err_set(err, AG_EINVAL, "no signing key loaded");
}
