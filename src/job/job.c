// SPDX-License-Identifier: MIT
// job.c — job.yaml: one table of keys (path, type, default, bounds) drives
// defaults, parsing (libyaml's document API, so every node has a line and
// column), `--set a.b=v` overrides, validation, the YAML writer and equality.
// Errors read "FILE:LINE:COL: key 'train.lr': ..." (1-based). A null value
// (`key:` or `key: ~`) means the default. `monitor:` is a section of the
// table like the others; `capabilities:` (a list of mappings, the ledger's
// capabilities) is parsed, written and compared by cap/suite.c. Schema
// reference: docs/job.md (capabilities: docs/eval.md). YAML scalar helpers
// shared with cap/suite.c: io/yaml_util.c.
#include "job/job.h"
#include "io/io.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <unistd.h>
#include <yaml.h>

// ---------------------------------------------------------------- key table

typedef enum ktype { T_STR, T_INT, T_I64, T_U64, T_FLOAT, T_BOOL, T_ENUM, T_LIST, T_PAIR } ktype;

enum { LO = 1, HI = 2, LO_OPEN = 4, HI_OPEN = 8, NONEMPTY = 16, MODULES = 32, RANGES = 64 };

typedef struct keydef {
    const char *path;
    ktype type;
    size_t off;
    const char *def;            // default, as YAML text
    int flags;
    double lo, hi;
    const char *const *names;   // T_ENUM: value names, NULL-terminated, index = enum value
} keydef;

static const char *const method_names[] = {"full", "lora", "qlora", NULL};
static const char *const sched_names[] = {"constant", "linear", "cosine", NULL};
static const char *const init_names[] = {"kaiming", "gaussian", NULL};
static const char *const format_names[] = {"auto", "text", "prompt_completion", "chat", "alpaca", NULL};
static const char *const violation_names[] = {"stop", "rollback", "adapt", "warn", NULL};
static const char *const decide_names[] = {"point", "ci", NULL};

#define OFF(f) offsetof(keel_job, f)
static const keydef keys[] = {
    {"model", T_STR, OFF(model), "\"\"", 0, 0, 0, NULL},
    {"method", T_ENUM, OFF(method), "lora", 0, 0, 0, method_names},
    {"lora.r", T_INT, OFF(lora.r), "8", LO | HI, 1, 65536, NULL},
    {"lora.alpha", T_FLOAT, OFF(lora.alpha), "16", LO | LO_OPEN, 0, 0, NULL},
    {"lora.dropout", T_FLOAT, OFF(lora.dropout), "0", LO | HI | HI_OPEN, 0, 1, NULL},
    {"lora.target_modules", T_LIST, OFF(lora.target_modules),
     "[q_proj, k_proj, v_proj, o_proj, gate_proj, up_proj, down_proj]", NONEMPTY | MODULES, 0, 0, NULL},
    {"lora.use_rslora", T_BOOL, OFF(lora.use_rslora), "false", 0, 0, 0, NULL},
    {"lora.init", T_ENUM, OFF(lora.init), "kaiming", 0, 0, 0, init_names},
    {"full.trainable", T_LIST, OFF(full.trainable), "[\"*\"]", NONEMPTY, 0, 0, NULL},
    {"full.freeze", T_LIST, OFF(full.freeze), "[]", 0, 0, 0, NULL},
    {"full.freeze_layers", T_STR, OFF(full.freeze_layers), "\"\"", RANGES, 0, 0, NULL},
    {"data.train", T_STR, OFF(data.train), "\"\"", 0, 0, 0, NULL},
    {"data.format", T_ENUM, OFF(data.format), "auto", 0, 0, 0, format_names},
    {"data.validation", T_STR, OFF(data.validation), "\"\"", 0, 0, 0, NULL},
    {"data.validation_split", T_FLOAT, OFF(data.validation_split), "0", LO | HI | HI_OPEN, 0, 1, NULL},
    {"data.max_seq_len", T_INT, OFF(data.max_seq_len), "512", LO | HI, 2, 1 << 20, NULL},
    {"data.packing", T_BOOL, OFF(data.packing), "false", 0, 0, 0, NULL},
    {"data.shuffle", T_BOOL, OFF(data.shuffle), "true", 0, 0, 0, NULL},
    {"train.lr", T_FLOAT, OFF(train.lr), "1e-4", LO | LO_OPEN | HI, 0, 10, NULL},
    {"train.weight_decay", T_FLOAT, OFF(train.weight_decay), "0", LO | HI, 0, 10, NULL},
    {"train.betas", T_PAIR, OFF(train.betas), "[0.9, 0.999]", LO | HI | HI_OPEN, 0, 1, NULL},
    {"train.eps", T_FLOAT, OFF(train.eps), "1e-8", LO | LO_OPEN | HI, 0, 1, NULL},
    {"train.batch_size", T_INT, OFF(train.batch_size), "4", LO | HI, 1, 1 << 20, NULL},
    {"train.grad_accum", T_INT, OFF(train.grad_accum), "1", LO | HI, 1, 1 << 20, NULL},
    {"train.max_steps", T_I64, OFF(train.max_steps), "0", LO | HI, 0, 1e15, NULL},
    {"train.epochs", T_INT, OFF(train.epochs), "1", LO | HI, 1, 1e6, NULL},
    {"train.schedule", T_ENUM, OFF(train.schedule), "cosine", 0, 0, 0, sched_names},
    {"train.warmup_steps", T_I64, OFF(train.warmup_steps), "0", LO | HI, 0, 1e15, NULL},
    {"train.clip_grad_norm", T_FLOAT, OFF(train.clip_grad_norm), "1.0", LO, 0, 0, NULL},
    {"train.seed", T_U64, OFF(train.seed), "42", 0, 0, 0, NULL},
    {"train.threads", T_INT, OFF(train.threads), "0", LO | HI, 0, 4096, NULL},
    {"output.dir", T_STR, OFF(output.dir), "\"runs/keel\"", NONEMPTY, 0, 0, NULL},
    {"output.save_every", T_I64, OFF(output.save_every), "0", LO | HI, 0, 1e15, NULL},
    {"monitor.every", T_I64, OFF(monitor.every), "0", LO | HI, 0, 1e15, NULL},
    {"monitor.sample", T_I64, OFF(monitor.sample), "0", LO | HI, 0, 1e15, NULL},
    {"monitor.seed", T_U64, OFF(monitor.seed), "0", 0, 0, 0, NULL},
    {"monitor.on_violation", T_ENUM, OFF(monitor.on_violation), "stop", 0, 0, 0, violation_names},
    {"monitor.decide", T_ENUM, OFF(monitor.decide), "point", 0, 0, 0, decide_names},
    {"monitor.max_retries", T_INT, OFF(monitor.max_retries), "2", LO | HI, 0, 1000, NULL},
    {"monitor.lr_factor", T_FLOAT, OFF(monitor.lr_factor), "0.5", LO | LO_OPEN | HI | HI_OPEN, 0, 1, NULL},
    {"monitor.weight_factor", T_FLOAT, OFF(monitor.weight_factor), "2", LO | HI, 1, 1e6, NULL},
};
#define N_KEYS ((int)(sizeof keys / sizeof keys[0]))
_Static_assert(sizeof keys / sizeof keys[0] <= KEEL_JOB_MAX_KEYS, "raise KEEL_JOB_MAX_KEYS");

