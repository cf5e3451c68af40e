// SPDX-License-Identifier: MIT
// registry.c — the run registry's database (registry.h, include/keel.h):
// schema, open/close, the writers the trainer calls, and the row readers and
// reference resolution report.c and fsck.c share. SQLite in WAL mode with
// synchronous=FULL and foreign keys on; every writer is one BEGIN IMMEDIATE
// transaction, so kill -9 at any instant leaves a record whole or absent
// (SQLite's atomic commit: https://www.sqlite.org/atomiccommit.html, WAL:
// https://www.sqlite.org/wal.html). Tables: docs/registry.md.
#include "registry/registry.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <time.h>
#include <unistd.h>

#define SCHEMA_VERSION 1

// Circular reference runs.active_id -> checkpoints(id): SQLite allows it (the
// columns are nullable and no row is ever deleted).
static const char *const SCHEMA =
    "CREATE TABLE schema_version(version INTEGER NOT NULL);"
    "CREATE TABLE runs("
    " id INTEGER PRIMARY KEY,"
    " dir TEXT NOT NULL UNIQUE,"
    " name TEXT NOT NULL,"
    " job_yaml TEXT NOT NULL,"
    " model TEXT NOT NULL,"
    " method TEXT NOT NULL,"
    " status TEXT NOT NULL CHECK(status IN ('running','done','stopped','rolled_back','interrupted','failed')),"
    " steps INTEGER NOT NULL DEFAULT 0,"
    " pid INTEGER NOT NULL,"
    " host TEXT NOT NULL,"
    " started REAL NOT NULL,"
    " updated REAL NOT NULL,"
    " ended REAL,"
    " active_id INTEGER REFERENCES checkpoints(id));"
    "CREATE INDEX runs_name ON runs(name);"
    "CREATE TABLE checkpoints("
    " id INTEGER PRIMARY KEY,"
    " run_id INTEGER NOT NULL REFERENCES runs(id),"
    " kind TEXT NOT NULL CHECK(kind IN ('base','step')),"
    " step INTEGER NOT NULL CHECK(step >= 0),"
    " path TEXT NOT NULL,"
    " sha256 TEXT NOT NULL,"
    " parent_id INTEGER REFERENCES checkpoints(id),"
    " ok INTEGER NOT NULL CHECK(ok IN (-1, 0, 1)),"
    " created REAL NOT NULL,"
    " UNIQUE(run_id, path));"
    "CREATE INDEX checkpoints_path ON checkpoints(path);"
    "CREATE TABLE measurements("
    " id INTEGER PRIMARY KEY,"
    " run_id INTEGER NOT NULL REFERENCES runs(id),"
    " ckpt_id INTEGER REFERENCES checkpoints(id),"
    " step INTEGER NOT NULL,"
    " phase TEXT NOT NULL CHECK(phase IN ('base','monitor','final')),"
    " sampled INTEGER NOT NULL,"
    " name TEXT NOT NULL, kind TEXT NOT NULL, metric TEXT NOT NULL,"
    " value REAL, lo REAL, hi REAL, se REAL,"
    " n INTEGER NOT NULL, n_tokens INTEGER NOT NULL,"
    " higher_is_better INTEGER NOT NULL,"
    " metric2 TEXT NOT NULL, value2 REAL, lo2 REAL, hi2 REAL,"
    " seconds REAL,"
    " base_value REAL, base_lo REAL, base_hi REAL, base_se REAL, base_n INTEGER,"
    " created REAL NOT NULL);"
    "CREATE INDEX measurements_run ON measurements(run_id, name);"
    "CREATE INDEX measurements_ckpt ON measurements(ckpt_id);"
    "CREATE TABLE decisions("
    " id INTEGER PRIMARY KEY,"
    " run_id INTEGER NOT NULL REFERENCES runs(id),"
    " step INTEGER NOT NULL,"
    " action TEXT NOT NULL CHECK(action IN ('stop','rollback','adapt','warn','give_up')),"
    " reason TEXT NOT NULL,"
    " ckpt_id INTEGER REFERENCES checkpoints(id),"
    " created REAL NOT NULL);"
    "CREATE INDEX decisions_run ON decisions(run_id);";

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

keel_status keel_reg_fail(keel_registry *r, keel_err *err, const char *what) {
    return KEEL_FAIL(err, KEEL_ERR_IO, "%s: %s: %s", r->path, what, sqlite3_errmsg(r->db));
}

keel_status keel_reg_prepare(keel_registry *r, const char *sql, sqlite3_stmt **st, keel_err *err) {
    *st = NULL;
    if (sqlite3_prepare_v2(r->db, sql, -1, st, NULL) != SQLITE_OK) {
        keel_status s = keel_reg_fail(r, err, "prepare");
        sqlite3_finalize(*st);
        *st = NULL;
        return s;
    }
    return KEEL_OK;
}

char *keel_reg_col_str(sqlite3_stmt *st, int col) {
    const unsigned char *t = sqlite3_column_text(st, col);
    return keel_strdup(t ? (const char *)t : "");
}

double keel_reg_col_f64(sqlite3_stmt *st, int col) {
    return sqlite3_column_type(st, col) == SQLITE_NULL ? NAN : sqlite3_column_double(st, col);
}

static int64_t col_id(sqlite3_stmt *st, int col) {
    return sqlite3_column_type(st, col) == SQLITE_NULL ? -1 : sqlite3_column_int64(st, col);
}

static void copy_col(sqlite3_stmt *st, int col, char *dst, size_t cap) {
    const unsigned char *t = sqlite3_column_text(st, col);
    snprintf(dst, cap, "%s", t ? (const char *)t : "");
}

char *keel_reg_abspath(const char *path) {
    char buf[PATH_MAX];
    if (realpath(path, buf)) return keel_strdup(buf);
    if (path[0] == '/') return keel_strdup(path);
    char cwd[PATH_MAX];
    if (!getcwd(cwd, sizeof cwd)) return keel_strdup(path);
    keel_buf b = {0};
    const char *p = path;
    while (p[0] == '.' && p[1] == '/') p += 2;
    if (!keel_buf_printf(&b, "%s/%s", cwd, p)) { free(b.data); return NULL; }
    return b.data;
}

