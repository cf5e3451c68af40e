// SPDX-License-Identifier: MIT
// report.c — the registry's text reports (include/keel.h): `keel runs` (one
// line per run), `keel show RUN` (the ledger base -> latest with CIs, bounds
// and whether they hold, decisions, checkpoints with lineage), `keel show
// CHECKPOINT` (its scores, SHA-256, parent chain) and `keel diff A B`. The
// bounds come from the run's stored resolved job (its `capabilities:` list,
// parsed by cap/suite.c and checked by cap/metrics.c as the ledger checks
// them). The diff's significance test: docs/registry.md "diff".
#include "registry/registry.h"
#include "cap/cap.h"

#include <math.h>
#include <time.h>
#include <yaml.h>

static void fmt_time(double t, char *buf, size_t cap) {
    if (!isfinite(t)) { snprintf(buf, cap, "-"); return; }
    time_t s = (time_t)t;
    struct tm tm;
    gmtime_r(&s, &tm);
    strftime(buf, cap, "%Y-%m-%d %H:%M:%S", &tm);
}

static void fmt_num(double v, char *buf, size_t cap) {
    if (!isfinite(v)) snprintf(buf, cap, "-");
    else snprintf(buf, cap, "%.3f", v);
}

// "0.473 [0.430, 0.516]"
static void fmt_ci(const keel_cap_result *m, char *buf, size_t cap) {
    char v[24], lo[24], hi[24];
    fmt_num(m->value, v, sizeof v);
    fmt_num(m->lo, lo, sizeof lo);
    fmt_num(m->hi, hi, sizeof hi);
    if (!isfinite(m->lo) && !isfinite(m->hi)) snprintf(buf, cap, "%s", v);
    else snprintf(buf, cap, "%s [%s, %s]", v, lo, hi);
}

static const char *ok_word(int ok) { return ok > 0 ? "yes" : ok == 0 ? "no" : "-"; }

// ---------------------------------------------------------------- runs

keel_status keel_registry_runs(keel_registry *r, char **out, keel_err *err) {
    *out = NULL;
    sqlite3_stmt *st;
    keel_status s = keel_reg_prepare(r, "SELECT id FROM runs ORDER BY id", &st, err);
    if (s != KEEL_OK) return s;
    keel_buf b = {0};
    bool ok = keel_buf_printf(&b, "%4s  %-20s %-7s %-13s %7s  %-16s %-19s  %s\n", "id", "name", "method", "status",
                              "steps", "active", "started (UTC)", "model");
    int rc, n = 0;
    while (s == KEEL_OK && (rc = sqlite3_step(st)) == SQLITE_ROW) {
        keel_reg_run run;
        if ((s = keel_reg_run_get(r, sqlite3_column_int64(st, 0), &run, err)) != KEEL_OK) break;
        int64_t act = -1;
        char active[256] = "-", when[32];
        if ((s = keel_reg_active(r, run.id, &act, err)) == KEEL_OK && act >= 0) {
            keel_reg_ckpt c;
            if ((s = keel_reg_ckpt_get(r, act, &c, err)) == KEEL_OK) {
                // The label without its "RUN@": step-N, step-N-aK or base.
                char lab[256];
                keel_reg_ckpt_label(r, &c, lab, sizeof lab);
                const char *at = strrchr(lab, '@');
                snprintf(active, sizeof active, "%s", at ? at + 1 : lab);
                keel_reg_ckpt_free(&c);
            }
        }
        fmt_time(run.started, when, sizeof when);
        const char *model = strrchr(run.model, '/');
        model = model && model[1] ? model + 1 : run.model;
        const char *status = run.status;
        if (!strcmp(status, "running") && keel_reg_run_crashed(&run)) status = "crashed";
        if (s == KEEL_OK)
            ok = ok && keel_buf_printf(&b, "%4lld  %-20s %-7s %-13s %7lld  %-16s %-19s  %s\n", (long long)run.id,
                                       run.name, run.method, status, (long long)run.steps, active, when, model);
        keel_reg_run_free(&run);
        n++;
    }
    sqlite3_finalize(st);
    if (s == KEEL_OK && n == 0) {
        b.len = 0;
        ok = keel_buf_printf(&b, "no runs recorded in %s\n", r->path);
    }
    if (s == KEEL_OK && !ok) s = KEEL_FAIL(err, KEEL_ERR_NOMEM, "%s: out of memory", r->path);
    if (s != KEEL_OK) { free(b.data); return s; }
    *out = b.data;
    return KEEL_OK;
}

