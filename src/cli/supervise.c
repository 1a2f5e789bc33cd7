/* `agora up`: runs the platform's processes as children, watches, restarts and stops them. */
#include "cli/supervise.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cli/cli_util.h"
#include "cli/platform.h"
#include "cli/probe.h"
#include "cli/up_seed.h"
#include "core/banned.h"

extern char **environ;

enum {
    LINE_MAX_BYTES = 16 * 1024, /* a longer line is printed in pieces */
    BACKOFF_FIRST_MS = 250,
    BACKOFF_MAX_MS = 30 * 1000,
    HEALTHY_RESET_MS = 60 * 1000, /* a run this long resets the back-off */
    PROBE_INTERVAL_MS = 200,
    PROBE_TIMEOUT_MS = 1000,
    LOOP_TICK_MS = 200,
};

enum child_state {
    CHILD_WAITING, /* not started yet (waits for its turn or for `after`) */
    CHILD_RUNNING,
    CHILD_BACKOFF, /* exited; restarts at restart_at_ms */
    CHILD_STOPPED, /* exited while the platform stops */
};

struct stream {
    int fd; /* read end of the child's pipe; -1 when closed */
    size_t len;
    char buf[LINE_MAX_BYTES];
};

struct child {
    const struct platform_process *proc;
    const char *color;
    enum child_state state;
    pid_t pid;
    struct stream out, err;
    int64_t started_ms, first_started_ms; /* monotonic */
    int64_t started_unix_s;
    unsigned restarts;
    bool ready;
    bool late_logged;
    uint64_t backoff_ms;
    int64_t restart_at_ms;
    int64_t next_probe_ms;
    struct probe probe;
};

struct supervisor {
    struct platform *platform;
    struct up_seed seed;
    struct child *children;
    size_t count;
    bool color;
    int name_width;
    bool stopping;
    bool killed;
    int64_t stop_deadline_ms;
    bool announced;
    int exit_code;
    bool state_dirty;
    char state_path[4096];
    int64_t started_unix_s;
};

static const char *const PALETTE[] = {"36", "33", "35", "32", "34", "91", "96", "93", "95", "92"};

static int signal_pipe[2] = {-1, -1};
static volatile sig_atomic_t got_stop, got_child;

static void on_signal(int sig)
{
    int saved = errno;
    if (sig == SIGCHLD)
        got_child = 1;
    else
        got_stop++;
    char byte = (char)sig;
    ssize_t ignored = write(signal_pipe[1], &byte, 1);
    (void)ignored;
    errno = saved;
}

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- output ---- */

static void write_all(int fd, const char *data, size_t len)
{
    while (len > 0) {
        ssize_t w = write(fd, data, len);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return; /* stdout closed: the lines are lost, the platform keeps running */
        data += w;
        len -= (size_t)w;
    }
}

/* Prints one line "name | text" (name padded and coloured). */
static void emit(const struct supervisor *s, const char *name, const char *color, const char *text,
                 size_t len)
{
    char head[128];
    int n = s->color
                ? snprintf(head, sizeof(head), "\x1b[%sm%-*s |\x1b[0m ", color, s->name_width, name)
                : snprintf(head, sizeof(head), "%-*s | ", s->name_width, name);
    if (n < 0)
        return;
    size_t hlen = (size_t)n < sizeof(head) ? (size_t)n : sizeof(head) - 1;
    char *line = malloc(hlen + len + 1);
    if (!line)
        return;
    memcpy(line, head, hlen);
    if (len)
        memcpy(line + hlen, text, len);
    line[hlen + len] = '\n';
    write_all(STDOUT_FILENO, line, hlen + len + 1);
    free(line);
}

