"""The template's choices (the list-valued questions of cookiecutter.json) and all their combinations."""

import itertools
import json
from pathlib import Path

TEMPLATE = Path(__file__).resolve().parents[1]

CHOICES = {
    name: values
    for name, values in json.loads((TEMPLATE / "cookiecutter.json").read_text()).items()
    if isinstance(values, list)
}
COMBINATIONS = [dict(zip(CHOICES, values, strict=True)) for values in itertools.product(*CHOICES.values())]