// ---------------------------------------------------------------- bounds from the job

typedef struct job_bounds {
    keel_cap_suite suite;
    keel_cap_decide decide; // monitor.decide
    bool have;
} job_bounds;

static yaml_node_t *map_get(yaml_document_t *doc, yaml_node_t *map, const char *key) {
    if (!map || map->type != YAML_MAPPING_NODE) return NULL;
    for (yaml_node_pair_t *p = map->data.mapping.pairs.start; p < map->data.mapping.pairs.top; p++) {
        yaml_node_t *k = yaml_document_get_node(doc, p->key);
        if (k && k->type == YAML_SCALAR_NODE && !strcmp((const char *)k->data.scalar.value, key))
            return yaml_document_get_node(doc, p->value);
    }
    return NULL;
}

// The run's capabilities with their bounds; none (have = false) when the
// stored YAML has no readable `capabilities:` list: the report then omits bounds.
static void load_bounds(const keel_reg_run *run, job_bounds *jb) {
    memset(jb, 0, sizeof *jb);
    yaml_parser_t p;
    yaml_document_t doc;
    if (!yaml_parser_initialize(&p)) return;
    yaml_parser_set_input_string(&p, (const unsigned char *)run->job_yaml, strlen(run->job_yaml));
    if (yaml_parser_load(&p, &doc)) {
        yaml_node_t *root = yaml_document_get_root_node(&doc);
        yaml_node_t *caps = map_get(&doc, root, "capabilities");
        yaml_node_t *dec = map_get(&doc, map_get(&doc, root, "monitor"), "decide");
        if (dec && dec->type == YAML_SCALAR_NODE && !strcmp((const char *)dec->data.scalar.value, "ci"))
            jb->decide = KEEL_CAP_DECIDE_CI;
        char file[64];
        snprintf(file, sizeof file, "job.yaml of run %lld", (long long)run->id);
        keel_err e = {0};
        if (caps && keel_cap_suite_parse_node(&jb->suite, file, &doc, caps, &e) == KEEL_OK) jb->have = jb->suite.n > 0;
        else keel_cap_suite_free(&jb->suite);
        yaml_document_delete(&doc);
    }
    yaml_parser_delete(&p);
}

static const keel_cap_spec *find_spec(const job_bounds *jb, const char *name) {
    for (int32_t i = 0; jb->have && i < jb->suite.n; i++)
        if (jb->suite.v[i].name && !strcmp(jb->suite.v[i].name, name)) return &jb->suite.v[i];
    return NULL;
}

// "max_drop 0.03, min 0.4 (ci)"; "" without bounds.
static void bounds_text(const keel_cap_spec *c, keel_cap_decide def, char *buf, size_t cap) {
    buf[0] = '\0';
    if (!c || !(c->has_max_drop || c->has_min || c->has_max)) return;
    size_t u = 0;
#define ADD(...) do { int k_ = snprintf(buf + u, cap - u, __VA_ARGS__); if (k_ > 0) u = u + (size_t)k_ < cap ? u + (size_t)k_ : cap - 1; } while (0)
    if (c->has_max_drop) {
        if (c->max_drop_rel) ADD("max_drop %g%%", c->max_drop * 100);
        else ADD("max_drop %g", c->max_drop);
    }
    if (c->has_min) ADD("%smin %g", u ? ", " : "", c->min);
    if (c->has_max) ADD("%smax %g", u ? ", " : "", c->max);
    ADD(" (%s)", (c->decide >= 0 ? c->decide : (int)def) == KEEL_CAP_DECIDE_CI ? "ci" : "point");
#undef ADD
}

// ---------------------------------------------------------------- measurements

typedef struct meas_list {
    keel_reg_meas *v;
    int64_t n, cap;
} meas_list;

