// SPDX-License-Identifier: MIT
// suite.c — the `capabilities:` list (a job's section, or a suite file that
// holds only it): parse with libyaml's document API (every node has a line
// and column), validate, write back as YAML that reads back equal, compare,
// copy, free. Errors follow job.c's form: "FILE:LINE:COL: key
// 'capabilities[2].max_drop': ..." (index 0-based), did-you-mean for unknown
// keys, a null value means the key's default, duplicate keys are rejected.
// Keys, defaults and their meaning: docs/eval.md. Regexes (extract, pattern)
// are compiled here once so a bad one is reported with its line.
#include "cap/cap.h"
#include "io/io.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <errno.h>
#include <math.h>
#include <pcre2.h>

// ---------------------------------------------------------------- names

static const char *const kind_names[] = {"perplexity", "exact_match", "multiple_choice", "probe", NULL};
static const char *const task_names[] = {"jsonl", "text", "arc_easy", "arc_challenge", "piqa",
                                         "boolq", "winogrande", "hellaswag", NULL};
static const char *const metric_names[] = {"acc", "acc_norm", NULL};
static const char *const chat_names[] = {"auto", "false", "true", NULL}; // index - 1 = chat
static const char *const expect_names[] = {"match", "no_match", NULL};
static const char *const decide_names[] = {"point", "ci", NULL};
static const char *const norm_names[] = {"case", "whitespace", "punctuation", NULL};

const char *keel_cap_kind_name(keel_cap_kind k) { return (unsigned)k < 4 ? kind_names[k] : "?"; }
const char *keel_cap_task_name(keel_cap_task t) { return (unsigned)t < 8 ? task_names[t] : "?"; }

const char *keel_cap_metric_name(const keel_cap_spec *c) {
    switch (c->kind) {
    case KEEL_CAP_PERPLEXITY: return "ppl";
    case KEEL_CAP_EXACT_MATCH: return "exact_match";
    case KEEL_CAP_MULTIPLE_CHOICE: return c->acc_norm ? "acc_norm" : "acc";
    case KEEL_CAP_PROBE: return "pass_rate";
    }
    return "?";
}

bool keel_cap_higher_is_better(const keel_cap_spec *c) { return c->kind != KEEL_CAP_PERPLEXITY; }

// ---------------------------------------------------------------- key table

// Which kinds a key belongs to (bit i = keel_cap_kind i).
enum { K_PPL = 1, K_EM = 2, K_MC = 4, K_PROBE = 8, K_ALL = 15 };

typedef enum ckey {
    CK_NAME, CK_TYPE, CK_TASK, CK_DATA, CK_LIMIT, CK_METRIC, CK_MAX_NEW, CK_CHAT, CK_NORMALIZE,
    CK_EXTRACT, CK_PATTERN, CK_EXPECT, CK_WINDOW, CK_MAX_DROP, CK_MIN, CK_MAX, CK_DECIDE, CK_N
} ckey;

static const struct {
    const char *name;
    int kinds;
} ckeys[CK_N] = {
    {"name", K_ALL},      {"type", K_ALL},         {"task", K_ALL},          {"data", K_ALL},
    {"limit", K_ALL},     {"metric", K_MC},        {"max_new_tokens", K_EM | K_PROBE},
    {"chat", K_EM | K_PROBE}, {"normalize", K_EM}, {"extract", K_EM},        {"pattern", K_PROBE},
    {"expect", K_PROBE},  {"window", K_PPL},       {"max_drop", K_ALL},      {"min", K_ALL},
    {"max", K_ALL},       {"decide", K_ALL},
};

#define MAX_NEW_LIMIT 4096
#define WINDOW_LIMIT (1 << 20)

// ---------------------------------------------------------------- messages

typedef struct cloc {
    const char *file;
    int line, col;
} cloc;

static cloc at(const char *file, const yaml_node_t *n) {
    cloc l = {file, (int)n->start_mark.line + 1, (int)n->start_mark.column + 1};
    return l;
}

static keel_status failk(keel_err *err, cloc l, int idx, const char *key, const char *fmt, ...)
    KEEL_PRINTF(5, 6);
static keel_status failk(keel_err *err, cloc l, int idx, const char *key, const char *fmt, ...) {
    char what[400], path[120];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    if (key) snprintf(path, sizeof path, "capabilities[%d].%.60s", idx, key);
    else snprintf(path, sizeof path, "capabilities[%d]", idx);
    if (l.line > 0) return KEEL_FAIL(err, KEEL_ERR_INVALID, "%s:%d:%d: key '%s': %s", l.file, l.line, l.col, path, what);
    return KEEL_FAIL(err, KEEL_ERR_INVALID, "%s: key '%s': %s", l.file, path, what);
}

// ---------------------------------------------------------------- scalars

