"""Executes a notebook headless with nbclient on the ftlua kernel, in the notebook's folder,
and checks its outputs. Prints ok/FAIL lines.

    run_notebook.py NOTEBOOK NAME MIN_FIGURES [OUT.ipynb]

Checks: every cell runs without error; at least MIN_FIGURES outputs carry image/png (real PNGs);
an epoch table is there as HTML (<table> with <th>train_loss</th>) and the progress bar as a
display; the executed notebook is written to OUT when given.
"""
import base64
import os
import sys
import time

import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

path, name, min_figs = sys.argv[1], sys.argv[2], int(sys.argv[3])
out_path = sys.argv[4] if len(sys.argv) > 4 else None
nb = nbformat.read(path, as_version=4)
client = NotebookClient(nb, timeout=900, kernel_name="ftlua",
                        resources={"metadata": {"path": os.path.dirname(os.path.abspath(path))}})
failed = False
t0 = time.time()
try:
    client.execute()
    print(f"ok {name}_runs ({time.time() - t0:.0f} s)")
except CellExecutionError as e:
    failed = True
    print(f"FAIL {name}_runs: " + str(e).strip().replace("\n", " | ")[:1500])
errors = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []) if o.output_type == "error"]
if errors:
    failed = True
    print(f"FAIL {name}_no_errors: {errors[0].ename}: {errors[0].evalue}")
else:
    print(f"ok {name}_no_errors")
pngs = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])
        if o.output_type in ("display_data", "execute_result") and "image/png" in o.get("data", {})]
good = [o for o in pngs if base64.b64decode(o["data"]["image/png"])[:8] == b"\x89PNG\r\n\x1a\n"]
if len(good) >= min_figs:
    print(f"ok {name}_figures_png ({len(good)})")
else:
    failed = True
    print(f"FAIL {name}_figures_png: {len(good)} PNG outputs, wanted at least {min_figs}")
htmls = [o["data"]["text/html"] for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])
         if "text/html" in o.get("data", {})]
tables = [h for h in htmls if "<table" in h and "<th>train_loss</th>" in h and "<td>" in h]
bars = [h for h in htmls if "<progress" in h]
if tables and bars:
    print(f"ok {name}_epoch_table_html ({len(tables)} tables)")
else:
    failed = True
    print(f"FAIL {name}_epoch_table_html: {len(tables)} tables, {len(bars)} bars among {len(htmls)} HTML outputs")
if out_path:
    nbformat.write(nb, out_path)
sys.exit(1 if failed else 0)
