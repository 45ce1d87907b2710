"""Writes scripts/main.ipynb, the offline main job as a notebook, from scripts/main.lua itself:
the header comment becomes the first markdown cell, each numbered section ("-- 1. ...") a
markdown cell (its comment) and a code cell (its code). Top-level locals carry between cells
(docs/jupyter.md), so the script's code runs unchanged. A parameters cell sets `arg` as the
command line would. Rerun after editing main.lua:
    /usr/bin/python3 tests/kernel/make_main_notebook.py
"""
import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from make_pets_notebook import notebook  # noqa: E402

PARAMS = '''-- Parameters: the command line of `ftlua scripts/main.lua`, as `arg`. The notebook runs in
-- scripts/, so the outputs go to ../out/main as with `make run`.
arg = { [0] = "main.ipynb", "--out", "../out/main", "--shots", "10", "--pre_epochs", "3", "--epochs", "3,12" }
if os.getenv("FTLUA_NOTEBOOK_TINY") == "1" then  -- the test suite's setting: a minute, not an hour
  for _, a in ipairs { "--source_n", "300", "--pre_epochs", "1", "--epochs", "1,1", "--shots", "4" } do
    arg[#arg + 1] = a
  end
end'''


def comment_text(lines):
    return "\n".join(re.sub(r"^-- ?", "", l) for l in lines)


def main():
    src = open("scripts/main.lua").read().rstrip("\n").split("\n")
    i = 0
    header = []
    while i < len(src) and src[i].startswith("--"):
        header.append(src[i])
        i += 1
    intro = comment_text(header).replace("scripts/main.lua: the offline main job", "The offline main job", 1)
    cells = [("md", "# The main job, as a notebook\n\n" + intro), ("code", PARAMS)]
    code = []
    while i < len(src):
        m = re.match(r"^-- (\d+)\. ", src[i])
        if m:
            if any(l.strip() for l in code):
                cells.append(("code", "\n".join(code).strip("\n")))
            code = []
            comment = []
            while i < len(src) and src[i].startswith("--"):
                comment.append(src[i])
                i += 1
            cells.append(("md", "## " + comment_text(comment)))
            continue
        code.append(src[i])
        i += 1
    if any(l.strip() for l in code):
        cells.append(("code", "\n".join(code).strip("\n")))
    path = sys.argv[1] if len(sys.argv) > 1 else "scripts/main.ipynb"
    import json
    with open(path + ".part", "w") as f:
        json.dump(notebook(cells), f, indent=1)
        f.write("\n")
    os.replace(path + ".part", path)


if __name__ == "__main__":
    main()