/* The supervisor's own lines, prefixed "agora | ". */
static void say(const struct supervisor *s, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void say(const struct supervisor *s, const char *fmt, ...)
{
    char text[1024];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(text, sizeof(text), fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    size_t len = (size_t)n < sizeof(text) ? (size_t)n : sizeof(text) - 1;
    emit(s, "agora", "1", text, len);
}

/* Prints the complete lines in st; with flush, the rest too. */
static void stream_lines(const struct supervisor *s, const struct child *c, struct stream *st,
                         bool flush)
{
    size_t start = 0;
    for (size_t i = 0; i < st->len; i++) {
        if (st->buf[i] != '\n')
            continue;
        size_t end = i > start && st->buf[i - 1] == '\r' ? i - 1 : i;
        emit(s, c->proc->name, c->color, st->buf + start, end - start);
        start = i + 1;
    }
    if (start == 0 && st->len == sizeof(st->buf))
        flush = true; /* one line fills the buffer: print it in pieces */
    if (flush && start < st->len) {
        emit(s, c->proc->name, c->color, st->buf + start, st->len - start);
        start = st->len;
    }
    memmove(st->buf, st->buf + start, st->len - start);
    st->len -= start;
}

static void stream_close(struct stream *st)
{
    if (st->fd >= 0)
        close(st->fd);
    st->fd = -1;
    st->len = 0;
}

/* Reads what the pipe holds. Returns false at end of file or on an error (then closed). */
static bool stream_read(const struct supervisor *s, const struct child *c, struct stream *st)
{
    for (;;) {
        ssize_t r = read(st->fd, st->buf + st->len, sizeof(st->buf) - st->len);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return true;
        if (r <= 0) {
            stream_lines(s, c, st, true);
            stream_close(st);
            return false;
        }
        st->len += (size_t)r;
        stream_lines(s, c, st, false);
    }
}

/* ---- the state file ---- */

static void state_write(struct supervisor *s)
{
    json_t *procs = json_array();
    json_t *root = json_pack("{s:I, s:I, s:s, s:s, s:o}", "pid", (json_int_t)getpid(), "started_at",
                             (json_int_t)s->started_unix_s, "config", s->platform->path, "state",
                             s->stopping ? "stopping" : "running", "processes", procs);
    if (!root)
        return;
    for (size_t i = 0; i < s->count; i++) {
        const struct child *c = &s->children[i];
        static const char *const names[] = {"waiting", "running", "backoff", "stopped"};
        json_t *o = json_pack("{s:s, s:I, s:I, s:i, s:b, s:s, s:s*}", "name", c->proc->name, "pid",
                              (json_int_t)(c->state == CHILD_RUNNING ? c->pid : 0), "started_at",
                              (json_int_t)c->started_unix_s, "restarts", (int)c->restarts, "ready",
                              c->ready, "state", names[c->state], "url", c->proc->url);
        if (o)
            json_array_append_new(procs, o);
    }
    char *text = json_dumps(root, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    json_decref(root);
    if (!text)
        return;
    size_t len = strlen(text);
    char *with_nl = realloc(text, len + 2);
    if (with_nl) {
        text = with_nl;
        text[len++] = '\n';
        text[len] = '\0';
    }
    if (cli_write_atomic(s->state_path, text, len) != 0)
        say(s, "cannot write %s: %s", s->state_path, strerror(errno));
    free(text);
    s->state_dirty = false;
}

/* ---- children ---- */

/* The supervisor's environment with proc's env added (replacing same-named entries). */
static char **child_environment(const struct platform_process *proc)
{
    size_t n = 0;
    while (environ[n])
        n++;
    char **env = calloc(n + proc->env_count + 1, sizeof(*env));
    if (!env)
        return NULL;
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        const char *eq = strchr(environ[i], '=');
        size_t name_len = eq ? (size_t)(eq - environ[i]) : strlen(environ[i]);
        bool replaced = false;
        for (size_t j = 0; j < proc->env_count && !replaced; j++)
            replaced =
                strncmp(proc->env[j], environ[i], name_len) == 0 && proc->env[j][name_len] == '=';
        if (!replaced)
            env[k++] = environ[i];
    }
    for (size_t j = 0; j < proc->env_count; j++)
        env[k++] = proc->env[j];
    env[k] = NULL;
    return env;
}

static void child_exec(const struct platform_process *proc, char **argv, char **env, int out_fd,
                       int err_fd, pid_t parent)
{
    setpgid(0, 0);
    /* The supervisor killed with SIGKILL must not leave its children running. */
    prctl(PR_SET_PDEATHSIG, SIGTERM);
    if (getppid() != parent)
        _exit(127);
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    signal(SIGPIPE, SIG_DFL);
    int null_fd = open("/dev/null", O_RDONLY);
    if (null_fd < 0 || dup2(null_fd, STDIN_FILENO) < 0 || dup2(out_fd, STDOUT_FILENO) < 0 ||
        dup2(err_fd, STDERR_FILENO) < 0)
        _exit(127);
    execve(proc->exec, argv, env);
    dprintf(STDERR_FILENO, "agora: cannot run %s: %s\n", proc->exec, strerror(errno));
    _exit(127);
}

/* Starts c. On failure (no pipe, no fork) the child is scheduled again as after an exit. */
static int child_spawn(struct supervisor *s, struct child *c, int64_t now)
{
    int out_pipe[2] = {-1, -1}, err_pipe[2] = {-1, -1};
    char **env = child_environment(c->proc);
    char **argv = calloc(c->proc->arg_count + 2, sizeof(*argv));
    int rc = -1;
    if (!env || !argv)
        goto out;
    argv[0] = c->proc->exec;
    for (size_t i = 0; i < c->proc->arg_count; i++)
        argv[i + 1] = c->proc->args[i];
    if (pipe2(out_pipe, O_CLOEXEC) != 0 || pipe2(err_pipe, O_CLOEXEC) != 0)
        goto out;
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid < 0)
        goto out;
    if (pid == 0)
        child_exec(c->proc, argv, env, out_pipe[1], err_pipe[1], parent);
    setpgid(pid, pid); /* also in the parent: no window where a signal misses the group */
    c->pid = pid;
    c->state = CHILD_RUNNING;
    c->started_ms = now;
    if (!c->first_started_ms)
        c->first_started_ms = now;
    c->started_unix_s = (int64_t)time(NULL);
    c->ready = !c->proc->ready;
    c->late_logged = false;
    c->next_probe_ms = now;
    c->out.fd = out_pipe[0];
    c->err.fd = err_pipe[0];
    c->out.len = c->err.len = 0;
    fcntl(c->out.fd, F_SETFL, O_NONBLOCK);
    fcntl(c->err.fd, F_SETFL, O_NONBLOCK);
    out_pipe[0] = err_pipe[0] = -1;
    s->state_dirty = true;
    rc = 0;
out:
    if (rc < 0)
        say(s, "cannot start %s: %s", c->proc->name, strerror(errno));
    for (int i = 0; i < 2; i++) {
        if (out_pipe[i] >= 0)
            close(out_pipe[i]);
        if (err_pipe[i] >= 0)
            close(err_pipe[i]);
    }
    free(env);
    free(argv);
    return rc;
}

/* Schedules c's restart after an exit (or a failed start). */
static void child_schedule_restart(struct supervisor *s, struct child *c, int64_t now,
                                   const char *what)
{
    int64_t ran_ms = c->state == CHILD_RUNNING ? now - c->started_ms : 0;
    if (ran_ms >= HEALTHY_RESET_MS || c->backoff_ms == 0)
        c->backoff_ms = BACKOFF_FIRST_MS;
    uint64_t delay = c->backoff_ms;
    c->backoff_ms = c->backoff_ms * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : c->backoff_ms * 2;
    c->state = CHILD_BACKOFF;
    c->ready = false;
    c->pid = 0;
    c->restart_at_ms = now + (int64_t)delay;
    say(s, "%s %s after %lld ms; restart %u in %llu ms", c->proc->name, what, (long long)ran_ms,
        c->restarts + 1, (unsigned long long)delay);
    s->state_dirty = true;
}

static void describe_status(int status, char *out, size_t size)
{
    if (WIFEXITED(status))
        snprintf(out, size, "exited with status %d", WEXITSTATUS(status));
    else if (WIFSIGNALED(status))
        snprintf(out, size, "was killed by signal %d (%s)", WTERMSIG(status),
                 strsignal(WTERMSIG(status)));
    else
        snprintf(out, size, "stopped");
}

static void reap(struct supervisor *s, int64_t now)
{
    for (;;) {
        int status = 0;
        pid_t pid = waitpid(-1, &status, WNOHANG);
        if (pid <= 0)
            return;
        for (size_t i = 0; i < s->count; i++) {
            struct child *c = &s->children[i];
            if (c->state != CHILD_RUNNING || c->pid != pid)
                continue;
            /* What it wrote before exiting comes first. */
            if (c->out.fd >= 0)
                stream_read(s, c, &c->out);
            if (c->err.fd >= 0)
                stream_read(s, c, &c->err);
            stream_lines(s, c, &c->out, true);
            stream_lines(s, c, &c->err, true);
            stream_close(&c->out);
            stream_close(&c->err);
            probe_cancel(&c->probe);
            char what[128];
            describe_status(status, what, sizeof(what));
            if (s->stopping) {
                say(s, "%s %s", c->proc->name, what);
                c->state = CHILD_STOPPED;
                c->ready = false;
                c->pid = 0;
                s->state_dirty = true;
            } else {
                child_schedule_restart(s, c, now, what);
            }
        }
    }
}

static void begin_stop(struct supervisor *s, int64_t now, const char *why)
{
    if (s->stopping)
        return;
    s->stopping = true;
    s->stop_deadline_ms = now + (int64_t)s->platform->stop_timeout_ms;
    say(s, "%s: stopping every process", why);
    for (size_t i = s->count; i-- > 0;) {
        struct child *c = &s->children[i];
        probe_cancel(&c->probe);
        if (c->state == CHILD_RUNNING) {
            if (kill(-c->pid, SIGTERM) != 0)
                kill(c->pid, SIGTERM);
        } else {
            c->state = CHILD_STOPPED;
        }
    }
    s->state_dirty = true;
}

static void kill_remaining(struct supervisor *s)
{
    for (size_t i = s->count; i-- > 0;) {
        struct child *c = &s->children[i];
        if (c->state != CHILD_RUNNING)
            continue;
        say(s, "%s did not stop in time: SIGKILL", c->proc->name);
        if (kill(-c->pid, SIGKILL) != 0)
            kill(c->pid, SIGKILL);
    }
    s->killed = true;
}

static bool child_ready_for_dependents(const struct supervisor *s, const char *name)
{
    for (size_t i = 0; i < s->count; i++)
        if (strcmp(s->children[i].proc->name, name) == 0)
            return s->children[i].ready;
    return false;
}

/* Starts waiting processes in order, each once every process it comes `after` is ready. */
static void start_due(struct supervisor *s, int64_t now)
{
    for (size_t i = 0; i < s->count && !s->stopping; i++) {
        struct child *c = &s->children[i];
        if (c->state == CHILD_BACKOFF && now >= c->restart_at_ms) {
            c->restarts++;
            say(s, "restarting %s (restart %u)", c->proc->name, c->restarts);
            if (child_spawn(s, c, now) < 0)
                child_schedule_restart(s, c, now, "could not start");
            continue;
        }
        if (c->state != CHILD_WAITING)
            continue;
        bool deps = true;
        for (size_t j = 0; j < c->proc->after_count; j++)
            deps = deps && child_ready_for_dependents(s, c->proc->after[j]);
        if (!deps)
            break; /* the listed order holds: later processes wait too */
        if (child_spawn(s, c, now) < 0) {
            c->state = CHILD_RUNNING; /* counts as a start that exited at once */
            c->started_ms = now;
            child_schedule_restart(s, c, now, "could not start");
        }
    }
}

static void check_readiness(struct supervisor *s, int64_t now)
{
    bool all = true;
    for (size_t i = 0; i < s->count; i++) {
        struct child *c = &s->children[i];
        if (!c->proc->ready) {
            all = all && c->first_started_ms != 0;
            continue;
        }
        if (c->state == CHILD_RUNNING && !c->ready && !probe_running(&c->probe) &&
            now >= c->next_probe_ms && !s->stopping) {
            struct ag_err err = {0};
            if (probe_start(&c->probe, c->proc->ready, now, PROBE_TIMEOUT_MS, &err) < 0) {
                if (!c->late_logged)
                    say(s, "%s: readiness check: %s", c->proc->name, err.msg);
                c->late_logged = true;
                c->next_probe_ms = now + PROBE_INTERVAL_MS;
            }
        }
        int64_t since = s->announced ? c->started_ms : c->first_started_ms;
        if (!c->ready && since && now - since > (int64_t)s->platform->ready_timeout_ms &&
            !s->stopping) {
            if (!s->announced) {
                say(s, "%s is not ready after %llu ms (%s)", c->proc->name,
                    (unsigned long long)s->platform->ready_timeout_ms, c->proc->ready);
                s->exit_code = CLI_EXIT_FAILURE;
                begin_stop(s, now, "the platform could not start");
                return;
            }
            if (c->state == CHILD_RUNNING && !c->late_logged) {
                say(s, "%s is still not ready %llu ms after its restart", c->proc->name,
                    (unsigned long long)s->platform->ready_timeout_ms);
                c->late_logged = true;
            }
        }
        all = all && c->ready;
    }
    if (all && !s->announced && !s->stopping) {
        s->announced = true;
        for (size_t i = 0; i < s->count; i++) {
            const struct platform_process *p = s->children[i].proc;
            if (p->url)
                say(s, "%-*s %s%s", s->name_width, p->name, p->url,
                    strcmp(p->name, "gateway") == 0 ? "   <- the public URL" : "");
        }
        say(s, "platform ready");
    }
}

static void on_probe(struct supervisor *s, struct child *c, short revents, int64_t now)
{
    enum probe_result r = probe_step(&c->probe, revents, now);
    if (r == PROBE_PENDING)
        return;
    if (r == PROBE_OK && c->state == CHILD_RUNNING) {
        c->ready = true;
        s->state_dirty = true;
        say(s, "%s is ready (%lld ms)", c->proc->name, (long long)(now - c->started_ms));
    } else {
        c->next_probe_ms = now + PROBE_INTERVAL_MS;
    }
}

/* ---- agora up --seed (up_seed.c) ---- */

/* Starts the seed thread, which wakes the loop up through the signal pipe when it is done. */
static void seed_start(struct supervisor *s)
{
    char line[UP_SEED_LINE_MAX];
    up_seed_start(&s->seed, s->platform, signal_pipe[1], line, sizeof(line));
    say(s, "%s", line);
}

/* Joins the seed thread once it finished (with wait: cancels it first) and says how it went. */
static void seed_finish(struct supervisor *s, bool wait)
{
    char line[UP_SEED_LINE_MAX];
    if (up_seed_finish(&s->seed, wait, s->stopping, line, sizeof(line)))
        say(s, "%s", line);
}

/* ---- the loop ---- */

static bool any_running(const struct supervisor *s)
{
    for (size_t i = 0; i < s->count; i++)
        if (s->children[i].state == CHILD_RUNNING)
            return true;
    return false;
}

static int run_loop(struct supervisor *s)
{
    size_t max_fds = 1 + s->count * 3;
    struct pollfd *fds = calloc(max_fds, sizeof(*fds));
    /* Which child and which of its descriptors each pollfd stands for. */
    struct slot {
        struct child *c;
        int kind; /* 0 stdout, 1 stderr, 2 probe */
    } *slots = calloc(max_fds, sizeof(*slots));
    if (!fds || !slots) {
        free(fds);
        free(slots);
        return cli_fail("out of memory");
    }
    int handled_stops = 0;
    for (;;) {
        int64_t now = mono_ms();
        if (got_stop > handled_stops) {
            if (s->stopping && !s->killed) {
                say(s, "second stop signal");
                kill_remaining(s);
            }
            begin_stop(s, now, "stop signal");
            handled_stops = got_stop;
        }
        if (got_child) {
            got_child = 0;
            reap(s, now);
        }
        if (s->stopping && !any_running(s))
            break;
        if (s->stopping && !s->killed && now >= s->stop_deadline_ms)
            kill_remaining(s);
        start_due(s, now);
        check_readiness(s, now);
        if (s->seed.state == UP_SEED_WANTED && s->announced && !s->stopping)
            seed_start(s);
        seed_finish(s, false);
        if (s->state_dirty)
            state_write(s);

        size_t n = 0;
        fds[n] = (struct pollfd){.fd = signal_pipe[0], .events = POLLIN};
        slots[n++] = (struct slot){NULL, -1};
        int64_t wake = now + LOOP_TICK_MS;
        for (size_t i = 0; i < s->count; i++) {
            struct child *c = &s->children[i];
            if (c->out.fd >= 0) {
                fds[n] = (struct pollfd){.fd = c->out.fd, .events = POLLIN};
                slots[n++] = (struct slot){c, 0};
            }
            if (c->err.fd >= 0) {
                fds[n] = (struct pollfd){.fd = c->err.fd, .events = POLLIN};
                slots[n++] = (struct slot){c, 1};
            }
            if (probe_running(&c->probe)) {
                fds[n] = (struct pollfd){.fd = c->probe.fd, .events = probe_events(&c->probe)};
                slots[n++] = (struct slot){c, 2};
                if (c->probe.deadline_ms < wake)
                    wake = c->probe.deadline_ms;
            } else if (c->state == CHILD_RUNNING && !c->ready && c->next_probe_ms < wake) {
                wake = c->next_probe_ms;
            }
            if (c->state == CHILD_BACKOFF && c->restart_at_ms < wake)
                wake = c->restart_at_ms;
        }
        if (s->stopping && !s->killed && s->stop_deadline_ms < wake)
            wake = s->stop_deadline_ms;
        int timeout = wake > now ? (int)(wake - now) : 0;
        int ready = poll(fds, n, timeout);
        if (ready < 0 && errno != EINTR) {
            say(s, "poll: %s", strerror(errno));
            break;
        }
        now = mono_ms();
        for (size_t i = 0; i < n; i++) {
            if (i == 0) {
                if (fds[0].revents & POLLIN) {
                    char drain[64];
                    while (read(signal_pipe[0], drain, sizeof(drain)) > 0) {
                    }
                }
                continue;
            }
            struct child *c = slots[i].c;
            if (slots[i].kind == 2) {
                if (probe_running(&c->probe) && c->probe.fd == fds[i].fd)
                    on_probe(s, c, fds[i].revents, now);
                continue;
            }
            struct stream *st = slots[i].kind == 0 ? &c->out : &c->err;
            if (fds[i].revents && st->fd == fds[i].fd)
                stream_read(s, c, st);
        }
    }
    free(fds);
    free(slots);
    return s->exit_code;
}

/* ---- the command ---- */

void cmd_up_help(void)
{
    fputs("usage: agora up [--config FILE] [--no-color] [--seed]\n"
          "\n"
          "Starts every process of the platform file (default " CLI_DEFAULT_CONFIG ") as a child,\n"
          "in order (a process with `after: [names]` waits until those are ready), prints their\n"
          "output line by line as `name | line`, waits until each `ready` URL answers 200, then\n"
          "prints the URLs and \"platform ready\". A process that exits is restarted after\n"
          "250 ms, doubling up to 30 s (reset after 60 s of running). SIGINT or SIGTERM stops\n"
          "every process (SIGTERM, then SIGKILL after stop_timeout) and exits 0.\n"
          "\n"
          "  --config FILE   the platform file\n"
          "  --no-color      no ANSI colours (also: NO_COLOR set, or stdout not a terminal)\n"
          "  --seed          once ready, load the demo catalog (agora seed) when the default\n"
          "                  tenant has no product yet; prints one summary line\n"
          "\n"
          "The state of the running platform is kept in <var_dir>/run/agora.json (see agora\n"
          "status). Exit status: 0 after a stop, 1 when the platform cannot start, 2 for usage.\n",
          stdout);
}

/* Takes <var_dir>/run/agora.lock, held for the supervisor's lifetime. */
static int take_lock(const struct platform *p, const char *state_path, int *fd_out)
{
    char run_dir[4096], lock_path[4200];
    snprintf(run_dir, sizeof(run_dir), "%s/run", p->var_dir);
    if (cli_mkdir_p(run_dir, 0755) != 0)
        return cli_fail("cannot create %s: %s", run_dir, strerror(errno));
    snprintf(lock_path, sizeof(lock_path), "%s/agora.lock", run_dir);
    int fd = open(lock_path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0)
        return cli_fail("cannot open %s: %s", lock_path, strerror(errno));
    if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
        close(fd);
        return cli_fail("a platform is already running with %s (see agora status)", state_path);
    }
    *fd_out = fd;
    return 0;
}

