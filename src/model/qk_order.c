// SPDX-License-Identifier: MIT
// qk_order.c — the one place that maps q_proj/k_proj rows between GGUF's
// Meta order (interleaved RoPE) and Hugging Face's rotate-half order. In a
// head of hd rows, Meta row 2i + j holds HF row j*hd/2 + i (llama.cpp's
// converter permutes HF weights this way). Used when exporting GGUF-based
// weights or LoRA B matrices to HF/PEFT layouts, and when loading them back.
#include "model/train.h"

void keel_qk_rows_permute(float *dst, const float *src, int64_t n_rows, int64_t hd, int64_t cols, bool to_hf) {
    KEEL_ASSERT(hd > 0 && hd % 2 == 0 && n_rows % hd == 0 && dst != src);
    for (int64_t h = 0; h < n_rows / hd; h++)
        for (int64_t i = 0; i < hd / 2; i++)
            for (int64_t j = 0; j < 2; j++) {
                int64_t meta = h * hd + 2 * i + j, hf = h * hd + j * (hd / 2) + i;
                int64_t to = to_hf ? hf : meta, from = to_hf ? meta : hf;
                memcpy(dst + to * cols, src + from * cols, (size_t)cols * sizeof(float));
            }
}