// A finite decimal number (no hex, inf, nan, spaces).
static bool num_text(const char *s, size_t len, double *out) {
    if (!len || strlen(s) < len) return false;
    char tmp[64];
    if (len >= sizeof tmp) return false;
    memcpy(tmp, s, len);
    tmp[len] = 0;
    for (const char *p = tmp; *p; p++)
        if (!strchr("0123456789+-.eE", *p)) return false;
    char *end;
    errno = 0;
    double v = strtod(tmp, &end);
    if (*end || errno == ERANGE || !isfinite(v)) return false;
    *out = v;
    return true;
}

// Null scalars, numbers, node kinds and did-you-mean: io/yaml_util.c (shared
// with job/job.c). A number here is at most 63 characters (num_text's buffer)
// and an integer's magnitude at most INT64_MAX, as this file always read them.
static bool plain_number(const yaml_node_t *n, double *out) {
    return n->type == YAML_SCALAR_NODE && n->data.scalar.length < 64 && keel_yaml_double(n, out);
}

static bool plain_int(const yaml_node_t *n, int64_t *out) {
    return keel_yaml_int(n, true, out, NULL) && *out != INT64_MIN;
}

static keel_status get_str(const yaml_node_t *n, cloc l, int idx, const char *key, const char **out, keel_err *err) {
    if (n->type != YAML_SCALAR_NODE) return failk(err, l, idx, key, "expected a string, got %s", keel_yaml_kind(n));
    const char *v = (const char *)n->data.scalar.value;
    if (strlen(v) != n->data.scalar.length) return failk(err, l, idx, key, "string contains a NUL byte");
    if (!*v) return failk(err, l, idx, key, "must not be empty");
    *out = v;
    return KEEL_OK;
}

static keel_status get_enum(const yaml_node_t *n, cloc l, int idx, const char *key, const char *const *names,
                            int *out, keel_err *err) {
    char sb[80];
    if (n->type != YAML_SCALAR_NODE) return failk(err, l, idx, key, "expected a name, got %s", keel_yaml_kind(n));
    const char *v = (const char *)n->data.scalar.value;
    int cnt = 0;
    while (names[cnt]) cnt++;
    for (int i = 0; i < cnt; i++)
        if (!strcmp(v, names[i])) {
            *out = i;
            return KEEL_OK;
        }
    char all[200] = "", dym[80];
    for (int j = 0; j < cnt; j++) {
        strncat(all, j ? ", " : "", sizeof all - strlen(all) - 1);
        strncat(all, names[j], sizeof all - strlen(all) - 1);
    }
    keel_did_you_mean(v, names, cnt, dym, sizeof dym);
    return failk(err, l, idx, key, "unknown value '%s'%s; expected one of: %s", keel_yaml_shown(n, sb, sizeof sb), dym, all);
}

static keel_status get_int(const yaml_node_t *n, cloc l, int idx, const char *key, int64_t lo, int64_t hi,
                           int64_t *out, keel_err *err) {
    char sb[80];
    int64_t v;
    if (!plain_int(n, &v)) {
        if (n->type == YAML_SCALAR_NODE)
            return failk(err, l, idx, key, "expected an integer, got '%s'", keel_yaml_shown(n, sb, sizeof sb));
        return failk(err, l, idx, key, "expected an integer, got %s", keel_yaml_kind(n));
    }
    if (v < lo || v > hi) return failk(err, l, idx, key, "must be in [%lld, %lld], got %lld", (long long)lo, (long long)hi, (long long)v);
    *out = v;
    return KEEL_OK;
}

static keel_status get_num(const yaml_node_t *n, cloc l, int idx, const char *key, double *out, keel_err *err) {
    char sb[80];
    if (!plain_number(n, out)) {
        if (n->type == YAML_SCALAR_NODE) return failk(err, l, idx, key, "expected a number, got '%s'", keel_yaml_shown(n, sb, sizeof sb));
        return failk(err, l, idx, key, "expected a number, got %s", keel_yaml_kind(n));
    }
    return KEEL_OK;
}

// Compile re as PCRE2 (UTF) to check it; message with the offset on failure.
static keel_status check_regex(const char *re, cloc l, int idx, const char *key, keel_err *err) {
    int ec;
    PCRE2_SIZE off;
    pcre2_code *c = pcre2_compile((PCRE2_SPTR)re, PCRE2_ZERO_TERMINATED, PCRE2_UTF, &ec, &off, NULL);
    if (!c) {
        PCRE2_UCHAR msg[160];
        pcre2_get_error_message(ec, msg, sizeof msg);
        return failk(err, l, idx, key, "bad regular expression at offset %zu: %s", (size_t)off, (const char *)msg);
    }
    pcre2_code_free(c);
    return KEEL_OK;
}

// ---------------------------------------------------------------- entries

static void spec_free(keel_cap_spec *c) {
    free(c->name);
    free(c->data);
    free(c->extract);
    free(c->pattern);
    memset(c, 0, sizeof *c);
}

// Defaults of every key (docs/eval.md).
static void spec_defaults(keel_cap_spec *c) {
    memset(c, 0, sizeof *c);
    c->task = KEEL_CAP_TASK_JSONL;
    c->max_new_tokens = 32;
    c->chat = -1;
    c->expect_match = true;
    c->window = 512;
    c->decide = -1;
}

