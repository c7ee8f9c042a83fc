#!/usr/bin/env python3
"""Checks siglip2's safetensors reader and writer against the `safetensors` Python package.

Run by ctest (label parity), or by hand:
  python3 tests/python/safetensors_interop.py --tool build/tests/common/safetensors_tool --workdir /tmp/st
"""
import argparse
import json
import math
import os
import struct
import subprocess
import sys
import traceback

import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

# Must match value_at() in tests/common/safetensors_tool.cpp; every value is exact in its dtype.
def value_at(dtype, i):
    if dtype == torch.bool:
        return 1.0 if i % 3 == 0 else 0.0
    if dtype == torch.uint8:
        return float((i * 37 + 11) % 256)
    if dtype == torch.int8:
        return float((i * 29 + 7) % 256 - 128)
    if dtype == torch.int16:
        return float(i * 1001 - 30000)
    if dtype == torch.int32:
        return float(i * 100003 - 2000000000)
    if dtype == torch.int64:
        return float(i * 3000000019 - 9000000000)
    if dtype == torch.float16:
        return i * 0.125 - 3.0
    if dtype == torch.bfloat16:
        return i * 0.5 - 7.0
    if dtype == torch.float32:
        return i * 0.0625 - 1.5
    return i / 3.0 - 5.0


TOOL_TENSORS = [
    ("vision.f32", torch.float32, (3, 4)),
    ("vision.f64", torch.float64, (5,)),
    ("text.bf16", torch.bfloat16, (2, 3, 2)),
    ("text.f16", torch.float16, (7,)),
    ("ids.i64", torch.int64, (4,)),
    ("ids.i32", torch.int32, (3,)),
    ("ids.i16", torch.int16, (3,)),
    ("ids.i8", torch.int8, (6,)),
    ("pixels.u8", torch.uint8, (2, 5)),
    ("mask.bool", torch.bool, (5,)),
    ("logit_scale", torch.float32, ()),
    ("empty", torch.float32, (0, 3)),
]
TOOL_METADATA = {"format": "pt", "producer": "safetensors_tool", "step": "1234", "note": 'ünï ✓ "quoted"'}

DTYPE_NAMES = {
    torch.float64: "F64", torch.float32: "F32", torch.float16: "F16", torch.bfloat16: "BF16",
    torch.int64: "I64", torch.int32: "I32", torch.int16: "I16", torch.int8: "I8", torch.uint8: "U8",
    torch.bool: "BOOL",
}


class Mismatch(Exception):
    pass


def check(condition, message):
    if not condition:
        raise Mismatch(message)


def expected_tensor(dtype, shape):
    n = math.prod(shape)
    values = torch.tensor([value_at(dtype, i) for i in range(n)], dtype=torch.float64)
    return values.to(dtype).reshape(shape)


def run_tool(tool, *args):
    result = subprocess.run([tool, *args], capture_output=True, text=True)
    check(result.returncode == 0, f"{tool} {' '.join(args)} failed ({result.returncode}): {result.stderr.strip()}")
    return result.stdout


