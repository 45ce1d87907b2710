#!/usr/bin/python3
"""Write PyTorch checkpoints and what they hold, for tests/c/test_pth.c.

usage: /usr/bin/python3 tests/py/make_pth_fixtures.py DIR
       /usr/bin/python3 tests/py/make_pth_fixtures.py --seeds DIR   (tiny fuzzing seeds only)

Writes into DIR small state dicts in the zip and legacy formats (every dtype ftlua knows,
a transposed tensor, views sharing one storage, a 0-dim and an empty tensor, a Parameter),
the same dict under pickle protocol 4, a big-endian rewrite, a torchvision resnet18
state_dict in both formats, a nested checkpoint, and files that must be refused: pickles
that call os.system / exec, a whole pickled module, a compressed zip, a tar archive.

manifest.txt (read by the C test; one record per line, fields separated by spaces):
  file NAME KEYPATH ok N          N tensors follow as "t" lines, in file order
  file NAME KEYPATH error TEXT... loading must fail with a message containing TEXT
  t NAME DTYPE NDIM SHAPE.. STRIDE.. OFFSET REQUIRES_GRAD STORAGE_TAG SUM NSAMPLES (IDX VALUE)..
KEYPATH is "-" for the root. STORAGE_TAG is equal for two tensors exactly when they share a
storage. SUM is the float64 sum of all elements; samples are flat (row-major) indices.
manifest.json holds the same records for other tests.
"""
import collections
import io
import json
import os
import pickle
import struct
import sys
import tarfile
import zipfile

import torch

SEEDS = len(sys.argv) > 2 and sys.argv[1] == "--seeds"
OUT = sys.argv[-1] if len(sys.argv) > 1 else "."
os.makedirs(OUT, exist_ok=True)
torch.manual_seed(0)
records = []


def dtype_name(t):
    return str(t.dtype).replace("torch.", "")


