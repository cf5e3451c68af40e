// SPDX-License-Identifier: MIT
// dtype.c — storage types of tensors in model files: names, block sizes and
// byte sizes. Type ids equal ggml's (ggml/include/ggml.h, enum ggml_type), so a
// GGUF tensor's type maps directly. Block layouts (ggml-common.h):
//   Q4_0: 32 weights = f16 scale d + 16 bytes of 4-bit codes       -> 18 bytes
//   Q4_1: 32 weights = f16 d + f16 min m + 16 bytes of 4-bit codes -> 20 bytes
//   Q8_0: 32 weights = f16 d + 32 int8                             -> 34 bytes
#include "io/io.h"

#include <stdint.h>

const char *keel_dtype_name(keel_dtype t) {
    switch (t) {
    case KEEL_DTYPE_F32: return "F32";
    case KEEL_DTYPE_F16: return "F16";
    case KEEL_DTYPE_Q4_0: return "Q4_0";
    case KEEL_DTYPE_Q4_1: return "Q4_1";
    case KEEL_DTYPE_Q8_0: return "Q8_0";
    case KEEL_DTYPE_BF16: return "BF16";
    }
    return "?";
}

bool keel_dtype_known(uint32_t t) {
    switch (t) {
    case KEEL_DTYPE_F32: case KEEL_DTYPE_F16: case KEEL_DTYPE_Q4_0:
    case KEEL_DTYPE_Q4_1: case KEEL_DTYPE_Q8_0: case KEEL_DTYPE_BF16:
        return true;
    default:
        return false;
    }
}

int keel_dtype_block(keel_dtype t) {
    switch (t) {
    case KEEL_DTYPE_F32: case KEEL_DTYPE_F16: case KEEL_DTYPE_BF16: return 1;
    case KEEL_DTYPE_Q4_0: case KEEL_DTYPE_Q4_1: case KEEL_DTYPE_Q8_0: return 32;
    }
    return 0;
}

// Bytes of one block (one element for the float types); 0 if unknown.
static size_t block_bytes(keel_dtype t) {
    switch (t) {
    case KEEL_DTYPE_F32: return 4;
    case KEEL_DTYPE_F16: case KEEL_DTYPE_BF16: return 2;
    case KEEL_DTYPE_Q4_0: return 18;
    case KEEL_DTYPE_Q4_1: return 20;
    case KEEL_DTYPE_Q8_0: return 34;
    }
    return 0;
}

bool keel_dtype_nbytes(keel_dtype t, const int64_t ne[4], size_t *out) {
    int blk = keel_dtype_block(t);
    size_t bb = block_bytes(t);
    if (blk <= 0 || bb == 0) return false;
    for (int i = 0; i < 4; i++)
        if (ne[i] <= 0) return false;
    if (ne[0] % blk != 0) return false;
    // rows of ne[0] elements, then the outer dims; every step checked.
    uint64_t n = (uint64_t)(ne[0] / blk);
    if (n > SIZE_MAX / bb) return false;
    size_t total = (size_t)n * bb;
    for (int i = 1; i < 4; i++) {
        if ((uint64_t)ne[i] > SIZE_MAX / total) return false;
        total *= (size_t)ne[i];
    }
    *out = total;
    return true;
}