static keel_status load_meas(keel_registry *r, const char *where, int64_t a, int64_t b, meas_list *ml, keel_err *err) {
    memset(ml, 0, sizeof *ml);
    char sql[512];
    snprintf(sql, sizeof sql, "SELECT " KEEL_REG_MEAS_COLS " FROM measurements WHERE %s ORDER BY id", where);
    sqlite3_stmt *st;
    keel_status s = keel_reg_prepare(r, sql, &st, err);
    if (s != KEEL_OK) return s;
    sqlite3_bind_int64(st, 1, a);
    if (sqlite3_bind_parameter_count(st) >= 2) sqlite3_bind_int64(st, 2, b);
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (ml->n == ml->cap) {
            int64_t nc = ml->cap ? 2 * ml->cap : 32;
            keel_reg_meas *nv = keel_realloc(ml->v, (size_t)nc * sizeof *nv);
            if (!nv) { s = KEEL_FAIL(err, KEEL_ERR_NOMEM, "%s: out of memory reading measurements", r->path); break; }
            ml->v = nv;
            ml->cap = nc;
        }
        keel_reg_meas_row(st, &ml->v[ml->n++]);
    }
    if (s == KEEL_OK && rc != SQLITE_DONE) s = keel_reg_fail(r, err, "reading measurements");
    sqlite3_finalize(st);
    if (s != KEEL_OK) { free(ml->v); memset(ml, 0, sizeof *ml); }
    return s;
}

static int phase_rank(const char *phase) {
    return !strcmp(phase, "final") ? 2 : !strcmp(phase, "monitor") ? 1 : 0;
}

// The measurements describing one checkpoint: those tied to it (for a base
// checkpoint also the run's base-phase ones recorded without a checkpoint).
static keel_status ckpt_meas(keel_registry *r, const keel_reg_ckpt *c, meas_list *ml, keel_err *err) {
    if (!strcmp(c->kind, "base"))
        return load_meas(r, "ckpt_id=?1 OR (run_id=?2 AND phase='base' AND ckpt_id IS NULL)", c->id, c->run_id, ml, err);
    return load_meas(r, "ckpt_id=?1", c->id, 0, ml, err);
}

// Per capability name (in order of first appearance), the measurement to
// show: best phase (final > monitor > base), then full over sampled, then latest.
static int64_t pick(const meas_list *ml, const char *name) {
    int64_t best = -1;
    for (int64_t i = 0; i < ml->n; i++) {
        const keel_reg_meas *m = &ml->v[i];
        if (strcmp(m->r.name, name)) continue;
        if (best < 0) { best = i; continue; }
        const keel_reg_meas *b = &ml->v[best];
        int pr = phase_rank(m->phase) - phase_rank(b->phase);
        if (pr > 0 || (pr == 0 && (b->sampled && !m->sampled))) best = i;
        else if (pr == 0 && b->sampled == m->sampled) best = i; // later id
    }
    return best;
}

static bool seen_before(const meas_list *ml, int64_t i) {
    for (int64_t j = 0; j < i; j++)
        if (!strcmp(ml->v[j].r.name, ml->v[i].r.name)) return true;
    return false;
}

// ---------------------------------------------------------------- show