_Static_assert(sizeof(keel_job_method) == sizeof(int) && sizeof(keel_job_schedule) == sizeof(int) &&
                   sizeof(keel_job_lora_init) == sizeof(int) && sizeof(keel_data_format) == sizeof(int) &&
                   sizeof(keel_cap_decide) == sizeof(int),
               "enum keys are written through int *");

static const char *const sections[] = {"lora", "full", "data", "train", "output", "monitor", NULL};

static const char *const hf_modules[] = {"q_proj", "k_proj", "v_proj", "o_proj",
                                         "gate_proj", "up_proj", "down_proj", NULL};

const char *keel_job_method_name(keel_job_method m) {
    return (unsigned)m < 3 ? method_names[m] : "?";
}
const char *keel_job_schedule_name(keel_job_schedule s) {
    return (unsigned)s < 3 ? sched_names[s] : "?";
}

// ---------------------------------------------------------------- messages

// Where a value came from: a file position or an override.
typedef struct loc {
    const char *name; // file name, or the whole "--set k=v" text
    int line, col;    // 1-based; 0 = no position
    bool is_set;
} loc;

static keel_status failv(keel_err *err, keel_status code, const loc *l, const char *key,
                         const char *fmt, va_list ap) {
    char what[400];
    vsnprintf(what, sizeof what, fmt, ap);
    if (l->is_set) return KEEL_FAIL(err, code, "--set %s: key '%s': %s", l->name, key, what);
    if (l->line > 0) return KEEL_FAIL(err, code, "%s:%d:%d: key '%s': %s", l->name, l->line, l->col, key, what);
    return KEEL_FAIL(err, code, "%s: key '%s': %s", l->name, key, what);
}

static keel_status fail_at(keel_err *err, const loc *l, const char *key, const char *fmt, ...)
    KEEL_PRINTF(4, 5);
static keel_status fail_at(keel_err *err, const loc *l, const char *key, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    keel_status st = failv(err, KEEL_ERR_INVALID, l, key, fmt, ap);
    va_end(ap);
    return st;
}

// ---------------------------------------------------------------- values

// (null scalars, numbers, node kinds, did-you-mean: io/yaml_util.c)

static bool bound_ok(const keydef *k, double v) {
    if (k->flags & LO) {
        if ((k->flags & LO_OPEN) ? !(v > k->lo) : !(v >= k->lo)) return false;
    }
    if (k->flags & HI) {
        if ((k->flags & HI_OPEN) ? !(v < k->hi) : !(v <= k->hi)) return false;
    }
    return true;
}

static void bound_text(const keydef *k, char *buf, size_t cap) {
    char lo[32] = "", hi[32] = "";
    if (k->flags & LO) snprintf(lo, sizeof lo, "%.15g", k->lo);
    if (k->flags & HI) snprintf(hi, sizeof hi, "%.15g", k->hi);
    if ((k->flags & LO) && (k->flags & HI))
        snprintf(buf, cap, "must be in %c%s, %s%c", (k->flags & LO_OPEN) ? '(' : '[', lo, hi,
                 (k->flags & HI_OPEN) ? ')' : ']');
    else if (k->flags & LO) snprintf(buf, cap, "must be %s %s", (k->flags & LO_OPEN) ? ">" : ">=", lo);
    else snprintf(buf, cap, "must be %s %s", (k->flags & HI_OPEN) ? "<" : "<=", hi);
}

