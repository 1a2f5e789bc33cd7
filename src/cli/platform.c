/* The platform file (config/platform.yaml): which processes `agora up` runs, and how. */
#include "cli/platform.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "core/config_yaml.h"
#include "core/banned.h"

/*
 * The schema, as data: the keys each level accepts. The file is walked by hand rather than with
 * ag_config_bind because `env` is a mapping of names to strings (the schema layer maps names to
 * structs only) and `defaults` must be applied before anything else is substituted.
 */
static const char *const TOP_KEYS[] = {"defaults",      "var_dir",   "bin_dir", "stop_timeout",
                                       "ready_timeout", "processes", NULL};
static const char *const PROCESS_KEYS[] = {"name",  "exec",  "args", "url",
                                           "ready", "after", "env",  NULL};

enum {
    NAME_MAX_LEN = 32,
    MAX_LIST = 256,
    VALUE_MAX = 64 * 1024,
};

struct walk {
    const char *file;
    struct ag_err *err;
};

static int fail(struct walk *w, int code, const struct ag_config_node *at, const char *key,
                const char *problem)
{
    return ag_err_set(w->err, code, "%s:%zu: %s: %s", w->file, at ? at->line : (size_t)1, key,
                      problem);
}

static int check_keys(struct walk *w, const struct ag_config_node *map, const char *const *known,
                      const char *where)
{
    for (size_t i = 0; i < map->count; i++) {
        bool ok = false;
        for (size_t k = 0; known[k]; k++)
            ok = ok || strcmp(map->keys[i]->text, known[k]) == 0;
        if (!ok) {
            char key[160];
            snprintf(key, sizeof(key), "%s%s", where, map->keys[i]->text);
            return fail(w, AG_EINVAL, map->keys[i], key, "unknown key");
        }
    }
    return 0;
}

/* Substitutes a scalar into a fresh string. */
static int scalar(struct walk *w, const struct ag_config_node *node, const char *key, char **out)
{
    int rc = 0;
    struct ag_buf b;
    struct ag_err sub = {0};
    ag_buf_init(&b, VALUE_MAX);
    *out = NULL;
    if (!node || node->kind != AG_CONFIG_NODE_SCALAR)
        return fail(w, AG_EINVAL, node, key, "expected a string");
    if ((rc = ag_config_subst(NULL, node->text, node->len, &b, &sub)) < 0) {
        rc = fail(w, rc, node, key, sub.msg);
        goto out;
    }
    if (memchr(b.data ? b.data + b.off : "", '\0', b.len)) {
        rc = fail(w, AG_EINVAL, node, key, "holds a NUL byte");
        goto out;
    }
    *out = malloc(b.len + 1);
    if (!*out) {
        rc = ag_err_set(w->err, AG_ENOMEM, "out of memory");
        goto out;
    }
    if (b.len)
        memcpy(*out, b.data + b.off, b.len);
    (*out)[b.len] = '\0';
out:
    ag_buf_release(&b);
    return rc;
}

static int optional_scalar(struct walk *w, const struct ag_config_node *map, const char *name,
                           const char *key, const char *def, char **out)
{
    const struct ag_config_node *node = ag_config_node_get(map, name);
    if (ag_config_node_is_null(node)) {
        *out = def ? strdup(def) : NULL;
        return def && !*out ? ag_err_set(w->err, AG_ENOMEM, "out of memory") : 0;
    }
    return scalar(w, node, key, out);
}

static int duration(struct walk *w, const struct ag_config_node *map, const char *name,
                    uint64_t def, uint64_t *out)
{
    char *text = NULL;
    int rc = optional_scalar(w, map, name, name, NULL, &text);
    if (rc < 0)
        return rc;
    *out = def;
    if (text && ag_config_parse_duration(ag_str_from_cstr(text), out) < 0)
        rc = fail(w, AG_EINVAL, ag_config_node_get(map, name), name,
                  "expected a duration such as 500ms, 10s or 1m");
    else if (text && (*out < 100 || *out > 3600 * 1000))
        rc =
            fail(w, AG_EINVAL, ag_config_node_get(map, name), name, "must be between 100ms and 1h");
    free(text);
    return rc;
}

