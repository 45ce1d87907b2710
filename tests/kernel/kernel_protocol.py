"""The ftlua kernel driven by Debian's jupyter_client (KernelManager + BlockingKernelClient).

jupyter_client checks every reply's HMAC signature and the protocol's shape, so it is the
independent reference here. Prints "ok NAME" / "FAIL NAME: why" per check, like every test.
Run by test_kernel.sh, which installs the kernelspec in a temporary JUPYTER_PATH.
"""
import json
import os
import signal
import sys
import time
import traceback

import zmq
from jupyter_client import KernelManager
from jupyter_client.session import Session

failures = 0


def check(name, fn):
    global failures
    try:
        fn()
        print("ok", name, flush=True)
    except Exception as e:  # a failed check must not stop the others
        failures += 1
        msg = "".join(traceback.format_exception_only(type(e), e)).strip().replace("\n", " | ")
        print(f"FAIL {name}: {msg}", flush=True)


def start(mode=None):
    km = KernelManager(kernel_name="ftlua")
    if mode:  # the kernelspec says "message"; signal mode is jupyter_client sending SIGINT
        km.kernel_spec.interrupt_mode = mode
    km.start_kernel(env=dict(os.environ, FTLUA_AMP="fp32"))
    kc = km.client()
    kc.start_channels()
    kc.wait_for_ready(timeout=60)
    return km, kc


def stop(km, kc):
    kc.stop_channels()
    if km.is_alive():
        km.shutdown_kernel(now=False)


def run(kc, code, timeout=120, stdin_hook=None, allow_stdin=False):
    """Runs code; returns (the reply's content, [(msg_type, content), ...] on iopub)."""
    out = []
    kw = {}
    if stdin_hook:
        kw["stdin_hook"] = stdin_hook
    reply = kc.execute_interactive(code, timeout=timeout, allow_stdin=allow_stdin,
                                   output_hook=lambda m: out.append((m["msg_type"], m["content"])), **kw)
    return reply["content"], out


def stdout_of(out):
    return "".join(c["text"] for t, c in out if t == "stream" and c["name"] == "stdout")


def result_of(out):
    r = [c for t, c in out if t == "execute_result"]
    return r[0]["data"]["text/plain"] if r else None


def expect(cond, what):
    if not cond:
        raise AssertionError(what)


km, kc = start()

# A small learner that trains for as long as asked (synthetic images, two classes).
LEARNER = """
T = ft.tensor; nn = ft.nn
T.set_num_threads(1)
T.manual_seed(0)
local n = 512
local x = (T.rand { n, 16, 16 } * 255):to("uint8")
local y = T.randint(1, 3, { n })
dls = ft.vision.ImageDataLoaders.from_tensors(x, y, x:narrow(1, 1, 64), y:narrow(1, 1, 64),
  { bs = 16, channels = 1, verbose = false, seed = 1, vocab = { "a", "b" } })
model = nn.Sequential { nn.Conv2d(1, 8, 3, { padding = 1 }), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
  nn.Flatten(), nn.Linear(8, 2) }
learn = ft.Learner(dls, model, { metrics = ft.metrics.accuracy })
"""


def t_kernel_info():
    kc.kernel_info()
    msg = kc.get_shell_msg(timeout=10)
    c = msg["content"]
    expect(msg["msg_type"] == "kernel_info_reply", msg["msg_type"])
    expect(c["protocol_version"] == "5.3", c["protocol_version"])
    expect(c["language_info"]["name"] == "lua", c["language_info"])
    expect(c["implementation"] == "ftlua", c["implementation"])


def t_execute():
    reply, out = run(kc, "print('hello from Lua'); x = 6 * 7\nx")
    expect(reply["status"] == "ok", reply)
    expect(stdout_of(out) == "hello from Lua\n", repr(stdout_of(out)))
    expect(result_of(out) == "42", result_of(out))
    states = [c["execution_state"] for t, c in out if t == "status"]
    expect(states[0] == "busy" and states[-1] == "idle", states)
    expect(any(t == "execute_input" for t, _ in out), "no execute_input")


def t_c_output():
    # printed by a child process and by C stdio, not through Lua's print
    reply, out = run(kc, "os.execute('echo from a child process')\nio.stderr:write('to stderr\\n')")
    expect(reply["status"] == "ok", reply)
    expect("from a child process\n" in stdout_of(out), repr(out))
    err = "".join(c["text"] for t, c in out if t == "stream" and c["name"] == "stderr")
    expect(err == "to stderr\n", repr(err))


