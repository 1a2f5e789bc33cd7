/* Helpers shared by the agora commands: error lines, exit codes, option values, state files. */
#include "cli/cli_util.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/buf.h"
#include "core/err.h"
#include "core/banned.h"

int cli_fail(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("agora: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    return CLI_EXIT_FAILURE;
}

int cli_usage(const char *command, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("agora: ", stderr);
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, " (see agora %s%s--help)\n", command ? command : "", command ? " " : "");
    va_end(ap);
    return CLI_EXIT_USAGE;
}

int cli_option(const char *command, int argc, char **argv, int *i, const char *name,
               const char **value)
{
    const char *arg = argv[*i];
    size_t len = strlen(name);
    if (strncmp(arg, name, len) != 0)
        return 0;
    if (arg[len] == '=') {
        *value = arg + len + 1;
        return 1;
    }
    if (arg[len] != '\0')
        return 0;
    if (*i + 1 >= argc) {
        cli_usage(command, "%s needs a value", name);
        return -1;
    }
    *i += 1;
    *value = argv[*i];
    return 1;
}

bool cli_is_help(const char *arg)
{
    return strcmp(arg, "-h") == 0 || strcmp(arg, "--help") == 0;
}

int cli_mkdir_p(const char *dir, unsigned mode)
{
    char path[4096];
    size_t n = strlen(dir);
    if (n == 0 || n >= sizeof(path)) {
        errno = ENAMETOOLONG;
        return -1;
    }
    memcpy(path, dir, n + 1);
    for (size_t i = 1; i <= n; i++) {
        if (path[i] != '/' && path[i] != '\0')
            continue;
        char saved = path[i];
        path[i] = '\0';
        if (mkdir(path, (mode_t)mode) != 0 && errno != EEXIST)
            return -1;
        path[i] = saved;
    }
    return 0;
}

bool cli_pid_alive(long pid)
{
    if (pid <= 0)
        return false;
    return kill((pid_t)pid, 0) == 0 || errno == EPERM;
}

int cli_write_atomic(const char *path, const char *data, size_t len)
{
    char tmp[4200];
    int n = snprintf(tmp, sizeof(tmp), "%s.%ld.tmp", path, (long)getpid());
    if (n < 0 || (size_t)n >= sizeof(tmp)) {
        errno = ENAMETOOLONG;
        return -1;
    }
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        return -1;
    for (size_t off = 0; off < len;) {
        ssize_t w = write(fd, data + off, len - off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0) {
            int saved = errno;
            close(fd);
            unlink(tmp);
            errno = saved;
            return -1;
        }
        off += (size_t)w;
    }
    if (close(fd) != 0 || rename(tmp, path) != 0) {
        int saved = errno;
        unlink(tmp);
        errno = saved;
        return -1;
    }
    return 0;
}

int cli_url_split(const char *url, char *host, size_t host_size, char *port, size_t port_size,
                  const char **path)
{
    if (strncmp(url, "http://", 7) != 0)
        return AG_EINVAL;
    const char *auth = url + 7;
    const char *slash = strchr(auth, '/');
    *path = slash ? slash : "/";
    size_t auth_len = slash ? (size_t)(slash - auth) : strlen(auth);
    const char *host_start = auth, *host_end, *colon;
    if (auth_len > 0 && auth[0] == '[') {
        const char *close = memchr(auth, ']', auth_len);
        if (!close)
            return AG_EINVAL;
        host_start = auth + 1;
        host_end = close;
        colon = close + 1 < auth + auth_len && close[1] == ':' ? close + 1 : NULL;
    } else {
        colon = memchr(auth, ':', auth_len);
        host_end = colon ? colon : auth + auth_len;
    }
    size_t hlen = (size_t)(host_end - host_start);
    size_t plen = colon ? (size_t)(auth + auth_len - colon - 1) : 2;
    if (hlen == 0 || hlen >= host_size || plen == 0 || plen >= port_size)
        return AG_EINVAL;
    memcpy(host, host_start, hlen);
    host[hlen] = '\0';
    if (colon) {
        memcpy(port, colon + 1, plen);
        port[plen] = '\0';
    } else {
        memcpy(port, "80", 3);
    }
    uint64_t port_num;
    if (ag_str_to_u64(ag_str_from_cstr(port), 65535, &port_num) < 0 || port_num == 0)
        return AG_EINVAL;
    return 0;
}
