"""Write every requirement a baked site can have, over all combinations of the choices, to a file.

`make install` installs them into the template's virtualenv, so that every bake in the tests
runs with it:  site_requirements.py OUTPUT
"""

import sys
import tempfile
from pathlib import Path

from choices import COMBINATIONS, TEMPLATE
from cookiecutter.main import cookiecutter

requirements = set()
with tempfile.TemporaryDirectory() as build:
    for number, answers in enumerate(COMBINATIONS):
        site = Path(
            cookiecutter(str(TEMPLATE), no_input=True, output_dir=f"{build}/{number}", extra_context=answers)
        )
        for name in ("requirements.txt", "requirements-dev.txt"):
            lines = (site / name).read_text().splitlines()
            requirements |= {line for line in lines if line and not line.startswith(("#", "-r"))}
Path(sys.argv[1]).write_text("\n".join(sorted(requirements)) + "\n")