def t_error():
    reply, out = run(kc, "local t = {}\nerror('boom: ' .. #t)")
    expect(reply["status"] == "error", reply)
    expect(reply["evalue"] == "In[%d]:2: boom: 0" % reply["execution_count"], reply["evalue"])
    errs = [c for t, c in out if t == "error"]
    expect(errs and errs[0]["traceback"][0] == reply["evalue"], errs)


def t_locals_carry():
    reply, _ = run(kc, "local a, b <const> = 40, 2\nlocal function add(p, q) return p + q end\nlocal count\n")
    expect(reply["status"] == "ok", reply)
    reply, out = run(kc, "add(a, b), count")
    expect(result_of(out) == "42\tnil", result_of(out))
    # a cell's local shadows a global for the cells only, not for the library
    reply, out = run(kc, "local type = 'mine'\n")
    reply, out = run(kc, "type, ft.tensor.zeros{1}:sum():item()")
    expect(result_of(out) == "mine\t0.0", result_of(out))
    run(kc, "type = nil")
    reply, out = run(kc, "type(1)")
    expect(result_of(out) == "number", result_of(out))


def t_result_display():
    reply, out = run(kc, "({1, 2, n = 3})")
    expect(result_of(out) == "{1, 2, n = 3}", result_of(out))
    reply, out = run(kc, "x = 1;")
    expect(result_of(out) is None, "a ';' cell showed a result")
    reply, out = run(kc, "setmetatable({}, {__html = function() return '<b>hi</b>' end, "
                         "__tostring = function() return 'hi' end})")
    r = [c for t, c in out if t == "execute_result"][0]["data"]
    expect(r.get("text/html") == "<b>hi</b>" and r["text/plain"] == "hi", r)


def t_display_clear():
    reply, out = run(kc, "display(ft.tensor.ones{2})\nclear_output(true)\nprint('after')")
    types = [t for t, _ in out]
    expect("display_data" in types and "clear_output" in types, types)
    d = [c for t, c in out if t == "display_data"][0]["data"]["text/plain"]
    expect(d.startswith("tensor([1., 1.])"), d)
    expect([c for t, c in out if t == "clear_output"][0]["wait"] is True, out)


def t_abort_queued():
    # a failing cell with cells queued behind it: they are aborted, not run (stop_on_error)
    ids = [kc.execute("local t0 = ft.clock() while ft.clock() - t0 < 1 do end error('first fails')"),
           kc.execute("queued_ran = true")]
    replies = {}
    while len(replies) < 2:
        r = kc.get_shell_msg(timeout=30)
        if r["parent_header"]["msg_id"] in ids:
            replies[r["parent_header"]["msg_id"]] = r["content"]["status"]
    expect([replies[i] for i in ids] == ["error", "aborted"], replies)
    time.sleep(0.2)
    reply, out = run(kc, "queued_ran")
    expect(result_of(out) == "nil", "a queued cell ran after an error")


def t_stdin():
    reply, out = run(kc, "line = io.read()\nline", allow_stdin=True,
                     stdin_hook=lambda msg: kc.input("typed here"))
    expect(result_of(out) == "typed here", result_of(out))
    reply, out = run(kc, "io.read()")
    expect(result_of(out) == "nil", "without allow_stdin io.read reads EOF: %r" % result_of(out))


def t_figures():
    reply, out = run(kc, "ft.plot.plot{ {1, 4, 9, 16}, title = 'squares' }")
    expect(reply["status"] == "ok", reply)
    figs = [c for t, c in out if t == "display_data" and "image/png" in c["data"]]
    expect(len(figs) == 1, [t for t, _ in out])
    import base64
    png = base64.b64decode(figs[0]["data"]["image/png"])
    expect(png[:8] == b"\x89PNG\r\n\x1a\n", png[:8])