// "0-3,7" style layer ranges; "" is none.
static bool ranges_ok(const char *s, char *why, size_t cap) {
    const char *p = s;
    while (*p == ' ') p++;
    if (!*p) return true;
    for (;;) {
        long a = -1, b;
        while (*p == ' ') p++;
        if (*p < '0' || *p > '9') goto bad;
        a = strtol(p, (char **)&p, 10);
        b = a;
        while (*p == ' ') p++;
        if (*p == '-') {
            p++;
            while (*p == ' ') p++;
            if (*p < '0' || *p > '9') goto bad;
            b = strtol(p, (char **)&p, 10);
            if (b < a) {
                snprintf(why, cap, "range %ld-%ld runs backwards", a, b);
                return false;
            }
        }
        if (a > 100000 || b > 100000) goto bad;
        while (*p == ' ') p++;
        if (!*p) return true;
        if (*p++ != ',') goto bad;
    }
bad:
    snprintf(why, cap, "expected layer ranges like \"0-3,7\", got \"%.60s\"", s);
    return false;
}

static void strlist_free(keel_strlist *l) {
    for (int32_t i = 0; i < l->n; i++) free(l->v[i]);
    free(l->v);
    l->v = NULL;
    l->n = 0;
}

static bool module_ok(const char *m, char *why, size_t cap) {
    for (int i = 0; hf_modules[i]; i++)
        if (!strcmp(m, hf_modules[i])) return true;
    if (strpbrk(m, "*?[.")) return true; // a pattern over full tensor names
    char dym[80];
    keel_did_you_mean(m, hf_modules, 7, dym, sizeof dym);
    snprintf(why, cap, "unknown module '%.60s'%s; use q_proj, k_proj, v_proj, o_proj, gate_proj, up_proj, "
                       "down_proj or a pattern with * ? [ or .",
             m, dym);
    return false;
}

// Set key k of job from node n of doc (null = default). On success records l.
static keel_status assign(keel_job *job, int ki, yaml_document_t *doc, yaml_node_t *n, const loc *l,
                          keel_err *err);

static keel_status assign_default(keel_job *job, int ki, keel_err *err);

