// SPDX-License-Identifier: MIT
// fsck.c — the registry checked against the files (keel_registry_fsck), and
// the two calls that move a run's active checkpoint or read it
// (keel_registry_rollback, keel_registry_resolve). include/keel.h has the
// contracts; docs/registry.md lists every fsck check and why each condition
// a kill -9 can leave behind is reported as information, not as a problem.
// Loadability is structural: safetensors headers parse (io/safetensors.c),
// JSON files parse (cJSON), GGUF headers parse — not a full model load.
#include "registry/registry.h"
#include "io/io.h"

#include <cjson/cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

static keel_status copy_out(keel_registry *r, const char *src, char *path, size_t cap, keel_err *err) {
    if (!path) return KEEL_OK;
    if (cap == 0 || strlen(src) >= cap)
        return KEEL_FAIL(err, KEEL_ERR_INVALID, "%s: checkpoint path '%s' does not fit the %zu-byte buffer", r->path,
                         src, cap);
    memcpy(path, src, strlen(src) + 1);
    return KEEL_OK;
}

keel_status keel_registry_resolve(keel_registry *r, const char *ref, char *path, size_t cap, keel_err *err) {
    if (path && cap) path[0] = '\0';
    if (!ref || !*ref) return KEEL_FAIL(err, KEEL_ERR_INVALID, "%s: empty reference", r->path);
    int64_t id = -1;
    keel_status s;
    if (!strchr(ref, '@')) {
        int64_t run_id;
        keel_err quiet = {0};
        if (keel_reg_run_ref(r, ref, &run_id, &quiet) == KEEL_OK) {
            if ((s = keel_reg_active(r, run_id, &id, err)) != KEEL_OK) return s;
            if (id < 0) return KEEL_FAIL(err, KEEL_ERR_INVALID, "%s: run '%s' has no checkpoint yet", r->path, ref);
        }
    }
    if (id < 0 && (s = keel_reg_ckpt_ref(r, ref, -1, &id, err)) != KEEL_OK) return s;
    keel_reg_ckpt c;
    if ((s = keel_reg_ckpt_get(r, id, &c, err)) != KEEL_OK) return s;
    s = copy_out(r, c.path, path, cap, err);
    keel_reg_ckpt_free(&c);
    return s;
}

keel_status keel_registry_rollback(keel_registry *r, const char *run, const char *to, char *path, size_t cap,
                                   keel_err *err) {
    if (path && cap) path[0] = '\0';
    int64_t run_id, id = -1;
    keel_status s = keel_reg_run_ref(r, run, &run_id, err);
    if (s != KEEL_OK) return s;
    if (to && *to) {
        if ((s = keel_reg_ckpt_ref(r, to, run_id, &id, err)) != KEEL_OK) return s;
    } else {
        // The last checkpoint that satisfied every bound; the base counts as one.
        sqlite3_stmt *st;
        if ((s = keel_reg_prepare(r, "SELECT id FROM checkpoints WHERE run_id=?1 AND ((kind='step' AND ok=1) OR kind='base')"
                                     " ORDER BY kind='step' DESC, step DESC, id DESC LIMIT 1", &st, err)) != KEEL_OK)
            return s;
        sqlite3_bind_int64(st, 1, run_id);
        int rc = sqlite3_step(st);
        if (rc == SQLITE_ROW) id = sqlite3_column_int64(st, 0);
        else if (rc != SQLITE_DONE) s = keel_reg_fail(r, err, "finding the last good checkpoint");
        sqlite3_finalize(st);
        if (s != KEEL_OK) return s;
        if (id < 0)
            return KEEL_FAIL(err, KEEL_ERR_INVALID, "%s: run %lld has no checkpoint that satisfied every bound and no "
                             "base checkpoint: name one with --to", r->path, (long long)run_id);
    }
    keel_reg_ckpt c;
    if ((s = keel_reg_ckpt_get(r, id, &c, err)) != KEEL_OK) return s;
    char label[256];
    keel_reg_ckpt_label(r, &c, label, sizeof label);
    if (c.run_id != run_id) {
        s = KEEL_FAIL(err, KEEL_ERR_INVALID, "%s: checkpoint %s belongs to run %lld, not to run %lld: a run can only "
                      "roll back to its own checkpoints", r->path, label, (long long)c.run_id, (long long)run_id);
    } else if ((s = keel_registry_set_active(r, run_id, id, err)) == KEEL_OK) {
        // The audit trail: a manual rollback is a decision like the ledger's.
        char reason[512];
        snprintf(reason, sizeof reason, "manual rollback (keel rollback): active checkpoint %s%s", label,
                 to && *to ? "" : " (the last one that satisfied every bound)");
        s = keel_registry_add_decision(r, run_id, c.step, "rollback", reason, id, err);
    }
    if (s == KEEL_OK) s = copy_out(r, c.path, path, cap, err);
    keel_reg_ckpt_free(&c);
    return s;
}

