// SPDX-License-Identifier: MIT
// peft.c — the PEFT LoRA adapter layout (declared in io.h): adapter_config.json
// and the tensor keys of adapter_model.safetensors, so an adapter keel trains
// loads with peft.PeftModel.from_pretrained unchanged. The config keys are
// those LoraConfig.save_pretrained writes (checked against PEFT 0.21 by
// tests/unit/test_writers.c, golden tests/golden/peft.json from
// tools/golden_optim.py), limited to the ones PEFT has read since 0.9 so
// older versions load it too; keys left out take PEFT's defaults.
#include "io/io.h"

#include <cjson/cJSON.h>
#include <math.h>

keel_peft_lora_config keel_peft_lora_default_config(void) {
    keel_peft_lora_config c = {.r = 8, .lora_alpha = 8, .lora_dropout = 0.0, .inference_mode = true};
    return c;
}

static int cmp_str(const void *a, const void *b) {
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

keel_status keel_peft_config_json(const keel_peft_lora_config *c, char **out, keel_err *err) {
    *out = NULL;
    if (c->r < 1) return KEEL_FAIL(err, KEEL_ERR_INVALID, "peft config: r = %d must be >= 1", (int)c->r);
    if (!(c->lora_alpha > 0) || !isfinite(c->lora_alpha))
        return KEEL_FAIL(err, KEEL_ERR_INVALID, "peft config: lora_alpha %g must be > 0", c->lora_alpha);
    if (!(c->lora_dropout >= 0 && c->lora_dropout < 1))
        return KEEL_FAIL(err, KEEL_ERR_INVALID, "peft config: lora_dropout %g not in [0, 1)",
                         c->lora_dropout);
    if (c->n_target_modules == 0 || !c->target_modules)
        return KEEL_FAIL(err, KEEL_ERR_INVALID, "peft config: no target_modules");
    for (size_t i = 0; i < c->n_target_modules; i++)
        if (!c->target_modules[i] || !*c->target_modules[i])
            return KEEL_FAIL(err, KEEL_ERR_INVALID, "peft config: target_modules[%zu] is empty", i);

    // PEFT keeps target_modules as a set: sorted, without repeats.
    const char **tm = keel_malloc(c->n_target_modules * sizeof *tm);
    if (!tm) return KEEL_FAIL(err, KEEL_ERR_NOMEM, "peft config: out of memory");
    memcpy(tm, c->target_modules, c->n_target_modules * sizeof *tm);
    qsort(tm, c->n_target_modules, sizeof *tm, cmp_str);

    // Keys added in sorted order: PEFT writes json.dumps(sort_keys=True).
    cJSON *j = cJSON_CreateObject();
    bool ok = j != NULL;
    ok = ok && cJSON_AddObjectToObject(j, "alpha_pattern");
    ok = ok && cJSON_AddNullToObject(j, "auto_mapping");
    ok = ok && (c->base_model_name_or_path
                    ? cJSON_AddStringToObject(j, "base_model_name_or_path", c->base_model_name_or_path) != NULL
                    : cJSON_AddNullToObject(j, "base_model_name_or_path") != NULL);
    ok = ok && cJSON_AddStringToObject(j, "bias", c->bias ? c->bias : "none");
    ok = ok && cJSON_AddFalseToObject(j, "fan_in_fan_out");
    ok = ok && cJSON_AddBoolToObject(j, "inference_mode", c->inference_mode);
    ok = ok && cJSON_AddTrueToObject(j, "init_lora_weights");
    ok = ok && cJSON_AddNullToObject(j, "layer_replication");
    ok = ok && cJSON_AddNullToObject(j, "layers_pattern");
    ok = ok && cJSON_AddNullToObject(j, "layers_to_transform");
    ok = ok && cJSON_AddObjectToObject(j, "loftq_config");
    ok = ok && cJSON_AddNumberToObject(j, "lora_alpha", c->lora_alpha);
    ok = ok && cJSON_AddNumberToObject(j, "lora_dropout", c->lora_dropout);
    ok = ok && cJSON_AddNullToObject(j, "megatron_config");
    ok = ok && cJSON_AddStringToObject(j, "megatron_core", "megatron.core");
    ok = ok && cJSON_AddNullToObject(j, "modules_to_save");
    ok = ok && cJSON_AddStringToObject(j, "peft_type", "LORA");
    ok = ok && cJSON_AddNumberToObject(j, "r", c->r);
    ok = ok && cJSON_AddObjectToObject(j, "rank_pattern");
    ok = ok && cJSON_AddNullToObject(j, "revision");
    cJSON *arr = ok ? cJSON_AddArrayToObject(j, "target_modules") : NULL;
    ok = ok && arr;
    for (size_t i = 0; ok && i < c->n_target_modules; i++) {
        if (i > 0 && strcmp(tm[i], tm[i - 1]) == 0) continue;
        cJSON *s = cJSON_CreateString(tm[i]);
        ok = s && cJSON_AddItemToArray(arr, s);
        if (!ok) cJSON_Delete(s);
    }
    ok = ok && cJSON_AddStringToObject(j, "task_type", c->task_type ? c->task_type : "CAUSAL_LM");
    ok = ok && cJSON_AddFalseToObject(j, "use_dora");
    ok = ok && cJSON_AddBoolToObject(j, "use_rslora", c->use_rslora);
    char *text = ok ? cJSON_Print(j) : NULL;
    cJSON_Delete(j);
    free(tm);
    if (!text) return KEEL_FAIL(err, KEEL_ERR_NOMEM, "peft config: out of memory");
    *out = text;
    return KEEL_OK;
}

keel_status keel_peft_write_config(const char *path, const keel_peft_lora_config *c, keel_err *err) {
    char *text = NULL;
    keel_status st = keel_peft_config_json(c, &text, err);
    if (st != KEEL_OK) return st;
    keel_iobuf b[2] = {{text, strlen(text)}, {"\n", 1}};
    st = keel_atomic_write_bufs(path, b, 2, err);
    free(text);
    return st;
}

int keel_peft_lora_key(char *out, size_t cap, const char *hf_module, char ab) {
    if ((ab != 'A' && ab != 'B') || !hf_module || !*hf_module) return -1;
    size_t len = strlen(hf_module);
    static const char sfx[] = ".weight";
    if (len > sizeof sfx - 1 && strcmp(hf_module + len - (sizeof sfx - 1), sfx) == 0)
        len -= sizeof sfx - 1;
    int n = snprintf(out, cap, "base_model.model.%.*s.lora_%c.weight", (int)len, hf_module, ab);
    return n < 0 || (size_t)n >= cap ? -1 : n;
}

int keel_peft_lora_key_llama(char *out, size_t cap, int layer, const char *proj, char ab) {
    static const char *attn[] = {"q_proj", "k_proj", "v_proj", "o_proj"};
    static const char *mlp[] = {"gate_proj", "up_proj", "down_proj"};
    const char *block = NULL;
    for (int i = 0; i < 4 && !block; i++)
        if (strcmp(proj, attn[i]) == 0) block = "self_attn";
    for (int i = 0; i < 3 && !block; i++)
        if (strcmp(proj, mlp[i]) == 0) block = "mlp";
    if (!block || layer < 0) return -1;
    char mod[128];
    int n = snprintf(mod, sizeof mod, "model.layers.%d.%s.%s", layer, block, proj);
    if (n < 0 || (size_t)n >= sizeof mod) return -1;
    return keel_peft_lora_key(out, cap, mod, ab);
}
