#!/usr/bin/python3
"""safetensors_ref.py: an independent safetensors writer and reader, written from the format
description (struct + json), used as the reference for ftlua's C implementation.

Tensor values come from torch (Debian's python3-torch, so run it with /usr/bin/python3).

    write OUT SPEC      write OUT; SPEC is JSON {"tensors": [[name, dtype, shape], ...],
                        "metadata": {...}}; values follow formula() below
    verify PATH         read PATH and print, per tensor in header order,
                        "tensor NAME DTYPE [SHAPE] ok" (values equal formula()) or "... bad: why",
                        then "meta KEY=VALUE" lines in header order
    check PATH...       print "PATH<TAB>valid" or "PATH<TAB>invalid: why" for each file
    dump PATH           print JSON {"tensors": {name: {"dtype", "shape", "values"}},
                        "order": [...], "metadata": {...}}; values flat, as floats or bools
"""
import json
import struct
import sys

MAX_HEADER = 100_000_000

# name -> bytes per element. torch dtypes are looked up lazily so `check` needs no torch.
SIZES = {"BOOL": 1, "U8": 1, "I8": 1, "I16": 2, "U16": 2, "F16": 2, "BF16": 2, "I32": 4,
         "U32": 4, "F32": 4, "F64": 8, "I64": 8, "U64": 8, "F8_E4M3": 1, "F8_E5M2": 1}


def torch_dtype(name):
    import torch
    return {"BOOL": torch.bool, "U8": torch.uint8, "I8": torch.int8, "I16": torch.int16,
            "F16": torch.float16, "BF16": torch.bfloat16, "I32": torch.int32,
            "F32": torch.float32, "F64": torch.float64, "I64": torch.int64}[name]


def formula(dtype, i):
    """The value of flat element i. Every value is exact in its dtype. The C and Lua tests
    compute the same formula on their own."""
    if dtype in ("F32", "F64", "F16", "BF16"):
        return (i % 17) * 0.25 - 2.0
    if dtype == "I8":
        return (i % 11) * 3 - 15
    if dtype == "I16":
        return (i % 11) * 3000 - 15000
    if dtype == "I32":
        return (i % 11) * 100000000 - 500000000
    if dtype == "I64":
        return ((i % 11) - 5) * (1 << 40) + i
    if dtype == "U8":
        return (i * 37) % 256
    if dtype == "BOOL":
        return i % 3 == 0
    raise ValueError("no formula for " + dtype)


def numel(shape):
    n = 1
    for d in shape:
        n *= d
    return n


def formula_tensor(dtype, shape):
    import torch
    flat = [formula(dtype, i) for i in range(numel(shape))]
    return torch.tensor(flat, dtype=torch_dtype(dtype)).reshape(shape)


def tensor_bytes(t):
    """Little-endian C-order bytes of a torch tensor."""
    import torch
    assert sys.byteorder == "little"
    return t.contiguous().reshape(-1).view(torch.uint8).numpy().tobytes()


def bytes_tensor(raw, dtype, shape):
    import torch
    if len(raw) == 0:
        return torch.empty(shape, dtype=torch_dtype(dtype))
    return torch.frombuffer(bytearray(raw), dtype=torch_dtype(dtype)).reshape(shape)


