// SPDX-License-Identifier: MIT
// loop_job.c — the bridge from the YAML job (job/job.h) to the training loop
// (loop.h): keel_job_load, then the values copied into keel_train_cfg, paths
// ~-expanded. Kept apart from loop.c because job.h and train/train.h both
// name their schedule enum values KEEL_SCHED_*.
#include "train/loop.h"
#include "job/job.h"

static char *dup_path(const char *p) {
    return (p && *p) ? keel_job_expand_path(p) : NULL;
}

keel_status keel_train_cfg_load(keel_train_cfg *cfg, const char *path, const char *const *sets,
                                int32_t n_sets, const char *out_dir, keel_err *err) {
    memset(cfg, 0, sizeof *cfg);
    keel_job *job = keel_calloc(1, sizeof *job);
    if (!job) return KEEL_FAIL(err, KEEL_ERR_NOMEM, "%s: out of memory", path);
    keel_status st = keel_job_load(job, path, sets, n_sets, err);
    if (st) {
        keel_free(job);
        return st;
    }
    cfg->job = job;
    size_t len = 0;
    if ((st = keel_job_to_yaml(job, &cfg->yaml, &len, err))) {
        keel_train_cfg_free(cfg);
        return st;
    }
    cfg->model = dup_path(job->model);
    cfg->method = (int)job->method;
    cfg->lora_r = job->lora.r;
    cfg->lora_alpha = job->lora.alpha;
    cfg->lora_dropout = job->lora.dropout;
    cfg->lora_targets = (const char *const *)job->lora.target_modules.v;
    cfg->n_lora_targets = job->lora.target_modules.n;
    cfg->lora_rslora = job->lora.use_rslora;
    cfg->lora_init = (int)job->lora.init;
    cfg->trainable = (const char *const *)job->full.trainable.v;
    cfg->n_trainable = job->full.trainable.n;
    cfg->freeze = (const char *const *)job->full.freeze.v;
    cfg->n_freeze = job->full.freeze.n;
    cfg->freeze_layers = job->full.freeze_layers ? job->full.freeze_layers : "";
    cfg->train_path = dup_path(job->data.train);
    cfg->val_path = dup_path(job->data.validation);
    cfg->data_format = (int)job->data.format;
    cfg->val_split = job->data.validation_split;
    cfg->max_seq_len = job->data.max_seq_len;
    cfg->packing = job->data.packing;
    cfg->shuffle = job->data.shuffle;
    cfg->lr = job->train.lr;
    cfg->weight_decay = job->train.weight_decay;
    cfg->beta1 = job->train.betas[0];
    cfg->beta2 = job->train.betas[1];
    cfg->eps = job->train.eps;
    cfg->clip = job->train.clip_grad_norm;
    cfg->batch_size = job->train.batch_size;
    cfg->grad_accum = job->train.grad_accum;
    cfg->epochs = job->train.epochs;
    cfg->threads = job->train.threads;
    cfg->max_steps = job->train.max_steps;
    cfg->warmup_steps = job->train.warmup_steps;
    cfg->schedule = (int)job->train.schedule;
    cfg->seed = job->train.seed;
    cfg->out_dir = dup_path(out_dir ? out_dir : job->output.dir);
    cfg->save_every = job->output.save_every;
    cfg->caps = &job->caps;
    cfg->monitor_every = job->monitor.every;
    cfg->monitor_sample = job->monitor.sample;
    cfg->monitor_seed = job->monitor.seed;
    cfg->on_violation = job->monitor.on_violation;
    cfg->decide = (int)job->monitor.decide;
    cfg->max_retries = job->monitor.max_retries;
    cfg->lr_factor = job->monitor.lr_factor;
    cfg->weight_factor = job->monitor.weight_factor;
    if (out_dir) { // the resolved job names the directory it really runs in
        char *d = keel_strdup(out_dir);
        if (!d) st = KEEL_FAIL(err, KEEL_ERR_NOMEM, "%s: out of memory", path);
        else {
            free(job->output.dir);
            job->output.dir = d;
            free(cfg->yaml);
            cfg->yaml = NULL;
            st = keel_job_to_yaml(job, &cfg->yaml, &len, err);
        }
    }
    if (!st && (!cfg->model || !cfg->train_path || !cfg->out_dir || (job->data.validation && *job->data.validation && !cfg->val_path)))
        st = KEEL_FAIL(err, KEEL_ERR_NOMEM, "%s: out of memory", path);
    if (st) keel_train_cfg_free(cfg);
    return st;
}

void keel_train_cfg_free(keel_train_cfg *cfg) {
    if (!cfg) return;
    if (cfg->job) keel_job_free(cfg->job);
    keel_free(cfg->job);
    free(cfg->yaml);
    free((char *)cfg->model);
    free((char *)cfg->train_path);
    free((char *)cfg->val_path);
    free((char *)cfg->out_dir);
    memset(cfg, 0, sizeof *cfg);
}