static bool name_ok(const char *s) {
    if (!*s || strlen(s) > 63) return false;
    for (const char *p = s; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') || *p == '_' ||
              *p == '.' || *p == '-'))
            return false;
    return true;
}

static bool ends_with(const char *s, const char *suf) {
    size_t a = strlen(s), b = strlen(suf);
    return a >= b && !strcmp(s + a - b, suf);
}

static keel_status set_dup(char **dst, const char *v, keel_err *err) {
    char *c = keel_strdup(v);
    if (!c) return KEEL_FAIL(err, KEEL_ERR_NOMEM, "capabilities: out of memory");
    free(*dst);
    *dst = c;
    return KEEL_OK;
}

static keel_status parse_entry(keel_cap_spec *c, const char *file, yaml_document_t *doc, yaml_node_t *map,
                               int idx, keel_err *err) {
    cloc el = at(file, map);
    spec_defaults(c);
    c->line = el.line;
    c->col = el.col;
    if (map->type != YAML_MAPPING_NODE)
        return failk(err, el, idx, NULL, "expected a mapping (name:, type:, data:, ...), got %s", keel_yaml_kind(map));
    yaml_node_t *val[CK_N] = {0};
    cloc kloc[CK_N], vloc[CK_N];
    for (yaml_node_pair_t *pr = map->data.mapping.pairs.start; pr < map->data.mapping.pairs.top; pr++) {
        yaml_node_t *kn = yaml_document_get_node(doc, pr->key), *vn = yaml_document_get_node(doc, pr->value);
        if (!kn || !vn) return KEEL_FAIL(err, KEEL_ERR_INVALID, "%s: malformed YAML document", file);
        cloc kl = at(file, kn);
        if (kn->type != YAML_SCALAR_NODE || strlen((const char *)kn->data.scalar.value) != kn->data.scalar.length)
            return failk(err, kl, idx, NULL, "keys must be plain names, got %s", keel_yaml_kind(kn));
        const char *k = (const char *)kn->data.scalar.value;
        int ki = 0;
        while (ki < CK_N && strcmp(ckeys[ki].name, k)) ki++;
        if (ki == CK_N) {
            const char *cands[CK_N];
            for (int i = 0; i < CK_N; i++) cands[i] = ckeys[i].name;
            char dym[80];
            keel_did_you_mean(k, cands, CK_N, dym, sizeof dym);
            return failk(err, kl, idx, k, "unknown key%s", dym);
        }
        if (val[ki]) return failk(err, kl, idx, k, "duplicate key (first set on line %d)", kloc[ki].line);
        val[ki] = vn;
        kloc[ki] = kl;
        vloc[ki] = at(file, vn);
    }
    keel_status st;
    int e;
    // type first: it decides which other keys belong
    if (!val[CK_TYPE] || keel_yaml_is_null(val[CK_TYPE]))
        return failk(err, val[CK_TYPE] ? vloc[CK_TYPE] : el, idx, "type", "required: one of perplexity, exact_match, multiple_choice, probe");
    if ((st = get_enum(val[CK_TYPE], vloc[CK_TYPE], idx, "type", kind_names, &e, err))) return st;
    c->kind = (keel_cap_kind)e;
    for (int ki = 0; ki < CK_N; ki++) {
        if (val[ki] && !(ckeys[ki].kinds & (1 << c->kind))) {
            char all[120] = "";
            for (int k = 0; k < 4; k++)
                if (ckeys[ki].kinds & (1 << k)) {
                    strncat(all, all[0] ? ", " : "", sizeof all - strlen(all) - 1);
                    strncat(all, kind_names[k], sizeof all - strlen(all) - 1);
                }
            return failk(err, kloc[ki], idx, ckeys[ki].name, "only for type %s (this capability is %s)", all,
                         kind_names[c->kind]);
        }
    }
    // name
    if (!val[CK_NAME] || keel_yaml_is_null(val[CK_NAME])) return failk(err, val[CK_NAME] ? vloc[CK_NAME] : el, idx, "name", "required");
    const char *s;
    if ((st = get_str(val[CK_NAME], vloc[CK_NAME], idx, "name", &s, err))) return st;
    if (!name_ok(s)) return failk(err, vloc[CK_NAME], idx, "name", "'%.80s': use 1 to 63 of A-Z a-z 0-9 _ . -", s);
    if ((st = set_dup(&c->name, s, err))) return st;
    // data
    if (!val[CK_DATA] || keel_yaml_is_null(val[CK_DATA]))
        return failk(err, val[CK_DATA] ? vloc[CK_DATA] : el, idx, "data", "required: the path of the capability's data file");
    if ((st = get_str(val[CK_DATA], vloc[CK_DATA], idx, "data", &s, err))) return st;
    if ((st = set_dup(&c->data, s, err))) return st;
    // task (default: jsonl; text for a .txt perplexity file)
    if (val[CK_TASK] && !keel_yaml_is_null(val[CK_TASK])) {
        if ((st = get_enum(val[CK_TASK], vloc[CK_TASK], idx, "task", task_names, &e, err))) return st;
        c->task = (keel_cap_task)e;
        if (c->task == KEEL_CAP_TASK_TEXT && c->kind != KEEL_CAP_PERPLEXITY)
            return failk(err, vloc[CK_TASK], idx, "task", "text is only for type perplexity (this capability is %s)", kind_names[c->kind]);
        if (c->task >= KEEL_CAP_TASK_ARC_EASY && c->kind != KEEL_CAP_MULTIPLE_CHOICE)
            return failk(err, vloc[CK_TASK], idx, "task", "%s is a multiple_choice task (this capability is %s)",
                         task_names[c->task], kind_names[c->kind]);
    } else if (c->kind == KEEL_CAP_PERPLEXITY && ends_with(c->data, ".txt")) {
        c->task = KEEL_CAP_TASK_TEXT;
    }
    int64_t v;
    if (val[CK_LIMIT] && !keel_yaml_is_null(val[CK_LIMIT])) {
        if ((st = get_int(val[CK_LIMIT], vloc[CK_LIMIT], idx, "limit", 0, INT64_MAX / 2, &v, err))) return st;
        c->limit = v;
    }
    if (val[CK_METRIC] && !keel_yaml_is_null(val[CK_METRIC])) {
        if ((st = get_enum(val[CK_METRIC], vloc[CK_METRIC], idx, "metric", metric_names, &e, err))) return st;
        c->acc_norm = e == 1;
    }
    if (val[CK_MAX_NEW] && !keel_yaml_is_null(val[CK_MAX_NEW])) {
        if ((st = get_int(val[CK_MAX_NEW], vloc[CK_MAX_NEW], idx, "max_new_tokens", 1, MAX_NEW_LIMIT, &v, err))) return st;
        c->max_new_tokens = (int32_t)v;
    }
    if (val[CK_CHAT] && !keel_yaml_is_null(val[CK_CHAT])) {
        if ((st = get_enum(val[CK_CHAT], vloc[CK_CHAT], idx, "chat", chat_names, &e, err))) return st;
        c->chat = e - 1;
    }
    if (val[CK_NORMALIZE] && !keel_yaml_is_null(val[CK_NORMALIZE])) {
        yaml_node_t *n = val[CK_NORMALIZE];
        if (n->type == YAML_SCALAR_NODE) { // a single name
            if ((st = get_enum(n, vloc[CK_NORMALIZE], idx, "normalize", norm_names, &e, err))) return st;
            if (e == 0) c->norm_case = true;
            else if (e == 1) c->norm_space = true;
            else c->norm_punct = true;
        } else if (n->type == YAML_SEQUENCE_NODE) {
            bool seen[3] = {0};
            for (yaml_node_item_t *it = n->data.sequence.items.start; it < n->data.sequence.items.top; it++) {
                yaml_node_t *en = yaml_document_get_node(doc, *it);
                if (!en) return KEEL_FAIL(err, KEEL_ERR_INVALID, "%s: malformed YAML document", file);
                if ((st = get_enum(en, at(file, en), idx, "normalize", norm_names, &e, err))) return st;
                if (seen[e]) return failk(err, at(file, en), idx, "normalize", "'%s' listed twice", norm_names[e]);
                seen[e] = true;
            }
            c->norm_case = seen[0], c->norm_space = seen[1], c->norm_punct = seen[2];
        } else {
            return failk(err, vloc[CK_NORMALIZE], idx, "normalize", "expected a list like [case, whitespace, punctuation], got %s", keel_yaml_kind(n));
        }
    }
    if (val[CK_EXTRACT] && !keel_yaml_is_null(val[CK_EXTRACT])) {
        if ((st = get_str(val[CK_EXTRACT], vloc[CK_EXTRACT], idx, "extract", &s, err))) return st;
        if ((st = check_regex(s, vloc[CK_EXTRACT], idx, "extract", err))) return st;
        if ((st = set_dup(&c->extract, s, err))) return st;
    }
    if (c->kind == KEEL_CAP_PROBE) {
        if (!val[CK_PATTERN] || keel_yaml_is_null(val[CK_PATTERN]))
            return failk(err, val[CK_PATTERN] ? vloc[CK_PATTERN] : el, idx, "pattern", "required for a probe: the regular expression generations are matched against");
        if ((st = get_str(val[CK_PATTERN], vloc[CK_PATTERN], idx, "pattern", &s, err))) return st;
        if ((st = check_regex(s, vloc[CK_PATTERN], idx, "pattern", err))) return st;
        if ((st = set_dup(&c->pattern, s, err))) return st;
    }
    if (val[CK_EXPECT] && !keel_yaml_is_null(val[CK_EXPECT])) {
        if ((st = get_enum(val[CK_EXPECT], vloc[CK_EXPECT], idx, "expect", expect_names, &e, err))) return st;
        c->expect_match = e == 0;
    }
    if (val[CK_WINDOW] && !keel_yaml_is_null(val[CK_WINDOW])) {
        if ((st = get_int(val[CK_WINDOW], vloc[CK_WINDOW], idx, "window", 2, WINDOW_LIMIT, &v, err))) return st;
        c->window = (int32_t)v;
    }
    if (val[CK_MAX_DROP] && !keel_yaml_is_null(val[CK_MAX_DROP])) {
        yaml_node_t *n = val[CK_MAX_DROP];
        char sb[80];
        double d;
        if (n->type != YAML_SCALAR_NODE)
            return failk(err, vloc[CK_MAX_DROP], idx, "max_drop", "expected a number or a percentage like 5%%, got %s", keel_yaml_kind(n));
        const char *t = (const char *)n->data.scalar.value;
        size_t len = n->data.scalar.length;
        if (len > 1 && t[len - 1] == '%') {
            if (!num_text(t, len - 1, &d))
                return failk(err, vloc[CK_MAX_DROP], idx, "max_drop", "expected a percentage like 5%%, got '%s'", keel_yaml_shown(n, sb, sizeof sb));
            if (d < 0 || d > 1e6)
                return failk(err, vloc[CK_MAX_DROP], idx, "max_drop", "percentage must be in [0, 1e6], got '%s'", keel_yaml_shown(n, sb, sizeof sb));
            c->max_drop_rel = true;
            c->max_drop = d / 100;
        } else {
            if (!plain_number(n, &d))
                return failk(err, vloc[CK_MAX_DROP], idx, "max_drop", "expected a number or a percentage like 5%%, got '%s'", keel_yaml_shown(n, sb, sizeof sb));
            if (d < 0) return failk(err, vloc[CK_MAX_DROP], idx, "max_drop", "must be >= 0, got %.15g", d);
            c->max_drop = d;
        }
        c->has_max_drop = true;
    }
    if (val[CK_MIN] && !keel_yaml_is_null(val[CK_MIN])) {
        if ((st = get_num(val[CK_MIN], vloc[CK_MIN], idx, "min", &c->min, err))) return st;
        c->has_min = true;
    }
    if (val[CK_MAX] && !keel_yaml_is_null(val[CK_MAX])) {
        if ((st = get_num(val[CK_MAX], vloc[CK_MAX], idx, "max", &c->max, err))) return st;
        c->has_max = true;
    }
    if (c->has_min && c->has_max && c->min > c->max)
        return failk(err, vloc[CK_MAX], idx, "max", "%.15g is below min (%.15g)", c->max, c->min);
    if (val[CK_DECIDE] && !keel_yaml_is_null(val[CK_DECIDE])) {
        if ((st = get_enum(val[CK_DECIDE], vloc[CK_DECIDE], idx, "decide", decide_names, &e, err))) return st;
        c->decide = e;
    }
    return KEEL_OK;
}