/* A sequence of scalars into a NULL-terminated array. */
static int string_list(struct walk *w, const struct ag_config_node *node, const char *key,
                       char ***out, size_t *count)
{
    int rc = 0;
    *out = NULL;
    *count = 0;
    if (ag_config_node_is_null(node))
        node = NULL;
    if (node && node->kind != AG_CONFIG_NODE_SEQ)
        return fail(w, AG_EINVAL, node, key, "expected a list");
    size_t n = node ? node->count : 0;
    if (n > MAX_LIST)
        return fail(w, AG_EINVAL, node, key, "too many entries");
    char **list = calloc(n + 1, sizeof(*list));
    if (!list)
        return ag_err_set(w->err, AG_ENOMEM, "out of memory");
    for (size_t i = 0; i < n; i++) {
        char item_key[160];
        snprintf(item_key, sizeof(item_key), "%s[%zu]", key, i);
        if ((rc = scalar(w, node->items[i], item_key, &list[i])) < 0)
            break;
    }
    *out = list;
    *count = n;
    return rc;
}

static void string_list_free(char **list, size_t count)
{
    if (!list)
        return;
    for (size_t i = 0; i < count; i++)
        free(list[i]);
    free(list);
}

static bool env_name_valid(const char *s, size_t len)
{
    if (len == 0 || !((s[0] >= 'A' && s[0] <= 'Z') || (s[0] >= 'a' && s[0] <= 'z') || s[0] == '_'))
        return false;
    for (size_t i = 1; i < len; i++) {
        char c = s[i];
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
              c == '_'))
            return false;
    }
    return true;
}

static bool process_name_valid(const char *s)
{
    size_t len = strlen(s);
    if (len == 0 || len > NAME_MAX_LEN)
        return false;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '_'))
            return false;
    }
    return true;
}

/* Applies `defaults:` in order: setenv(NAME, value) where NAME is unset or empty. */
static int apply_defaults(struct walk *w, const struct ag_config_node *node)
{
    int rc = 0;
    if (ag_config_node_is_null(node))
        return 0;
    if (node->kind != AG_CONFIG_NODE_SEQ)
        return fail(w, AG_EINVAL, node, "defaults", "expected a list of NAME=value");
    for (size_t i = 0; i < node->count; i++) {
        char key[64], *text = NULL;
        snprintf(key, sizeof(key), "defaults[%zu]", i);
        if ((rc = scalar(w, node->items[i], key, &text)) < 0)
            return rc;
        char *eq = strchr(text, '=');
        if (!eq || !env_name_valid(text, (size_t)(eq - text))) {
            free(text);
            return fail(w, AG_EINVAL, node->items[i], key, "expected NAME=value");
        }
        *eq = '\0';
        const char *current = getenv(text);
        if ((!current || !*current) && setenv(text, eq + 1, 1) != 0)
            rc = ag_err_sys(w->err, "cannot set %s", text);
        free(text);
        if (rc < 0)
            return rc;
    }
    return 0;
}

static int load_env(struct walk *w, const struct ag_config_node *node, const char *where,
                    struct platform_process *proc)
{
    int rc = 0;
    char key[160];
    snprintf(key, sizeof(key), "%senv", where);
    if (ag_config_node_is_null(node))
        node = NULL;
    if (node && node->kind != AG_CONFIG_NODE_MAP)
        return fail(w, AG_EINVAL, node, key, "expected a mapping of NAME: value");
    size_t n = node ? node->count : 0;
    if (n > MAX_LIST)
        return fail(w, AG_EINVAL, node, key, "too many entries");
    proc->env = calloc(n + 1, sizeof(*proc->env));
    if (!proc->env)
        return ag_err_set(w->err, AG_ENOMEM, "out of memory");
    for (size_t i = 0; i < n; i++) {
        const struct ag_config_node *name = node->keys[i];
        char item_key[200], *value = NULL;
        snprintf(item_key, sizeof(item_key), "%s.%s", key, name->text);
        if (!env_name_valid(name->text, name->len))
            return fail(w, AG_EINVAL, name, item_key, "not a variable name");
        if ((rc = scalar(w, node->items[i], item_key, &value)) < 0)
            return rc;
        size_t len = name->len + 1 + strlen(value) + 1;
        proc->env[i] = malloc(len);
        if (proc->env[i])
            snprintf(proc->env[i], len, "%s=%s", name->text, value);
        free(value);
        if (!proc->env[i])
            return ag_err_set(w->err, AG_ENOMEM, "out of memory");
        proc->env_count = i + 1;
    }
    return 0;
}