static keel_status show_run(keel_registry *r, int64_t run_id, keel_buf *b, keel_err *err) {
    keel_reg_run run;
    keel_status s = keel_reg_run_get(r, run_id, &run, err);
    if (s != KEEL_OK) return s;
    bool ok = true;
    char t0[32], t1[32], lab[256];
    fmt_time(run.started, t0, sizeof t0);
    fmt_time(run.ended, t1, sizeof t1);
    int64_t active = -1;
    keel_reg_ckpt ac = {0};
    if ((s = keel_reg_active(r, run_id, &active, err)) != KEEL_OK) goto done;
    snprintf(lab, sizeof lab, "-");
    if (active >= 0) {
        if ((s = keel_reg_ckpt_get(r, active, &ac, err)) != KEEL_OK) goto done;
        keel_reg_ckpt_label(r, &ac, lab, sizeof lab);
    }
    const char *status = run.status;
    if (!strcmp(status, "running") && keel_reg_run_crashed(&run)) status = "running (process gone: crashed)";
    ok = keel_buf_printf(b,
                         "run %lld: %s\n  directory  %s\n  model      %s\n  method     %s\n  status     %s\n"
                         "  steps      %lld\n  active     %s%s\n  started    %s UTC\n  ended      %s%s\n",
                         (long long)run.id, run.name, run.dir, run.model, run.method, status, (long long)run.steps, lab,
                         active < 0 ? "" : run.active_id >= 0 ? " (set)" : " (latest)", t0, t1,
                         isfinite(run.ended) ? " UTC" : "");

    // Ledger: base -> latest per capability.
    job_bounds jb;
    load_bounds(&run, &jb);
    meas_list ml;
    if ((s = load_meas(r, "run_id=?1", run_id, 0, &ml, err)) != KEEL_OK) { keel_cap_suite_free(&jb.suite); goto done; }
    if (ml.n) {
        ok = ok && keel_buf_printf(b, "\nledger: base -> latest (95%% CI)\n  %-18s %-9s %-24s %-30s %9s  %-28s %s\n",
                                   "capability", "metric", "base", "latest", "change", "bound", "holds");
        bool any_sampled = false;
        for (int64_t i = 0; i < ml.n; i++) {
            if (seen_before(&ml, i)) continue;
            const char *name = ml.v[i].r.name;
            int64_t bi = -1, li = -1;
            for (int64_t j = 0; j < ml.n; j++) {
                const keel_reg_meas *m = &ml.v[j];
                if (strcmp(m->r.name, name)) continue;
                if (!strcmp(m->phase, "base")) {
                    if (bi < 0 || !m->sampled || ml.v[bi].sampled) bi = j;
                } else if (li < 0 || m->step > ml.v[li].step || (m->step == ml.v[li].step && m->id > ml.v[li].id)) {
                    li = j;
                }
            }
            const keel_reg_meas *lm = li >= 0 ? &ml.v[li] : NULL;
            // The base to compare with: the base on the same items when the
            // latest was measured on a sample.
            const keel_cap_result *base = lm && lm->sampled && lm->has_base ? &lm->base : bi >= 0 ? &ml.v[bi].r : NULL;
            char bs[96] = "-", ls[128] = "-", ch[32] = "-", bt[96] = "", holds[16] = "-";
            if (base) fmt_ci(base, bs, sizeof bs);
            if (lm) {
                char v[96];
                fmt_ci(&lm->r, v, sizeof v);
                snprintf(ls, sizeof ls, "%s @%lld%s", v, (long long)lm->step, lm->sampled ? "*" : "");
                any_sampled |= lm->sampled;
                if (base && isfinite(base->value) && isfinite(lm->r.value))
                    snprintf(ch, sizeof ch, "%+.3f", lm->r.value - base->value);
            }
            const keel_cap_spec *spec = find_spec(&jb, name);
            bounds_text(spec, jb.decide, bt, sizeof bt);
            if (spec && bt[0]) {
                const keel_cap_result *now = lm ? &lm->r : base;
                if (now) snprintf(holds, sizeof holds, "%s", keel_cap_bounds_ok(spec, jb.decide, base, now, NULL, 0) ? "yes" : "BROKEN");
            }
            ok = ok && keel_buf_printf(b, "  %-18s %-9s %-24s %-30s %9s  %-28s %s\n", name, ml.v[i].r.metric, bs, ls, ch,
                                       bt[0] ? bt : "-", holds);
        }
        if (any_sampled) ok = ok && keel_buf_appends(b, "  * measured on the monitor sample; base on the same items\n");
        // The active checkpoint's own scores when they are not the latest.
        if (active >= 0) {
            meas_list am;
            if ((s = ckpt_meas(r, &ac, &am, err)) == KEEL_OK) {
                bool differs = false;
                for (int64_t i = 0; i < am.n && !differs; i++) {
                    if (seen_before(&am, i)) continue;
                    for (int64_t j = ml.n - 1; j >= 0; j--)
                        if (!strcmp(ml.v[j].r.name, am.v[i].r.name) && strcmp(ml.v[j].phase, "base")) {
                            differs = ml.v[j].ckpt_id != active;
                            break;
                        }
                }
                if (differs) {
                    ok = ok && keel_buf_printf(b, "  at the active checkpoint %s:", lab);
                    for (int64_t i = 0; i < am.n; i++) {
                        if (seen_before(&am, i)) continue;
                        int64_t k = pick(&am, am.v[i].r.name);
                        char v[96];
                        fmt_ci(&am.v[k].r, v, sizeof v);
                        ok = ok && keel_buf_printf(b, " %s %s;", am.v[k].r.name, v);
                    }
                    ok = ok && keel_buf_appends(b, "\n");
                }
                free(am.v);
            }
        }
    } else {
        ok = ok && keel_buf_appends(b, "\nledger: no measurements\n");
    }
    free(ml.v);
    keel_cap_suite_free(&jb.suite);
    if (s != KEEL_OK) goto done;

    // Decisions.
    sqlite3_stmt *st;
    if ((s = keel_reg_prepare(r, "SELECT step, action, reason, ckpt_id FROM decisions WHERE run_id=?1 ORDER BY id", &st, err)) != KEEL_OK)
        goto done;
    sqlite3_bind_int64(st, 1, run_id);
    int rc, nd = 0;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (!nd++) ok = ok && keel_buf_printf(b, "\ndecisions\n  %6s  %-9s %-20s %s\n", "step", "action", "checkpoint", "reason");
        char cl[256] = "-";
        if (sqlite3_column_type(st, 3) != SQLITE_NULL) {
            keel_reg_ckpt c;
            keel_err e = {0};
            if (keel_reg_ckpt_get(r, sqlite3_column_int64(st, 3), &c, &e) == KEEL_OK) {
                keel_reg_ckpt_label(r, &c, cl, sizeof cl);
                keel_reg_ckpt_free(&c);
            }
        }
        const unsigned char *act = sqlite3_column_text(st, 1), *why = sqlite3_column_text(st, 2);
        ok = ok && keel_buf_printf(b, "  %6lld  %-9s %-20s %s\n", (long long)sqlite3_column_int64(st, 0),
                                   act ? (const char *)act : "", cl, why ? (const char *)why : "");
    }
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE) { s = keel_reg_fail(r, err, "reading decisions"); goto done; }
    if (!nd) ok = ok && keel_buf_appends(b, "\ndecisions: none\n");

    // Checkpoints with lineage.
    if ((s = keel_reg_prepare(r, "SELECT " KEEL_REG_CKPT_COLS " FROM checkpoints WHERE run_id=?1 ORDER BY step, id", &st, err)) != KEEL_OK)
        goto done;
    sqlite3_bind_int64(st, 1, run_id);
    int nc = 0;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        keel_reg_ckpt c;
        if (!keel_reg_ckpt_row(st, &c)) { ok = false; break; }
        if (!nc++)
            ok = ok && keel_buf_printf(b, "\ncheckpoints (* active; ok: satisfied every bound)\n    %5s  %-24s %7s %4s  %-12s  %s\n",
                                       "id", "checkpoint", "step", "ok", "sha256", "parent");
        char cl[256], pl[256] = "-";
        keel_reg_ckpt_label(r, &c, cl, sizeof cl);
        if (c.parent_id >= 0) {
            keel_reg_ckpt p;
            keel_err e = {0};
            if (keel_reg_ckpt_get(r, c.parent_id, &p, &e) == KEEL_OK) {
                keel_reg_ckpt_label(r, &p, pl, sizeof pl);
                keel_reg_ckpt_free(&p);
            } else {
                snprintf(pl, sizeof pl, "%lld (missing)", (long long)c.parent_id);
            }
        }
        ok = ok && keel_buf_printf(b, "  %c %5lld  %-24s %7lld %4s  %-12.12s  %s\n", c.id == active ? '*' : ' ',
                                   (long long)c.id, cl, (long long)c.step, ok_word(c.ok), c.sha256[0] ? c.sha256 : "-", pl);
        keel_reg_ckpt_free(&c);
    }
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE && rc != SQLITE_ROW) { s = keel_reg_fail(r, err, "reading checkpoints"); goto done; }
    if (!nc) ok = ok && keel_buf_appends(b, "\ncheckpoints: none\n");
    if (!ok) s = KEEL_FAIL(err, KEEL_ERR_NOMEM, "%s: out of memory", r->path);