def encode(tensors, metadata=None):
    """tensors: [(name, dtype, shape, raw bytes)] laid out in that order. Returns the file."""
    header = {}
    if metadata:
        header["__metadata__"] = dict(metadata)
    offset = 0
    for name, dtype, shape, raw in tensors:
        assert name not in header, name
        assert len(raw) == numel(shape) * SIZES[dtype], name
        header[name] = {"dtype": dtype, "shape": list(shape),
                        "data_offsets": [offset, offset + len(raw)]}
        offset += len(raw)
    text = json.dumps(header, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    text += b" " * (-len(text) % 8)
    return struct.pack("<Q", len(text)) + text + b"".join(t[3] for t in tensors)


def _no_duplicates(pairs):
    d = {}
    for k, v in pairs:
        if k in d:
            raise ValueError("duplicate key %r" % k)
        d[k] = v
    return d


def _uint(v):
    return isinstance(v, int) and not isinstance(v, bool) and 0 <= v < 1 << 64


def decode(data):
    """Validate a whole file. Returns ([(name, dtype, shape, raw)] in header order, metadata).
    Raises ValueError on anything the format does not allow."""
    if len(data) < 8:
        raise ValueError("shorter than 8 bytes")
    (n,) = struct.unpack("<Q", data[:8])
    if n > len(data) - 8:
        raise ValueError("header length %d exceeds file size %d" % (n, len(data)))
    if n > MAX_HEADER:
        raise ValueError("header too large")
    raw_header = data[8:8 + n]
    if not raw_header.startswith(b"{"):
        raise ValueError("header does not start with '{'")
    text = raw_header.decode("utf-8")  # strict: raises on invalid UTF-8

    def no_constants(c):
        raise ValueError("JSON constant " + c)

    header = json.loads(text, object_pairs_hook=_no_duplicates, parse_constant=no_constants)
    if not isinstance(header, dict):
        raise ValueError("header is not an object")
    buf = data[8 + n:]
    metadata = header.pop("__metadata__", {})
    if not isinstance(metadata, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in metadata.items()):
        raise ValueError("__metadata__ must map strings to strings")
    for k, v in metadata.items():
        k.encode("utf-8"), v.encode("utf-8")  # lone surrogates from \u escapes raise here
    entries, spans = [], []
    for name, info in header.items():
        name.encode("utf-8")
        if not isinstance(info, dict) or set(info) != {"dtype", "shape", "data_offsets"}:
            raise ValueError("tensor %r: entry must have exactly dtype, shape, data_offsets" % name)
        dtype, shape, offs = info["dtype"], info["shape"], info["data_offsets"]
        if dtype not in SIZES:
            raise ValueError("tensor %r: unknown dtype %r" % (name, dtype))
        if not isinstance(shape, list) or not all(_uint(d) for d in shape):
            raise ValueError("tensor %r: bad shape" % name)
        if not isinstance(offs, list) or len(offs) != 2 or not all(_uint(o) for o in offs):
            raise ValueError("tensor %r: bad data_offsets" % name)
        begin, end = offs
        if end < begin or end > len(buf):
            raise ValueError("tensor %r: data_offsets out of range" % name)
        if end - begin != numel(shape) * SIZES[dtype]:
            raise ValueError("tensor %r: data_offsets do not match shape" % name)
        entries.append((name, dtype, shape, buf[begin:end]))
        spans.append((begin, end))
    at = 0
    for begin, end in sorted(spans):
        if begin != at:
            raise ValueError("overlap or hole at byte %d" % at)
        at = end
    if at != len(buf):
        raise ValueError("hole at byte %d" % at)
    return entries, metadata


def read(path):
    with open(path, "rb") as f:
        return decode(f.read())


def dump(path):
    import torch
    entries, metadata = read(path)
    out = {"tensors": {}, "order": [], "metadata": metadata}
    for name, dtype, shape, raw in entries:
        t = bytes_tensor(raw, dtype, shape).reshape(-1)
        values = t.tolist() if dtype == "BOOL" else t.to(torch.float64).tolist()
        out["tensors"][name] = {"dtype": dtype, "shape": shape, "values": values}
        out["order"].append(name)
    return out


def write_spec(path, spec):
    tensors = []
    for name, dtype, shape in spec["tensors"]:
        tensors.append((name, dtype, shape, tensor_bytes(formula_tensor(dtype, shape))))
    with open(path, "wb") as f:
        f.write(encode(tensors, spec.get("metadata")))


def verify(path):
    import torch
    entries, metadata = read(path)
    for name, dtype, shape, raw in entries:
        line = "tensor %s %s %s" % (name, dtype, json.dumps(shape, separators=(",", ":")))
        if dtype not in ("BOOL", "U8", "I8", "I16", "F16", "BF16", "I32", "F32", "F64", "I64"):
            print(line + " bad: no torch dtype")
            continue
        got = bytes_tensor(raw, dtype, shape)
        want = formula_tensor(dtype, shape)
        if got.shape != want.shape or not torch.equal(got, want):
            print(line + " bad: values differ from the formula")
        else:
            print(line + " ok")
    for k, v in metadata.items():
        print("meta %s=%s" % (k, v))


def main(argv):
    cmd = argv[1] if len(argv) > 1 else ""
    if cmd == "write" and len(argv) == 4:
        write_spec(argv[2], json.loads(argv[3]))
    elif cmd == "verify" and len(argv) == 3:
        verify(argv[2])
    elif cmd == "check" and len(argv) >= 3:
        for path in argv[2:]:
            try:
                read(path)
                print("%s\tvalid" % path)
            except (ValueError, UnicodeError, RecursionError) as e:
                print("%s\tinvalid: %s" % (path, str(e).replace("\n", " ")))
    elif cmd == "dump" and len(argv) == 3:
        print(json.dumps(dump(argv[2])))
    else:
        sys.stderr.write(__doc__)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