keel_status keel_cap_suite_parse_node(keel_cap_suite *s, const char *file, yaml_document_t *doc, yaml_node_t *seq,
                                      keel_err *err) {
    if (!s || !file || !doc || !seq) return KEEL_FAIL(err, KEEL_ERR_INVALID, "keel_cap_suite_parse_node: NULL argument");
    if (keel_yaml_is_null(seq)) return KEEL_OK; // `capabilities:` with nothing: none
    if (seq->type != YAML_SEQUENCE_NODE) {
        cloc l = at(file, seq);
        return KEEL_FAIL(err, KEEL_ERR_INVALID, "%s:%d:%d: key 'capabilities': expected a list of capabilities (- name: ...), got %s",
                         file, l.line, l.col, keel_yaml_kind(seq));
    }
    size_t cnt = (size_t)(seq->data.sequence.items.top - seq->data.sequence.items.start);
    if (cnt > 10000) return KEEL_FAIL(err, KEEL_ERR_INVALID, "%s: key 'capabilities': too many entries (%zu)", file, cnt);
    if (!cnt) return KEEL_OK;
    keel_cap_spec *v = keel_realloc(s->v, ((size_t)s->n + cnt) * sizeof *v);
    if (!v) return KEEL_FAIL(err, KEEL_ERR_NOMEM, "capabilities: out of memory");
    s->v = v;
    int32_t n0 = s->n;
    int idx = 0;
    for (yaml_node_item_t *it = seq->data.sequence.items.start; it < seq->data.sequence.items.top; it++, idx++) {
        yaml_node_t *e = yaml_document_get_node(doc, *it);
        if (!e) return KEEL_FAIL(err, KEEL_ERR_INVALID, "%s: malformed YAML document", file);
        keel_cap_spec c;
        keel_status st = parse_entry(&c, file, doc, e, idx, err);
        if (st) {
            spec_free(&c);
            for (int32_t i = n0; i < s->n; i++) spec_free(&s->v[i]);
            s->n = n0;
            if (!s->n) free(s->v), s->v = NULL;
            return st;
        }
        s->v[s->n++] = c;
    }
    keel_status st = keel_cap_suite_validate(s, file, err);
    if (st) {
        for (int32_t i = n0; i < s->n; i++) spec_free(&s->v[i]);
        s->n = n0;
        if (!s->n) free(s->v), s->v = NULL;
    }
    return st;
}