// Run one statement with no result rows (or ignoring them).
static keel_status exec(keel_registry *r, const char *sql, keel_err *err) {
    char *msg = NULL;
    if (sqlite3_exec(r->db, sql, NULL, NULL, &msg) != SQLITE_OK) {
        keel_status s = KEEL_FAIL(err, KEEL_ERR_IO, "%s: %s: %s", r->path, sql, msg ? msg : sqlite3_errmsg(r->db));
        sqlite3_free(msg);
        return s;
    }
    return KEEL_OK;
}

static keel_status begin(keel_registry *r, keel_err *err) { return exec(r, "BEGIN IMMEDIATE", err); }
static keel_status commit(keel_registry *r, keel_err *err) {
    keel_status s = exec(r, "COMMIT", err);
    if (s != KEEL_OK) sqlite3_exec(r->db, "ROLLBACK", NULL, NULL, NULL);
    return s;
}
static keel_status rollback_tx(keel_registry *r, keel_status s) {
    if (!sqlite3_get_autocommit(r->db)) sqlite3_exec(r->db, "ROLLBACK", NULL, NULL, NULL);
    return s;
}

// ---------------------------------------------------------------- open / close

keel_status keel_registry_open(const char *path, keel_registry **out, keel_err *err) {
    *out = NULL;
    if (!path || !*path) return KEEL_FAIL(err, KEEL_ERR_INVALID, "registry: empty database path");
    keel_registry *r = keel_calloc(1, sizeof *r);
    if (!r || !(r->path = keel_strdup(path))) {
        free(r);
        return KEEL_FAIL(err, KEEL_ERR_NOMEM, "%s: out of memory opening the registry", path);
    }
    keel_status s = KEEL_OK;
    if (sqlite3_open_v2(path, &r->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL) != SQLITE_OK) {
        s = r->db ? keel_reg_fail(r, err, "cannot open the registry")
                  : KEEL_FAIL(err, KEEL_ERR_NOMEM, "%s: out of memory opening the registry", path);
        goto fail;
    }
    sqlite3_extended_result_codes(r->db, 1);
    sqlite3_busy_timeout(r->db, 10000); // a concurrent writer (keel train) holds the lock briefly
    // journal_mode answers a row: the mode now in force.
    sqlite3_stmt *st = NULL;
    if ((s = keel_reg_prepare(r, "PRAGMA journal_mode=WAL", &st, err)) != KEEL_OK) goto fail;
    int rc = sqlite3_step(st);
    bool wal = rc == SQLITE_ROW && sqlite3_column_text(st, 0) &&
               !strcmp((const char *)sqlite3_column_text(st, 0), "wal");
    sqlite3_finalize(st);
    if (rc != SQLITE_ROW) { s = keel_reg_fail(r, err, "cannot set journal_mode=WAL (not a SQLite database?)"); goto fail; }
    if (!wal) { s = KEEL_FAIL(err, KEEL_ERR_IO, "%s: the file system refuses journal_mode=WAL", path); goto fail; }
    if ((s = exec(r, "PRAGMA synchronous=FULL", err)) != KEEL_OK) goto fail;
    if ((s = exec(r, "PRAGMA foreign_keys=ON", err)) != KEEL_OK) goto fail;

    // Schema: read the version without a write lock; create it in one transaction when absent.
    for (int attempt = 0; attempt < 2; attempt++) {
        if ((s = keel_reg_prepare(r, "SELECT count(*) FROM sqlite_master WHERE type='table' AND name='schema_version'",
                                  &st, err)) != KEEL_OK)
            goto fail;
        rc = sqlite3_step(st);
        int64_t have = rc == SQLITE_ROW ? sqlite3_column_int64(st, 0) : -1;
        sqlite3_finalize(st);
        if (have < 0) { s = keel_reg_fail(r, err, "cannot read the schema"); goto fail; }
        if (have) {
            if ((s = keel_reg_prepare(r, "SELECT max(version) FROM schema_version", &st, err)) != KEEL_OK) goto fail;
            rc = sqlite3_step(st);
            int64_t v = rc == SQLITE_ROW ? sqlite3_column_int64(st, 0) : -1;
            sqlite3_finalize(st);
            if (v != SCHEMA_VERSION) {
                s = KEEL_FAIL(err, KEEL_ERR_UNSUPPORTED, "%s: registry schema version %lld, this keel reads version %d",
                              path, (long long)v, SCHEMA_VERSION);
                goto fail;
            }
            break;
        }
        if (attempt) { s = KEEL_FAIL(err, KEEL_ERR_IO, "%s: schema creation did not stick", path); goto fail; }
        if ((s = begin(r, err)) != KEEL_OK) goto fail;
        // Another process may have created it between our check and the lock.
        if ((s = keel_reg_prepare(r, "SELECT count(*) FROM sqlite_master WHERE name='schema_version'", &st, err)) != KEEL_OK) {
            rollback_tx(r, s);
            goto fail;
        }
        rc = sqlite3_step(st);
        have = rc == SQLITE_ROW ? sqlite3_column_int64(st, 0) : 0;
        sqlite3_finalize(st);
        if (!have) {
            char ins[64];
            snprintf(ins, sizeof ins, "INSERT INTO schema_version VALUES(%d)", SCHEMA_VERSION);
            if ((s = exec(r, SCHEMA, err)) != KEEL_OK || (s = exec(r, ins, err)) != KEEL_OK) {
                rollback_tx(r, s);
                goto fail;
            }
        }
        if ((s = commit(r, err)) != KEEL_OK) goto fail;
    }
    *out = r;
    return KEEL_OK;
fail:
    keel_registry_close(r);
    return s;
}

void keel_registry_close(keel_registry *r) {
    if (!r) return;
    sqlite3_close(r->db); // every statement is finalized by its user
    free(r->path);
    free(r);
}

// ---------------------------------------------------------------- writers

static bool one_of(const char *s, const char *const *set) {
    for (; *set; set++)
        if (s && !strcmp(s, *set)) return true;
    return false;
}

static keel_status step_done(keel_registry *r, sqlite3_stmt *st, const char *what, keel_err *err) {
    int rc = sqlite3_step(st);
    if (rc != SQLITE_DONE && rc != SQLITE_ROW) return keel_reg_fail(r, err, what);
    return KEEL_OK;
}

static void bind_text(sqlite3_stmt *st, int i, const char *s) { sqlite3_bind_text(st, i, s ? s : "", -1, SQLITE_TRANSIENT); }
static void bind_id(sqlite3_stmt *st, int i, int64_t id) {
    if (id < 0) sqlite3_bind_null(st, i);
    else sqlite3_bind_int64(st, i, id);
}