// ---------------------------------------------------------------- fsck

// A base model is usually shared by many runs: its digest is computed once
// per fsck (keyed by path, size and modification time).
typedef struct digest_memo {
    char *path;
    off_t size;
    struct timespec mtime;
    char hex[65];
} digest_memo;

typedef struct fsck_ctx {
    keel_registry *r;
    keel_buf out;
    int64_t problems, infos, verified;
    bool oom;
    digest_memo *memo;
    int n_memo, cap_memo;
} fsck_ctx;

static const char *memo_find(const fsck_ctx *f, const char *path, const struct stat *sb) {
    for (int i = 0; i < f->n_memo; i++) {
        const digest_memo *m = &f->memo[i];
        if (!strcmp(m->path, path) && m->size == sb->st_size && m->mtime.tv_sec == sb->st_mtim.tv_sec &&
            m->mtime.tv_nsec == sb->st_mtim.tv_nsec)
            return m->hex;
    }
    return NULL;
}

static void memo_add(fsck_ctx *f, const char *path, const struct stat *sb, const char *hex) {
    if (f->n_memo == f->cap_memo) {
        int nc = f->cap_memo ? 2 * f->cap_memo : 8;
        digest_memo *nm = keel_realloc(f->memo, (size_t)nc * sizeof *nm);
        if (!nm) return; // only a cache
        f->memo = nm;
        f->cap_memo = nc;
    }
    digest_memo *m = &f->memo[f->n_memo];
    if (!(m->path = keel_strdup(path))) return;
    m->size = sb->st_size;
    m->mtime = sb->st_mtim;
    memcpy(m->hex, hex, 65);
    f->n_memo++;
}

static void note(fsck_ctx *f, bool problem, const char *fmt, ...) KEEL_PRINTF(3, 4);
static void note(fsck_ctx *f, bool problem, const char *fmt, ...) {
    if (problem) f->problems++;
    else f->infos++;
    char line[1536];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    if (!keel_buf_printf(&f->out, "%s %s\n", problem ? "problem:" : "info:   ", line)) f->oom = true;
}

static bool ends_with(const char *s, const char *suf) {
    size_t a = strlen(s), b = strlen(suf);
    return a >= b && !memcmp(s + a - b, suf, b);
}

// Structural load of one file by its kind; a message in why on failure.
static bool file_loads(const char *path, char *why, size_t cap) {
    keel_err e = {0};
    if (ends_with(path, ".safetensors")) {
        keel_safetensors *st = NULL;
        if (keel_st_open(path, &st, &e) != KEEL_OK) { snprintf(why, cap, "%s", e.msg); return false; }
        keel_st_close(st);
    } else if (ends_with(path, ".json")) {
        char *text = NULL;
        if (keel_read_file(path, &text, NULL, &e) != KEEL_OK) { snprintf(why, cap, "%s", e.msg); return false; }
        cJSON *js = cJSON_Parse(text);
        free(text);
        if (!js) { snprintf(why, cap, "%s: not valid JSON", path); return false; }
        cJSON_Delete(js);
    } else if (ends_with(path, ".gguf")) {
        keel_gguf *g = NULL;
        if (keel_gguf_open(path, &g, &e) != KEEL_OK) { snprintf(why, cap, "%s", e.msg); return false; }
        keel_gguf_close(g);
    }
    return true;
}