keel_status keel_cap_suite_validate(const keel_cap_suite *s, const char *file, keel_err *err) {
    if (!file) file = "capabilities";
    for (int32_t i = 0; i < s->n; i++) {
        const keel_cap_spec *c = &s->v[i];
        cloc l = {file, c->line, c->col};
        if (!c->name || !name_ok(c->name)) return failk(err, l, i, "name", "required: 1 to 63 of A-Z a-z 0-9 _ . -");
        if (!c->data || !*c->data) return failk(err, l, i, "data", "required: the path of the capability's data file");
        if ((unsigned)c->kind > 3) return failk(err, l, i, "type", "invalid type");
        if ((unsigned)c->task > 7) return failk(err, l, i, "task", "invalid task");
        if (c->task == KEEL_CAP_TASK_TEXT && c->kind != KEEL_CAP_PERPLEXITY)
            return failk(err, l, i, "task", "text is only for type perplexity");
        if (c->task >= KEEL_CAP_TASK_ARC_EASY && c->kind != KEEL_CAP_MULTIPLE_CHOICE)
            return failk(err, l, i, "task", "%s is a multiple_choice task", task_names[c->task]);
        if (c->kind == KEEL_CAP_PROBE && (!c->pattern || !*c->pattern)) return failk(err, l, i, "pattern", "required for a probe");
        if (c->kind != KEEL_CAP_PROBE && c->pattern) return failk(err, l, i, "pattern", "only for type probe");
        if (c->kind != KEEL_CAP_EXACT_MATCH && (c->extract || c->norm_case || c->norm_space || c->norm_punct))
            return failk(err, l, i, c->extract ? "extract" : "normalize", "only for type exact_match");
        if (c->kind != KEEL_CAP_MULTIPLE_CHOICE && c->acc_norm) return failk(err, l, i, "metric", "only for type multiple_choice");
        if (c->limit < 0) return failk(err, l, i, "limit", "must be >= 0");
        if (c->max_new_tokens < 1 || c->max_new_tokens > MAX_NEW_LIMIT) return failk(err, l, i, "max_new_tokens", "must be in [1, %d]", MAX_NEW_LIMIT);
        if (c->window < 2 || c->window > WINDOW_LIMIT) return failk(err, l, i, "window", "must be in [2, %d]", WINDOW_LIMIT);
        if (c->chat < -1 || c->chat > 1) return failk(err, l, i, "chat", "invalid value");
        if (c->decide < -1 || c->decide > 1) return failk(err, l, i, "decide", "invalid value");
        if (c->has_max_drop && !(c->max_drop >= 0)) return failk(err, l, i, "max_drop", "must be >= 0");
        if (c->has_min && c->has_max && c->min > c->max) return failk(err, l, i, "max", "below min");
        for (int32_t j = 0; j < i; j++)
            if (!strcmp(s->v[j].name, c->name))
                return failk(err, l, i, "name", "duplicate name '%s' (capabilities[%d], line %d)", c->name, (int)j,
                             (int)s->v[j].line);
    }
    return KEEL_OK;
}

