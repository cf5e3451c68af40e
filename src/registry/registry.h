// SPDX-License-Identifier: MIT
// registry.h — the run registry (SQLite, keel.db): the writer side the
// trainer and the ledger use, plus the SHA-256 of a checkpoint directory.
// The readers (runs/show/diff/rollback/resolve/fsck) are the keel_registry_*
// functions of include/keel.h. Sits above core/ and io/, below train/ and cli/.
//
// Crash safety: the database runs in WAL mode with synchronous=FULL; every
// call below is one transaction, so kill -9 at any moment leaves either the
// whole record or none of it. A checkpoint is recorded only after its
// directory was renamed into place and fsync'd, with the SHA-256 of its
// files: a listed checkpoint is always complete. A checkpoint directory on
// disk that no row lists (killed between the rename and the insert) is
// reported by fsck as unregistered, not as an inconsistency.
//
//   registry.c  schema, open/close, writers
//   report.c    runs/show/diff text reports
//   fsck.c      verification against the files, rollback, resolve
//   sha256.c    keel_dir_sha256 (OpenSSL libcrypto EVP)
#ifndef KEEL_REGISTRY_H
#define KEEL_REGISTRY_H

#include "core/core.h"

// Begin a run: records the run directory (absolute), its resolved job YAML,
// model path and method; status "running". *run_id receives its number.
KEEL_INTERNAL keel_status keel_registry_run_begin(keel_registry *r, const char *run_dir, const char *job_yaml,
                                                  const char *model, const char *method, int64_t *run_id,
                                                  keel_err *err);
// A fresh run into a directory an earlier run used (emptied or removed since):
// the earlier run's row keeps its records but its directory becomes
// "<dir>#<id>", so run_begin starts a new run instead of continuing it.
KEEL_INTERNAL keel_status keel_registry_run_retire_dir(keel_registry *r, const char *run_dir, keel_err *err);
// The run id recorded for run_dir, for a resumed run (-1 when none).
KEEL_INTERNAL keel_status keel_registry_run_find(keel_registry *r, const char *run_dir, int64_t *run_id,
                                                 keel_err *err);
// End state: "done", "stopped" (bound violated, on_violation stop), "rolled_back",
// "interrupted" (Ctrl-C / stop_after), "failed"; steps done.
KEEL_INTERNAL keel_status keel_registry_run_end(keel_registry *r, int64_t run_id, const char *status,
                                                int64_t steps, keel_err *err);

// Record a checkpoint directory written by the trainer (complete on disk):
// step, its SHA-256 (keel_dir_sha256), parent checkpoint id (-1: none; the
// previous checkpoint of the lineage, or the one rolled back to), whether it
// satisfied every bound when measured (ok = -1 unknown/not measured, 0, 1).
// A checkpoint with the same path already recorded is replaced (its row id
// is kept). *ckpt_id receives its id. kind: "base" (the base model itself,
// path = the model path, no SHA-256 check of the model's files beyond the
// digest recorded) or "step".
KEEL_INTERNAL keel_status keel_registry_add_checkpoint(keel_registry *r, int64_t run_id, const char *kind,
                                                       int64_t step, const char *path, const char *sha256,
                                                       int64_t parent_id, int ok, int64_t *ckpt_id,
                                                       keel_err *err);
// The id of the checkpoint of run_id recorded at path (compared after
// realpath() when the file exists), or *ckpt_id = -1 when none is.
KEEL_INTERNAL keel_status keel_registry_checkpoint_find(keel_registry *r, int64_t run_id, const char *path,
                                                        int64_t *ckpt_id, keel_err *err);
KEEL_INTERNAL keel_status keel_registry_set_checkpoint_ok(keel_registry *r, int64_t ckpt_id, int ok,
                                                          keel_err *err);

// Record one measurement (a capability result) of a run at a step, tied to
// a checkpoint (ckpt_id, or -1 when none). phase: "base", "monitor", "final".
// sampled: measured on monitor.sample items (then base_value is the base
// model's value on the same items), else on all items.
KEEL_INTERNAL keel_status keel_registry_add_measurements(keel_registry *r, int64_t run_id, int64_t ckpt_id,
                                                         int64_t step, const char *phase, bool sampled,
                                                         const keel_cap_result *res,
                                                         const keel_cap_result *base_same_items, int32_t n,
                                                         keel_err *err);
// Record a ledger decision: action "ok" is not recorded; "stop", "rollback",
// "adapt", "warn", "give_up" with the reason (one line with the numbers) and
// the checkpoint acted on (-1 none).
KEEL_INTERNAL keel_status keel_registry_add_decision(keel_registry *r, int64_t run_id, int64_t step,
                                                     const char *action, const char *reason,
                                                     int64_t ckpt_id, keel_err *err);
// Make ckpt_id the run's active checkpoint.
KEEL_INTERNAL keel_status keel_registry_set_active(keel_registry *r, int64_t run_id, int64_t ckpt_id,
                                                   keel_err *err);

