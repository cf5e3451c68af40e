#!/usr/bin/env python3
# golden_quant.py — writes tests/golden/quant.json: random rows quantized by the
# gguf Python package (gguf.quants, the reference port of ggml's quantizers),
# their raw block bytes and the values gguf.quants.dequantize gives back.
# tests/unit/test_ops.c dequantizes the same bytes with keel and compares.
# Usage: pip install gguf numpy; python3 tools/golden_quant.py > tests/golden/quant.json
import json
import sys

from importlib.metadata import version

import numpy as np
import gguf
from gguf import GGMLQuantizationType as Q

rng = np.random.default_rng(20240611)
out = {"_about": "gguf %s quantize/dequantize of random float32 rows; bytes in hex; "
                 "values float32 printed with 9 significant digits" % version("gguf"),
       "cases": []}
for qt in (Q.F16, Q.BF16, Q.Q8_0, Q.Q4_0, Q.Q4_1):
    for n, scale, shift in ((32, 1.0, 0.0), (96, 3.0, 0.5), (160, 0.02, -0.01)):
        x = (rng.standard_normal(n) * scale + shift).astype(np.float32)
        if n == 32:
            x[5] = 0.0  # an exact zero and a block extreme
            x[17] = -2.5 * scale
        q = gguf.quants.quantize(x.reshape(1, n), qt)
        y = gguf.quants.dequantize(q, qt).reshape(-1).astype(np.float32)
        out["cases"].append({
            "type": qt.name, "type_id": int(qt), "n": n,
            "bytes": q.tobytes().hex(),
            "values": [float("%.9g" % v) for v in y],
        })
json.dump(out, sys.stdout, indent=0)
sys.stdout.write("\n")