static const char *last_component(const char *dir, size_t *len) {
    size_t n = strlen(dir);
    while (n > 1 && dir[n - 1] == '/') n--;
    size_t b = n;
    while (b > 0 && dir[b - 1] != '/') b--;
    *len = n - b;
    return dir + b;
}

keel_status keel_registry_run_begin(keel_registry *r, const char *run_dir, const char *job_yaml, const char *model,
                                    const char *method, int64_t *run_id, keel_err *err) {
    *run_id = -1;
    if (!run_dir || !*run_dir) return KEEL_FAIL(err, KEEL_ERR_INVALID, "%s: run_begin: empty run directory", r->path);
    char *dir = keel_reg_abspath(run_dir);
    if (!dir) return KEEL_FAIL(err, KEEL_ERR_NOMEM, "%s: out of memory", r->path);
    size_t nl;
    const char *name = last_component(dir, &nl);
    char host[256] = "";
    if (gethostname(host, sizeof host - 1) != 0) host[0] = '\0';
    // The model as an absolute path when it names a file here (reports are
    // read from other directories); as given otherwise.
    char model_abs[PATH_MAX];
    if (model && *model && realpath(model, model_abs)) model = model_abs;
    double t = now_s();
    keel_status s = begin(r, err);
    sqlite3_stmt *st = NULL;
    // A directory already recorded is the same run continuing (resume): it
    // keeps its number, checkpoints and measurements.
    if (s == KEEL_OK)
        s = keel_reg_prepare(r,
                             "INSERT INTO runs(dir, name, job_yaml, model, method, status, pid, host, started, updated)"
                             " VALUES(?1, ?2, ?3, ?4, ?5, 'running', ?6, ?7, ?8, ?8)"
                             " ON CONFLICT(dir) DO UPDATE SET job_yaml=excluded.job_yaml, model=excluded.model,"
                             " method=excluded.method, status='running', pid=excluded.pid, host=excluded.host,"
                             " updated=excluded.updated, ended=NULL RETURNING id",
                             &st, err);
    if (s == KEEL_OK) {
        bind_text(st, 1, dir);
        sqlite3_bind_text(st, 2, name, (int)nl, SQLITE_TRANSIENT);
        bind_text(st, 3, job_yaml);
        bind_text(st, 4, model);
        bind_text(st, 5, method);
        sqlite3_bind_int64(st, 6, (int64_t)getpid());
        bind_text(st, 7, host);
        sqlite3_bind_double(st, 8, t);
        if (sqlite3_step(st) == SQLITE_ROW) *run_id = sqlite3_column_int64(st, 0);
        else s = keel_reg_fail(r, err, "recording the run");
        sqlite3_finalize(st);
    }
    if (s == KEEL_OK) s = commit(r, err);
    else rollback_tx(r, s);
    if (s != KEEL_OK) *run_id = -1;
    free(dir);
    return s;
}

keel_status keel_registry_run_retire_dir(keel_registry *r, const char *run_dir, keel_err *err) {
    char *dir = keel_reg_abspath(run_dir ? run_dir : "");
    if (!dir) return KEEL_FAIL(err, KEEL_ERR_NOMEM, "%s: out of memory", r->path);
    keel_status s = begin(r, err);
    sqlite3_stmt *st = NULL;
    if (s == KEEL_OK)
        s = keel_reg_prepare(r, "UPDATE runs SET dir = dir || '#' || id WHERE dir=?1", &st, err);
    if (s == KEEL_OK) {
        bind_text(st, 1, dir);
        if (sqlite3_step(st) != SQLITE_DONE) s = keel_reg_fail(r, err, "retiring an earlier run of the directory");
        sqlite3_finalize(st);
    }
    if (s == KEEL_OK) s = commit(r, err);
    else rollback_tx(r, s);
    free(dir);
    return s;
}

keel_status keel_registry_run_find(keel_registry *r, const char *run_dir, int64_t *run_id, keel_err *err) {
    *run_id = -1;
    char *dir = keel_reg_abspath(run_dir ? run_dir : "");
    if (!dir) return KEEL_FAIL(err, KEEL_ERR_NOMEM, "%s: out of memory", r->path);
    sqlite3_stmt *st;
    keel_status s = keel_reg_prepare(r, "SELECT id FROM runs WHERE dir=?1", &st, err);
    if (s == KEEL_OK) {
        bind_text(st, 1, dir);
        int rc = sqlite3_step(st);
        if (rc == SQLITE_ROW) *run_id = sqlite3_column_int64(st, 0);
        else if (rc != SQLITE_DONE) s = keel_reg_fail(r, err, "finding the run");
        sqlite3_finalize(st);
    }
    free(dir);
    return s;
}

keel_status keel_registry_run_end(keel_registry *r, int64_t run_id, const char *status, int64_t steps,
                                  keel_err *err) {
    static const char *const ok[] = {"done", "stopped", "rolled_back", "interrupted", "failed", NULL};
    if (!one_of(status, ok))
        return KEEL_FAIL(err, KEEL_ERR_INVALID, "%s: run_end: status '%s' is not one of done, stopped, "
                         "rolled_back, interrupted, failed", r->path, status ? status : "(null)");
    if (steps < 0) return KEEL_FAIL(err, KEEL_ERR_INVALID, "%s: run_end: negative steps %lld", r->path, (long long)steps);
    keel_status s = begin(r, err);
    sqlite3_stmt *st = NULL;
    if (s == KEEL_OK)
        s = keel_reg_prepare(r, "UPDATE runs SET status=?1, steps=?2, ended=?3, updated=?3 WHERE id=?4", &st, err);
    if (s == KEEL_OK) {
        bind_text(st, 1, status);
        sqlite3_bind_int64(st, 2, steps);
        sqlite3_bind_double(st, 3, now_s());
        sqlite3_bind_int64(st, 4, run_id);
        s = step_done(r, st, "ending the run", err);
        sqlite3_finalize(st);
        if (s == KEEL_OK && sqlite3_changes(r->db) == 0)
            s = KEEL_FAIL(err, KEEL_ERR_INVALID, "%s: run_end: no run %lld", r->path, (long long)run_id);
    }
    return s == KEEL_OK ? commit(r, err) : rollback_tx(r, s);
}

