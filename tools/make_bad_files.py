#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
# make_bad_files.py — writes the handcrafted GGUF and safetensors seed files of
# tests/fuzz/corpus/{gguf,safetensors}/: valid_* files the readers must accept and
# bad_* files, each named after its one defect, that they must reject with a
# message (tests/unit/test_gguf.c and test_safetensors.c check status and text).
# Idea after llama.cpp tests/test-gguf.cpp; the bytes are built here from the
# format specs (ggml docs/gguf.md, safetensors README). Deterministic output.
# Usage: python3 tools/make_bad_files.py [repo_root]   (stdlib only)
import json
import os
import struct
import sys

ROOT = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "..")
GGUF_DIR = os.path.join(ROOT, "tests", "fuzz", "corpus", "gguf")
ST_DIR = os.path.join(ROOT, "tests", "fuzz", "corpus", "safetensors")

# ---- GGUF -----------------------------------------------------------------------

U8, I8, U16, I16, U32, I32, F32, BOOL, STR, ARR, U64, I64, F64 = range(13)
SCALAR_FMT = {U8: "<B", I8: "<b", U16: "<H", I16: "<h", U32: "<I", I32: "<i", F32: "<f",
              BOOL: "<?", U64: "<Q", I64: "<q", F64: "<d"}
# ggml type id -> (block elements, block bytes)
T_F32, T_F16, T_Q4_0, T_Q4_1, T_Q8_0, T_BF16 = 0, 1, 2, 3, 8, 30
BLOCK = {T_F32: (1, 4), T_F16: (1, 2), T_Q4_0: (32, 18), T_Q4_1: (32, 20), T_Q8_0: (32, 34), T_BF16: (1, 2)}


def gstr(s):
    b = s.encode() if isinstance(s, str) else s
    return struct.pack("<Q", len(b)) + b


def gvalue(t, v):
    """Encode a value of GGUF type t. Arrays: v = (elem_type, [elements])."""
    if t == STR:
        return gstr(v)
    if t == ARR:
        et, items = v
        return struct.pack("<IQ", et, len(items)) + b"".join(gvalue(et, x) for x in items)
    return struct.pack(SCALAR_FMT[t], v)


def gkv(key, t, v):
    return gstr(key) + struct.pack("<I", t) + gvalue(t, v)


def nbytes(ttype, ne):
    blk, bb = BLOCK[ttype]
    n = 1
    for x in ne[1:]:
        n *= x
    return ne[0] // blk * bb * n


def tensor_bytes(seed, size):
    # simple deterministic filler (an LCG); the tests compare a few bytes of it
    out = bytearray(size)
    x = seed * 2654435761 % 2**32
    for i in range(size):
        x = (x * 1103515245 + 12345) % 2**31
        out[i] = (x >> 16) & 0xFF
    return bytes(out)


def gguf(kvs, tensors, version=3, alignment=32, magic=b"GGUF", n_kv=None, n_tensors=None, pad_data=True):
    """kvs: list of encoded kv bytes. tensors: list of dicts name, ne, type, and optional
    offset / data; offsets default to packed aligned placement."""
    infos, blobs, off = [], [], 0
    for i, t in enumerate(tensors):
        size = t["nbytes"] if "nbytes" in t else nbytes(t["type"], t["ne"]) if t["type"] in BLOCK else 32
        o = t.get("offset", off)
        data = t.get("data", tensor_bytes(i + 1, size))
        infos.append(gstr(t["name"]) + struct.pack("<I", t.get("n_dims", len(t["ne"])))
                     + b"".join(struct.pack("<Q", x) for x in t["ne"])
                     + struct.pack("<IQ", t["type"], o))
        blobs.append((o, data))
        if data:  # an empty blob (offset-past-end cases) must not grow the file
            off = max(off, o + len(data))
        off = (off + alignment - 1) // alignment * alignment
    head = magic + struct.pack("<I", version)
    head += struct.pack("<QQ", len(tensors) if n_tensors is None else n_tensors, len(kvs) if n_kv is None else n_kv)
    head += b"".join(kvs) + b"".join(infos)
    if not tensors and not pad_data:
        return head
    start = (len(head) + alignment - 1) // alignment * alignment
    body = bytearray(off)
    for o, d in blobs:
        if o + len(d) <= len(body):
            body[o:o + len(d)] = d
    return head + b"\0" * (start - len(head)) + bytes(body)


