// SPDX-License-Identifier: MIT
// checkpoint.c — keel_checkpoint_model (include/keel.h): what a checkpoint
// path holds, as the commands that run a model (`keel generate --run`,
// `keel eval`) load it: a model (a .gguf file, or a directory with
// config.json: a full fine-tuning checkpoint or a base) or a PEFT LoRA
// adapter directory (adapter_config.json) plus the base model it goes on.
// The base of an adapter comes from the caller, else from the adapter's
// base_model_name_or_path (keel's trainer writes the job's model path), else
// from the run's job.yaml two levels up (RUN/checkpoints/step-N).
#include "eval/eval.h"
#include "job/job.h"

#include <cjson/cJSON.h>
#include <sys/stat.h>

static bool exists(const char *p) {
    struct stat sb;
    return p && *p && stat(p, &sb) == 0;
}

static bool has_file(const char *dir, const char *name) {
    char *p = keel_path_join(dir, name);
    struct stat sb;
    bool ok = p && stat(p, &sb) == 0 && S_ISREG(sb.st_mode);
    keel_free(p);
    return ok;
}

// base_model_name_or_path of dir/adapter_config.json when it names an existing path; else NULL.
static char *base_from_config(const char *dir) {
    char *cp = keel_path_join(dir, "adapter_config.json"), *txt = NULL, *out = NULL;
    size_t len = 0;
    keel_err quiet;
    if (cp && keel_read_file(cp, &txt, &len, &quiet) == KEEL_OK) {
        cJSON *j = cJSON_ParseWithLength(txt, len);
        const cJSON *v = j ? cJSON_GetObjectItemCaseSensitive(j, "base_model_name_or_path") : NULL;
        if (cJSON_IsString(v) && exists(v->valuestring)) out = keel_strdup(v->valuestring);
        cJSON_Delete(j);
        keel_free(txt);
    }
    keel_free(cp);
    return out;
}

// The model of the run whose checkpoint dir is (DIR/../../job.yaml), when it exists; else NULL.
static char *base_from_run(const char *dir) {
    size_t n = strlen(dir);
    char *jp = keel_malloc(n + 32), *out = NULL;
    if (!jp) return NULL;
    snprintf(jp, n + 32, "%s/../../job.yaml", dir);
    if (exists(jp)) {
        keel_job *job = keel_calloc(1, sizeof *job);
        keel_err quiet;
        if (job && keel_job_init(job, &quiet) == KEEL_OK) {
            if (keel_job_parse_file(job, jp, &quiet) == KEEL_OK && job->model && *job->model) {
                char *p = keel_job_expand_path(job->model);
                if (p && exists(p)) out = keel_strdup(p);
                keel_free(p);
            }
            keel_job_free(job);
        }
        keel_free(job);
    }
    keel_free(jp);
    return out;
}

keel_status keel_checkpoint_model(const char *path, const char *base, char **model, char **adapter,
                                  keel_err *err) {
    if (model) *model = NULL;
    if (adapter) *adapter = NULL;
    if (!path || !model || !adapter)
        return KEEL_FAIL(err, KEEL_ERR_INVALID, "keel_checkpoint_model: path, model and adapter must not be NULL");
    struct stat sb;
    if (stat(path, &sb) != 0) return KEEL_FAIL(err, KEEL_ERR_IO, "%s: no such file or directory", path);
    const bool dir = S_ISDIR(sb.st_mode);
    if (dir && has_file(path, "adapter_config.json")) {
        char *b = NULL;
        if (base && *base) {
            if (!exists(base)) return KEEL_FAIL(err, KEEL_ERR_IO, "%s: base model not found (for the adapter %s)", base, path);
            b = keel_strdup(base);
        } else {
            b = base_from_config(path);
            if (!b) b = base_from_run(path);
            if (!b)
                return KEEL_FAIL(err, KEEL_ERR_INVALID,
                                 "%s/adapter_config.json: base_model_name_or_path is not a path that exists here, and "
                                 "no ../../job.yaml names one; give the base model (-m MODEL)", path);
        }
        char *a = keel_strdup(path);
        if (!b || !a) {
            keel_free(b);
            keel_free(a);
            return KEEL_FAIL(err, KEEL_ERR_NOMEM, "%s: out of memory", path);
        }
        *model = b;
        *adapter = a;
        return KEEL_OK;
    }
    if (dir ? has_file(path, "config.json") : S_ISREG(sb.st_mode)) {
        *model = keel_strdup(path);
        return *model ? KEEL_OK : KEEL_FAIL(err, KEEL_ERR_NOMEM, "%s: out of memory", path);
    }
    return KEEL_FAIL(err, KEEL_ERR_FORMAT,
                     "%s: neither a model (a .gguf file, a directory with config.json) nor a LoRA adapter "
                     "(a directory with adapter_config.json)", path);
}