keel_status keel_cap_suite_load_file(keel_cap_suite *s, const char *path, keel_err *err) {
    if (!s || !path) return KEEL_FAIL(err, KEEL_ERR_INVALID, "keel_cap_suite_load_file: NULL argument");
    memset(s, 0, sizeof *s);
    char *text = NULL;
    size_t len = 0;
    keel_status st = keel_read_file(path, &text, &len, err);
    if (st) return st;
    yaml_parser_t p;
    yaml_document_t doc;
    if (!yaml_parser_initialize(&p)) {
        free(text);
        return KEEL_FAIL(err, KEEL_ERR_NOMEM, "%s: out of memory", path);
    }
    yaml_parser_set_input_string(&p, (const unsigned char *)text, len);
    if (!yaml_parser_load(&p, &doc)) {
        st = KEEL_FAIL(err, KEEL_ERR_INVALID, "%s:%d:%d: YAML syntax error: %s%s%s", path, (int)p.problem_mark.line + 1,
                       (int)p.problem_mark.column + 1, p.problem ? p.problem : "malformed YAML", p.context ? " " : "",
                       p.context ? p.context : "");
        yaml_parser_delete(&p);
        free(text);
        return st;
    }
    yaml_node_t *root = yaml_document_get_root_node(&doc);
    yaml_node_t *seq = NULL;
    if (!root) {
        st = KEEL_FAIL(err, KEEL_ERR_INVALID, "%s: the suite file is empty (it needs a 'capabilities:' list)", path);
    } else {
        yaml_document_t extra;
        if (yaml_parser_load(&p, &extra)) {
            if (yaml_document_get_root_node(&extra))
                st = KEEL_FAIL(err, KEEL_ERR_INVALID, "%s:%d:1: a second YAML document; a suite is one document", path,
                               (int)yaml_document_get_root_node(&extra)->start_mark.line + 1);
            yaml_document_delete(&extra);
        } else {
            st = KEEL_FAIL(err, KEEL_ERR_INVALID, "%s:%d:%d: YAML syntax error: %s", path, (int)p.problem_mark.line + 1,
                           (int)p.problem_mark.column + 1, p.problem ? p.problem : "malformed YAML");
        }
    }
    if (!st && root->type != YAML_MAPPING_NODE) {
        cloc l = at(path, root);
        st = KEEL_FAIL(err, KEEL_ERR_INVALID, "%s:%d:%d: a suite file is a mapping with one key, 'capabilities:', got %s",
                       path, l.line, l.col, keel_yaml_kind(root));
    }
    for (yaml_node_pair_t *pr = st ? NULL : root->data.mapping.pairs.start; pr && pr < root->data.mapping.pairs.top; pr++) {
        yaml_node_t *kn = yaml_document_get_node(&doc, pr->key), *vn = yaml_document_get_node(&doc, pr->value);
        if (!kn || !vn) {
            st = KEEL_FAIL(err, KEEL_ERR_INVALID, "%s: malformed YAML document", path);
            break;
        }
        cloc l = at(path, kn);
        const char *k = kn->type == YAML_SCALAR_NODE ? (const char *)kn->data.scalar.value : "";
        if (strcmp(k, "capabilities")) {
            static const char *const cands[] = {"capabilities", NULL};
            char dym[80];
            keel_did_you_mean(k, cands, 1, dym, sizeof dym);
            st = KEEL_FAIL(err, KEEL_ERR_INVALID, "%s:%d:%d: key '%.60s': unknown key%s; a suite file holds only 'capabilities:'",
                           path, l.line, l.col, k, dym);
            break;
        }
        if (seq) {
            st = KEEL_FAIL(err, KEEL_ERR_INVALID, "%s:%d:%d: key 'capabilities': duplicate key", path, l.line, l.col);
            break;
        }
        seq = vn;
    }
    if (!st && !seq) st = KEEL_FAIL(err, KEEL_ERR_INVALID, "%s: no 'capabilities:' list", path);
    if (!st) st = keel_cap_suite_parse_node(s, path, &doc, seq, err);
    if (!st && s->n == 0) {
        cloc l = at(path, seq);
        st = KEEL_FAIL(err, KEEL_ERR_INVALID, "%s:%d:%d: key 'capabilities': the list is empty", path, l.line, l.col);
    }
    yaml_document_delete(&doc); // also when empty (a loaded document always needs deleting)
    yaml_parser_delete(&p);
    free(text);
    if (st) keel_cap_suite_free(s);
    return st;
}