// SHA-256 of a checkpoint directory: the digest of the text
// "<sha256 of file>  <name>\n" for every regular file in the directory,
// sorted by name (byte order) — i.e. `sha256sum * | sha256sum` run in the
// directory (files only; subdirectories are refused, KEEL_ERR_FORMAT).
// hex receives 64 lowercase hex digits + NUL.
KEEL_INTERNAL keel_status keel_dir_sha256(const char *dir, char hex[65], keel_err *err);
// SHA-256 of one file (hex as above).
KEEL_INTERNAL keel_status keel_file_sha256(const char *path, char hex[65], keel_err *err);

// ---- registry/ internals (registry.c, report.c, fsck.c only) ---------------

#include <sqlite3.h>

struct keel_registry {
    sqlite3 *db;
    char *path;   // the database file, for messages
};

// KEEL_FAIL with "PATH: what: sqlite3_errmsg" (KEEL_ERR_IO).
KEEL_INTERNAL keel_status keel_reg_fail(keel_registry *r, keel_err *err, const char *what);
// Prepare sql on r (message names the db on failure).
KEEL_INTERNAL keel_status keel_reg_prepare(keel_registry *r, const char *sql, sqlite3_stmt **st, keel_err *err);
// A column as a heap string ("" for NULL; NULL only when out of memory) / a
// double (NaN for NULL: SQLite stores NaN as NULL).
KEEL_INTERNAL char *keel_reg_col_str(sqlite3_stmt *st, int col);
KEEL_INTERNAL double keel_reg_col_f64(sqlite3_stmt *st, int col);
// An absolute form of path (realpath when it exists, else cwd-joined);
// heap string, NULL when out of memory.
KEEL_INTERNAL char *keel_reg_abspath(const char *path);

typedef struct keel_reg_run {
    int64_t id, steps, pid, active_id;   // active_id -1: none set
    char *dir, *name, *job_yaml, *model, *method, *status, *host;
    double started, updated, ended;      // unix seconds (ended NaN while running)
} keel_reg_run;
typedef struct keel_reg_ckpt {
    int64_t id, run_id, step, parent_id; // parent_id -1: none
    char kind[8];                        // "base" | "step"
    char sha256[65];                     // "" when not recorded (base)
    char *path;
    int ok;                              // -1 unknown, 0, 1
    double created;
} keel_reg_ckpt;
typedef struct keel_reg_meas {
    int64_t id, run_id, ckpt_id, step;   // ckpt_id -1: none
    char phase[8];
    bool sampled, has_base;              // has_base: base_* hold the base on the same items
    keel_cap_result r, base;
} keel_reg_meas;

// A run whose status says running but whose process (on this host) is gone.
KEEL_INTERNAL bool keel_reg_run_crashed(const keel_reg_run *run);
KEEL_INTERNAL keel_status keel_reg_run_get(keel_registry *r, int64_t id, keel_reg_run *out, keel_err *err);
KEEL_INTERNAL void keel_reg_run_free(keel_reg_run *run);
KEEL_INTERNAL keel_status keel_reg_ckpt_get(keel_registry *r, int64_t id, keel_reg_ckpt *out, keel_err *err);
KEEL_INTERNAL void keel_reg_ckpt_free(keel_reg_ckpt *c);
// Read the current row of a statement selecting KEEL_REG_CKPT_COLS / KEEL_REG_MEAS_COLS.
#define KEEL_REG_CKPT_COLS "id, run_id, kind, step, path, sha256, parent_id, ok, created"
KEEL_INTERNAL bool keel_reg_ckpt_row(sqlite3_stmt *st, keel_reg_ckpt *out);
#define KEEL_REG_MEAS_COLS                                                                        \
    "id, run_id, ckpt_id, step, phase, sampled, name, kind, metric, value, lo, hi, se, n, "      \
    "n_tokens, higher_is_better, metric2, value2, lo2, hi2, seconds, base_value, base_lo, "      \
    "base_hi, base_se, base_n"
KEEL_INTERNAL void keel_reg_meas_row(sqlite3_stmt *st, keel_reg_meas *out);

// References (include/keel.h): a run is its number, directory or name; a
// checkpoint "RUN@step-N" / "RUN@N" / "RUN@base" / "RUN@active" /
// "RUN@DIRNAME" (e.g. step-6-a1, an adapt retry; step-N means the directory
// step-N first, else the latest checkpoint at step N) or its path (a bare
// "step-N..." / "base" / "active" when run_hint >= 0 names that run's).
KEEL_INTERNAL keel_status keel_reg_run_ref(keel_registry *r, const char *ref, int64_t *run_id, keel_err *err);
KEEL_INTERNAL keel_status keel_reg_ckpt_ref(keel_registry *r, const char *ref, int64_t run_hint,
                                            int64_t *ckpt_id, keel_err *err);
// The run's active checkpoint: the one set (set_active / rollback), else its
// latest step checkpoint, else its base; -1 when it has none.
KEEL_INTERNAL keel_status keel_reg_active(keel_registry *r, int64_t run_id, int64_t *ckpt_id, keel_err *err);
// "NAME@DIRNAME" (step-N, step-N-aK) / "NAME@base" (the run's number instead
// of its name when another run has the same name).
KEEL_INTERNAL void keel_reg_ckpt_label(keel_registry *r, const keel_reg_ckpt *c, char *buf, size_t cap);

#endif // KEEL_REGISTRY_H