def describe(name, t, tags):
    """One 't' record: everything the C side checks, computed by torch itself."""
    flat = t.detach().reshape(-1)
    n = flat.numel()
    idx = sorted(set([i for i in range(min(n, 4))] + [n // 3, n // 2, n - 1] if n else []))
    idx = [i for i in idx if 0 <= i < n]
    samples = [(i, float(flat[i].item())) for i in idx]
    total = float(t.detach().double().sum().item()) if n else 0.0
    ptr = t.storage().data_ptr()
    key = ptr if ptr else ("empty", id(t))
    tag = tags.setdefault(key, len(tags))
    return dict(name=name, dtype=dtype_name(t), shape=list(t.shape), stride=list(t.stride()),
                offset=t.storage_offset(), requires_grad=bool(t.requires_grad), tag=tag,
                sum=total, samples=samples)


def expect_ok(fname, items, key="-"):
    tags = {}
    records.append(dict(file=fname, key=key, ok=True, tensors=[describe(n, t, tags) for n, t in items]))


def expect_error(fname, text, key="-"):
    records.append(dict(file=fname, key=key, ok=False, error=text))


def path(name):
    return os.path.join(OUT, name)


def save_both(obj, stem, **kw):
    torch.save(obj, path(stem + ".pth"), **kw)
    torch.save(obj, path(stem + "_legacy.pth"), _use_new_zipfile_serialization=False, **kw)


def write_seeds():
    """A few hundred bytes each: every format and opcode family the reader accepts."""
    sd = collections.OrderedDict()
    base = torch.arange(6, dtype=torch.float32).reshape(2, 3)
    sd["w"] = base
    sd["wt"] = base.t()
    sd["h"] = torch.ones(2, dtype=torch.float16)
    sd["m"] = torch.tensor([True, False])
    sd["e"] = torch.zeros(0)
    sd["n"] = torch.tensor(1)
    sd["p"] = torch.nn.Parameter(torch.zeros(1))
    sd._metadata = {"": {"version": 1}}
    torch.save(sd, os.path.join(OUT, "zip.pth"))
    torch.save(sd, os.path.join(OUT, "legacy.pth"), _use_new_zipfile_serialization=False)
    torch.save(sd, os.path.join(OUT, "p4.pth"), pickle_protocol=4)
    nested = {"model": {"w": sd["w"]}, "epoch": 1}
    torch.save(nested, os.path.join(OUT, "nested.pth"))
    torch.save(nested, os.path.join(OUT, "nested_legacy.pth"), _use_new_zipfile_serialization=False)


if SEEDS:
    write_seeds()
    sys.exit(0)

# ---------------------------------------------------------------- small: every case in one dict
def small_state_dict():
    sd = collections.OrderedDict()
    sd["f32"] = torch.randn(3, 4)
    sd["f64"] = torch.randn(2, 3, dtype=torch.float64)
    sd["f16"] = torch.randn(5).half()
    sd["bf16"] = torch.randn(2, 2).bfloat16()
    sd["i64"] = torch.arange(-3, 7)
    sd["i32"] = torch.tensor([-7, 0, 2**31 - 1], dtype=torch.int32)
    sd["i16"] = torch.tensor([[-300, 5], [7, 32767]], dtype=torch.int16)
    sd["i8"] = torch.tensor([-128, 1, 127], dtype=torch.int8)
    sd["u8"] = torch.tensor([0, 200, 255], dtype=torch.uint8)
    sd["bool"] = torch.tensor([True, False, True, True])
    sd["transposed"] = torch.randn(3, 5).t()  # strides (1, 5)
    base = torch.arange(24, dtype=torch.float32).reshape(4, 6)
    sd["view_base"] = base
    sd["view_slice"] = base[1:3, 2:5]  # offset 8, strides (6, 1)
    sd["view_col"] = base[:, 1]  # offset 1, stride 6
    sd["scalar"] = torch.tensor(3.5)
    sd["empty"] = torch.zeros(0, 3)
    sd["param"] = torch.nn.Parameter(torch.randn(2))  # saved with _rebuild_parameter
    sd["tied"] = sd["f32"]  # the same tensor under a second name
    sd["layer.0.num_batches_tracked"] = torch.tensor(7)
    sd._metadata = collections.OrderedDict({"": {"version": 1}})  # as nn.Module.state_dict() does
    return sd


sd = small_state_dict()
items = list(sd.items())
save_both(sd, "small")
expect_ok("small.pth", items)
expect_ok("small_legacy.pth", items)
torch.save(sd, path("small_p4.pth"), pickle_protocol=4)  # FRAME, MEMOIZE, STACK_GLOBAL, ...
expect_ok("small_p4.pth", items)
torch.save(sd["f32"], path("tensor_only.pth"))  # the root is a tensor: one entry named ""
expect_ok("tensor_only.pth", [("", sd["f32"])])

# ---------------------------------------------------------------- nested checkpoints
momentum = torch.randn(4)
nested = {"model": sd, "epoch": 3, "opt": {"lr": 0.1, "state": {0: {"momentum_buffer": momentum}}}}
save_both(nested, "nested")
for f in ("nested.pth", "nested_legacy.pth"):
    expect_ok(f, items, key="model")
    expect_ok(f, [("momentum_buffer", momentum)], key="opt/state/0")
    expect_ok(f, [("model." + k, v) for k, v in items] + [("opt.state.0.momentum_buffer", momentum)])
    expect_error(f, "no key 'state_dict' in checkpoint; keys: model, epoch, opt", key="state_dict")
    expect_error(f, "no key 'x' in checkpoint['opt']; keys: lr, state", key="opt/x")
    expect_error(f, "checkpoint['epoch'] holds a value of type int, not a state dict", key="epoch")

# ---------------------------------------------------------------- resnet18
try:
    import torchvision

    net = torchvision.models.resnet18(weights=None)
    rsd = net.state_dict()
    save_both(rsd, "resnet18")
    expect_ok("resnet18.pth", list(rsd.items()))
    expect_ok("resnet18_legacy.pth", list(rsd.items()))
except ImportError:
    pass  # the C test reports the resnet18 checks as skipped


# ---------------------------------------------------------------- rewrites of small.pth
def storage_elsizes(pkl):
    """key -> element size, read from data.pkl without building any tensor."""
    sizes = {}

    class Scan(pickle.Unpickler):
        def find_class(self, mod, name):
            if mod == "torch" and name.endswith("Storage"):
                return getattr(torch, name)
            if mod == "collections" and name == "OrderedDict":
                return collections.OrderedDict
            return lambda *a: None

        def persistent_load(self, pid):
            sizes[pid[2]] = torch.empty(0, dtype=pid[1].dtype).element_size()
            return None

    Scan(io.BytesIO(pkl)).load()
    return sizes


def rewrite(src, dst, prefix, compression=zipfile.ZIP_STORED, big=False):
    with zipfile.ZipFile(path(src)) as z:
        names = z.namelist()
        old = names[0].split("/")[0]
        pkl = z.read(old + "/data.pkl")
        sizes = storage_elsizes(pkl)
        with zipfile.ZipFile(path(dst), "w", compression=compression) as out:
            for n in names:
                data = z.read(n)
                rel = n[len(old) + 1:]
                if big and rel == "byteorder":
                    data = b"big"
                elif big and rel.startswith("data/"):
                    es = sizes[rel[5:]]
                    data = b"".join(data[i:i + es][::-1] for i in range(0, len(data), es))
                out.writestr(prefix + "/" + rel, data)
            if big and old + "/byteorder" not in names:  # torch 1.13 writes none: little-endian
                out.writestr(prefix + "/byteorder", b"big")


# Another writer (Python's zipfile: no ZIP64, no data descriptors), another top folder name.
rewrite("small.pth", "bigendian.pth", "some.other-prefix", big=True)
expect_ok("bigendian.pth", items)
rewrite("small.pth", "deflated.pth", "small", compression=zipfile.ZIP_DEFLATED)
expect_error("deflated.pth", "is compressed")



def zip64_central(src, dst):
    """Copy of a zip whose central directory stores sizes and offsets in ZIP64 extra fields
    (as writers do past 4 GB), so the reader's ZIP64 path runs on a small file."""
    b = open(path(src), "rb").read()
    eocd = b.rindex(b"PK\x05\x06")
    n, cd_size, cd_off = struct.unpack("<HII", b[eocd + 10:eocd + 20])
    assert b.rfind(b"PK\x06\x07") < 0, "expected a plain (non-ZIP64) zip to start from"
    cd, at = b"", cd_off
    for _ in range(n):
        h = bytearray(b[at:at + 46])
        nlen, xlen, clen = struct.unpack("<HHH", h[28:34])
        csize, usize = struct.unpack("<II", h[20:28])
        lho = struct.unpack("<I", h[42:46])[0]
        name = b[at + 46:at + 46 + nlen]
        extra = struct.pack("<HHQQQ", 1, 24, usize, csize, lho)
        h[20:28] = struct.pack("<II", 0xFFFFFFFF, 0xFFFFFFFF)
        h[42:46] = struct.pack("<I", 0xFFFFFFFF)
        h[30:32] = struct.pack("<H", len(extra))
        h[32:34] = struct.pack("<H", 0)
        cd += bytes(h) + name + extra
        at += 46 + nlen + xlen + clen
    body = b[:cd_off]
    z64_off = len(body) + len(cd)
    rec = struct.pack("<IQHHIIQQQQ", 0x06064B50, 44, 45, 45, 0, 0, n, n, len(cd), len(body))
    loc = struct.pack("<IIQI", 0x07064B50, 0, z64_off, 1)
    end = struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, 0xFFFF, 0xFFFF, 0xFFFFFFFF, 0xFFFFFFFF, 0)
    open(path(dst), "wb").write(body + cd + rec + loc + end)


rewrite("small.pth", "python_zip.pth", "archive")
expect_ok("python_zip.pth", items)
zip64_central("python_zip.pth", "zip64.pth")
check = torch.load(path("zip64.pth"))  # torch agrees the file is valid
assert all(torch.equal(check[k], v) for k, v in sd.items())
expect_ok("zip64.pth", items)


def legacy_with_views(fname):
    """An old-style legacy file whose storages are views of one root storage (the format
    still supports it; current torch no longer writes it). torch.load is the reference."""
    root = torch.arange(10, dtype=torch.float32) * 1.5

    class Ref:
        def __init__(self, pid, offset, size, stride):
            self.pid, self.args = pid, (offset, size, stride)

        def __reduce__(self):
            return (torch._utils._rebuild_tensor_v2, (self.pid,) + self.args + (False, collections.OrderedDict()))

    class Pickler(pickle.Pickler):
        def persistent_id(self, obj):
            return obj[1] if isinstance(obj, tuple) and obj and obj[0] == "PID" else None

    whole = ("PID", ("storage", torch.FloatStorage, "root", "cpu", 10, None))
    view = ("PID", ("storage", torch.FloatStorage, "root", "cpu", 10, ("view", 3, 5)))
    obj = collections.OrderedDict(whole=Ref(whole, 0, (2, 5), (5, 1)), part=Ref(view, 1, (2,), (2,)))
    with open(path(fname), "wb") as f:
        for head in (0x1950A86A20F9469CFC6C, 1001, dict(protocol_version=1001, little_endian=True,
                                                          type_sizes=dict(short=2, int=4, long=4))):
            pickle.dump(head, f, protocol=2)
        Pickler(f, protocol=2).dump(obj)
        pickle.dump(["root"], f, protocol=2)
        f.write(struct.pack("<q", 10) + root.numpy().tobytes())
    return list(torch.load(path(fname)).items())


expect_ok("legacy_views.pth", legacy_with_views("legacy_views.pth"))

# ---------------------------------------------------------------- files that must be refused


class CallsSystem:
    def __reduce__(self):
        return (os.system, ("echo this checkpoint ran a shell command",))


class CallsExec:
    def __reduce__(self):
        return (exec, ("print('this checkpoint ran Python code')",))


system_name = os.system.__module__ + "." + os.system.__name__  # posix.system on Linux
save_both({"w": torch.zeros(2), "evil": CallsSystem()}, "malicious")
expect_error("malicious.pth", "global '%s'" % system_name)
expect_error("malicious_legacy.pth", "global '%s'" % system_name)
torch.save({"w": torch.zeros(2), "evil": CallsExec()}, path("malicious_exec.pth"), pickle_protocol=4)
expect_error("malicious_exec.pth", "global 'builtins.exec'")
torch.save(torch.nn.Linear(2, 2), path("module.pth"))  # a whole module, not a state dict
expect_error("module.pth", "global 'torch.nn.modules.linear.Linear'")

with tarfile.open(path("old_tar.pth"), "w", format=tarfile.PAX_FORMAT) as tar:
    for member in ("sys_info", "pickle", "storages", "tensors"):
        data = pickle.dumps(0, protocol=2)
        info = tarfile.TarInfo(member)
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
expect_error("old_tar.pth", "legacy tar checkpoint")

with open(path("not_a_checkpoint.pth"), "wb") as f:
    f.write(b"hello, this is text\n")
expect_error("not_a_checkpoint.pth", "not a PyTorch checkpoint")

# ---------------------------------------------------------------- the manifest
with open(path("manifest.json"), "w") as f:
    json.dump(records, f, indent=1)
with open(path("manifest.txt"), "w") as f:
    for r in records:
        if not r["ok"]:
            f.write("file %s %s error %s\n" % (r["file"], r["key"], r["error"]))
            continue
        f.write("file %s %s ok %d\n" % (r["file"], r["key"], len(r["tensors"])))
        for t in r["tensors"]:
            tok = ["t", t["name"] or '""', t["dtype"], str(len(t["shape"]))]
            tok += [str(x) for x in t["shape"] + t["stride"]]
            tok += [str(t["offset"]), str(int(t["requires_grad"])), str(t["tag"]), repr(t["sum"])]
            tok += [str(len(t["samples"]))] + ["%d %r" % (i, v) for i, v in t["samples"]]
            f.write(" ".join(tok) + "\n")
print("wrote %d records to %s" % (len(records), OUT))