// ---------------------------------------------------------------- writer

// (quoted strings and numbers: io/yaml_util.c)

// A relative max_drop (a fraction f) as "P%" such that reading it back
// (P / 100) gives f exactly: the shortest such decimal, searching the
// neighbours of f * 100 when rounding of the product gets in the way.
static bool percent_reads_back(char *s, size_t cap, double p, double f) {
    for (int prec = 15; prec <= 17; prec++) {
        snprintf(s, cap, "%.*g", prec, p);
        if (strtod(s, NULL) / 100 == f) return true;
    }
    return false;
}

static bool put_percent(keel_buf *b, double f) {
    char s[48];
    double up = f * 100, dn = up;
    for (int k = 0; k < 8; k++) {
        if (percent_reads_back(s, sizeof s, up, f) || percent_reads_back(s, sizeof s, dn, f))
            return keel_buf_printf(b, "\"%s%%\"", s);
        up = nextafter(up, INFINITY);
        dn = nextafter(dn, -INFINITY);
    }
    snprintf(s, sizeof s, "%.17g", f * 100); // (not seen in practice) closest we can say
    return keel_buf_printf(b, "\"%s%%\"", s);
}

keel_status keel_cap_suite_to_yaml(const keel_cap_suite *s, keel_buf *b, keel_err *err) {
    bool ok = true;
    if (!s->n) ok = keel_buf_appends(b, "capabilities: []\n");
    else ok = keel_buf_appends(b, "capabilities:\n");
    for (int32_t i = 0; ok && i < s->n; i++) {
        const keel_cap_spec *c = &s->v[i];
        ok = keel_buf_appends(b, "  - name: ") && keel_yaml_put_str(b, c->name ? c->name : "") &&
             keel_buf_printf(b, "\n    type: %s\n    task: %s\n    data: ", keel_cap_kind_name(c->kind),
                             keel_cap_task_name(c->task)) &&
             keel_yaml_put_str(b, c->data ? c->data : "") && keel_buf_printf(b, "\n    limit: %lld\n", (long long)c->limit);
        switch (c->kind) {
        case KEEL_CAP_MULTIPLE_CHOICE:
            ok = ok && keel_buf_printf(b, "    metric: %s\n", c->acc_norm ? "acc_norm" : "acc");
            break;
        case KEEL_CAP_EXACT_MATCH:
        case KEEL_CAP_PROBE:
            ok = ok && keel_buf_printf(b, "    max_new_tokens: %d\n    chat: %s\n", (int)c->max_new_tokens,
                                       chat_names[c->chat + 1]);
            if (c->kind == KEEL_CAP_EXACT_MATCH) {
                ok = ok && keel_buf_appends(b, "    normalize: [");
                bool first = true;
                const bool on[3] = {c->norm_case, c->norm_space, c->norm_punct};
                for (int k = 0; ok && k < 3; k++)
                    if (on[k]) ok = keel_buf_printf(b, "%s%s", first ? "" : ", ", norm_names[k]), first = false;
                ok = ok && keel_buf_appends(b, "]\n");
                if (c->extract) ok = ok && keel_buf_appends(b, "    extract: ") && keel_yaml_put_str(b, c->extract) && keel_buf_appends(b, "\n");
            } else {
                ok = ok && keel_buf_appends(b, "    pattern: ") && keel_yaml_put_str(b, c->pattern ? c->pattern : "") &&
                     keel_buf_printf(b, "\n    expect: %s\n", c->expect_match ? "match" : "no_match");
            }
            break;
        case KEEL_CAP_PERPLEXITY: ok = ok && keel_buf_printf(b, "    window: %d\n", (int)c->window); break;
        }
        if (c->has_max_drop) {
            ok = ok && keel_buf_appends(b, "    max_drop: ");
            ok = ok && (c->max_drop_rel ? put_percent(b, c->max_drop) : keel_yaml_put_double(b, c->max_drop));
            ok = ok && keel_buf_appends(b, "\n");
        }
        if (c->has_min) ok = ok && keel_buf_appends(b, "    min: ") && keel_yaml_put_double(b, c->min) && keel_buf_appends(b, "\n");
        if (c->has_max) ok = ok && keel_buf_appends(b, "    max: ") && keel_yaml_put_double(b, c->max) && keel_buf_appends(b, "\n");
        if (c->decide >= 0) ok = ok && keel_buf_printf(b, "    decide: %s\n", decide_names[c->decide]);
    }
    if (!ok) return KEEL_FAIL(err, KEEL_ERR_NOMEM, "capabilities: out of memory");
    return KEEL_OK;
}