static int load_process(struct walk *w, const struct platform *p, size_t index,
                        const struct ag_config_node *node, struct platform_process *proc)
{
    int rc = 0;
    char where[64], key[160], *exec = NULL;
    snprintf(where, sizeof(where), "processes[%zu].", index);
    if (node->kind != AG_CONFIG_NODE_MAP)
        return fail(w, AG_EINVAL, node, "processes", "each entry must be a mapping");
    if ((rc = check_keys(w, node, PROCESS_KEYS, where)) < 0)
        return rc;

    snprintf(key, sizeof(key), "%sname", where);
    const struct ag_config_node *name = ag_config_node_get(node, "name");
    if (ag_config_node_is_null(name))
        return fail(w, AG_EINVAL, node, key, "required");
    if ((rc = scalar(w, name, key, &proc->name)) < 0)
        return rc;
    if (!process_name_valid(proc->name))
        return fail(w, AG_EINVAL, name, key, "1 to 32 letters, digits, '-' or '_'");
    for (size_t i = 0; i < index; i++)
        if (strcmp(p->processes[i].name, proc->name) == 0)
            return fail(w, AG_EINVAL, name, key, "another process has this name");

    snprintf(key, sizeof(key), "%sexec", where);
    const struct ag_config_node *exec_node = ag_config_node_get(node, "exec");
    if (ag_config_node_is_null(exec_node))
        return fail(w, AG_EINVAL, node, key, "required");
    if ((rc = scalar(w, exec_node, key, &exec)) < 0)
        return rc;
    if (!*exec) {
        free(exec);
        return fail(w, AG_EINVAL, exec_node, key, "must not be empty");
    }
    if (strchr(exec, '/')) {
        proc->exec = exec;
    } else {
        size_t len = strlen(p->bin_dir) + 1 + strlen(exec) + 1;
        proc->exec = malloc(len);
        if (proc->exec)
            snprintf(proc->exec, len, "%s/%s", p->bin_dir, exec);
        free(exec);
        if (!proc->exec)
            return ag_err_set(w->err, AG_ENOMEM, "out of memory");
    }

    snprintf(key, sizeof(key), "%sargs", where);
    if ((rc = string_list(w, ag_config_node_get(node, "args"), key, &proc->args,
                          &proc->arg_count)) < 0)
        return rc;
    snprintf(key, sizeof(key), "%surl", where);
    if ((rc = optional_scalar(w, node, "url", key, NULL, &proc->url)) < 0)
        return rc;
    snprintf(key, sizeof(key), "%sready", where);
    if ((rc = optional_scalar(w, node, "ready", key, NULL, &proc->ready)) < 0)
        return rc;
    if (proc->ready && strncmp(proc->ready, "http://", 7) != 0)
        return fail(w, AG_EINVAL, ag_config_node_get(node, "ready"), key, "must be an http:// URL");
    snprintf(key, sizeof(key), "%safter", where);
    if ((rc = string_list(w, ag_config_node_get(node, "after"), key, &proc->after,
                          &proc->after_count)) < 0)
        return rc;
    for (size_t i = 0; i < proc->after_count; i++) {
        bool found = false;
        for (size_t j = 0; j < index; j++)
            found = found || strcmp(p->processes[j].name, proc->after[i]) == 0;
        if (!found)
            return fail(w, AG_EINVAL, ag_config_node_get(node, "after"), key,
                        "names a process that is not listed before this one");
    }
    return load_env(w, ag_config_node_get(node, "env"), where, proc);
}