static keel_status assign(keel_job *job, int ki, yaml_document_t *doc, yaml_node_t *n, const loc *l,
                          keel_err *err) {
    const keydef *k = &keys[ki];
    void *dst = (char *)job + k->off;
    char sb[80], why[300];
    if (keel_yaml_is_null(n)) {
        keel_status st = assign_default(job, ki, err);
        if (st == KEEL_OK) job->src_line[ki] = l->is_set ? -1 : l->line, job->src_col[ki] = l->col;
        return st;
    }
    switch (k->type) {
    case T_STR: {
        if (n->type != YAML_SCALAR_NODE) return fail_at(err, l, k->path, "expected a string, got %s", keel_yaml_kind(n));
        const char *v = (const char *)n->data.scalar.value;
        if (strlen(v) != n->data.scalar.length) return fail_at(err, l, k->path, "string contains a NUL byte");
        if ((k->flags & NONEMPTY) && !*v) return fail_at(err, l, k->path, "must not be empty");
        if ((k->flags & RANGES) && !ranges_ok(v, why, sizeof why)) return fail_at(err, l, k->path, "%s", why);
        char *c = keel_strdup(v);
        if (!c) return KEEL_FAIL(err, KEEL_ERR_NOMEM, "job: out of memory");
        free(*(char **)dst);
        *(char **)dst = c;
        break;
    }
    case T_INT:
    case T_I64: {
        int64_t v;
        if (!keel_yaml_int(n, true, &v, NULL)) {
            if (n->type == YAML_SCALAR_NODE)
                return fail_at(err, l, k->path, "expected an integer, got '%s'", keel_yaml_shown(n, sb, sizeof sb));
            return fail_at(err, l, k->path, "expected an integer, got %s", keel_yaml_kind(n));
        }
        if (!bound_ok(k, (double)v)) {
            bound_text(k, why, sizeof why);
            return fail_at(err, l, k->path, "%s, got %lld", why, (long long)v);
        }
        if (k->type == T_INT) *(int32_t *)dst = (int32_t)v;
        else *(int64_t *)dst = v;
        break;
    }
    case T_U64: {
        uint64_t v;
        if (!keel_yaml_int(n, false, NULL, &v)) {
            if (n->type == YAML_SCALAR_NODE)
                return fail_at(err, l, k->path, "expected an unsigned integer, got '%s'", keel_yaml_shown(n, sb, sizeof sb));
            return fail_at(err, l, k->path, "expected an unsigned integer, got %s", keel_yaml_kind(n));
        }
        *(uint64_t *)dst = v;
        break;
    }
    case T_FLOAT: {
        double v;
        if (!keel_yaml_double(n, &v)) {
            if (n->type == YAML_SCALAR_NODE)
                return fail_at(err, l, k->path, "expected a number, got '%s'", keel_yaml_shown(n, sb, sizeof sb));
            return fail_at(err, l, k->path, "expected a number, got %s", keel_yaml_kind(n));
        }
        if (!bound_ok(k, v)) {
            bound_text(k, why, sizeof why);
            return fail_at(err, l, k->path, "%s, got %.15g", why, v);
        }
        *(double *)dst = v;
        break;
    }
    case T_BOOL: {
        const char *v = n->type == YAML_SCALAR_NODE && n->data.scalar.style == YAML_PLAIN_SCALAR_STYLE
                            ? (const char *)n->data.scalar.value : NULL;
        if (v && (!strcmp(v, "true") || !strcmp(v, "True") || !strcmp(v, "TRUE"))) *(bool *)dst = true;
        else if (v && (!strcmp(v, "false") || !strcmp(v, "False") || !strcmp(v, "FALSE"))) *(bool *)dst = false;
        else if (n->type == YAML_SCALAR_NODE)
            return fail_at(err, l, k->path, "expected true or false, got '%s'", keel_yaml_shown(n, sb, sizeof sb));
        else return fail_at(err, l, k->path, "expected true or false, got %s", keel_yaml_kind(n));
        break;
    }
    case T_ENUM: {
        if (n->type != YAML_SCALAR_NODE) return fail_at(err, l, k->path, "expected a name, got %s", keel_yaml_kind(n));
        const char *v = (const char *)n->data.scalar.value;
        int i, cnt = 0;
        for (i = 0; k->names[i]; i++)
            if (!strcmp(v, k->names[i])) break;
        for (cnt = 0; k->names[cnt]; cnt++) {}
        if (!k->names[i]) {
            char all[200] = "", dym[80];
            for (int j = 0; k->names[j]; j++) {
                strncat(all, j ? ", " : "", sizeof all - strlen(all) - 1);
                strncat(all, k->names[j], sizeof all - strlen(all) - 1);
            }
            keel_did_you_mean(v, k->names, cnt, dym, sizeof dym);
            return fail_at(err, l, k->path, "unknown value '%s'%s; expected one of: %s", keel_yaml_shown(n, sb, sizeof sb), dym, all);
        }
        *(int *)dst = i; // every enum here is int-sized
        break;
    }
    case T_LIST: {
        if (n->type != YAML_SEQUENCE_NODE) return fail_at(err, l, k->path, "expected a list like [a, b], got %s", keel_yaml_kind(n));
        yaml_node_item_t *it = n->data.sequence.items.start, *end = n->data.sequence.items.top;
        size_t cnt = (size_t)(end - it);
        if ((k->flags & NONEMPTY) && cnt == 0) return fail_at(err, l, k->path, "must not be empty");
        if (cnt > 4096) return fail_at(err, l, k->path, "too many entries (%zu)", cnt);
        keel_strlist nl = {0};
        if (cnt && !(nl.v = keel_calloc(cnt, sizeof *nl.v))) return KEEL_FAIL(err, KEEL_ERR_NOMEM, "job: out of memory");
        for (; it < end; it++) {
            yaml_node_t *e = yaml_document_get_node(doc, *it);
            loc el = *l;
            if (e && !l->is_set) el.line = (int)e->start_mark.line + 1, el.col = (int)e->start_mark.column + 1;
            if (!e || e->type != YAML_SCALAR_NODE || keel_yaml_is_null(e)) {
                strlist_free(&nl);
                return fail_at(err, &el, k->path, "list entries must be strings, got %s",
                               e ? (keel_yaml_is_null(e) ? "null" : keel_yaml_kind(e)) : "nothing");
            }
            const char *v = (const char *)e->data.scalar.value;
            if (strlen(v) != e->data.scalar.length || !*v) {
                strlist_free(&nl);
                return fail_at(err, &el, k->path, "list entries must be non-empty strings");
            }
            if ((k->flags & MODULES) && !module_ok(v, why, sizeof why)) {
                strlist_free(&nl);
                return fail_at(err, &el, k->path, "%s", why);
            }
            if (!(nl.v[nl.n] = keel_strdup(v))) {
                strlist_free(&nl);
                return KEEL_FAIL(err, KEEL_ERR_NOMEM, "job: out of memory");
            }
            nl.n++;
        }
        strlist_free((keel_strlist *)dst);
        *(keel_strlist *)dst = nl;
        break;
    }
    case T_PAIR: {
        if (n->type != YAML_SEQUENCE_NODE || n->data.sequence.items.top - n->data.sequence.items.start != 2)
            return fail_at(err, l, k->path, "expected a list of two numbers like [0.9, 0.999]");
        double v[2];
        for (int i = 0; i < 2; i++) {
            yaml_node_t *e = yaml_document_get_node(doc, n->data.sequence.items.start[i]);
            if (!e || !keel_yaml_double(e, &v[i]))
                return fail_at(err, l, k->path, "expected a list of two numbers like [0.9, 0.999]");
            if (!bound_ok(k, v[i])) {
                bound_text(k, why, sizeof why);
                return fail_at(err, l, k->path, "each value %s, got %.15g", why, v[i]);
            }
        }
        memcpy(dst, v, sizeof v);
        break;
    }
    }
    job->src_line[ki] = l->is_set ? -1 : l->line;
    job->src_col[ki] = l->col;
    return KEEL_OK;
}

// ---------------------------------------------------------------- documents