// ---------------------------------------------------------------- compare, copy, free

static bool str_eq(const char *a, const char *b) { return !strcmp(a ? a : "", b ? b : "") && (!a) == (!b); }

bool keel_cap_suite_equal(const keel_cap_suite *a, const keel_cap_suite *b) {
    if (a->n != b->n) return false;
    for (int32_t i = 0; i < a->n; i++) {
        const keel_cap_spec *x = &a->v[i], *y = &b->v[i];
        if (!str_eq(x->name, y->name) || x->kind != y->kind || x->task != y->task || !str_eq(x->data, y->data) ||
            x->limit != y->limit || x->acc_norm != y->acc_norm || x->max_new_tokens != y->max_new_tokens ||
            x->chat != y->chat || x->norm_case != y->norm_case || x->norm_space != y->norm_space ||
            x->norm_punct != y->norm_punct || !str_eq(x->extract, y->extract) || !str_eq(x->pattern, y->pattern) ||
            x->expect_match != y->expect_match || x->window != y->window || x->has_max_drop != y->has_max_drop ||
            x->has_min != y->has_min || x->has_max != y->has_max || x->decide != y->decide)
            return false;
        if (x->has_max_drop && (x->max_drop_rel != y->max_drop_rel || x->max_drop != y->max_drop)) return false;
        if (x->has_min && x->min != y->min) return false;
        if (x->has_max && x->max != y->max) return false;
    }
    return true;
}

static bool dup_opt(char **dst, const char *src) {
    *dst = NULL;
    return !src || (*dst = keel_strdup(src)) != NULL;
}

keel_status keel_cap_suite_copy(keel_cap_suite *dst, const keel_cap_suite *src, keel_err *err) {
    keel_cap_suite d = {0};
    if (src->n) {
        d.v = keel_calloc((size_t)src->n, sizeof *d.v);
        if (!d.v) return KEEL_FAIL(err, KEEL_ERR_NOMEM, "capabilities: out of memory");
    }
    for (int32_t i = 0; i < src->n; i++) {
        d.v[i] = src->v[i];
        d.v[i].name = d.v[i].data = d.v[i].extract = d.v[i].pattern = NULL;
        d.n = i + 1;
        if (!dup_opt(&d.v[i].name, src->v[i].name) || !dup_opt(&d.v[i].data, src->v[i].data) ||
            !dup_opt(&d.v[i].extract, src->v[i].extract) || !dup_opt(&d.v[i].pattern, src->v[i].pattern)) {
            keel_cap_suite_free(&d);
            return KEEL_FAIL(err, KEEL_ERR_NOMEM, "capabilities: out of memory");
        }
    }
    *dst = d;
    return KEEL_OK;
}

void keel_cap_suite_free(keel_cap_suite *s) {
    if (!s) return;
    for (int32_t i = 0; i < s->n; i++) spec_free(&s->v[i]);
    free(s->v);
    s->v = NULL;
    s->n = 0;
}