// A checkpoint (or HF model) directory: every weights/JSON file parses, and
// the weights come with their config.
static bool dir_loads(const char *dir, char *why, size_t cap) {
    DIR *d = opendir(dir);
    if (!d) { snprintf(why, cap, "cannot open: %s", strerror(errno)); return false; }
    bool ok = true, model = false, adapter = false, config = false, adapter_config = false;
    struct dirent *e;
    while (ok && (e = readdir(d)) != NULL) {
        const char *n = e->d_name;
        if (n[0] == '.') continue;
        char *p = keel_path_join(dir, n);
        if (!p) { snprintf(why, cap, "out of memory"); ok = false; break; }
        if (!strcmp(n, "adapter_model.safetensors")) adapter = true;
        else if (!strncmp(n, "model", 5) && ends_with(n, ".safetensors")) model = true;
        if (!strcmp(n, "config.json")) config = true;
        if (!strcmp(n, "adapter_config.json")) adapter_config = true;
        if (!keel_path_is_dir(p)) ok = file_loads(p, why, cap);
        free(p);
    }
    closedir(d);
    if (!ok) return false;
    if (!model && !adapter) { snprintf(why, cap, "no model*.safetensors or adapter_model.safetensors"); return false; }
    if (model && !config) { snprintf(why, cap, "model weights without config.json"); return false; }
    if (adapter && !adapter_config) { snprintf(why, cap, "adapter_model.safetensors without adapter_config.json"); return false; }
    return true;
}

static void check_ckpt(fsck_ctx *f, const keel_reg_ckpt *c, int64_t n_ckpts) {
    keel_registry *r = f->r;
    char label[256], why[768];
    keel_reg_ckpt_label(r, c, label, sizeof label);
    bool base = !strcmp(c->kind, "base");
    // Lineage: a parent of the same run (a base may descend from another run's
    // checkpoint), not later than its child, and no cycle.
    if (c->parent_id >= 0) {
        keel_reg_ckpt p;
        keel_err e = {0};
        if (keel_reg_ckpt_get(r, c->parent_id, &p, &e) != KEEL_OK) {
            note(f, true, "%s: parent checkpoint %lld does not exist", label, (long long)c->parent_id);
        } else {
            if (p.run_id != c->run_id && !base)
                note(f, true, "%s: parent %lld belongs to run %lld, not to this run %lld", label, (long long)p.id,
                     (long long)p.run_id, (long long)c->run_id);
            else if (p.run_id == c->run_id && p.step > c->step)
                note(f, true, "%s: parent %lld is at step %lld, after its child's step %lld", label, (long long)p.id,
                     (long long)p.step, (long long)c->step);
            keel_reg_ckpt_free(&p);
            // Walk up: more hops than checkpoints means a cycle.
            int64_t cur = c->parent_id, hops = 0;
            while (cur >= 0 && hops <= n_ckpts) {
                sqlite3_stmt *st;
                if (keel_reg_prepare(r, "SELECT parent_id FROM checkpoints WHERE id=?1", &st, NULL) != KEEL_OK) break;
                sqlite3_bind_int64(st, 1, cur);
                cur = sqlite3_step(st) == SQLITE_ROW && sqlite3_column_type(st, 0) != SQLITE_NULL
                          ? sqlite3_column_int64(st, 0) : -1;
                sqlite3_finalize(st);
                hops++;
                if (cur == c->id) break;
            }
            if (cur >= 0 && (cur == c->id || hops > n_ckpts)) note(f, true, "%s: its parent chain has a cycle", label);
        }
    }
    struct stat sb;
    if (stat(c->path, &sb) != 0) {
        note(f, true, "%s: %s is missing (%s)", label, c->path, strerror(errno));
        return;
    }
    bool is_dir = S_ISDIR(sb.st_mode);
    if (!base && !is_dir) {
        note(f, true, "%s: %s is not a directory", label, c->path);
        return;
    }
    if (c->sha256[0]) {
        char hex[65];
        keel_err e = {0};
        const char *memo = base && !is_dir ? memo_find(f, c->path, &sb) : NULL;
        if (memo) {
            memcpy(hex, memo, 65);
        } else {
            keel_status s = is_dir ? keel_dir_sha256(c->path, hex, &e) : keel_file_sha256(c->path, hex, &e);
            if (s != KEEL_OK) {
                note(f, true, "%s: cannot compute its SHA-256: %s", label, e.msg);
                return;
            }
            if (base && !is_dir) memo_add(f, c->path, &sb, hex);
        }
        if (strcmp(hex, c->sha256)) {
            note(f, true, "%s: SHA-256 mismatch in %s: recorded %.16s..., the files now give %.16s...", label, c->path,
                 c->sha256, hex);
            return;
        }
    } else if (base) {
        note(f, false, "%s: base model %s: no SHA-256 recorded, contents not verified", label, c->path);
    } else {
        note(f, true, "%s: no SHA-256 recorded for a step checkpoint", label);
    }
    bool loads = is_dir ? dir_loads(c->path, why, sizeof why) : file_loads(c->path, why, sizeof why);
    if (!loads) {
        note(f, true, "%s: %s does not load: %s", label, c->path, why);
        return;
    }
    f->verified++;
}