static void print_admin_banner(const struct supervisor *s)
{
    const char *env = getenv("AGORA_ENV");
    if (env && *env && strcmp(env, "development") != 0)
        return;
    for (size_t i = 0; i < s->platform->process_count; i++) {
        const struct platform_process *p = &s->platform->processes[i];
        const char *email = platform_process_env(p, "AGORA_ADMIN_EMAIL");
        const char *password = platform_process_env(p, "AGORA_ADMIN_PASSWORD");
        if (!email || !password)
            continue;
        say(s, "development admin account (created by %s at its first start): %s / %s", p->name,
            email, password);
        say(s, "set AGORA_ADMIN_EMAIL and AGORA_ADMIN_PASSWORD to choose others");
        return;
    }
}

int cmd_up(int argc, char **argv)
{
    const char *config = CLI_DEFAULT_CONFIG;
    bool no_color = false, seed = false;
    for (int i = 1; i < argc; i++) {
        int r = 0;
        if (cli_is_help(argv[i])) {
            cmd_up_help();
            return CLI_EXIT_OK;
        }
        if (strcmp(argv[i], "--no-color") == 0) {
            no_color = true;
            continue;
        }
        if (strcmp(argv[i], "--seed") == 0) {
            seed = true;
            continue;
        }
        if ((r = cli_option("up", argc, argv, &i, "--config", &config)) < 0)
            return CLI_EXIT_USAGE;
        if (r == 0)
            return cli_usage("up", "unknown argument %s", argv[i]);
    }

    struct platform platform;
    struct supervisor s;
    struct ag_err err = {0};
    int lock_fd = -1, rc = CLI_EXIT_OK;
    memset(&s, 0, sizeof(s));
    if (platform_load(&platform, config, &err) < 0)
        return cli_fail("%s", err.msg);
    s.platform = &platform;
    s.seed.state = seed ? UP_SEED_WANTED : UP_SEED_OFF;
    s.started_unix_s = (int64_t)time(NULL);
    const char *nc = getenv("NO_COLOR");
    s.color = !no_color && !(nc && *nc) && isatty(STDOUT_FILENO);
    s.name_width = 5; /* "agora" */
    for (size_t i = 0; i < platform.process_count; i++) {
        int len = (int)strlen(platform.processes[i].name);
        s.name_width = len > s.name_width ? len : s.name_width;
        if (access(platform.processes[i].exec, X_OK) != 0) {
            rc = cli_fail("%s: cannot run %s: %s", platform.processes[i].name,
                          platform.processes[i].exec, strerror(errno));
            goto out;
        }
    }
    if (platform_state_path(&platform, s.state_path, sizeof(s.state_path)) < 0) {
        rc = cli_fail("var_dir is too long");
        goto out;
    }
    if ((rc = take_lock(&platform, s.state_path, &lock_fd)) != 0)
        goto out;
    s.count = platform.process_count;
    s.children = calloc(s.count, sizeof(*s.children));
    if (!s.children) {
        rc = cli_fail("out of memory");
        goto out;
    }
    for (size_t i = 0; i < s.count; i++) {
        s.children[i].proc = &platform.processes[i];
        s.children[i].color = PALETTE[i % (sizeof(PALETTE) / sizeof(PALETTE[0]))];
        s.children[i].out.fd = s.children[i].err.fd = -1;
        probe_init(&s.children[i].probe);
    }

    if (pipe2(signal_pipe, O_CLOEXEC | O_NONBLOCK) != 0) {
        rc = cli_fail("pipe: %s", strerror(errno));
        goto out;
    }
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESTART | SA_NOCLDSTOP;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGCHLD, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    say(&s, "agora up: %zu processes from %s (supervisor pid %ld; state in %s)", s.count, config,
        (long)getpid(), s.state_path);
    print_admin_banner(&s);
    state_write(&s);
    rc = run_loop(&s);
    say(&s, rc == 0 ? "stopped" : "stopped after a failure");

out:
    seed_finish(&s, true);
    up_seed_release(&s.seed);
    if (s.state_path[0] && lock_fd >= 0)
        unlink(s.state_path);
    for (size_t i = 0; s.children && i < s.count; i++) {
        stream_close(&s.children[i].out);
        stream_close(&s.children[i].err);
        probe_cancel(&s.children[i].probe);
    }
    free(s.children);
    for (int i = 0; i < 2; i++) {
        if (signal_pipe[i] >= 0)
            close(signal_pipe[i]);
        signal_pipe[i] = -1;
    }
    if (lock_fd >= 0)
        close(lock_fd);
    platform_release(&platform);
    return rc;
}