static keel_status load_doc(const char *name, const char *text, size_t len, yaml_document_t *doc,
                            bool *empty, const char *key_for_set, keel_err *err) {
    yaml_parser_t p;
    *empty = false;
    if (!yaml_parser_initialize(&p)) return KEEL_FAIL(err, KEEL_ERR_NOMEM, "%s: out of memory", name);
    yaml_parser_set_input_string(&p, (const unsigned char *)text, len);
    keel_status st = KEEL_OK;
    if (!yaml_parser_load(&p, doc)) {
        const char *prob = p.problem ? p.problem : "malformed YAML";
        if (key_for_set)
            st = KEEL_FAIL(err, KEEL_ERR_INVALID, "--set %s: key '%s': value is not valid YAML: %s", name,
                           key_for_set, prob);
        else
            st = KEEL_FAIL(err, KEEL_ERR_INVALID, "%s:%d:%d: YAML syntax error: %s%s%s", name,
                           (int)p.problem_mark.line + 1, (int)p.problem_mark.column + 1, prob,
                           p.context ? " " : "", p.context ? p.context : "");
        yaml_parser_delete(&p);
        return st;
    }
    if (!yaml_document_get_root_node(doc)) {
        *empty = true; // nothing (or only comments): the caller gets no document to delete
        yaml_document_delete(doc);
    } else {
        yaml_document_t extra;
        if (yaml_parser_load(&p, &extra)) {
            yaml_node_t *r = yaml_document_get_root_node(&extra);
            if (r) {
                int line = (int)r->start_mark.line + 1;
                st = key_for_set ? KEEL_FAIL(err, KEEL_ERR_INVALID, "--set %s: key '%s': more than one value", name, key_for_set)
                                 : KEEL_FAIL(err, KEEL_ERR_INVALID, "%s:%d:1: a second YAML document; a job is one document", name, line);
            }
            yaml_document_delete(&extra);
        } else {
            st = KEEL_FAIL(err, KEEL_ERR_INVALID, "%s:%d:%d: YAML syntax error: %s", name,
                           (int)p.problem_mark.line + 1, (int)p.problem_mark.column + 1,
                           p.problem ? p.problem : "malformed YAML");
        }
        if (st) yaml_document_delete(doc);
    }
    yaml_parser_delete(&p);
    return st;
}

static int key_index(const char *path) {
    for (int i = 0; i < N_KEYS; i++)
        if (!strcmp(keys[i].path, path)) return i;
    return -1;
}

static bool is_section(const char *s) {
    for (int i = 0; sections[i]; i++)
        if (!strcmp(s, sections[i])) return true;
    return false;
}

// Names valid at the top level, or inside section sec (for did-you-mean).
static int names_in(const char *sec, const char **out, int cap) {
    int n = 0;
    size_t sl = sec ? strlen(sec) : 0;
    for (int i = 0; i < N_KEYS && n < cap; i++) {
        const char *p = keys[i].path;
        if (sec) {
            if (!strncmp(p, sec, sl) && p[sl] == '.') out[n++] = p + sl + 1;
        } else if (!strchr(p, '.')) out[n++] = p;
    }
    for (int i = 0; !sec && sections[i] && n < cap; i++) out[n++] = sections[i];
    if (!sec && n < cap) out[n++] = "capabilities";
    return n;
}

static loc node_loc(const char *name, const yaml_node_t *n) {
    loc l = {name, (int)n->start_mark.line + 1, (int)n->start_mark.column + 1, false};
    return l;
}

// Walk a mapping (the root when sec is NULL, else a section) and assign.
static keel_status walk_map(keel_job *job, const char *name, yaml_document_t *doc, yaml_node_t *map,
                            const char *sec, keel_err *err) {
    bool seen[KEEL_JOB_MAX_KEYS] = {0};
    bool seen_sec[8] = {0};
    int seen_caps = 0; // line of `capabilities:`
    for (yaml_node_pair_t *pr = map->data.mapping.pairs.start; pr < map->data.mapping.pairs.top; pr++) {
        yaml_node_t *kn = yaml_document_get_node(doc, pr->key);
        yaml_node_t *vn = yaml_document_get_node(doc, pr->value);
        if (!kn || !vn) return KEEL_FAIL(err, KEEL_ERR_INVALID, "%s: malformed YAML document", name);
        loc kl = node_loc(name, kn), vl = node_loc(name, vn);
        if (kn->type != YAML_SCALAR_NODE)
            return KEEL_FAIL(err, KEEL_ERR_INVALID, "%s:%d:%d: %s%s: keys must be plain names, got %s", name,
                             kl.line, kl.col, sec ? "in section " : "at the top level", sec ? sec : "", keel_yaml_kind(kn));
        const char *kname = (const char *)kn->data.scalar.value;
        char path[160];
        snprintf(path, sizeof path, "%s%s%.100s", sec ? sec : "", sec ? "." : "", kname);
        if (strlen(kname) != kn->data.scalar.length)
            return fail_at(err, &kl, path, "key contains a NUL byte");
        if (!sec && is_section(kname)) {
            int si = 0;
            while (strcmp(sections[si], kname)) si++;
            if (seen_sec[si]) return fail_at(err, &kl, path, "duplicate key");
            seen_sec[si] = true;
            if (keel_yaml_is_null(vn)) continue; // `lora:` with nothing: all defaults
            if (vn->type != YAML_MAPPING_NODE)
                return fail_at(err, &vl, path, "expected a mapping of keys, got %s", keel_yaml_kind(vn));
            keel_status st = walk_map(job, name, doc, vn, kname, err);
            if (st) return st;
            continue;
        }
        if (!sec && !strcmp(kname, "capabilities")) {
            if (seen_caps) return fail_at(err, &kl, path, "duplicate key (first set on line %d)", seen_caps);
            seen_caps = kl.line;
            keel_cap_suite caps = {0};
            keel_status st;
            if (vn->type == YAML_SCALAR_NODE && !keel_yaml_is_null(vn)) {
                // `capabilities: suites/general.yaml`: the list of a suite file
                // (the resolved job writes it inline, so a run stays self-contained)
                char *sp = keel_job_expand_path((const char *)vn->data.scalar.value);
                if (!sp) return KEEL_FAIL(err, KEEL_ERR_NOMEM, "%s: out of memory", name);
                st = keel_cap_suite_load_file(&caps, sp, err);
                free(sp);
                if (st == KEEL_ERR_IO) {
                    keel_cap_suite_free(&caps);
                    return fail_at(err, &vl, path, "cannot read the suite file '%s' (expected a list of capabilities or "
                                   "the path of a suite file)", (const char *)vn->data.scalar.value);
                }
            } else {
                st = keel_cap_suite_parse_node(&caps, name, doc, vn, err);
            }
            if (st) {
                keel_cap_suite_free(&caps);
                return st;
            }
            keel_cap_suite_free(&job->caps);
            job->caps = caps;
            continue;
        }
        int ki = key_index(path);
        if (ki < 0) {
            const char *cands[64];
            int nc = names_in(sec, cands, 64);
            char dym[80];
            keel_did_you_mean(kname, cands, nc, dym, sizeof dym);
            // the right key in the wrong place: `train: {max_seq_len: 256}`
            for (int i = 0; !dym[0] && i < N_KEYS; i++) {
                const char *leaf = strrchr(keys[i].path, '.');
                leaf = leaf ? leaf + 1 : keys[i].path;
                if (!strcmp(leaf, kname)) snprintf(dym, sizeof dym, " (it belongs in '%s')", keys[i].path);
            }
            return fail_at(err, &kl, path, "unknown key%s", dym);
        }
        if (seen[ki]) return fail_at(err, &kl, path, "duplicate key (first set on line %d)", job->src_line[ki]);
        seen[ki] = true;
        keel_status st = assign(job, ki, doc, vn, &vl, err);
        if (st) return st;
    }
    return KEEL_OK;
}