def t_epoch_table():
    reply, out = run(kc, LEARNER + "learn:fit(2, 1e-3)")
    expect(reply["status"] == "ok", reply)
    tables = [(t, c) for t, c in out if t in ("display_data", "update_display_data")
              and "<table" in c["data"].get("text/html", "")]
    expect(tables and tables[0][0] == "display_data", "no table display")
    ids = {c["transient"]["display_id"] for _, c in tables}
    expect(len(ids) == 1, ids)
    last = tables[-1][1]["data"]["text/html"]
    expect(last.count("<tr>") == 2 and "<th>valid_loss</th>" in last, last)
    reply, out2 = run(kc, "learn")  # the Learner's own __html: the summary and the last fit
    html = [c for t, c in out2 if t == "execute_result"][0]["data"].get("text/html", "")
    expect(html.count("<tr><td>") == 2 and "Learner:" in html, html)
    reply, out2 = run(kc, "dls")
    html = [c for t, c in out2 if t == "execute_result"][0]["data"].get("text/html", "")
    expect("classes: a, b" in html, html)
    bars = [(t, c) for t, c in out if "<progress" in c.get("data", {}).get("text/html", "")]
    expect(bars and any(t == "update_display_data" for t, _ in bars), "no bar updates")
    expect("epoch" not in stdout_of(out), "the table was printed as text too: %r" % stdout_of(out))


def wait_for_bar(timeout=180):
    """Waits on iopub until the progress bar has shown a batch (the fit is in its loop)."""
    t0 = time.time()
    while time.time() - t0 < timeout:
        try:
            m = kc.get_iopub_msg(timeout=1)
        except Exception:
            continue
        if m["msg_type"] == "update_display_data" and "<progress" in m["content"]["data"].get("text/html", ""):
            return
    raise AssertionError("the fit never showed its bar")


def drain_reply(msg_id, timeout=180):
    while True:
        r = kc.get_shell_msg(timeout=timeout)
        if r["parent_header"].get("msg_id") == msg_id:
            return r["content"]


def t_interrupt_fit():
    run(kc, LEARNER)
    msg_id = kc.execute("learn:fit(1000, 1e-3)")
    try:
        wait_for_bar()  # generous: a loaded 2-core machine is slow to reach the first batch
    except AssertionError:
        km.interrupt_kernel()  # stop the fit anyway, so that the checks after this one still run
        drain_reply(msg_id)
        raise
    km.interrupt_kernel()
    km.interrupt_kernel()  # an impatient second click: the kernel must survive it
    reply = drain_reply(msg_id)
    expect(reply["status"] == "error" and "interrupted!" in reply["evalue"], reply)
    reply, out = run(kc, "preds = learn:get_preds{ds_idx = 1}\npreds:size(1), model[1].weight:isfinite():all():item()")
    expect(result_of(out) == "64\ttrue", result_of(out))


def t_interrupt_loop():
    msg_id = kc.execute("while true do end")
    time.sleep(0.5)
    km.interrupt_kernel()
    reply = drain_reply(msg_id, timeout=30)
    expect(reply["status"] == "error" and reply["ename"] == "KeyboardInterrupt", reply)
    reply, out = run(kc, "1 + 1")
    expect(result_of(out) == "2", result_of(out))


def t_bad_input():
    reply, out = run(kc, "x = = 1")
    expect(reply["status"] == "error" and reply["ename"] == "SyntaxError", reply)
    reply, out = run(kc, "ft.tensor.ones{2, 3} + ft.tensor.ones{4, 5}")
    expect(reply["status"] == "error" and "size" in reply["evalue"], reply)
    reply, out = run(kc, "ft.tensor.zeros{1e6, 1e6, 1e3}")
    expect(reply["status"] == "error", reply)
    reply, out = run(kc, "string.rep('x', 1 << 40)")
    expect(reply["status"] == "error", reply)
    reply, out = run(kc, "'still here'")
    expect(result_of(out) == "still here", result_of(out))


def raw_send(sock, frames):
    sock.send_multipart(frames)


def t_bad_messages():
    # a message signed with another key, and one with a correct signature over malformed JSON
    ctx = zmq.Context.instance()
    s = ctx.socket(zmq.DEALER)
    s.connect("%s://%s:%d" % (km.transport, km.ip, km.shell_port))
    wrong = Session(key=b"not-the-key")
    msg = wrong.msg("execute_request", {"code": "hacked = true", "silent": False, "store_history": True,
                                         "user_expressions": {}, "allow_stdin": False, "stop_on_error": True})
    wrong.send(s, msg)
    good = Session(key=km.session.key)
    header = json.dumps(good.msg_header("execute_request"), default=str).encode()
    parts = [header, b"{}", b"{}", b"{this is not json"]
    import hmac, hashlib
    sig = hmac.new(km.session.key, digestmod=hashlib.sha256)
    for p in parts:
        sig.update(p)
    raw_send(s, [b"<IDS|MSG>", sig.hexdigest().encode()] + parts)
    raw_send(s, [b"garbage"])
    time.sleep(0.5)
    s.close(linger=0)
    expect(km.is_alive(), "the kernel died")
    reply, out = run(kc, "hacked")
    expect(result_of(out) == "nil", "a badly signed message ran: %r" % result_of(out))


