#!/usr/bin/python3
"""weights_fixtures.py: fixtures and references for tests/lua/test_weights.lua.
Run with Debian's /usr/bin/python3 (it has torch and torchvision).

    make DIR            write checkpoints into DIR and print, as a Lua table, the names each
                        holds in state_dict order
    compare PTH ST      torch.load(PTH) against ST read by safetensors_ref.py (not by ftlua):
                        same names in the same order, dtypes, shapes and values
    resnet18 PTH ST     a torchvision resnet18 given PTH's weights and one given ST's weights
                        (strict load_state_dict) agree on a fixed input

compare and resnet18 print a Lua table {ok = true} or {ok = false, why = "..."}.

Files made by `make` (EXPECT.safetensors holds each dict's tensors contiguous, in state_dict
order, written by safetensors_ref.py's encoder: the independent answer for ftlua's reader):
  small.pth, small_legacy.pth, small_expected.safetensors   every dtype, a transposed tensor,
        views sharing one storage, a stride-0 expanded view, a scalar, an empty tensor,
        a Parameter and a tied name
  nested.pth, nested_legacy.pth    {'model': small, 'epoch': 3}
  huge_expand.pth                  a 4-byte storage expanded to 2^40 elements (must be refused)
  malicious.pth, malicious_legacy.pth   a pickle that would run `touch DIR/pwned`
  resnet18.pth, resnet18_legacy.pth, resnet18_expected.safetensors   torchvision resnet18
"""
import collections
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import safetensors_ref  # noqa: E402

ST_NAMES = {torch.float32: "F32", torch.float64: "F64", torch.float16: "F16",
            torch.bfloat16: "BF16", torch.int64: "I64", torch.int32: "I32", torch.int16: "I16",
            torch.int8: "I8", torch.uint8: "U8", torch.bool: "BOOL"}


def lua(x):
    if isinstance(x, bool):
        return "true" if x else "false"
    if isinstance(x, str):
        return "[==[" + x + "]==]"
    if isinstance(x, (list, tuple)):
        return "{" + ",".join(lua(v) for v in x) + "}"
    if isinstance(x, dict):
        return "{" + ",".join("[ " + lua(k) + " ]=" + lua(v) for k, v in x.items()) + "}"
    raise TypeError(type(x))


def write_expected(sd, path):
    tensors = [(name, ST_NAMES[t.dtype], list(t.shape), safetensors_ref.tensor_bytes(t.detach()))
               for name, t in sd.items()]
    with open(path, "wb") as f:
        f.write(safetensors_ref.encode(tensors))


def small_state_dict():
    torch.manual_seed(0)
    sd = collections.OrderedDict()
    sd["f32"] = torch.randn(3, 4)
    sd["f64"] = torch.randn(2, 3, dtype=torch.float64)
    sd["f16"] = torch.randn(5).half()
    sd["bf16"] = torch.randn(2, 3).bfloat16().t()  # non-contiguous 2-byte elements
    sd["i64"] = torch.arange(-3, 7)
    sd["i32"] = torch.tensor([-7, 0, 2**31 - 1], dtype=torch.int32)
    sd["i16"] = torch.tensor([[-300, 5], [7, 32767]], dtype=torch.int16)
    sd["i8"] = torch.tensor([-128, 1, 127], dtype=torch.int8)
    sd["u8"] = torch.tensor([0, 200, 255], dtype=torch.uint8)
    sd["bool"] = torch.tensor([[True, False, True], [False, False, True]]).t()
    sd["transposed"] = torch.randn(3, 5).t()  # strides (1, 5)
    base = torch.arange(24, dtype=torch.float32).reshape(4, 6)
    sd["view_base"] = base
    sd["view_slice"] = base[1:3, 2:5]  # offset 8, strides (6, 1)
    sd["view_col"] = base[:, 1]  # offset 1, stride 6
    sd["view_3d"] = torch.arange(60, dtype=torch.float64).reshape(3, 4, 5).permute(2, 0, 1)[1:4, :, 1:3]
    sd["expanded"] = torch.arange(3, dtype=torch.float32).reshape(3, 1).expand(3, 4)  # stride 0
    sd["scalar"] = torch.tensor(3.5)
    sd["empty"] = torch.zeros(0, 3)
    sd["param"] = torch.nn.Parameter(torch.randn(2))
    sd["tied"] = sd["f32"]
    sd["layer.0.num_batches_tracked"] = torch.tensor(7)
    sd._metadata = collections.OrderedDict({"": {"version": 1}})
    return sd


class CallsSystem:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, ("touch " + self.marker,))


def make(out):
    os.makedirs(out, exist_ok=True)
    p = lambda name: os.path.join(out, name)  # noqa: E731
    names = {}

    sd = small_state_dict()
    torch.save(sd, p("small.pth"))
    torch.save(sd, p("small_legacy.pth"), _use_new_zipfile_serialization=False)
    write_expected(sd, p("small_expected.safetensors"))
    names["small"] = list(sd.keys())

    nested = {"model": sd, "epoch": 3}
    torch.save(nested, p("nested.pth"))
    torch.save(nested, p("nested_legacy.pth"), _use_new_zipfile_serialization=False)

    torch.save({"e": torch.zeros(1).expand(2**40)}, p("huge_expand.pth"))

    evil = {"w": torch.zeros(2), "evil": CallsSystem(p("pwned"))}
    torch.save(evil, p("malicious.pth"))
    torch.save(evil, p("malicious_legacy.pth"), _use_new_zipfile_serialization=False)

    try:
        import torchvision
        rsd = torchvision.models.resnet18(weights=None).state_dict()
        torch.save(rsd, p("resnet18.pth"))
        torch.save(rsd, p("resnet18_legacy.pth"), _use_new_zipfile_serialization=False)
        write_expected(rsd, p("resnet18_expected.safetensors"))
        names["resnet18"] = list(rsd.keys())
    except ImportError:
        pass  # the Lua test skips the resnet18 checks
    print(lua(names))


def read_st(path):
    entries, _ = safetensors_ref.read(path)
    return collections.OrderedDict(
        (name, safetensors_ref.bytes_tensor(raw, dtype, shape)) for name, dtype, shape, raw in entries)


def compare(pth, st):
    want = torch.load(pth)
    got = read_st(st)
    if list(got.keys()) != list(want.keys()):
        return "names differ: %s vs %s" % (list(got.keys()), list(want.keys()))
    for name, w in want.items():
        g = got[name]
        if g.dtype != w.dtype or g.shape != w.shape or not torch.equal(g, w.detach()):
            return "tensor %s differs (%s %s vs %s %s)" % (name, g.dtype, list(g.shape), w.dtype, list(w.shape))
    return None


def resnet18(pth, st):
    import torchvision
    torch.manual_seed(1)
    x = torch.randn(2, 3, 64, 64)
    outs = []
    for sd in (torch.load(pth), read_st(st)):
        net = torchvision.models.resnet18(weights=None)
        net.load_state_dict(sd, strict=True)
        outs.append(net.eval()(x))
    if not torch.equal(outs[0], outs[1]):
        return "outputs differ by %g" % (outs[0] - outs[1]).abs().max().item()
    return None


def main(argv):
    if len(argv) == 3 and argv[1] == "make":
        make(argv[2])
    elif len(argv) == 4 and argv[1] in ("compare", "resnet18"):
        why = (compare if argv[1] == "compare" else resnet18)(argv[2], argv[3])
        print(lua({"ok": True}) if why is None else lua({"ok": False, "why": why}))
    else:
        sys.stderr.write(__doc__)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