static bool is_hex64(const char *s) {
    if (!s || strlen(s) != 64) return false;
    for (int i = 0; i < 64; i++)
        if (!isxdigit((unsigned char)s[i]) || isupper((unsigned char)s[i])) return false;
    return true;
}

// The run a checkpoint belongs to (-1 when it does not exist).
static keel_status ckpt_run(keel_registry *r, int64_t ckpt_id, int64_t *run_id, keel_err *err) {
    *run_id = -1;
    sqlite3_stmt *st;
    keel_status s = keel_reg_prepare(r, "SELECT run_id FROM checkpoints WHERE id=?1", &st, err);
    if (s != KEEL_OK) return s;
    sqlite3_bind_int64(st, 1, ckpt_id);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) *run_id = sqlite3_column_int64(st, 0);
    else if (rc != SQLITE_DONE) s = keel_reg_fail(r, err, "reading a checkpoint");
    sqlite3_finalize(st);
    return s;
}

static keel_status check_ckpt_of_run(keel_registry *r, int64_t ckpt_id, int64_t run_id, const char *what,
                                     keel_err *err) {
    int64_t owner;
    keel_status s = ckpt_run(r, ckpt_id, &owner, err);
    if (s != KEEL_OK) return s;
    if (owner < 0) return KEEL_FAIL(err, KEEL_ERR_INVALID, "%s: %s: no checkpoint %lld", r->path, what, (long long)ckpt_id);
    if (owner != run_id)
        return KEEL_FAIL(err, KEEL_ERR_INVALID, "%s: %s: checkpoint %lld belongs to run %lld, not run %lld", r->path,
                         what, (long long)ckpt_id, (long long)owner, (long long)run_id);
    return KEEL_OK;
}

keel_status keel_registry_add_checkpoint(keel_registry *r, int64_t run_id, const char *kind, int64_t step,
                                         const char *path, const char *sha256, int64_t parent_id, int ok,
                                         int64_t *ckpt_id, keel_err *err) {
    *ckpt_id = -1;
    static const char *const kinds[] = {"base", "step", NULL};
    if (!one_of(kind, kinds))
        return KEEL_FAIL(err, KEEL_ERR_INVALID, "%s: add_checkpoint: kind '%s' is not base or step", r->path,
                         kind ? kind : "(null)");
    if (!path || !*path) return KEEL_FAIL(err, KEEL_ERR_INVALID, "%s: add_checkpoint: empty path", r->path);
    if (step < 0) return KEEL_FAIL(err, KEEL_ERR_INVALID, "%s: add_checkpoint: negative step", r->path);
    if (ok < -1 || ok > 1) return KEEL_FAIL(err, KEEL_ERR_INVALID, "%s: add_checkpoint: ok %d not -1, 0 or 1", r->path, ok);
    bool base = !strcmp(kind, "base");
    // A step checkpoint is only recorded with its digest; the base may go
    // without one (hashing a large model on every run is optional).
    if (!(is_hex64(sha256) || (base && (!sha256 || !*sha256))))
        return KEEL_FAIL(err, KEEL_ERR_INVALID, "%s: add_checkpoint %s: sha256 '%s' is not 64 lowercase hex digits",
                         r->path, path, sha256 ? sha256 : "(null)");
    char *abs = keel_reg_abspath(path);
    if (!abs) return KEEL_FAIL(err, KEEL_ERR_NOMEM, "%s: out of memory", r->path);
    keel_status s = begin(r, err);
    if (s == KEEL_OK && parent_id >= 0) {
        // A parent in another run is allowed for a base (a run started from
        // another run's checkpoint); a step's parent is of its own run.
        int64_t owner;
        s = ckpt_run(r, parent_id, &owner, err);
        if (s == KEEL_OK && owner < 0)
            s = KEEL_FAIL(err, KEEL_ERR_INVALID, "%s: add_checkpoint %s: no parent checkpoint %lld", r->path, abs,
                          (long long)parent_id);
        else if (s == KEEL_OK && owner != run_id && !base)
            s = KEEL_FAIL(err, KEEL_ERR_INVALID, "%s: add_checkpoint %s: parent %lld belongs to run %lld, not %lld",
                          r->path, abs, (long long)parent_id, (long long)owner, (long long)run_id);
    }
    sqlite3_stmt *st = NULL;
    if (s == KEEL_OK)
        s = keel_reg_prepare(r,
                             "INSERT INTO checkpoints(run_id, kind, step, path, sha256, parent_id, ok, created)"
                             " VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)"
                             " ON CONFLICT(run_id, path) DO UPDATE SET kind=excluded.kind, step=excluded.step,"
                             " sha256=excluded.sha256, parent_id=excluded.parent_id, ok=excluded.ok,"
                             " created=excluded.created RETURNING id",
                             &st, err);
    if (s == KEEL_OK) {
        sqlite3_bind_int64(st, 1, run_id);
        bind_text(st, 2, kind);
        sqlite3_bind_int64(st, 3, step);
        bind_text(st, 4, abs);
        bind_text(st, 5, sha256 ? sha256 : "");
        bind_id(st, 6, parent_id);
        sqlite3_bind_int(st, 7, ok);
        sqlite3_bind_double(st, 8, now_s());
        if (sqlite3_step(st) == SQLITE_ROW) *ckpt_id = sqlite3_column_int64(st, 0);
        else s = keel_reg_fail(r, err, "recording the checkpoint");
        sqlite3_finalize(st);
        if (s == KEEL_OK && *ckpt_id == parent_id)
            s = KEEL_FAIL(err, KEEL_ERR_INVALID, "%s: add_checkpoint %s: a checkpoint cannot be its own parent", r->path, abs);
    }
    // The run's step count follows its checkpoints (a crashed run keeps the last).
    if (s == KEEL_OK) s = keel_reg_prepare(r, "UPDATE runs SET steps=max(steps, ?1), updated=?2 WHERE id=?3", &st, err);
    if (s == KEEL_OK) {
        sqlite3_bind_int64(st, 1, step);
        sqlite3_bind_double(st, 2, now_s());
        sqlite3_bind_int64(st, 3, run_id);
        s = step_done(r, st, "updating the run", err);
        sqlite3_finalize(st);
    }
    free(abs);
    if (s == KEEL_OK) s = commit(r, err);
    else rollback_tx(r, s);
    if (s != KEEL_OK) *ckpt_id = -1;
    return s;
}