def t_complete():
    code = "x = ft.tensor.zer"
    kc.complete(code, len(code))
    c = kc.get_shell_msg(timeout=10)["content"]
    expect(c["status"] == "ok" and "ft.tensor.zeros" in c["matches"], c)
    expect(c["cursor_start"] == 4 and c["cursor_end"] == len(code), c)
    run(kc, "local my_session_local = 1")  # a cell's local completes too
    kc.complete("my_sess", 7)
    c = kc.get_shell_msg(timeout=10)["content"]
    expect(c["matches"] == ["my_session_local"], c)


def t_inspect():
    kc.inspect("ft.tensor.zeros", 12)
    c = kc.get_shell_msg(timeout=10)["content"]
    expect(c["status"] == "ok" and c["found"], c)
    expect("zeros" in c["data"]["text/plain"], c)


def t_is_complete():
    for code, want in (("x = 1", "complete"), ("for i = 1, 3 do", "incomplete"), ("x = = 1", "invalid")):
        kc.is_complete(code)
        c = kc.get_shell_msg(timeout=10)["content"]
        expect(c["status"] == want, (code, c))


def t_history():
    kc.history(hist_access_type="tail", n=2)
    c = kc.get_shell_msg(timeout=10)["content"]
    expect(c["status"] == "ok" and len(c["history"]) == 2, c)
    kc.comm_info()
    c = kc.get_shell_msg(timeout=10)["content"]
    expect(c["status"] == "ok" and c["comms"] == {}, c)


def t_restart():
    run(kc, "kept = 5")
    km.restart_kernel(now=False)
    kc.wait_for_ready(timeout=60)
    reply, out = run(kc, "kept")
    expect(result_of(out) == "nil", "state survived a restart: %r" % result_of(out))


def t_os_exit():
    msg_id = kc.execute("os.exit(3)")
    t0 = time.time()
    while km.is_alive() and time.time() - t0 < 20:
        time.sleep(0.1)
    expect(not km.is_alive(), "os.exit() did not end the kernel")
    km.restart_kernel(now=True)
    kc.wait_for_ready(timeout=60)
    reply, out = run(kc, "'back'")
    expect(result_of(out) == "back", result_of(out))


def t_signal_interrupt():
    global km, kc
    stop(km, kc)
    km, kc = start(mode="signal")
    msg_id = kc.execute("while true do end")
    time.sleep(0.5)
    km.interrupt_kernel()  # SIGINT to the process
    reply = drain_reply(msg_id, timeout=30)
    expect(reply["status"] == "error" and reply["ename"] == "KeyboardInterrupt", reply)
    km.interrupt_kernel()  # idle: ignored
    time.sleep(0.3)
    reply, out = run(kc, "'alive'")
    expect(result_of(out) == "alive", result_of(out))


def t_shutdown():
    proc = km.provisioner.process
    kc.stop_channels()
    km.shutdown_kernel(now=False)
    expect(proc.poll() == 0, "exit status %r (not a clean exit)" % proc.poll())


for name, fn in [("kernel_info", t_kernel_info), ("execute_stream_result", t_execute),
                 ("stream_from_c", t_c_output), ("execute_error", t_error),
                 ("locals_carry", t_locals_carry), ("result_display", t_result_display),
                 ("stdin_input_request", t_stdin),
                 ("display_and_clear_output", t_display_clear), ("abort_queued_after_error", t_abort_queued), ("figure_inline", t_figures),
                 ("epoch_table_html", t_epoch_table), ("interrupt_fit", t_interrupt_fit),
                 ("interrupt_loop", t_interrupt_loop), ("bad_input_cells", t_bad_input),
                 ("bad_signature_malformed_json", t_bad_messages), ("complete", t_complete),
                 ("inspect", t_inspect), ("is_complete", t_is_complete), ("history_comm_info", t_history),
                 ("restart", t_restart), ("os_exit_restart", t_os_exit),
                 ("interrupt_signal_mode", t_signal_interrupt), ("shutdown", t_shutdown)]:
    check(name, fn)
if km.is_alive():
    stop(km, kc)
sys.stdout.flush()
os._exit(1 if failures else 0)  # no client destructors at interpreter exit (their noise)