def all_kv_types():
    return [
        gkv("general.architecture", STR, "llama"),
        gkv("test.u8", U8, 200), gkv("test.i8", I8, -100),
        gkv("test.u16", U16, 60000), gkv("test.i16", I16, -30000),
        gkv("test.u32", U32, 4000000000), gkv("test.i32", I32, -7),
        gkv("test.f32", F32, 0.5), gkv("test.bool", BOOL, True),
        gkv("test.str", STR, "héllo"),
        gkv("test.u64", U64, 2**63 + 5), gkv("test.i64", I64, -(2**40)),
        gkv("test.f64", F64, 1e-5),
        gkv("test.arr_i32", ARR, (I32, [1, -2, 3])),
        gkv("test.arr_str", ARR, (STR, ["a", "", "ccc"])),
        gkv("test.arr_empty", ARR, (F32, [])),
        gkv("test.arr_arr", ARR, (ARR, [(U8, [1, 2]), (STR, ["x"]), (ARR, [(I64, [9])])])),
        gkv("general.alignment", U32, 64),
    ]


def valid_tensors():
    return [
        {"name": "t.f32", "ne": [4, 3], "type": T_F32,
         "data": b"".join(struct.pack("<f", i * 0.25) for i in range(12))},
        {"name": "t.f16", "ne": [8], "type": T_F16},
        {"name": "t.bf16", "ne": [2, 2, 2], "type": T_BF16},
        {"name": "t.q8_0", "ne": [32, 2], "type": T_Q8_0},
        {"name": "t.q4_0", "ne": [64], "type": T_Q4_0},
        {"name": "t.q4_1", "ne": [32, 1, 1, 2], "type": T_Q4_1},
    ]


def one_tensor(**kw):
    t = {"name": "w", "ne": [8, 2], "type": T_F32}
    t.update(kw)
    return [t]