keel_status keel_registry_checkpoint_find(keel_registry *r, int64_t run_id, const char *path, int64_t *ckpt_id,
                                          keel_err *err) {
    *ckpt_id = -1;
    if (!path || !*path) return KEEL_OK;
    char *abs = keel_reg_abspath(path);
    if (!abs) return KEEL_FAIL(err, KEEL_ERR_NOMEM, "%s: out of memory", r->path);
    sqlite3_stmt *st;
    keel_status s = keel_reg_prepare(r, "SELECT id FROM checkpoints WHERE run_id=?1 AND (path=?2 OR path=?3)"
                                        " ORDER BY path=?2 DESC LIMIT 1", &st, err);
    if (s == KEEL_OK) {
        sqlite3_bind_int64(st, 1, run_id);
        bind_text(st, 2, abs);
        bind_text(st, 3, path);
        int rc = sqlite3_step(st);
        if (rc == SQLITE_ROW) *ckpt_id = sqlite3_column_int64(st, 0);
        else if (rc != SQLITE_DONE) s = keel_reg_fail(r, err, "finding the checkpoint");
        sqlite3_finalize(st);
    }
    free(abs);
    return s;
}

keel_status keel_registry_set_checkpoint_ok(keel_registry *r, int64_t ckpt_id, int ok, keel_err *err) {
    if (ok < -1 || ok > 1) return KEEL_FAIL(err, KEEL_ERR_INVALID, "%s: set_checkpoint_ok: ok %d not -1, 0 or 1", r->path, ok);
    keel_status s = begin(r, err);
    sqlite3_stmt *st = NULL;
    if (s == KEEL_OK) s = keel_reg_prepare(r, "UPDATE checkpoints SET ok=?1 WHERE id=?2", &st, err);
    if (s == KEEL_OK) {
        sqlite3_bind_int(st, 1, ok);
        sqlite3_bind_int64(st, 2, ckpt_id);
        s = step_done(r, st, "updating the checkpoint", err);
        sqlite3_finalize(st);
        if (s == KEEL_OK && sqlite3_changes(r->db) == 0)
            s = KEEL_FAIL(err, KEEL_ERR_INVALID, "%s: set_checkpoint_ok: no checkpoint %lld", r->path, (long long)ckpt_id);
    }
    return s == KEEL_OK ? commit(r, err) : rollback_tx(r, s);
}

static void bind_f64(sqlite3_stmt *st, int i, double v) {
    if (isfinite(v)) sqlite3_bind_double(st, i, v);
    else sqlite3_bind_null(st, i); // SQLite has no NaN/inf REAL that survives a round trip
}

keel_status keel_registry_add_measurements(keel_registry *r, int64_t run_id, int64_t ckpt_id, int64_t step,
                                           const char *phase, bool sampled, const keel_cap_result *res,
                                           const keel_cap_result *base_same_items, int32_t n, keel_err *err) {
    static const char *const phases[] = {"base", "monitor", "final", NULL};
    if (!one_of(phase, phases))
        return KEEL_FAIL(err, KEEL_ERR_INVALID, "%s: add_measurements: phase '%s' is not base, monitor or final",
                         r->path, phase ? phase : "(null)");
    if (n < 0 || (n > 0 && !res)) return KEEL_FAIL(err, KEEL_ERR_INVALID, "%s: add_measurements: no results", r->path);
    keel_status s = begin(r, err);
    if (s == KEEL_OK && ckpt_id >= 0) s = check_ckpt_of_run(r, ckpt_id, run_id, "add_measurements", err);
    sqlite3_stmt *st = NULL;
    if (s == KEEL_OK)
        s = keel_reg_prepare(r,
                             "INSERT INTO measurements(run_id, ckpt_id, step, phase, sampled, name, kind, metric,"
                             " value, lo, hi, se, n, n_tokens, higher_is_better, metric2, value2, lo2, hi2, seconds,"
                             " base_value, base_lo, base_hi, base_se, base_n, created)"
                             " VALUES(?1,?2,?3,?4,?5,?6,?7,?8,?9,?10,?11,?12,?13,?14,?15,?16,?17,?18,?19,?20,"
                             "?21,?22,?23,?24,?25,?26)",
                             &st, err);
    double t = now_s();
    for (int32_t i = 0; s == KEEL_OK && i < n; i++) {
        const keel_cap_result *m = &res[i];
        sqlite3_reset(st);
        sqlite3_clear_bindings(st);
        sqlite3_bind_int64(st, 1, run_id);
        bind_id(st, 2, ckpt_id);
        sqlite3_bind_int64(st, 3, step);
        bind_text(st, 4, phase);
        sqlite3_bind_int(st, 5, sampled);
        // The fixed-size names are bounded by their arrays (never read past).
        sqlite3_bind_text(st, 6, m->name, (int)strnlen(m->name, sizeof m->name), SQLITE_TRANSIENT);
        sqlite3_bind_text(st, 7, m->kind, (int)strnlen(m->kind, sizeof m->kind), SQLITE_TRANSIENT);
        sqlite3_bind_text(st, 8, m->metric, (int)strnlen(m->metric, sizeof m->metric), SQLITE_TRANSIENT);
        bind_f64(st, 9, m->value);
        bind_f64(st, 10, m->lo);
        bind_f64(st, 11, m->hi);
        bind_f64(st, 12, m->se);
        sqlite3_bind_int64(st, 13, m->n);
        sqlite3_bind_int64(st, 14, m->n_tokens);
        sqlite3_bind_int(st, 15, m->higher_is_better);
        sqlite3_bind_text(st, 16, m->metric2, (int)strnlen(m->metric2, sizeof m->metric2), SQLITE_TRANSIENT);
        bind_f64(st, 17, m->value2);
        bind_f64(st, 18, m->lo2);
        bind_f64(st, 19, m->hi2);
        bind_f64(st, 20, m->seconds);
        if (sampled && base_same_items) {
            const keel_cap_result *b = &base_same_items[i];
            bind_f64(st, 21, b->value);
            bind_f64(st, 22, b->lo);
            bind_f64(st, 23, b->hi);
            bind_f64(st, 24, b->se);
            sqlite3_bind_int64(st, 25, b->n);
        }
        sqlite3_bind_double(st, 26, t);
        s = step_done(r, st, "recording a measurement", err);
    }
    sqlite3_finalize(st);
    return s == KEEL_OK ? commit(r, err) : rollback_tx(r, s);
}

