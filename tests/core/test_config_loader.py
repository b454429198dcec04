"""The one config loader: types from annotations, strict errors naming file/line and key, YAML 1.2 scalars."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import pytest

from camels.core import config
from camels.core.errors import ConfigError


@dataclass
class Inner:
    r: int = 8
    on: bool = False


@dataclass
class Outer:
    name: str
    rate: float = 1e-3
    flag: bool = False
    count: int | str | None = None
    tags: tuple[str, ...] = ()
    files: list[str] = field(default_factory=list)
    mode: Literal["a", "b"] = "a"
    inner: Inner = field(default_factory=Inner)
    parts: dict[str, Inner] = field(default_factory=dict)


def write(tmp_path, text):
    p = tmp_path / "c.yaml"
    p.write_text(text, encoding="utf-8")
    return p


def test_types_come_from_the_annotations(tmp_path):
    p = write(tmp_path, "name: yes\nrate: 2e-5\ncount: all\ntags: [x, y]\ninner:\n  r: 0777\n"
                        "parts:\n  p1: {r: 3}\n  p2:\n")
    c = config.load(Outer, p, ["flag=true", "files=a.jsonl", "mode=b", "inner.on=true"])
    # YAML 1.2 scalars: "yes" is text, 2e-5 a float, 0777 the integer 777 (not octal).
    assert c.name == "yes" and c.rate == 2e-5 and isinstance(c.rate, float)
    assert (c.flag, c.count, c.tags, c.files, c.mode) == (True, "all", ("x", "y"), ["a.jsonl"], "b")
    assert c.inner == Inner(r=777, on=True)
    assert c.parts == {"p1": Inner(r=3), "p2": Inner()}
    assert config.load(Outer, None, ["name=1:20", "count=3", "tags=a, b,c"]).tags == ("a", "b", "c")
    assert config.load(Outer, None, ["name=1:20", "count=3"]).name == "1:20"  # not sexagesimal 80
    assert config.load(Outer, None, ["name=n", "count=3"]).count == 3  # int | str keeps an int an int


@pytest.mark.parametrize("value", ["yes", "no", "on", "off", "1", "0", "True", "y"])
def test_booleans_are_only_true_and_false(tmp_path, value):
    p = write(tmp_path, f"name: n\n\ninner:\n  on: {value}\n")
    with pytest.raises(ConfigError) as e:
        config.load(Outer, p)
    msg = str(e.value)
    assert msg.startswith(f"{p}:4: inner.on: expected true or false")
    assert "booleans are only true and false" in msg
    with pytest.raises(ConfigError, match=r"^override: flag: expected true or false"):
        config.load(Outer, p, [f"flag={value}", "inner.on=false"])


def test_errors_name_file_line_and_key(tmp_path):
    p = write(tmp_path, "name: n\nrate: fast\n")
    with pytest.raises(ConfigError, match=rf"^{p}:2: rate: expected a number, got 'fast'$"):
        config.load(Outer, p)
    p = write(tmp_path, "name: n\ninner:\n  r: 1\n  rr: 2\n")
    with pytest.raises(ConfigError, match=rf"^{p}:4: inner.rr: unknown key \(did you mean inner.r\?\)$"):
        config.load(Outer, p)
    p = write(tmp_path, "name: n\nparts:\n  p1:\n    r: x\n")
    with pytest.raises(ConfigError, match=rf"^{p}:4: parts.p1.r: expected an integer, got 'x'$"):
        config.load(Outer, p)
    with pytest.raises(ConfigError, match=rf"^{p}: name: required key is missing"):
        config.load(Outer, write(tmp_path, "rate: 1\n"))
    with pytest.raises(ConfigError, match=r"^override: inner.r: expected an integer, got 2.5$"):
        config.load(Outer, None, ["name=n", "inner.r=2.5"])
    with pytest.raises(ConfigError, match=r"mode: expected one of 'a', 'b', got 'c'"):
        config.load(Outer, None, ["name=n", "mode=c"])
    with pytest.raises(ConfigError, match="expected key=value"):
        config.load(Outer, None, ["name"])
    with pytest.raises(ConfigError, match=rf"^{tmp_path / 'c.yaml'}: not valid YAML"):
        config.load(Outer, write(tmp_path, "name: [unclosed\n"))
    with pytest.raises(ConfigError, match="expected a mapping of keys to values at the top level"):
        config.load(Outer, write(tmp_path, "- a\n- b\n"))


def test_read_with_overrides_keeps_where_each_key_came_from(tmp_path):
    # one read of a file: its mapping with the overrides applied, each key's line, the overridden keys; a
    # section of it is a config of its own (lines and overrides without the prefix), built like the whole
    p = write(tmp_path, "name: n\ninner:\n  r: 1\n  on: maybe\nparts: {p1: {r: 2}}\n")
    read = config.read_with_overrides(p, ["inner.r=5", "rate=0.5"])
    assert read.data == {"name": "n", "inner": {"r": 5, "on": "maybe"}, "parts": {"p1": {"r": 2}}, "rate": 0.5}
    assert read.origin == str(p) and read.overridden == {"inner.r", "rate"}
    assert read.lines == {"name": 1, "inner": 2, "inner.r": 3, "inner.on": 4, "parts": 5, "parts.p1": 5,
                          "parts.p1.r": 5}
    assert read.where("inner.on") == f"{p}:4: " and read.where("inner.r") == "override: "
    with pytest.raises(ConfigError, match=rf"^{p}:4: inner.on: expected true or false"):
        read.build(Outer)
    inner = read.section("inner", origin="the inner part")
    assert (inner.data, inner.lines, inner.overridden) == ({"r": 5, "on": "maybe"}, {"r": 3, "on": 4}, {"r"})
    with pytest.raises(ConfigError, match=r"^the inner part:4: on: expected true or false"):
        inner.build(Inner)
    inner.data["on"] = True
    assert inner.build(Inner) == Inner(r=5, on=True) and read.data["inner"]["on"] == "maybe"  # a copy
    # no file: the overrides alone
    only = config.read_with_overrides(None, {"name": "o"}, count=3)
    assert (only.data, only.origin, only.lines, only.overridden) == ({"name": "o", "count": 3}, "", {},
                                                                      {"name", "count"})
    with pytest.raises(ConfigError, match=r"^override: name.x: name is not a section$"):
        config.read_with_overrides(p, ["name.x=1"])
    assert config.coerce("opt", int, "7") == 7
    with pytest.raises(ConfigError, match=rf"^{p}:4: inner.on: expected an integer, got 'x'$"):
        config.coerce("inner.on", int, "x", read.where)


def test_resolved_config_round_trips(tmp_path):
    c = config.load(Outer, None, ["name=yes", "tags=[a]", "parts={q: {r: 2}}", "rate=3e-4", "count=null"])
    path = config.write_resolved(c, tmp_path)
    assert path == tmp_path / "config.resolved.yaml"
    assert config.load(Outer, path) == c


def test_replace_checks_like_build():
    c = Outer(name="n")
    assert config.replace(c, {"tags": "a,b", "flag": "false", "rate": 2}, origin="x") == Outer(
        name="n", tags=("a", "b"), rate=2.0)
    with pytest.raises(ConfigError, match=r"^task t: flag: expected true or false"):
        config.replace(c, {"flag": "yes"}, origin="task t")
    with pytest.raises(ConfigError, match=r"^task t: rat: unknown key \(did you mean rate\?\)"):
        config.replace(c, {"rat": 1}, origin="task t")


def test_task_options_use_the_loader():
    from camels.evals.task import get_task

    g = get_task("gsm8k_direct", n="5", plain_stop="\n\n")
    assert (g.config.cot, g.config.n, g.config.plain_stop) == (False, 5, ("\n\n",))
    with pytest.raises(ConfigError, match=r"^task gsm8k_cot: cot: expected true or false"):
        get_task("gsm8k_cot", cot="yes")  # was read as true
    with pytest.raises(ConfigError, match=r"^task mmlu: shots: expected an integer, got 'five'"):
        get_task("mmlu", shots="five")


def test_mixture_configs_use_the_loader(tmp_path):
    from camels.data.mixture import load_mixture

    p = write(tmp_path, "name: m\nseed: 7\nsources:\n  a: {path: a.jsonl, count: all}\n  b:\n"
                        "    files: [b.jsonl]\n    fraction: 1\n")
    m = load_mixture(str(p))
    assert (m.seed, [s.files for s in m.sources], m.sources[0].count, m.sources[1].fraction) == (
        7, [("a.jsonl",), ("b.jsonl",)], None, 1.0)
    bad = write(tmp_path, "name: m\nsources:\n  a:\n    path: a.jsonl\n    fraction: half\n")
    with pytest.raises(ConfigError, match=rf"^{bad}:5: sources.a.fraction: expected a number"):
        load_mixture(str(bad))
    bad = write(tmp_path, "name: m\nseed: yes\nsources:\n  a: {path: a.jsonl}\n")
    with pytest.raises(ConfigError, match=rf"^{bad}:2: seed: expected an integer, got 'yes'"):
        load_mixture(str(bad))