int platform_load(struct platform *p, const char *path, struct ag_err *err)
{
    int rc = 0;
    struct ag_config_doc doc;
    struct walk w = {path, err};
    memset(p, 0, sizeof(*p));
    memset(&doc, 0, sizeof(doc));
    if ((rc = ag_config_doc_load(&doc, path, err)) < 0)
        goto out;
    const struct ag_config_node *root = doc.root;
    if (!root || root->kind != AG_CONFIG_NODE_MAP) {
        rc = fail(&w, AG_EINVAL, root, "(top)", "expected a mapping");
        goto out;
    }
    if ((rc = check_keys(&w, root, TOP_KEYS, "")) < 0)
        goto out;
    if ((rc = apply_defaults(&w, ag_config_node_get(root, "defaults"))) < 0)
        goto out;
    p->path = strdup(path);
    if (!p->path) {
        rc = ag_err_set(err, AG_ENOMEM, "out of memory");
        goto out;
    }
    if ((rc = optional_scalar(&w, root, "var_dir", "var_dir", "var", &p->var_dir)) < 0 ||
        (rc = optional_scalar(&w, root, "bin_dir", "bin_dir", "build/bin", &p->bin_dir)) < 0 ||
        (rc = duration(&w, root, "stop_timeout", 10000, &p->stop_timeout_ms)) < 0 ||
        (rc = duration(&w, root, "ready_timeout", 60000, &p->ready_timeout_ms)) < 0)
        goto out;
    const struct ag_config_node *procs = ag_config_node_get(root, "processes");
    if (ag_config_node_is_null(procs) || procs->kind != AG_CONFIG_NODE_SEQ || procs->count == 0) {
        rc = fail(&w, AG_EINVAL, procs ? procs : root, "processes",
                  "required: a list of at least one process");
        goto out;
    }
    if (procs->count > PLATFORM_PROCESSES_MAX) {
        rc = fail(&w, AG_EINVAL, procs, "processes", "too many processes");
        goto out;
    }
    p->processes = calloc(procs->count, sizeof(*p->processes));
    if (!p->processes) {
        rc = ag_err_set(err, AG_ENOMEM, "out of memory");
        goto out;
    }
    for (size_t i = 0; i < procs->count; i++) {
        p->process_count = i + 1;
        if ((rc = load_process(&w, p, i, procs->items[i], &p->processes[i])) < 0)
            goto out;
    }
out:
    ag_config_doc_release(&doc);
    if (rc < 0)
        platform_release(p);
    return rc;
}

void platform_release(struct platform *p)
{
    for (size_t i = 0; i < p->process_count; i++) {
        struct platform_process *proc = &p->processes[i];
        free(proc->name);
        free(proc->exec);
        string_list_free(proc->args, proc->arg_count);
        free(proc->url);
        free(proc->ready);
        string_list_free(proc->after, proc->after_count);
        string_list_free(proc->env, proc->env_count);
    }
    free(p->processes);
    free(p->path);
    free(p->var_dir);
    free(p->bin_dir);
    memset(p, 0, sizeof(*p));
}

const char *platform_process_env(const struct platform_process *proc, const char *name)
{
    size_t len = strlen(name);
    const char *found = NULL;
    for (size_t i = 0; i < proc->env_count; i++)
        if (strncmp(proc->env[i], name, len) == 0 && proc->env[i][len] == '=')
            found = proc->env[i] + len + 1;
    return found;
}

const struct platform_process *platform_find(const struct platform *p, const char *name)
{
    for (size_t i = 0; i < p->process_count; i++)
        if (strcmp(p->processes[i].name, name) == 0)
            return &p->processes[i];
    return NULL;
}

const struct platform_process *platform_auth_process(const struct platform *p)
{
    for (size_t i = 0; i < p->process_count; i++)
        if (platform_process_env(&p->processes[i], "AGORA_AUTH_KEYS_DIR"))
            return &p->processes[i];
    return NULL;
}

int platform_state_path(const struct platform *p, char *out, size_t size)
{
    int n = snprintf(out, size, "%s/run/agora.json", p->var_dir);
    return n < 0 || (size_t)n >= size ? AG_EINVAL : 0;
}
