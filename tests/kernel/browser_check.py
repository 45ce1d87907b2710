"""A real browser on a real Jupyter Notebook: starts `jupyter notebook` on 127.0.0.1 (a free
port, a random token), opens the notebook in headless Chromium, runs all cells through the page's
own Jupyter JavaScript, waits until every cell has run, checks the page shows an epoch table
(HTML) and inline plots and no error, and takes a screenshot.

Chromium is driven through its DevTools protocol over a WebSocket (tornado's client, which
Debian's jupyter-notebook already brings). Prints ok/FAIL lines.

    browser_check.py NOTEBOOK WORKDIR SCREENSHOT.png
"""
import base64
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request

from tornado.ioloop import IOLoop
from tornado.websocket import websocket_connect

nb_path, work, shot = sys.argv[1], sys.argv[2], sys.argv[3]
nb_name = os.path.basename(nb_path)
shutil.copy(nb_path, os.path.join(work, nb_name))


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def wait_http(url, timeout=60):
    t0 = time.time()
    while time.time() - t0 < timeout:
        if any(p.poll() is not None for p in procs):
            raise RuntimeError("jupyter notebook or chromium exited early (see their logs)")
        try:
            return urllib.request.urlopen(url, timeout=2).read()
        except Exception:
            time.sleep(0.3)
    raise RuntimeError("no answer from " + url)


procs = []


def cleanup():
    for p in procs:
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()


failed = False


def report(ok, name, why=""):
    global failed
    if ok:
        print("ok", name, flush=True)
    else:
        failed = True
        print(f"FAIL {name}: {why}", flush=True)


token = secrets.token_hex(16)
port, devport = free_port(), free_port()
log = open(os.path.join(work, "notebook.log"), "w")
procs.append(subprocess.Popen(
    ["jupyter", "notebook", "--no-browser", "--ip", "127.0.0.1", "--port", str(port), "--port-retries", "0",
     "--NotebookApp.token=" + token, "--notebook-dir", work, "--NotebookApp.open_browser=False"]
    + (["--allow-root"] if os.getuid() == 0 else []),
    stdout=log, stderr=subprocess.STDOUT, cwd=work))
chrome_log = open(os.path.join(work, "chromium.log"), "w")
procs.append(subprocess.Popen(
    ["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--no-default-browser-check",
     "--remote-debugging-address=127.0.0.1", "--remote-debugging-port=%d" % devport,
     "--user-data-dir=" + os.path.join(work, "chromium-profile"), "--window-size=1400,1800", "about:blank"],
    stdout=chrome_log, stderr=subprocess.STDOUT))


class Page:
    def __init__(self, ws):
        self.ws, self.n = ws, 0

    async def call(self, method, **params):
        self.n += 1
        my = self.n
        await self.ws.write_message(json.dumps({"id": my, "method": method, "params": params}))
        while True:
            msg = await self.ws.read_message()
            if msg is None:
                raise RuntimeError("DevTools connection closed")
            m = json.loads(msg)
            if m.get("id") == my:
                if "error" in m:
                    raise RuntimeError(f"{method}: {m['error']}")
                return m["result"]

    async def eval(self, js):
        r = await self.call("Runtime.evaluate", expression=js, returnByValue=True)
        if "exceptionDetails" in r:
            return None
        return r["result"].get("value")

    async def wait(self, js, timeout, what):
        t0 = time.time()
        while time.time() - t0 < timeout:
            if await self.eval(js):
                return True
            await sleep(0.5)
        raise RuntimeError(f"timed out waiting for {what}")


async def sleep(s):
    import asyncio
    await asyncio.sleep(s)


async def drive():
    wait_http(f"http://127.0.0.1:{port}/api/status?token={token}")
    targets = json.loads(wait_http(f"http://127.0.0.1:{devport}/json"))
    page_t = [t for t in targets if t["type"] == "page"][0]
    ws = await websocket_connect(page_t["webSocketDebuggerUrl"], max_message_size=64 << 20)
    page = Page(ws)
    await page.call("Page.enable")
    await page.call("Emulation.setDeviceMetricsOverride", width=1400, height=1800, deviceScaleFactor=1, mobile=False)
    await page.call("Page.navigate", url=f"http://127.0.0.1:{port}/notebooks/{nb_name}?token={token}")
    await page.wait("typeof Jupyter !== 'undefined' && Jupyter.notebook && Jupyter.notebook.kernel && "
                    "Jupyter.notebook.kernel.is_connected()", 90, "the notebook and its ftlua kernel")
    report(await page.eval("Jupyter.notebook.kernel.name") == "ftlua", "browser_kernel_is_ftlua")
    await page.eval("Jupyter.notebook.clear_all_output(); Jupyter.notebook.execute_all_cells(); true")
    done = ("(() => { const cs = Jupyter.notebook.get_cells().filter(c => c.cell_type === 'code');"
            " return cs.every(c => typeof c.input_prompt_number === 'number') &&"
            " document.querySelector('#kernel_indicator_icon').classList.contains('kernel_idle_icon'); })()")
    t0 = time.time()
    await page.wait(done, 900, "all cells to run")
    report(True, f"browser_run_all_cells ({time.time() - t0:.0f} s)")
    n_err = await page.eval("document.querySelectorAll('.output_error').length")
    report(n_err == 0, "browser_no_errors", f"{n_err} error outputs")
    tables = await page.eval("[...document.querySelectorAll('.output_html table')]"
                             ".filter(t => t.innerText.includes('train_loss') && t.querySelectorAll('td').length > 0).length")
    report(tables and tables > 0, "browser_epoch_table", f"{tables} epoch tables on the page")
    imgs = await page.eval("[...document.querySelectorAll('.output_png img')].filter(i => i.naturalWidth > 50).length")
    report(imgs and imgs >= 5, "browser_inline_plots", f"{imgs} inline PNG images")
    # the screenshot: the first epoch table and the plot above it (lr_find)
    await page.eval("(() => { const t = [...document.querySelectorAll('.output_html table')][0];"
                    " const cell = t.closest('.cell').previousElementSibling.previousElementSibling || t.closest('.cell');"
                    " cell.scrollIntoView(); return true; })()")
    await sleep(1)
    png = await page.call("Page.captureScreenshot", format="png")
    with open(shot + ".part", "wb") as f:
        f.write(base64.b64decode(png["data"]))
    os.replace(shot + ".part", shot)
    report(os.path.getsize(shot) > 10000, "browser_screenshot", shot)
    ws.close()


try:
    IOLoop.current().run_sync(drive, timeout=1200)
except Exception as e:
    report(False, "browser", f"{type(e).__name__}: {e}")
finally:
    cleanup()
sys.exit(1 if failed else 0)
