"""Model outputs as safe HTML: Markdown (headings, lists, emphasis, code blocks) with no raw HTML.

markdown-it-py in CommonMark mode with ``html`` off: any ``<script>``, ``<img onerror=...>`` or other tag
in a response is escaped and shown as text. Links keep only http(s) and mailto targets (markdown-it
already refuses ``javascript:``, ``vbscript:``, ``file:`` and most ``data:``; this narrows it further) and
open with ``rel="noopener noreferrer nofollow"``; images are not loaded (``![alt](url)`` stays text), so a
response cannot make the annotator's browser fetch anything. Soft line breaks are kept as breaks, since
model outputs use single newlines as line ends.
"""

from __future__ import annotations

from functools import lru_cache

SAFE_SCHEMES = ("http://", "https://", "mailto:")


def _validate_link(url: str) -> bool:
    return url.strip().lower().startswith(SAFE_SCHEMES)


@lru_cache(maxsize=1)
def _markdown():
    from markdown_it import MarkdownIt

    md = MarkdownIt("commonmark", {"html": False, "breaks": True, "linkify": False})
    md.disable("image")
    md.validateLink = _validate_link

    def link_open(renderer, tokens, idx, options, env):
        tokens[idx].attrSet("rel", "noopener noreferrer nofollow")
        return renderer.renderToken(tokens, idx, options, env)

    md.add_render_rule("link_open", link_open)
    return md


def render_markdown(text: str) -> str:
    """HTML for ``text``; every tag in it comes from Markdown syntax, never from the text itself.

    >>> render_markdown("<script>alert(1)</script> **bold**")
    '<p>&lt;script&gt;alert(1)&lt;/script&gt; <strong>bold</strong></p>\\n'
    """
    return _markdown().render(text)
