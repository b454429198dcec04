"""Helpers of the annotation app's tests (a module of its own: two conftest modules cannot share a name)."""

from __future__ import annotations

import re

PASSWORD = "correct horse battery"
CSRF_RE = re.compile(r'name="csrf_token" value="([^"]+)"')


def csrf_of(html: str) -> str:
    m = CSRF_RE.search(html)
    assert m, "no CSRF token in the page"
    return m.group(1)


def make_pairing(n: int = 4, *, outputs_a=None, outputs_b=None, prompts=None, model_a="model-x",
                 model_b="model-y"):
    from camels.annotate.sources import PairedItem, Pairing

    items = []
    for i in range(n):
        a = outputs_a[i] if outputs_a else f"answer A{i}"
        b = outputs_b[i] if outputs_b else f"answer B{i}"
        prompt = prompts[i] if prompts else f"prompt {i}"
        items.append(PairedItem(key=f"q{i}", prompt=prompt, output_a=a, output_b=b))
    return Pairing(model_a, model_b, items, {})