done:
    keel_reg_ckpt_free(&ac);
    keel_reg_run_free(&run);
    return s;
}

static keel_status show_ckpt(keel_registry *r, int64_t id, keel_buf *b, keel_err *err) {
    keel_reg_ckpt c;
    keel_status s = keel_reg_ckpt_get(r, id, &c, err);
    if (s != KEEL_OK) return s;
    keel_reg_run run;
    if ((s = keel_reg_run_get(r, c.run_id, &run, err)) != KEEL_OK) { keel_reg_ckpt_free(&c); return s; }
    int64_t active = -1;
    s = keel_reg_active(r, c.run_id, &active, err);
    char lab[256], when[32];
    keel_reg_ckpt_label(r, &c, lab, sizeof lab);
    fmt_time(c.created, when, sizeof when);
    bool ok = keel_buf_printf(b,
                              "checkpoint %s (id %lld)\n  run        %lld (%s)\n  kind       %s\n  step       %lld\n"
                              "  path       %s\n  sha256     %s\n  bounds ok  %s\n  active     %s\n  recorded   %s UTC\n"
                              "  lineage    %s",
                              lab, (long long)c.id, (long long)run.id, run.name, c.kind, (long long)c.step, c.path,
                              c.sha256[0] ? c.sha256 : "(not recorded)",
                              c.ok > 0 ? "yes" : c.ok == 0 ? "no" : "not measured", active == c.id ? "yes" : "no",
                              when, lab);
    // Parent chain up to the base (bounded: a corrupt cycle stops, fsck reports it).
    int64_t cur = c.parent_id;
    for (int hops = 0; s == KEEL_OK && cur >= 0 && hops < 100000; hops++) {
        keel_reg_ckpt p;
        keel_err e = {0};
        if (keel_reg_ckpt_get(r, cur, &p, &e) != KEEL_OK) {
            ok = ok && keel_buf_printf(b, " <- %lld (missing)", (long long)cur);
            break;
        }
        char pl[256];
        keel_reg_ckpt_label(r, &p, pl, sizeof pl);
        ok = ok && keel_buf_printf(b, " <- %s", pl);
        cur = p.parent_id == p.id ? -1 : p.parent_id;
        keel_reg_ckpt_free(&p);
    }
    ok = ok && keel_buf_appends(b, "\n");
    meas_list ml = {0};
    if (s == KEEL_OK) s = ckpt_meas(r, &c, &ml, err);
    if (s == KEEL_OK) {
        if (ml.n) ok = ok && keel_buf_printf(b, "\nscores (95%% CI)\n  %-18s %-9s %-24s %7s %7s  %-8s %s\n", "capability",
                                             "metric", "value", "n", "step", "phase", "base on the same items");
        else ok = ok && keel_buf_appends(b, "\nscores: none recorded for this checkpoint\n");
        for (int64_t i = 0; i < ml.n; i++) {
            if (seen_before(&ml, i)) continue;
            const keel_reg_meas *m = &ml.v[pick(&ml, ml.v[i].r.name)];
            char v[96], bv[96] = "-";
            fmt_ci(&m->r, v, sizeof v);
            if (m->sampled && m->has_base) fmt_ci(&m->base, bv, sizeof bv);
            ok = ok && keel_buf_printf(b, "  %-18s %-9s %-24s %7lld %7lld  %-8s %s\n", m->r.name, m->r.metric, v,
                                       (long long)m->r.n, (long long)m->step, m->phase, m->sampled ? bv : "(all items)");
        }
    }
    free(ml.v);
    if (s == KEEL_OK && !ok) s = KEEL_FAIL(err, KEEL_ERR_NOMEM, "%s: out of memory", r->path);
    keel_reg_run_free(&run);
    keel_reg_ckpt_free(&c);
    return s;
}