def read_header(path):
    with open(path, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        header = f.read(n)
        data = f.read()
    return n, header, data


def check_cpp_file_reads_in_python(tool, workdir):
    path = os.path.join(workdir, "from_cpp.safetensors")
    run_tool(tool, "write", path)
    with safe_open(path, framework="pt") as f:
        check(f.metadata() == TOOL_METADATA, f"metadata {f.metadata()} != {TOOL_METADATA}")
        keys = sorted(f.keys())
    check(keys == sorted(name for name, _, _ in TOOL_TENSORS), f"tensor names {keys}")
    loaded = load_file(path)
    for name, dtype, shape in TOOL_TENSORS:
        t = loaded[name]
        check(t.dtype == dtype, f"{name}: dtype {t.dtype}, expected {dtype}")
        check(tuple(t.shape) == shape, f"{name}: shape {tuple(t.shape)}, expected {shape}")
        want = expected_tensor(dtype, shape)
        check(torch.equal(t, want), f"{name}: values {t.flatten()[:8].tolist()} != {want.flatten()[:8].tolist()}")


def python_tensors():
    return {
        "a.f32": torch.arange(24, dtype=torch.float32).reshape(2, 3, 4) * 0.5 - 3,
        "b.f16": (torch.arange(10, dtype=torch.float32) * 0.25 - 1).half(),
        "c.bf16": (torch.arange(6, dtype=torch.float32) * 2 - 5).bfloat16().reshape(3, 2),
        "d.f64": torch.arange(5, dtype=torch.float64) * 0.125 + 1e6,
        "e.i64": torch.tensor([2**40, -(2**35), 7, -1], dtype=torch.int64),
        "f.i32": torch.tensor([[-(2**31), 2**31 - 1], [5, -6]], dtype=torch.int32),
        "g.i16": torch.tensor([-32768, 32767, 0], dtype=torch.int16),
        "h.i8": torch.tensor([-128, 127, 3], dtype=torch.int8),
        "i.u8": torch.tensor([0, 255, 128, 1, 2], dtype=torch.uint8),
        "j.bool": torch.tensor([True, False, True, True]),
        "k.scalar": torch.tensor(2.5, dtype=torch.bfloat16),
        "l.empty": torch.zeros(4, 0, dtype=torch.float16),
    }


def expected_dump(path, tensors, metadata):
    _, header, _ = read_header(path)
    entries = {k: v for k, v in json.loads(header).items() if k != "__metadata__"}
    lines = [{"metadata": metadata}]
    for name in sorted(entries, key=lambda k: (entries[k]["data_offsets"], k)):
        values = tensors[name].to(torch.float64).flatten()
        lines.append({
            "name": name,
            "dtype": DTYPE_NAMES[tensors[name].dtype],
            "shape": list(tensors[name].shape),
            "sum": values.sum().item(),  # the values are short binary fractions: the sum is exact
            "first": values[:4].tolist(),
        })
    return lines


def check_python_file_dumps_in_cpp(tool, workdir):
    tensors = python_tensors()
    for metadata in ({"format": "pt", "origin": "python"}, None):
        path = os.path.join(workdir, f"from_python_{'meta' if metadata else 'nometa'}.safetensors")
        save_file(tensors, path, metadata=metadata)
        got = [json.loads(line) for line in run_tool(tool, "dump", path).splitlines()]
        want = expected_dump(path, tensors, metadata or {})
        check(len(got) == len(want), f"{path}: dump printed {len(got)} lines, expected {len(want)}")
        for g, w in zip(got, want):
            check(g == w, f"{path}: dump printed {g}, expected {w}")


def check_same_layout_as_reference_writer(tool, workdir):
    cpp_path = os.path.join(workdir, "layout_cpp.safetensors")
    py_path = os.path.join(workdir, "layout_python.safetensors")
    run_tool(tool, "write", cpp_path)
    save_file(load_file(cpp_path), py_path, metadata=TOOL_METADATA)
    cpp_n, cpp_header, cpp_data = read_header(cpp_path)
    py_n, py_header, py_data = read_header(py_path)
    check(cpp_header.startswith(b'{"__metadata__":'), f"C++ header starts with {cpp_header[:20]!r}")
    check(cpp_n % 8 == 0 and cpp_header == cpp_header.rstrip(b" ") + b" " * (cpp_n - len(cpp_header.rstrip(b" "))),
          f"C++ header length {cpp_n} is not space-padded to a multiple of 8")
    # The metadata map's order is unspecified in the reference (a HashMap); the tensors' is not.
    cpp_entries = [(k, v) for k, v in json.loads(cpp_header).items() if k != "__metadata__"]
    py_entries = [(k, v) for k, v in json.loads(py_header).items() if k != "__metadata__"]
    check(cpp_entries == py_entries, f"tensor entries differ:\n  C++:    {cpp_entries}\n  Python: {py_entries}")
    check(cpp_data == py_data, "data sections differ")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tool", required=True, help="path to the safetensors_tool executable")
    parser.add_argument("--workdir", required=True, help="directory for the files written")
    args = parser.parse_args()
    os.makedirs(args.workdir, exist_ok=True)

    checks = [check_cpp_file_reads_in_python, check_python_file_dumps_in_cpp, check_same_layout_as_reference_writer]
    failed = 0
    for fn in checks:
        try:
            fn(args.tool, args.workdir)
            print(f"PASS {fn.__name__}")
        except Mismatch as e:
            failed += 1
            print(f"FAIL {fn.__name__}: {e}")
        except Exception:
            failed += 1
            print(f"FAIL {fn.__name__}: unexpected error\n{traceback.format_exc()}")
    print(f"safetensors interop: {len(checks) - failed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