// ---------------------------------------------------------------- public

static keel_status assign_default(keel_job *job, int ki, keel_err *err) {
    const keydef *k = &keys[ki];
    yaml_document_t doc;
    bool empty;
    keel_status st = load_doc("default", k->def, strlen(k->def), &doc, &empty, k->path, err);
    KEEL_ASSERT(st == KEEL_OK || st == KEEL_ERR_NOMEM);
    if (st) return st;
    KEEL_ASSERT(!empty);
    yaml_node_t *n = yaml_document_get_root_node(&doc);
    // bypass the NONEMPTY checks of strings: empty required strings default to ""
    loc l = {"default", 0, 0, false};
    if (k->type == T_STR) {
        char *c = keel_strdup((const char *)n->data.scalar.value);
        if (!c) st = KEEL_FAIL(err, KEEL_ERR_NOMEM, "job: out of memory");
        else {
            free(*(char **)((char *)job + k->off));
            *(char **)((char *)job + k->off) = c;
        }
    } else {
        st = assign(job, ki, &doc, n, &l, err);
        KEEL_ASSERT(st == KEEL_OK || st == KEEL_ERR_NOMEM);
    }
    job->src_line[ki] = 0;
    job->src_col[ki] = 0;
    yaml_document_delete(&doc);
    return st;
}

keel_status keel_job_init(keel_job *job, keel_err *err) {
    memset(job, 0, sizeof *job);
    for (int i = 0; i < N_KEYS; i++) {
        keel_status st = assign_default(job, i, err);
        if (st) {
            keel_job_free(job);
            return st;
        }
    }
    return KEEL_OK;
}

void keel_job_free(keel_job *job) {
    if (!job) return;
    for (int i = 0; i < N_KEYS; i++) {
        void *dst = (char *)job + keys[i].off;
        if (keys[i].type == T_STR) free(*(char **)dst);
        else if (keys[i].type == T_LIST) strlist_free((keel_strlist *)dst);
    }
    free(job->path);
    keel_cap_suite_free(&job->caps);
    memset(job, 0, sizeof *job);
}

keel_status keel_job_parse(keel_job *job, const char *name, const char *text, size_t len, keel_err *err) {
    if (!job || !name || (!text && len)) return KEEL_FAIL(err, KEEL_ERR_INVALID, "keel_job_parse: NULL argument");
    char *nm = keel_strdup(name);
    if (!nm) return KEEL_FAIL(err, KEEL_ERR_NOMEM, "job: out of memory");
    free(job->path);
    job->path = nm;
    yaml_document_t doc;
    bool empty;
    keel_status st = load_doc(name, text ? text : "", len, &doc, &empty, NULL, err);
    if (st) return st;
    if (empty) return KEEL_FAIL(err, KEEL_ERR_INVALID, "%s: the job file is empty (it needs at least 'model' and 'data.train')", name);
    yaml_node_t *root = yaml_document_get_root_node(&doc);
    if (root->type != YAML_MAPPING_NODE) {
        loc l = node_loc(name, root);
        st = KEEL_FAIL(err, KEEL_ERR_INVALID, "%s:%d:%d: the job must be a mapping of keys, got %s", name, l.line,
                       l.col, keel_yaml_kind(root));
    } else {
        st = walk_map(job, name, &doc, root, NULL, err);
    }
    yaml_document_delete(&doc);
    return st;
}

keel_status keel_job_parse_file(keel_job *job, const char *path, keel_err *err) {
    char *text = NULL;
    size_t len = 0;
    keel_status st = keel_read_file(path, &text, &len, err);
    if (st) return st;
    st = keel_job_parse(job, path, text, len, err);
    free(text);
    return st;
}