keel_status keel_registry_add_decision(keel_registry *r, int64_t run_id, int64_t step, const char *action,
                                       const char *reason, int64_t ckpt_id, keel_err *err) {
    if (action && !strcmp(action, "ok")) return KEEL_OK; // "ok" is the absence of a decision
    static const char *const actions[] = {"stop", "rollback", "adapt", "warn", "give_up", NULL};
    if (!one_of(action, actions))
        return KEEL_FAIL(err, KEEL_ERR_INVALID, "%s: add_decision: action '%s' is not stop, rollback, adapt, warn or "
                         "give_up", r->path, action ? action : "(null)");
    keel_status s = begin(r, err);
    if (s == KEEL_OK && ckpt_id >= 0) s = check_ckpt_of_run(r, ckpt_id, run_id, "add_decision", err);
    sqlite3_stmt *st = NULL;
    if (s == KEEL_OK)
        s = keel_reg_prepare(r, "INSERT INTO decisions(run_id, step, action, reason, ckpt_id, created)"
                                " VALUES(?1, ?2, ?3, ?4, ?5, ?6)", &st, err);
    if (s == KEEL_OK) {
        sqlite3_bind_int64(st, 1, run_id);
        sqlite3_bind_int64(st, 2, step);
        bind_text(st, 3, action);
        bind_text(st, 4, reason);
        bind_id(st, 5, ckpt_id);
        sqlite3_bind_double(st, 6, now_s());
        s = step_done(r, st, "recording a decision", err);
        sqlite3_finalize(st);
    }
    return s == KEEL_OK ? commit(r, err) : rollback_tx(r, s);
}

keel_status keel_registry_set_active(keel_registry *r, int64_t run_id, int64_t ckpt_id, keel_err *err) {
    keel_status s = begin(r, err);
    if (s == KEEL_OK) s = check_ckpt_of_run(r, ckpt_id, run_id, "set_active", err);
    sqlite3_stmt *st = NULL;
    if (s == KEEL_OK) s = keel_reg_prepare(r, "UPDATE runs SET active_id=?1, updated=?2 WHERE id=?3", &st, err);
    if (s == KEEL_OK) {
        sqlite3_bind_int64(st, 1, ckpt_id);
        sqlite3_bind_double(st, 2, now_s());
        sqlite3_bind_int64(st, 3, run_id);
        s = step_done(r, st, "setting the active checkpoint", err);
        sqlite3_finalize(st);
    }
    return s == KEEL_OK ? commit(r, err) : rollback_tx(r, s);
}

// ---------------------------------------------------------------- readers

keel_status keel_reg_run_get(keel_registry *r, int64_t id, keel_reg_run *out, keel_err *err) {
    memset(out, 0, sizeof *out);
    sqlite3_stmt *st;
    keel_status s = keel_reg_prepare(r,
                                     "SELECT id, dir, name, job_yaml, model, method, status, steps, pid, host,"
                                     " started, updated, ended, active_id FROM runs WHERE id=?1",
                                     &st, err);
    if (s != KEEL_OK) return s;
    sqlite3_bind_int64(st, 1, id);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        out->id = sqlite3_column_int64(st, 0);
        out->dir = keel_reg_col_str(st, 1);
        out->name = keel_reg_col_str(st, 2);
        out->job_yaml = keel_reg_col_str(st, 3);
        out->model = keel_reg_col_str(st, 4);
        out->method = keel_reg_col_str(st, 5);
        out->status = keel_reg_col_str(st, 6);
        out->steps = sqlite3_column_int64(st, 7);
        out->pid = sqlite3_column_int64(st, 8);
        out->host = keel_reg_col_str(st, 9);
        out->started = keel_reg_col_f64(st, 10);
        out->updated = keel_reg_col_f64(st, 11);
        out->ended = keel_reg_col_f64(st, 12);
        out->active_id = col_id(st, 13);
        if (!out->dir || !out->name || !out->job_yaml || !out->model || !out->method || !out->status || !out->host)
            s = KEEL_FAIL(err, KEEL_ERR_NOMEM, "%s: out of memory reading run %lld", r->path, (long long)id);
    } else if (rc == SQLITE_DONE) {
        s = KEEL_FAIL(err, KEEL_ERR_INVALID, "%s: no run %lld", r->path, (long long)id);
    } else {
        s = keel_reg_fail(r, err, "reading a run");
    }
    sqlite3_finalize(st);
    if (s != KEEL_OK) keel_reg_run_free(out);
    return s;
}

void keel_reg_run_free(keel_reg_run *run) {
    free(run->dir);
    free(run->name);
    free(run->job_yaml);
    free(run->model);
    free(run->method);
    free(run->status);
    free(run->host);
    memset(run, 0, sizeof *run);
}

bool keel_reg_ckpt_row(sqlite3_stmt *st, keel_reg_ckpt *out) {
    memset(out, 0, sizeof *out);
    out->id = sqlite3_column_int64(st, 0);
    out->run_id = sqlite3_column_int64(st, 1);
    copy_col(st, 2, out->kind, sizeof out->kind);
    out->step = sqlite3_column_int64(st, 3);
    out->path = keel_reg_col_str(st, 4);
    copy_col(st, 5, out->sha256, sizeof out->sha256);
    out->parent_id = col_id(st, 6);
    out->ok = sqlite3_column_int(st, 7);
    out->created = keel_reg_col_f64(st, 8);
    return out->path != NULL;
}

keel_status keel_reg_ckpt_get(keel_registry *r, int64_t id, keel_reg_ckpt *out, keel_err *err) {
    memset(out, 0, sizeof *out);
    sqlite3_stmt *st;
    keel_status s = keel_reg_prepare(r, "SELECT " KEEL_REG_CKPT_COLS " FROM checkpoints WHERE id=?1", &st, err);
    if (s != KEEL_OK) return s;
    sqlite3_bind_int64(st, 1, id);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        if (!keel_reg_ckpt_row(st, out)) s = KEEL_FAIL(err, KEEL_ERR_NOMEM, "%s: out of memory", r->path);
    } else if (rc == SQLITE_DONE) {
        s = KEEL_FAIL(err, KEEL_ERR_INVALID, "%s: no checkpoint %lld", r->path, (long long)id);
    } else {
        s = keel_reg_fail(r, err, "reading a checkpoint");
    }
    sqlite3_finalize(st);
    if (s != KEEL_OK) keel_reg_ckpt_free(out);
    return s;
}