static bool pid_alive(int64_t pid) {
    if (pid <= 0 || pid > INT32_MAX) return false;
    return kill((pid_t)pid, 0) == 0 || errno == EPERM;
}

bool keel_reg_run_crashed(const keel_reg_run *run) {
    if (strcmp(run->status, "running")) return false;
    char host[256] = "";
    if (gethostname(host, sizeof host - 1) != 0) return false;
    return !strcmp(host, run->host) && !pid_alive(run->pid);
}

// Checkpoint directories under a run's checkpoints/ that no row lists.
static void check_unregistered(fsck_ctx *f, const keel_reg_run *run) {
    char *cdir = keel_path_join(run->dir, "checkpoints");
    if (!cdir) { f->oom = true; return; }
    DIR *d = opendir(cdir);
    if (!d) { free(cdir); return; }
    sqlite3_stmt *st = NULL;
    if (keel_reg_prepare(f->r, "SELECT count(*) FROM checkpoints WHERE run_id=?1 AND path=?2", &st, NULL) != KEEL_OK) {
        closedir(d);
        free(cdir);
        return;
    }
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.') continue;
        char *p = keel_path_join(cdir, e->d_name);
        if (!p) { f->oom = true; break; }
        if (keel_path_is_dir(p)) {
            sqlite3_reset(st);
            sqlite3_bind_int64(st, 1, run->id);
            sqlite3_bind_text(st, 2, p, -1, SQLITE_TRANSIENT);
            if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_int64(st, 0) == 0) {
                if (ends_with(e->d_name, ".tmp"))
                    note(f, false, "run %lld: %s: incomplete checkpoint (crash while writing it; resume removes it)",
                         (long long)run->id, p);
                else
                    note(f, false, "run %lld: %s: unregistered (crash between write and record)", (long long)run->id, p);
            }
        }
        free(p);
    }
    sqlite3_finalize(st);
    closedir(d);
    free(cdir);
}

static void check_run(fsck_ctx *f, int64_t id) {
    keel_registry *r = f->r;
    keel_reg_run run;
    keel_err e = {0};
    if (keel_reg_run_get(r, id, &run, &e) != KEEL_OK) {
        note(f, true, "run %lld: cannot read: %s", (long long)id, e.msg);
        return;
    }
    if (run.active_id >= 0) {
        keel_reg_ckpt c;
        if (keel_reg_ckpt_get(r, run.active_id, &c, &e) != KEEL_OK) {
            note(f, true, "run %lld (%s): active checkpoint %lld does not exist", (long long)id, run.name,
                 (long long)run.active_id);
        } else {
            if (c.run_id != id)
                note(f, true, "run %lld (%s): active checkpoint %lld belongs to run %lld", (long long)id, run.name,
                     (long long)c.id, (long long)c.run_id);
            keel_reg_ckpt_free(&c);
        }
    }
    if (!strcmp(run.status, "running")) {
        char host[256] = "";
        if (gethostname(host, sizeof host - 1) != 0) host[0] = '\0';
        if (strcmp(host, run.host))
            note(f, false, "run %lld (%s): running on host %s (pid %lld), not checked from here", (long long)id, run.name,
                 run.host, (long long)run.pid);
        else if (pid_alive(run.pid))
            note(f, false, "run %lld (%s): running (pid %lld)", (long long)id, run.name, (long long)run.pid);
        else
            note(f, false, "run %lld (%s): interrupted (crashed): status 'running' but process %lld is gone; "
                 "`keel train --resume %s` continues it", (long long)id, run.name, (long long)run.pid, run.dir);
    }
    if (!keel_path_is_dir(run.dir)) note(f, false, "run %lld (%s): run directory %s is gone", (long long)id, run.name, run.dir);
    else check_unregistered(f, &run);
    keel_reg_run_free(&run);
}

// Rows of a query each reported as a problem with a printf of its columns.
static void sql_problems(fsck_ctx *f, const char *sql, const char *what) {
    sqlite3_stmt *st;
    keel_err e = {0};
    if (keel_reg_prepare(f->r, sql, &st, &e) != KEEL_OK) {
        note(f, true, "%s: %s", what, e.msg);
        return;
    }
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        keel_buf b = {0};
        for (int i = 0; i < sqlite3_column_count(st); i++) {
            const unsigned char *t = sqlite3_column_text(st, i);
            keel_buf_printf(&b, "%s%s=%s", i ? " " : "", sqlite3_column_name(st, i), t ? (const char *)t : "NULL");
        }
        note(f, true, "%s: %s", what, b.data ? b.data : "");
        free(b.data);
    }
    if (rc != SQLITE_DONE) note(f, true, "%s: %s", what, sqlite3_errmsg(f->r->db));
    sqlite3_finalize(st);
}