def gguf_files():
    base_kv = [gkv("general.architecture", STR, "llama")]
    f = {}
    f["valid_all_kv_types.gguf"] = gguf(all_kv_types(), valid_tensors(), alignment=64)
    f["valid_v2.gguf"] = gguf(base_kv, one_tensor(), version=2)
    f["valid_no_tensors.gguf"] = gguf(base_kv, [], pad_data=False)
    f["valid_no_kv.gguf"] = gguf([], one_tensor())
    f["valid_empty_header.gguf"] = gguf([], [], pad_data=False)
    f["valid_gap_between_tensors.gguf"] = gguf([], [{"name": "a", "ne": [8], "type": T_F32, "offset": 64},
                                                   {"name": "b", "ne": [8], "type": T_F32, "offset": 0}])

    ok = gguf(base_kv, one_tensor())
    f["bad_empty.gguf"] = b""
    f["bad_truncated_magic.gguf"] = b"GG"
    f["bad_magic.gguf"] = b"GGUZ" + ok[4:]
    f["bad_magic_ggml.gguf"] = b"lmgg" + ok[4:]
    # v1: u32 counts (the legacy layout): rejected before anything else is read
    f["bad_version1.gguf"] = b"GGUF" + struct.pack("<III", 1, 0, 1) + gkv("general.architecture", STR, "llama")
    f["bad_version0.gguf"] = gguf(base_kv, one_tensor(), version=0)
    f["bad_version4.gguf"] = gguf(base_kv, one_tensor(), version=4)
    f["bad_big_endian.gguf"] = b"GGUF" + struct.pack(">I", 3) + ok[8:]
    f["bad_truncated_header.gguf"] = ok[:14]
    hdr = 24
    f["bad_truncated_in_kv_key.gguf"] = ok[:hdr + 10]
    kv_end = hdr + len(base_kv[0])
    f["bad_truncated_in_kv_value.gguf"] = ok[:kv_end - 2]
    f["bad_truncated_in_tensor_info.gguf"] = ok[:kv_end + 20]
    f["bad_truncated_in_tensor_ne.gguf"] = (b"GGUF" + struct.pack("<IQQ", 3, 1, 1) + base_kv[0] + gstr("w")
                                           + struct.pack("<IQQ", 4, 8, 2) + b"\0" * 5)
    f["bad_truncated_data.gguf"] = ok[:-8]
    f["bad_huge_n_tensors.gguf"] = gguf(base_kv, one_tensor(), n_tensors=2**63)
    f["bad_huge_n_tensors_u64max.gguf"] = gguf(base_kv, one_tensor(), n_tensors=2**64 - 1)
    f["bad_huge_n_kv.gguf"] = gguf(base_kv, one_tensor(), n_kv=2**62)
    f["bad_n_kv_too_many.gguf"] = gguf(base_kv, [], n_kv=3, pad_data=False)
    f["bad_n_tensors_too_many.gguf"] = gguf(base_kv, one_tensor(), n_tensors=3)
    f["bad_huge_key_len.gguf"] = gguf([struct.pack("<Q", 2**62) + b"general.architecture"], [])
    f["bad_huge_string_len.gguf"] = gguf([gstr("k") + struct.pack("<IQ", STR, 2**63 + 1) + b"abc"], [])
    f["bad_huge_array_len.gguf"] = gguf([gstr("k") + struct.pack("<IIQ", ARR, U32, 2**61) + b"\0" * 16], [])
    f["bad_huge_string_array_len.gguf"] = gguf([gstr("k") + struct.pack("<IIQ", ARR, STR, 2**60) + gstr("a")], [])
    f["bad_huge_nested_array_len.gguf"] = gguf(
        [gstr("k") + struct.pack("<IIQ", ARR, ARR, 1) + struct.pack("<IQ", U8, 2**62)], [])
    ti = struct.pack("<Q", 2**63) + b"w" + struct.pack("<I", 1) + struct.pack("<Q", 8) + struct.pack("<IQ", 0, 0)
    f["bad_huge_tensor_name_len.gguf"] = b"GGUF" + struct.pack("<IQQ", 3, 1, 0) + ti + b"\0" * 64
    f["bad_value_type.gguf"] = gguf([gstr("k") + struct.pack("<I", 13) + b"\0" * 8], [])
    f["bad_value_type_huge.gguf"] = gguf([gstr("k") + struct.pack("<I", 0xFFFFFFFF) + b"\0" * 8], [])
    f["bad_array_type.gguf"] = gguf([gstr("k") + struct.pack("<IIQ", ARR, 99, 1) + b"\0" * 8], [])
    f["bad_nested_array_type.gguf"] = gguf(
        [gstr("k") + struct.pack("<IIQ", ARR, ARR, 1) + struct.pack("<IQ", 42, 0)], [])
    deep = struct.pack("<IQ", U8, 0)
    for _ in range(20):
        deep = struct.pack("<IQ", ARR, 1) + deep
    f["bad_nested_array_depth.gguf"] = gguf([gstr("k") + struct.pack("<I", ARR) + deep], [])
    f["bad_duplicate_key.gguf"] = gguf(base_kv + base_kv, one_tensor())
    f["bad_key_empty.gguf"] = gguf([gkv("", U32, 1)], [])
    f["bad_key_with_nul.gguf"] = gguf([gkv(b"gen\0eral", U32, 1)], [])
    f["bad_n_dims_0.gguf"] = gguf(base_kv, one_tensor(ne=[], nbytes=32))
    f["bad_n_dims_5.gguf"] = gguf(base_kv, one_tensor(ne=[8, 1, 1, 1, 1]))
    f["bad_n_dims_huge.gguf"] = gguf(base_kv, one_tensor(ne=[8], n_dims=0xFFFFFFFF))
    f["bad_ne_zero.gguf"] = gguf(base_kv, one_tensor(ne=[8, 0], nbytes=32))
    f["bad_ne_negative.gguf"] = gguf(base_kv, one_tensor(ne=[8, 2**64 - 2], nbytes=32))
    f["bad_ne_product_overflow.gguf"] = gguf(base_kv, one_tensor(ne=[2**32, 2**32], nbytes=32))
    f["bad_nbytes_overflow.gguf"] = gguf(base_kv, one_tensor(ne=[2**31, 2**31], nbytes=32))
    f["bad_type_unknown.gguf"] = gguf(base_kv, one_tensor(type=1234, nbytes=64))
    f["bad_type_q4_k.gguf"] = gguf(base_kv, one_tensor(ne=[256, 2], type=12, nbytes=288))
    f["bad_type_removed_q4_2.gguf"] = gguf(base_kv, one_tensor(ne=[32], type=4, nbytes=32))
    f["bad_block_size.gguf"] = gguf(base_kv, one_tensor(ne=[31, 2], type=T_Q8_0, nbytes=68))
    f["bad_offset_unaligned.gguf"] = gguf(base_kv, one_tensor(offset=4))
    f["bad_offset_past_end.gguf"] = gguf(base_kv, one_tensor(offset=4096, data=b""))
    f["bad_offset_huge.gguf"] = gguf(base_kv, one_tensor(offset=2**64 - 32, data=b""))
    f["bad_size_past_end.gguf"] = gguf(base_kv, one_tensor(ne=[8, 200], data=b"\0" * 64))
    f["bad_overlap.gguf"] = gguf(base_kv, [{"name": "a", "ne": [16], "type": T_F32, "offset": 0},
                                           {"name": "b", "ne": [16], "type": T_F32, "offset": 32}])
    f["bad_same_offset.gguf"] = gguf(base_kv, [{"name": "a", "ne": [8], "type": T_F32, "offset": 0},
                                               {"name": "b", "ne": [8], "type": T_F32, "offset": 0}])
    f["bad_duplicate_tensor_name.gguf"] = gguf(base_kv, [{"name": "w", "ne": [8], "type": T_F32},
                                                         {"name": "w", "ne": [8], "type": T_F32}])
    f["bad_tensor_name_empty.gguf"] = gguf(base_kv, one_tensor(name=""))
    f["bad_alignment_not_pow2.gguf"] = gguf(base_kv + [gkv("general.alignment", U32, 48)], one_tensor(), alignment=48)
    f["bad_alignment_zero.gguf"] = gguf(base_kv + [gkv("general.alignment", U32, 0)], one_tensor())
    f["bad_alignment_string.gguf"] = gguf(base_kv + [gkv("general.alignment", STR, "32")], one_tensor())
    f["bad_data_section_past_end.gguf"] = gguf(base_kv + [gkv("general.alignment", U32, 1 << 20)], one_tensor(),
                                               alignment=1 << 20)[:200]
    return f