keel_status keel_registry_show(keel_registry *r, const char *ref, char **out, keel_err *err) {
    *out = NULL;
    if (!ref || !*ref) return KEEL_FAIL(err, KEEL_ERR_INVALID, "%s: show: empty reference", r->path);
    keel_buf b = {0};
    keel_status s;
    int64_t id;
    keel_err run_err = {0};
    if (!strchr(ref, '@') && keel_reg_run_ref(r, ref, &id, &run_err) == KEEL_OK) {
        s = show_run(r, id, &b, err);
    } else if ((s = keel_reg_ckpt_ref(r, ref, -1, &id, err)) == KEEL_OK) {
        s = show_ckpt(r, id, &b, err);
    } else if (!strchr(ref, '@') && run_err.msg[0]) {
        // Neither: the run lookup's message is the more useful one (e.g. ambiguous name).
        if (err) *err = run_err;
        s = run_err.code;
    }
    if (s != KEEL_OK) { free(b.data); return s; }
    *out = b.data;
    return KEEL_OK;
}

// ---------------------------------------------------------------- diff

// A run reference means its active checkpoint.
static keel_status diff_side(keel_registry *r, const char *ref, keel_reg_ckpt *c, keel_err *err) {
    int64_t id = -1;
    keel_status s;
    keel_err quiet = {0};
    int64_t run_id;
    if (!strchr(ref, '@') && keel_reg_run_ref(r, ref, &run_id, &quiet) == KEEL_OK) {
        if ((s = keel_reg_active(r, run_id, &id, err)) != KEEL_OK) return s;
        if (id < 0) return KEEL_FAIL(err, KEEL_ERR_INVALID, "%s: run '%s' has no checkpoint to compare", r->path, ref);
    } else if ((s = keel_reg_ckpt_ref(r, ref, -1, &id, err)) != KEEL_OK) {
        return s;
    }
    return keel_reg_ckpt_get(r, id, c, err);
}