keel_status keel_registry_fsck(keel_registry *r, char **out, int64_t *n_problems, keel_err *err) {
    *out = NULL;
    *n_problems = 0;
    fsck_ctx f = {.r = r};
    keel_buf_printf(&f.out, "registry %s\n", r->path);

    // The database itself.
    sqlite3_stmt *st;
    keel_status s = keel_reg_prepare(r, "PRAGMA integrity_check", &st, err);
    if (s != KEEL_OK) return s;
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        const unsigned char *t = sqlite3_column_text(st, 0);
        if (!t || strcmp((const char *)t, "ok")) note(&f, true, "integrity_check: %s", t ? (const char *)t : "?");
    }
    if (rc != SQLITE_DONE) note(&f, true, "integrity_check: %s", sqlite3_errmsg(r->db));
    sqlite3_finalize(st);
    sql_problems(&f, "PRAGMA foreign_key_check", "foreign_key_check");
    // Ties the foreign keys cannot express: records of a run point at its own checkpoints.
    sql_problems(&f, "SELECT m.id AS measurement, m.run_id, c.run_id AS checkpoint_run FROM measurements m"
                     " JOIN checkpoints c ON c.id=m.ckpt_id WHERE c.run_id<>m.run_id", "measurement of another run's checkpoint");
    sql_problems(&f, "SELECT d.id AS decision, d.run_id, c.run_id AS checkpoint_run FROM decisions d"
                     " JOIN checkpoints c ON c.id=d.ckpt_id WHERE c.run_id<>d.run_id", "decision on another run's checkpoint");

    // Checkpoints against their files.
    int64_t n_ckpts = 0, n_runs = 0;
    if ((s = keel_reg_prepare(r, "SELECT (SELECT count(*) FROM checkpoints), (SELECT count(*) FROM runs)", &st, err)) != KEEL_OK)
        goto done;
    if (sqlite3_step(st) == SQLITE_ROW) {
        n_ckpts = sqlite3_column_int64(st, 0);
        n_runs = sqlite3_column_int64(st, 1);
    }
    sqlite3_finalize(st);
    if ((s = keel_reg_prepare(r, "SELECT " KEEL_REG_CKPT_COLS " FROM checkpoints ORDER BY run_id, step, id", &st, err)) != KEEL_OK)
        goto done;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        keel_reg_ckpt c;
        if (!keel_reg_ckpt_row(st, &c)) { f.oom = true; break; }
        check_ckpt(&f, &c, n_ckpts);
        keel_reg_ckpt_free(&c);
    }
    if (rc != SQLITE_DONE && rc != SQLITE_ROW) note(&f, true, "reading checkpoints: %s", sqlite3_errmsg(r->db));
    sqlite3_finalize(st);

    // Runs: active pointers, crashed processes, directories nobody recorded.
    if ((s = keel_reg_prepare(r, "SELECT id FROM runs ORDER BY id", &st, err)) != KEEL_OK) goto done;
    int64_t *ids = keel_calloc((size_t)n_runs + 1, sizeof *ids);
    int64_t k = 0;
    while (ids && k < n_runs && sqlite3_step(st) == SQLITE_ROW) ids[k++] = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    if (!ids) f.oom = true;
    for (int64_t i = 0; i < k; i++) check_run(&f, ids[i]);
    free(ids);

    keel_buf_printf(&f.out, "%lld runs, %lld checkpoints (%lld verified: present, loadable, SHA-256 matches), "
                    "%lld problems, %lld notes\n", (long long)n_runs, (long long)n_ckpts, (long long)f.verified,
                    (long long)f.problems, (long long)f.infos);
done:
    for (int i = 0; i < f.n_memo; i++) free(f.memo[i].path);
    free(f.memo);
    if (s == KEEL_OK && (f.oom || !f.out.data)) s = KEEL_FAIL(err, KEEL_ERR_NOMEM, "%s: out of memory in fsck", r->path);
    if (s != KEEL_OK) {
        free(f.out.data);
        return s;
    }
    *out = f.out.data;
    *n_problems = f.problems;
    return KEEL_OK;
}
