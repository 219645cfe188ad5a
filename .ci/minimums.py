"""Print pyproject.toml's dependencies (and the test extra) pinned to their declared floors,
torch left out, for `pip install`: `av>=17,<19` -> `av==17`."""

import re
import sys
import tomllib
from pathlib import Path

project = tomllib.loads((Path(__file__).parent.parent / "pyproject.toml").read_text())["project"]
pins = []
for spec in project["dependencies"] + project["optional-dependencies"]["test"]:
    name, floor = re.fullmatch(r"([A-Za-z0-9_.-]+)\s*>=\s*([^,\s]+).*", spec).groups()
    if name != "torch":
        pins.append(f"{name}=={floor}")
sys.stdout.write(" ".join(pins) + "\n")