# ---- safetensors ---------------------------------------------------------------------


def st(header, data=b"", hlen=None, pad=True):
    h = header if isinstance(header, bytes) else json.dumps(header, separators=(",", ":")).encode()
    if pad:
        h += b" " * (-len(h) % 8)  # writers pad the header to 8 bytes with spaces
    return struct.pack("<Q", len(h) if hlen is None else hlen) + h + data


def f32(*xs):
    return b"".join(struct.pack("<f", x) for x in xs)


def st_files():
    f = {}
    data = f32(*[i * 0.5 for i in range(6)]) + struct.pack("<4e", 1.0, -2.0, 0.5, 65504.0) + struct.pack("<H", 0x3F80)
    hdr = {
        "__metadata__": {"format": "pt", "note": "keel test"},
        "w.f32": {"dtype": "F32", "shape": [2, 3], "data_offsets": [0, 24]},
        "w.f16": {"dtype": "F16", "shape": [4], "data_offsets": [24, 32]},
        "w.scalar": {"dtype": "BF16", "shape": [], "data_offsets": [32, 34]},
    }
    f["valid_small.safetensors"] = st(hdr, data)
    f["valid_empty.safetensors"] = st({})
    f["valid_no_padding.safetensors"] = st({"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}},
                                           f32(3.0), pad=False)
    f["valid_4d.safetensors"] = st({"x": {"dtype": "BF16", "shape": [2, 1, 3, 2], "data_offsets": [0, 24]}},
                                   bytes(range(24)))

    one = {"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}}
    f["bad_empty.safetensors"] = b""
    f["bad_truncated_length.safetensors"] = b"\x10\0\0"
    f["bad_header_len_past_end.safetensors"] = st(one, f32(1, 2), hlen=1000)
    f["bad_header_len_huge.safetensors"] = st(one, f32(1, 2), hlen=2**63)
    f["bad_header_len_over_limit.safetensors"] = st(one, f32(1, 2), hlen=100 * 1024 * 1024 + 1)
    f["bad_header_not_json.safetensors"] = st(b"{this is not json}", f32(1, 2))
    f["bad_header_truncated_json.safetensors"] = st(b'{"a": {"dtype": "F32", "sha', f32(1, 2))
    f["bad_header_not_object.safetensors"] = st(b"[1, 2, 3]")
    f["bad_header_trailing_garbage.safetensors"] = st(b'{}  xx')
    f["bad_header_zero_length.safetensors"] = st(b"", pad=False)
    f["bad_header_nul.safetensors"] = st(b'{"a":\0}', pad=False)
    f["bad_tensor_not_object.safetensors"] = st({"a": 5})
    f["bad_missing_dtype.safetensors"] = st({"a": {"shape": [2], "data_offsets": [0, 8]}}, f32(1, 2))
    f["bad_missing_shape.safetensors"] = st({"a": {"dtype": "F32", "data_offsets": [0, 8]}}, f32(1, 2))
    f["bad_missing_offsets.safetensors"] = st({"a": {"dtype": "F32", "shape": [2]}}, f32(1, 2))
    f["bad_dtype_i64.safetensors"] = st({"ids": {"dtype": "I64", "shape": [2], "data_offsets": [0, 16]}}, b"\0" * 16)
    f["bad_dtype_unknown.safetensors"] = st({"a": {"dtype": "Q4", "shape": [2], "data_offsets": [0, 8]}}, f32(1, 2))
    f["bad_dtype_not_string.safetensors"] = st({"a": {"dtype": 7, "shape": [2], "data_offsets": [0, 8]}}, f32(1, 2))
    f["bad_shape_negative.safetensors"] = st({"a": {"dtype": "F32", "shape": [-2], "data_offsets": [0, 8]}}, f32(1, 2))
    f["bad_shape_fraction.safetensors"] = st({"a": {"dtype": "F32", "shape": [1.5], "data_offsets": [0, 8]}},
                                             f32(1, 2))
    f["bad_shape_string.safetensors"] = st({"a": {"dtype": "F32", "shape": ["2"], "data_offsets": [0, 8]}},
                                           f32(1, 2))
    f["bad_shape_5d.safetensors"] = st({"a": {"dtype": "F32", "shape": [1, 1, 1, 1, 2], "data_offsets": [0, 8]}},
                                       f32(1, 2))
    f["bad_shape_zero.safetensors"] = st({"a": {"dtype": "F32", "shape": [0, 2], "data_offsets": [0, 0]}})
    f["bad_shape_overflow.safetensors"] = st(
        {"a": {"dtype": "F32", "shape": [2**52, 2**52, 2**52], "data_offsets": [0, 8]}}, f32(1, 2))
    f["bad_size_mismatch.safetensors"] = st({"a": {"dtype": "F32", "shape": [3], "data_offsets": [0, 8]}}, f32(1, 2))
    f["bad_offsets_past_end.safetensors"] = st({"a": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}},
                                               f32(1, 2))
    f["bad_offsets_reversed.safetensors"] = st({"a": {"dtype": "F32", "shape": [2], "data_offsets": [8, 0]}},
                                               f32(1, 2))
    f["bad_offsets_negative.safetensors"] = st({"a": {"dtype": "F32", "shape": [2], "data_offsets": [-8, 0]}},
                                               f32(1, 2))
    f["bad_offsets_three.safetensors"] = st({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8, 16]}},
                                            f32(1, 2))
    f["bad_overlap.safetensors"] = st({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
                                       "b": {"dtype": "F32", "shape": [2], "data_offsets": [4, 12]}}, f32(1, 2, 3))
    f["bad_duplicate_name.safetensors"] = st(
        b'{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}',
        f32(1, 2))
    f["bad_metadata_not_object.safetensors"] = st({"__metadata__": "x"})
    f["bad_metadata_not_string.safetensors"] = st({"__metadata__": {"n": 3}})
    f["bad_metadata_duplicate.safetensors"] = st(b'{"__metadata__":{},"__metadata__":{}}')
    return f


def write(d, files):
    os.makedirs(d, exist_ok=True)
    for name, data in sorted(files.items()):
        with open(os.path.join(d, name), "wb") as fh:
            fh.write(data)
    return len(files)


if __name__ == "__main__":
    n = write(GGUF_DIR, gguf_files())
    m = write(ST_DIR, st_files())
    print(f"wrote {n} GGUF files to {GGUF_DIR} and {m} safetensors files to {ST_DIR}")
