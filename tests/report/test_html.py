"""The HTML page and its SVG plots without a browser: self-contained, well-formed, missing never drawn as 0."""

from __future__ import annotations

import base64
import re
import xml.etree.ElementTree as ET

from camels.report import build_report
from camels.report.svg import bar_chart, line_chart, radar_chart

from .helpers import sample_study

SVG = "{http://www.w3.org/2000/svg}"


def test_bar_chart_whiskers_and_missing():
    svg = bar_chart("Skill", ["A", "B"], ["m1", "m2"], [[50.0, None], [25.0, 100.0]],
                    [[(40.0, 60.0), None], [None, (90.0, 100.0)]])
    root = ET.fromstring(svg)
    bars = [r for r in root.iter(f"{SVG}rect") if r.find(f"{SVG}title") is not None]
    assert [r.find(f"{SVG}title").text for r in bars] == ["m1: 50.0", "m2: 25.0", "m2: 100.0"]
    # plot area: top 34, height 260 - 34 - 58 = 168 -> 50% is 84 high, 25% 42, 100% 168
    assert [r.get("height") for r in bars] == ["84.0", "42.0", "168.0"]
    assert len([p for p in root.iter(f"{SVG}path")]) == 2  # two whiskers: m1/A and m2/B
    assert "—" in [t.text for t in root.iter(f"{SVG}text")]  # m1 has no B: marked, no bar


def test_radar_leaves_missing_spokes_out():
    svg = radar_chart("m", ["a", "b", "c", "d"], [("m", [100.0, None, 50.0, 100.0], "#000000", False)])
    root = ET.fromstring(svg)
    shape = [p for p in root.iter(f"{SVG}polygon") if p.find(f"{SVG}title") is not None]
    assert len(shape) == 1 and len(shape[0].get("points").split()) == 3
    assert len(list(root.iter(f"{SVG}circle"))) == 3


def test_line_chart_ticks_cover_the_data():
    svg = line_chart("loss", [("run", [(1.0, 2.43), (2.0, 1.2), (3.0, 0.4)])])
    texts = [t.text for t in ET.fromstring(svg).iter(f"{SVG}text")]
    assert {"0", "0.5", "1", "1.5", "2", "2.5"} <= set(texts)


def test_html_page_is_self_contained(tmp_path):
    study = sample_study(tmp_path)
    outs = build_report([study["runs"]], tmp_path / "out", reference="tulu-30b", training_runs=study["training"],
                        human=study["human"], n_boot=50)
    page = outs.html.read_text(encoding="utf-8")
    assert "<script" not in page and "<link" not in page and "url(" not in page
    srcs = re.findall(r'<img src="([^"]+)"', page)
    assert len(srcs) == 10  # 6 skills, 3 radar charts, 1 loss chart
    for src in srcs:
        assert src.startswith("data:image/svg+xml;base64,")
        svg = base64.b64decode(src.split(",", 1)[1]).decode("utf-8")
        root = ET.fromstring(svg)
        assert root.tag == f"{SVG}svg" and int(root.get("width")) > 0 and int(root.get("height")) > 0
        assert "http" not in svg.replace("http://www.w3.org/2000/svg", "")
    assert "Tülu 30B (published) (reference)" in page