keel_status keel_job_set(keel_job *job, const char *a, keel_err *err) {
    if (!job || !a) return KEEL_FAIL(err, KEEL_ERR_INVALID, "keel_job_set: NULL argument");
    const char *eq = strchr(a, '=');
    if (!eq) return KEEL_FAIL(err, KEEL_ERR_INVALID, "--set %s: expected KEY=VALUE, e.g. train.lr=1e-4", a);
    char path[160];
    size_t kl = (size_t)(eq - a);
    if (kl == 0 || kl >= sizeof path) return KEEL_FAIL(err, KEEL_ERR_INVALID, "--set %s: expected KEY=VALUE", a);
    memcpy(path, a, kl);
    path[kl] = 0;
    loc l = {a, 0, 0, true};
    int ki = key_index(path);
    if (ki < 0) {
        if (!strncmp(path, "capabilities", 12) && (path[12] == 0 || path[12] == '.' || path[12] == '['))
            return fail_at(err, &l, path, "capabilities cannot be set with --set; edit the job file");
        const char *cands[KEEL_JOB_MAX_KEYS];
        for (int i = 0; i < N_KEYS; i++) cands[i] = keys[i].path;
        char dym[80];
        keel_did_you_mean(path, cands, N_KEYS, dym, sizeof dym);
        if (is_section(path)) return fail_at(err, &l, path, "is a section; set one of its keys, e.g. %s.%s", path, "...");
        return fail_at(err, &l, path, "unknown key%s", dym);
    }
    yaml_document_t doc;
    bool empty;
    const char *val = eq + 1;
    keel_status st = load_doc(a, val, strlen(val), &doc, &empty, path, err);
    if (st) return st;
    if (empty) {
        st = assign_default(job, ki, err);
        if (!st) job->src_line[ki] = -1;
        return st;
    }
    st = assign(job, ki, &doc, yaml_document_get_root_node(&doc), &l, err);
    yaml_document_delete(&doc);
    return st;
}

static loc key_loc(const keel_job *job, int ki, char *buf, size_t cap) {
    loc l = {job->path ? job->path : "job", job->src_line[ki], job->src_col[ki], false};
    if (job->src_line[ki] < 0) {
        snprintf(buf, cap, "%s=...", keys[ki].path);
        l.name = buf, l.is_set = true;
    }
    return l;
}

keel_status keel_job_validate(const keel_job *job, keel_err *err) {
    char b[200];
    int ki;
    ki = key_index("model");
    if (!job->model || !*job->model) {
        loc l = key_loc(job, ki, b, sizeof b);
        return fail_at(err, &l, "model", "required: the path of a .gguf file or a Hugging Face model directory");
    }
    ki = key_index("data.train");
    if (!job->data.train || !*job->data.train) {
        loc l = key_loc(job, ki, b, sizeof b);
        return fail_at(err, &l, "data.train", "required: the path of a JSONL file");
    }
    if (job->data.validation && *job->data.validation && job->data.validation_split > 0) {
        ki = key_index("data.validation_split");
        loc l = key_loc(job, ki, b, sizeof b);
        return fail_at(err, &l, "data.validation_split", "set either data.validation (a file) or data.validation_split, not both");
    }
    if (job->caps.n == 0 && job->monitor.every > 0) {
        ki = key_index("monitor.every");
        loc l = key_loc(job, ki, b, sizeof b);
        return fail_at(err, &l, "monitor.every", "there is nothing to monitor: the job declares no capabilities");
    }
    if (job->caps.n == 0 && job->monitor.on_violation != KEEL_VIOLATION_STOP) {
        ki = key_index("monitor.on_violation");
        loc l = key_loc(job, ki, b, sizeof b);
        return fail_at(err, &l, "monitor.on_violation", "%s needs bounds, but the job declares no capabilities",
                       violation_names[job->monitor.on_violation]);
    }
    if (job->train.max_steps > 0 && job->train.warmup_steps > job->train.max_steps) {
        ki = key_index("train.warmup_steps");
        loc l = key_loc(job, ki, b, sizeof b);
        return fail_at(err, &l, "train.warmup_steps", "%lld is more than train.max_steps (%lld)",
                       (long long)job->train.warmup_steps, (long long)job->train.max_steps);
    }
    return KEEL_OK;
}

keel_status keel_job_load(keel_job *job, const char *path, const char *const *sets, int n_sets, keel_err *err) {
    keel_status st = keel_job_init(job, err);
    if (st) return st;
    if (!st) st = keel_job_parse_file(job, path, err);
    for (int i = 0; !st && i < n_sets; i++) st = keel_job_set(job, sets[i], err);
    if (!st) st = keel_job_validate(job, err);
    if (st) keel_job_free(job);
    return st;
}

char *keel_job_expand_path(const char *path) {
    const char *home = getenv("HOME");
    if (path && path[0] == '~' && path[1] == '/' && home && *home) return keel_path_join(home, path + 2);
    return keel_strdup(path ? path : "");
}

keel_status keel_job_resolve(const char *path, const char *const *sets, int32_t n_sets, char **yaml,
                             keel_err *err) {
    if (yaml) *yaml = NULL;
    if (!path || !yaml || n_sets < 0 || (n_sets && !sets))
        return KEEL_FAIL(err, KEEL_ERR_INVALID, "keel_job_resolve: NULL argument");
    keel_job job;
    keel_status st = keel_job_load(&job, path, sets, n_sets, err);
    if (st) return st;
    st = keel_job_to_yaml(&job, yaml, NULL, err);
    keel_job_free(&job);
    return st;
}