void keel_reg_ckpt_free(keel_reg_ckpt *c) {
    free(c->path);
    c->path = NULL;
}

void keel_reg_meas_row(sqlite3_stmt *st, keel_reg_meas *out) {
    memset(out, 0, sizeof *out);
    out->id = sqlite3_column_int64(st, 0);
    out->run_id = sqlite3_column_int64(st, 1);
    out->ckpt_id = col_id(st, 2);
    out->step = sqlite3_column_int64(st, 3);
    copy_col(st, 4, out->phase, sizeof out->phase);
    out->sampled = sqlite3_column_int(st, 5) != 0;
    keel_cap_result *m = &out->r;
    copy_col(st, 6, m->name, sizeof m->name);
    copy_col(st, 7, m->kind, sizeof m->kind);
    copy_col(st, 8, m->metric, sizeof m->metric);
    m->value = keel_reg_col_f64(st, 9);
    m->lo = keel_reg_col_f64(st, 10);
    m->hi = keel_reg_col_f64(st, 11);
    m->se = keel_reg_col_f64(st, 12);
    m->n = sqlite3_column_int64(st, 13);
    m->n_tokens = sqlite3_column_int64(st, 14);
    m->higher_is_better = sqlite3_column_int(st, 15) != 0;
    copy_col(st, 16, m->metric2, sizeof m->metric2);
    m->value2 = keel_reg_col_f64(st, 17);
    m->lo2 = keel_reg_col_f64(st, 18);
    m->hi2 = keel_reg_col_f64(st, 19);
    m->seconds = keel_reg_col_f64(st, 20);
    out->has_base = sqlite3_column_type(st, 25) != SQLITE_NULL;
    if (out->has_base) {
        out->base = *m;
        out->base.value = keel_reg_col_f64(st, 21);
        out->base.lo = keel_reg_col_f64(st, 22);
        out->base.hi = keel_reg_col_f64(st, 23);
        out->base.se = keel_reg_col_f64(st, 24);
        out->base.n = sqlite3_column_int64(st, 25);
        out->base.metric2[0] = '\0';
        out->base.value2 = out->base.lo2 = out->base.hi2 = NAN;
    }
}

// ---------------------------------------------------------------- references

static bool all_digits(const char *s) {
    if (!*s) return false;
    for (; *s; s++)
        if (!isdigit((unsigned char)*s)) return false;
    return true;
}

keel_status keel_reg_run_ref(keel_registry *r, const char *ref, int64_t *run_id, keel_err *err) {
    *run_id = -1;
    if (!ref || !*ref) return KEEL_FAIL(err, KEEL_ERR_INVALID, "%s: empty run reference", r->path);
    sqlite3_stmt *st;
    keel_status s;
    if (all_digits(ref) && strlen(ref) < 18) {
        if ((s = keel_reg_prepare(r, "SELECT id FROM runs WHERE id=?1", &st, err)) != KEEL_OK) return s;
        sqlite3_bind_int64(st, 1, strtoll(ref, NULL, 10));
        if (sqlite3_step(st) == SQLITE_ROW) *run_id = sqlite3_column_int64(st, 0);
        sqlite3_finalize(st);
        if (*run_id >= 0) return KEEL_OK;
    }
    // A directory (as given or made absolute), then a name.
    char *abs = keel_reg_abspath(ref);
    if (!abs) return KEEL_FAIL(err, KEEL_ERR_NOMEM, "%s: out of memory", r->path);
    s = keel_reg_prepare(r, "SELECT id FROM runs WHERE dir=?1 OR dir=?2", &st, err);
    if (s == KEEL_OK) {
        bind_text(st, 1, ref);
        bind_text(st, 2, abs);
        if (sqlite3_step(st) == SQLITE_ROW) *run_id = sqlite3_column_int64(st, 0);
        sqlite3_finalize(st);
    }
    free(abs);
    if (s != KEEL_OK || *run_id >= 0) return s;
    if ((s = keel_reg_prepare(r, "SELECT id FROM runs WHERE name=?1 ORDER BY id", &st, err)) != KEEL_OK) return s;
    bind_text(st, 1, ref);
    keel_buf ids = {0};
    int count = 0, rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        *run_id = sqlite3_column_int64(st, 0);
        keel_buf_printf(&ids, "%s%lld", count ? ", " : "", (long long)*run_id);
        count++;
    }
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE) s = keel_reg_fail(r, err, "finding the run");
    else if (count == 0)
        s = KEEL_FAIL(err, KEEL_ERR_INVALID, "%s: no run '%s' (a run number, directory or name; `keel runs` lists them)",
                      r->path, ref);
    else if (count > 1)
        s = KEEL_FAIL(err, KEEL_ERR_INVALID, "%s: run name '%s' is ambiguous (runs %s): use the number or the directory",
                      r->path, ref, ids.data ? ids.data : "");
    free(ids.data);
    if (s != KEEL_OK) *run_id = -1;
    return s;
}

keel_status keel_reg_active(keel_registry *r, int64_t run_id, int64_t *ckpt_id, keel_err *err) {
    *ckpt_id = -1;
    sqlite3_stmt *st;
    keel_status s = keel_reg_prepare(r,
                                     "SELECT coalesce((SELECT active_id FROM runs WHERE id=?1),"
                                     " (SELECT id FROM checkpoints WHERE run_id=?1 AND kind='step'"
                                     "  ORDER BY step DESC, id DESC LIMIT 1),"
                                     " (SELECT id FROM checkpoints WHERE run_id=?1 AND kind='base'"
                                     "  ORDER BY id DESC LIMIT 1))",
                                     &st, err);
    if (s != KEEL_OK) return s;
    sqlite3_bind_int64(st, 1, run_id);
    if (sqlite3_step(st) == SQLITE_ROW) *ckpt_id = col_id(st, 0);
    else s = keel_reg_fail(r, err, "reading the active checkpoint");
    sqlite3_finalize(st);
    return s;
}

