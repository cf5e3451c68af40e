// SPDX-License-Identifier: MIT
// adapter.c — keel_adapter (include/keel.h): a PEFT LoRA directory loaded for
// the inference path. Reading and checking the directory is adapters/lora.c's
// keel_lora_load, run on a frozen training view of the model (no base tensor
// is copied; the view only gives the loader the linears' shapes and keeps A
// and B in its parameter buffer), so the format rules, the errors and the
// GGUF q/k row permutation are those of the trainer. This file then lists the
// A/B pointers per (layer, projection) slot for model/forward.c.
#include "eval/eval.h"
#include "adapters/lora.h"

struct keel_adapter {
    const keel_model *m;
    keel_train_model tm;   // frozen view of m; tm.p holds every A and B
    keel_lora lo;
    const float **A, **B;  // (n_layer * 7) slot pointers into tm.p.w, NULL when not adapted
    const float **Bt;      // (n_layer * 7) slot pointers into bt
    float *bt;             // every adapted B transposed, (r, n_out) each, one after another
    keel_fwd_lora fl;
};

static bool sel_none(const char *hf_name, void *ud) {
    (void)hf_name, (void)ud;
    return false;
}

keel_status keel_adapter_load(const keel_model *m, const char *dir, keel_adapter **out, keel_err *err) {
    if (out) *out = NULL;
    if (!m || !dir || !out) return KEEL_FAIL(err, KEEL_ERR_INVALID, "keel_adapter_load: model, dir and out must not be NULL");
    if (!keel_path_is_dir(dir))
        return KEEL_FAIL(err, KEEL_ERR_IO, "%s: not an adapter directory (want adapter_config.json and "
                                           "adapter_model.safetensors in it)", dir);
    keel_adapter *a = keel_calloc(1, sizeof *a);
    if (!a) return KEEL_FAIL(err, KEEL_ERR_NOMEM, "%s: out of memory", dir);
    a->m = m;
    keel_status st = keel_train_model_init(&a->tm, m, sel_none, NULL, err);
    if (st) {
        keel_free(a);
        return st;
    }
    st = keel_lora_load(&a->lo, &a->tm, dir, 0, err);
    if (st) {
        keel_train_model_free(&a->tm);
        keel_free(a);
        return st;
    }
    const size_t nslot = (size_t)m->desc.n_layer * KEEL_LORA_N_PROJ;
    const int64_t r = a->lo.r;
    size_t nbt = 0;
    for (int i = 0; i < a->lo.n; i++) nbt += (size_t)(a->lo.mods[i].n_out * r);
    a->A = keel_calloc(nslot, sizeof *a->A);
    a->B = keel_calloc(nslot, sizeof *a->B);
    a->Bt = keel_calloc(nslot, sizeof *a->Bt);
    a->bt = keel_malloc(nbt * sizeof(float));
    if (!a->A || !a->B || !a->Bt || !a->bt) {
        keel_adapter_free(a);
        return KEEL_FAIL(err, KEEL_ERR_NOMEM, "%s: out of memory", dir);
    }
    float *bt = a->bt;
    for (int i = 0; i < a->lo.n; i++) {
        const keel_lora_mod *md = &a->lo.mods[i];
        size_t slot = (size_t)md->layer * KEEL_LORA_N_PROJ + (size_t)md->proj;
        const float *B = keel_lora_B(&a->lo, i); // (n_out, r)
        a->A[slot] = keel_lora_A(&a->lo, i);
        a->B[slot] = B;
        a->Bt[slot] = bt;
        for (int64_t o = 0; o < md->n_out; o++)
            for (int64_t k = 0; k < r; k++) bt[k * md->n_out + o] = B[o * r + k];
        bt += md->n_out * r;
    }
    a->fl.r = a->lo.r;
    a->fl.scale = a->lo.scale;
    a->fl.A = a->A;
    a->fl.B = a->B;
    a->fl.Bt = a->Bt;
    *out = a;
    return KEEL_OK;
}

void keel_adapter_free(keel_adapter *a) {
    if (!a) return;
    keel_lora_free(&a->lo);
    keel_train_model_free(&a->tm);
    keel_free(a->A);
    keel_free(a->B);
    keel_free(a->Bt);
    keel_free(a->bt);
    keel_free(a);
}

const keel_model *keel_adapter_model(const keel_adapter *a) { return a ? a->m : NULL; }

const keel_fwd_lora *keel_adapter_fwd(const keel_adapter *a) { return a ? &a->fl : NULL; }