// ---------------------------------------------------------------- writer

// (quoted strings and numbers: io/yaml_util.c)

keel_status keel_job_to_yaml(const keel_job *job, char **out, size_t *len, keel_err *err) {
    keel_buf b = {0};
    bool ok = keel_buf_appends(&b, "# keel job, resolved: every key with its value (defaults filled in)\n");
    const char *cur = NULL;
    size_t curl = 0;
    for (int i = 0; ok && i < N_KEYS; i++) {
        const keydef *k = &keys[i];
        const char *dot = strchr(k->path, '.');
        const char *leaf = k->path;
        if (dot) {
            if (!cur || curl != (size_t)(dot - k->path) || strncmp(cur, k->path, curl)) {
                cur = k->path, curl = (size_t)(dot - k->path);
                ok = keel_buf_printf(&b, "%.*s:\n", (int)curl, cur);
            }
            leaf = dot + 1;
            ok = ok && keel_buf_appends(&b, "  ");
        }
        ok = ok && keel_buf_printf(&b, "%s: ", leaf);
        const void *src = (const char *)job + k->off;
        switch (k->type) {
        case T_STR: ok = ok && keel_yaml_put_str(&b, *(char *const *)src ? *(char *const *)src : ""); break;
        case T_INT: ok = ok && keel_buf_printf(&b, "%d", (int)*(const int32_t *)src); break;
        case T_I64: ok = ok && keel_buf_printf(&b, "%lld", (long long)*(const int64_t *)src); break;
        case T_U64: ok = ok && keel_buf_printf(&b, "%llu", (unsigned long long)*(const uint64_t *)src); break;
        case T_FLOAT: ok = ok && keel_yaml_put_double(&b, *(const double *)src); break;
        case T_BOOL: ok = ok && keel_buf_appends(&b, *(const bool *)src ? "true" : "false"); break;
        case T_ENUM: {
            int v = *(const int *)src;
            ok = ok && keel_buf_appends(&b, k->names[v]);
            break;
        }
        case T_LIST: {
            const keel_strlist *l = src;
            ok = ok && keel_buf_appends(&b, "[");
            for (int32_t j = 0; ok && j < l->n; j++) ok = (!j || keel_buf_appends(&b, ", ")) && keel_yaml_put_str(&b, l->v[j]);
            ok = ok && keel_buf_appends(&b, "]");
            break;
        }
        case T_PAIR: {
            const double *v = src;
            ok = ok && keel_buf_appends(&b, "[") && keel_yaml_put_double(&b, v[0]) && keel_buf_appends(&b, ", ") &&
                 keel_yaml_put_double(&b, v[1]) && keel_buf_appends(&b, "]");
            break;
        }
        }
        ok = ok && keel_buf_appends(&b, "\n");
    }
    if (ok && keel_cap_suite_to_yaml(&job->caps, &b, err) != KEEL_OK) {
        free(b.data);
        return KEEL_ERR_NOMEM;
    }
    if (!ok || !keel_buf_append(&b, "", 1)) {
        free(b.data);
        return KEEL_FAIL(err, KEEL_ERR_NOMEM, "job: out of memory");
    }
    *out = b.data;
    if (len) *len = b.len - 1;
    return KEEL_OK;
}

keel_status keel_write_file_atomic(const char *path, const void *data, size_t len, keel_err *err) {
    keel_iobuf buf = {data, len};
    return keel_atomic_write_bufs(path, &buf, 1, err);
}

keel_status keel_job_write(const keel_job *job, const char *path, keel_err *err) {
    char *text = NULL;
    size_t len = 0;
    keel_status st = keel_job_to_yaml(job, &text, &len, err);
    if (!st) st = keel_write_file_atomic(path, text, len, err);
    free(text);
    return st;
}

bool keel_job_equal(const keel_job *a, const keel_job *b) {
    for (int i = 0; i < N_KEYS; i++) {
        const void *x = (const char *)a + keys[i].off, *y = (const char *)b + keys[i].off;
        switch (keys[i].type) {
        case T_STR: {
            const char *s = *(char *const *)x, *t = *(char *const *)y;
            if (strcmp(s ? s : "", t ? t : "")) return false;
            break;
        }
        case T_INT: if (*(const int32_t *)x != *(const int32_t *)y) return false; break;
        case T_I64: if (*(const int64_t *)x != *(const int64_t *)y) return false; break;
        case T_U64: if (*(const uint64_t *)x != *(const uint64_t *)y) return false; break;
        case T_FLOAT: if (*(const double *)x != *(const double *)y) return false; break;
        case T_BOOL: if (*(const bool *)x != *(const bool *)y) return false; break;
        case T_ENUM: if (*(const int *)x != *(const int *)y) return false; break;
        case T_PAIR: if (memcmp(x, y, 2 * sizeof(double))) return false; break;
        case T_LIST: {
            const keel_strlist *l = x, *m = y;
            if (l->n != m->n) return false;
            for (int32_t j = 0; j < l->n; j++)
                if (strcmp(l->v[j], m->v[j])) return false;
            break;
        }
        }
    }
    return keel_cap_suite_equal(&a->caps, &b->caps);
}