// Checkpoint `what` ("base", "active", "step-N", "N") of run_id.
static keel_status ckpt_in_run(keel_registry *r, int64_t run_id, const char *ref, const char *what,
                               int64_t *ckpt_id, keel_err *err) {
    *ckpt_id = -1;
    if (!strcmp(what, "active")) {
        keel_status s = keel_reg_active(r, run_id, ckpt_id, err);
        if (s == KEEL_OK && *ckpt_id < 0)
            s = KEEL_FAIL(err, KEEL_ERR_INVALID, "%s: '%s': run %lld has no checkpoint", r->path, ref, (long long)run_id);
        return s;
    }
    bool base = !strcmp(what, "base");
    sqlite3_stmt *st;
    keel_status s;
    int rc;
    if (!base) {
        // The checkpoint directory's own name first (step-N, or step-N-aK for an
        // adapt retry), then any checkpoint at step N (the latest recorded).
        if ((s = keel_reg_prepare(r, "SELECT id FROM checkpoints WHERE run_id=?1 AND kind='step' AND"
                                     " substr(path, -length(?2) - 1) = '/' || ?2 ORDER BY id DESC", &st, err)) != KEEL_OK)
            return s;
        sqlite3_bind_int64(st, 1, run_id);
        bind_text(st, 2, what);
        rc = sqlite3_step(st);
        if (rc == SQLITE_ROW) *ckpt_id = sqlite3_column_int64(st, 0);
        else if (rc != SQLITE_DONE) s = keel_reg_fail(r, err, "finding the checkpoint");
        sqlite3_finalize(st);
        if (s != KEEL_OK || *ckpt_id >= 0) return s;
    }
    const char *num = !strncmp(what, "step-", 5) ? what + 5 : what;
    if (!base && !(all_digits(num) && strlen(num) < 18))
        return KEEL_FAIL(err, KEEL_ERR_INVALID, "%s: no checkpoint '%s' (after the '@': step-N, N, base, active or a "
                         "checkpoint directory name of the run; `keel show %lld` lists them)", r->path, ref,
                         (long long)run_id);
    s = keel_reg_prepare(r, base ? "SELECT id FROM checkpoints WHERE run_id=?1 AND kind='base' ORDER BY id DESC"
                                 : "SELECT id FROM checkpoints WHERE run_id=?1 AND kind='step' AND step=?2"
                                   " ORDER BY id DESC",
                         &st, err);
    if (s != KEEL_OK) return s;
    sqlite3_bind_int64(st, 1, run_id);
    if (!base) sqlite3_bind_int64(st, 2, strtoll(num, NULL, 10));
    rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) *ckpt_id = sqlite3_column_int64(st, 0);
    else if (rc == SQLITE_DONE)
        s = KEEL_FAIL(err, KEEL_ERR_INVALID, "%s: no checkpoint '%s' (run %lld has none %s; `keel show %lld` lists them)",
                      r->path, ref, (long long)run_id, base ? "of kind base" : "at that step", (long long)run_id);
    else s = keel_reg_fail(r, err, "finding the checkpoint");
    sqlite3_finalize(st);
    return s;
}

keel_status keel_reg_ckpt_ref(keel_registry *r, const char *ref, int64_t run_hint, int64_t *ckpt_id, keel_err *err) {
    *ckpt_id = -1;
    if (!ref || !*ref) return KEEL_FAIL(err, KEEL_ERR_INVALID, "%s: empty checkpoint reference", r->path);
    const char *at = strrchr(ref, '@');
    if (at) {
        char *run = keel_strndup(ref, (size_t)(at - ref));
        if (!run) return KEEL_FAIL(err, KEEL_ERR_NOMEM, "%s: out of memory", r->path);
        int64_t run_id;
        keel_status s = keel_reg_run_ref(r, run, &run_id, err);
        free(run);
        if (s != KEEL_OK) return s;
        return ckpt_in_run(r, run_id, ref, at + 1, ckpt_id, err);
    }
    // A path: the checkpoint recorded there (of run_hint first: a base model
    // path is recorded once per run that trained on it).
    char *abs = keel_reg_abspath(ref);
    if (!abs) return KEEL_FAIL(err, KEEL_ERR_NOMEM, "%s: out of memory", r->path);
    sqlite3_stmt *st;
    keel_status s = keel_reg_prepare(r, "SELECT id FROM checkpoints WHERE path=?1 OR path=?2"
                                        " ORDER BY (run_id=?3) DESC, id DESC", &st, err);
    if (s == KEEL_OK) {
        bind_text(st, 1, ref);
        bind_text(st, 2, abs);
        sqlite3_bind_int64(st, 3, run_hint);
        if (sqlite3_step(st) == SQLITE_ROW) *ckpt_id = sqlite3_column_int64(st, 0);
        sqlite3_finalize(st);
    }
    free(abs);
    if (s != KEEL_OK || *ckpt_id >= 0) return s;
    if (run_hint >= 0 && (!strcmp(ref, "base") || !strcmp(ref, "active") || !strncmp(ref, "step-", 5) || all_digits(ref)))
        return ckpt_in_run(r, run_hint, ref, ref, ckpt_id, err);
    return KEEL_FAIL(err, KEEL_ERR_INVALID, "%s: no checkpoint '%s' (RUN@step-N, RUN@base or a checkpoint directory)",
                     r->path, ref);
}

void keel_reg_ckpt_label(keel_registry *r, const keel_reg_ckpt *c, char *buf, size_t cap) {
    char run[128];
    snprintf(run, sizeof run, "%lld", (long long)c->run_id);
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(r->db, "SELECT name, (SELECT count(*) FROM runs b WHERE b.name=a.name) FROM runs a WHERE id=?1",
                           -1, &st, NULL) == SQLITE_OK) {
        sqlite3_bind_int64(st, 1, c->run_id);
        // A name that reads as a number or is shared would resolve to another run.
        if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_int64(st, 1) == 1 && sqlite3_column_text(st, 0) &&
            !all_digits((const char *)sqlite3_column_text(st, 0)) && !strchr((const char *)sqlite3_column_text(st, 0), '@'))
            snprintf(run, sizeof run, "%s", (const char *)sqlite3_column_text(st, 0));
        sqlite3_finalize(st);
    }
    // A step checkpoint by its directory name (step-N, step-N-aK for an adapt retry).
    const char *slash = c->path ? strrchr(c->path, '/') : NULL;
    const char *dname = slash ? slash + 1 : c->path;
    if (!strcmp(c->kind, "base")) snprintf(buf, cap, "%s@base", run);
    else if (dname && *dname && !strchr(dname, '@')) snprintf(buf, cap, "%s@%s", run, dname);
    else snprintf(buf, cap, "%s@step-%lld", run, (long long)c->step);
}