keel_status keel_registry_diff(keel_registry *r, const char *a, const char *b, char **out, keel_err *err) {
    *out = NULL;
    if (!a || !b || !*a || !*b) return KEEL_FAIL(err, KEEL_ERR_INVALID, "%s: diff: two references needed", r->path);
    keel_reg_ckpt ca = {0}, cb = {0};
    meas_list ma = {0}, mb = {0};
    keel_buf o = {0};
    bool ok = true;
    keel_status s = diff_side(r, a, &ca, err);
    if (s == KEEL_OK) s = diff_side(r, b, &cb, err);
    if (s == KEEL_OK) s = ckpt_meas(r, &ca, &ma, err);
    if (s == KEEL_OK) s = ckpt_meas(r, &cb, &mb, err);
    if (s != KEEL_OK) goto done;
    char la[256], lb[256];
    keel_reg_ckpt_label(r, &ca, la, sizeof la);
    keel_reg_ckpt_label(r, &cb, lb, sizeof lb);
    ok = keel_buf_printf(&o, "A = %s (%s)\nB = %s (%s)\n\n  %-18s %-9s %-24s %-24s %9s  %s\n", la, ca.path, lb, cb.path,
                         "capability", "metric", "A", "B", "B - A", "significant (95%)");
    int n_common = 0;
    for (int64_t i = 0; i < ma.n; i++) {
        if (seen_before(&ma, i)) continue;
        const char *name = ma.v[i].r.name;
        int64_t kb = pick(&mb, name);
        if (kb < 0) continue;
        const keel_reg_meas *x = &ma.v[pick(&ma, name)], *y = &mb.v[kb];
        n_common++;
        char sa[96], sb[96], d[32] = "-", sig[96] = "?";
        fmt_ci(&x->r, sa, sizeof sa);
        fmt_ci(&y->r, sb, sizeof sb);
        double delta = y->r.value - x->r.value;
        if (isfinite(delta)) snprintf(d, sizeof d, "%+.3f", delta);
        double se = sqrt(x->r.se * x->r.se + y->r.se * y->r.se);
        if (isfinite(delta) && isfinite(se)) {
            bool yes = fabs(delta) > 1.96 * se;
            bool better = x->r.higher_is_better ? delta > 0 : delta < 0;
            snprintf(sig, sizeof sig, "%s", !yes ? "no" : delta == 0 ? "no" : better ? "yes (B better)" : "yes (B worse)");
        }
        if (strcmp(x->r.metric, y->r.metric)) snprintf(sig, sizeof sig, "? (metrics differ: %s vs %s)", x->r.metric, y->r.metric);
        ok = ok && keel_buf_printf(&o, "  %-18s %-9s %-24s %-24s %9s  %s%s\n", name, x->r.metric, sa, sb, d, sig,
                                   x->sampled || y->sampled ? "  (sampled)" : "");
    }
    if (!n_common) ok = ok && keel_buf_appends(&o, "  (no capability measured on both)\n");
    for (int pass = 0; pass < 2; pass++) {
        const meas_list *p = pass ? &mb : &ma, *q = pass ? &ma : &mb;
        bool first = true;
        for (int64_t i = 0; i < p->n; i++) {
            if (seen_before(p, i) || pick(q, p->v[i].r.name) >= 0) continue;
            ok = ok && keel_buf_printf(&o, "%s %s", first ? (pass ? "only in B:" : "only in A:") : ",", p->v[i].r.name);
            first = false;
        }
        if (!first) ok = ok && keel_buf_appends(&o, "\n");
    }
    ok = ok && keel_buf_appends(&o, "significant: |B - A| > 1.96 * sqrt(se_A^2 + se_B^2) (unpaired; conservative when "
                                    "both were scored on the same items)\n");
    if (!ok) s = KEEL_FAIL(err, KEEL_ERR_NOMEM, "%s: out of memory", r->path);
done:
    free(ma.v);
    free(mb.v);
    keel_reg_ckpt_free(&ca);
    keel_reg_ckpt_free(&cb);
    if (s != KEEL_OK) { free(o.data); return s; }
    *out = o.data;
    return KEEL_OK;
}
