"""Failures end as one clear line and lose nothing; files as editors save them read as the same data.

The disk-full and read-only cases use a real small tmpfs mounted for the test (skipped, with the reason,
where mounting is not allowed); permission denied runs the command as an unprivileged user.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from camels.cli import main
from camels.core.io import Publication, read_json
from camels.data.manifest import manifest_path, read_manifest

ROOT = Path(__file__).resolve().parents[2]
RAW = ROOT / "tests" / "fixtures" / "raw"
BENCH = ROOT / "tests" / "fixtures" / "benchmarks"


@pytest.fixture(autouse=True)
def _quiet(monkeypatch):
    monkeypatch.setenv("CAMELS_PROGRESS", "0")


def conversations(n: int, source: str = "dolly", words: int = 8) -> str:
    rows = []
    for i in range(n):
        text = " ".join(f"w{i}x{k}" for k in range(words))
        rows.append({"dataset": source, "id": f"{source}-{i}", "messages": [
            {"role": "user", "content": f"question {i}: {text}"}, {"role": "assistant", "content": f"answer {i}"}]})
    return "".join(json.dumps(r) + "\n" for r in rows)


def dolly_rows(n: int, words: int = 40) -> str:
    return "".join(json.dumps({"instruction": f"Question {i}: " + " ".join(f"t{i}y{k}" for k in range(words)),
                               "context": "", "response": f"Answer {i}.", "category": "open_qa"}) + "\n"
                   for i in range(n))


# -- a real small file system ----------------------------------------------------------------------------

@pytest.fixture
def small_fs(tmp_path):
    """A 1 MiB tmpfs mounted at a fresh folder (unmounted afterwards)."""
    if shutil.which("mount") is None:
        pytest.skip("no mount command on this machine")
    mnt = tmp_path / "fs"
    mnt.mkdir()
    res = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m,mode=0777", "tmpfs", str(mnt)],
                         capture_output=True, text=True)
    if res.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root or CAP_SYS_ADMIN): {res.stderr.strip()}")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], capture_output=True)


def fill_leaving(folder: Path, free_bytes: int) -> None:
    """Fill the file system of ``folder`` until exactly ``free_bytes`` (rounded up to blocks) stay free."""
    st = os.statvfs(folder)
    block = st.f_frsize
    keep = -(-free_bytes // block) * block
    avail = st.f_bavail * block
    assert avail > keep, "the test file system is too small for this case"
    with open(folder / "filler", "wb") as f:
        f.write(b"\0" * (avail - keep))
    st = os.statvfs(folder)
    assert st.f_bavail * st.f_frsize == keep


def pair_bytes(output: Path) -> tuple[bytes, bytes]:
    return output.read_bytes(), manifest_path(output).read_bytes()


def assert_one_error_line(err: str, *needles: str) -> None:
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("camels: error: "), err
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])


@pytest.mark.parametrize("step", ["convert", "mix", "decontaminate"])
def test_disk_full_keeps_the_old_output_and_manifest(step, small_fs, tmp_path, capsys):
    """The new output fits on the disk but its manifest does not: the old pair stays, byte for byte."""
    small, big = tmp_path / "small.jsonl", tmp_path / "big.jsonl"
    if step == "convert":
        small.write_text(dolly_rows(3), encoding="utf-8")
        big.write_text(dolly_rows(150), encoding="utf-8")

        def cmd(src: Path, out: Path) -> list[str]:
            return ["data", "convert", "dolly", str(src), "-o", str(out), "--no-progress"]
    elif step == "mix":
        small.write_text(conversations(3), encoding="utf-8")
        big.write_text(conversations(1500), encoding="utf-8")

        def cmd(src: Path, out: Path) -> list[str]:
            return ["data", "mix", "single:dolly", "--input", f"dolly={src}", "-o", str(out)]
    else:
        small.write_text(conversations(3), encoding="utf-8")
        big.write_text(conversations(1500), encoding="utf-8")

        def cmd(src: Path, out: Path) -> list[str]:
            return ["data", "decontaminate", str(src), "-b", f"gsm8k={BENCH / 'gsm8k'}", "--drop", "-o", str(out)]

    # what the new output weighs, measured on a roomy disk
    assert main(cmd(big, tmp_path / "probe.jsonl")) == 0
    new_size = (tmp_path / "probe.jsonl").stat().st_size
    out = small_fs / "out.jsonl"
    assert main(cmd(small, out)) == 0
    old = pair_bytes(out)
    capsys.readouterr()

    fill_leaving(small_fs, new_size)
    assert main(cmd(big, out)) == 1
    err = capsys.readouterr().err
    assert_one_error_line(err, "disk is full", str(small_fs))
    assert pair_bytes(out) == old  # the old output with its own manifest
    assert json.loads(old[1])["output"]["lines"] == len(old[0].splitlines())
    leftovers = sorted(p.name for p in small_fs.iterdir() if p.name not in ("out.jsonl", "out.manifest.json",
                                                                               "filler"))
    assert leftovers == []  # no temporary file left behind


def test_read_only_file_system_is_one_line(small_fs, capsys):
    src = small_fs / "dolly.jsonl"
    src.write_text(dolly_rows(2), encoding="utf-8")
    res = subprocess.run(["mount", "-o", "remount,ro", str(small_fs)], capture_output=True, text=True)
    if res.returncode != 0:
        pytest.skip(f"cannot remount the test file system read-only: {res.stderr.strip()}")
    assert main(["data", "convert", "dolly", str(src), "-o", str(small_fs / "out.jsonl"), "--no-progress"]) == 1
    assert_one_error_line(capsys.readouterr().err, str(small_fs / "out.jsonl"), "read-only")


def test_permission_denied_is_one_line(tmp_path):
    """Run as an unprivileged user (a forked child that drops root) writing into a folder it may not write."""
    if os.geteuid() != 0:
        pytest.skip("switching to an unprivileged user needs root")
    import camels.data.convert  # noqa: F401  (imported before the fork: the child reads no source file)

    folder = Path("/tmp") / f"camels-perm-{uuid.uuid4().hex}"
    folder.mkdir(mode=0o755)
    try:
        src = folder / "dolly.jsonl"
        src.write_text(dolly_rows(2), encoding="utf-8")
        os.chmod(src, 0o644)
        locked = folder / "locked"
        locked.mkdir(mode=0o755)  # owned by root: the unprivileged user cannot create files in it
        read_fd, write_fd = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child: drop to nobody, run the command, report its stderr and exit code
            code = 99
            try:
                os.setgid(65534)
                os.setuid(65534)
                sys.stderr = os.fdopen(write_fd, "w")
                code = main(["data", "convert", "dolly", str(src), "-o", str(locked / "out.jsonl"),
                             "--no-progress"])
            finally:
                sys.stderr.flush()
                os._exit(code)
        os.close(write_fd)
        with os.fdopen(read_fd) as f:
            err = f.read()
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 1, err
        assert_one_error_line(err, str(locked / "out.jsonl"), "permission denied")
        assert sorted(p.name for p in locked.iterdir()) == []
    finally:
        shutil.rmtree(folder, ignore_errors=True)


# -- a crash between the two renames ----------------------------------------------------------------------

def test_a_crash_between_renames_is_finished_by_the_next_reader(tmp_path, monkeypatch):
    out = tmp_path / "o.jsonl"
    out.write_text("old\n")
    manifest_path(out).write_text('{"output": {"lines": 1}}\n')
    pub = Publication(out, manifest_path(out))
    with pub.open(out) as f:
        f.write("new\nnew\n")
    with pub.open(manifest_path(out)) as f:
        f.write('{"output": {"lines": 2}}\n')
    import camels.core.io as cio

    real, calls = os.replace, []

    def dying_replace(a, b):  # the process dies after the journal and the first rename
        calls.append(b)
        if len(calls) == 3:
            raise SystemExit("killed")
        real(a, b)

    monkeypatch.setattr(cio.os, "replace", dying_replace)
    with pytest.raises(SystemExit):
        pub.commit()
    pub.abort()  # what an unwinding `with` would do: the staged manifest must survive it
    monkeypatch.setattr(cio.os, "replace", real)
    assert out.read_text() == "new\nnew\n" and "lines\": 1" in manifest_path(out).read_text()  # the torn state
    assert read_manifest(out) == {"output": {"lines": 2}}  # the reader completes the publication first
    assert not any(p.name.endswith((".tmp", ".publish.json")) for p in tmp_path.iterdir())


# -- input the JSON parser cannot follow ------------------------------------------------------------------

DEEP = "[" * 100_000 + "]" * 100_000


def test_deep_nesting_is_an_error_line_or_a_counted_skip(tmp_path, capsys):
    good = json.loads(dolly_rows(1))
    src = tmp_path / "d.jsonl"
    src.write_text(json.dumps(good) + "\n" + '{"instruction": ' + DEEP + "}\n" + json.dumps(good) + "\n")
    out = tmp_path / "o.jsonl"
    assert main(["data", "convert", "dolly", str(src), "-o", str(out), "--no-progress"]) == 1
    assert_one_error_line(capsys.readouterr().err, f"{src}:2", "nested too deeply")
    assert main(["data", "convert", "dolly", str(src), "-o", str(out), "--no-progress", "--lenient"]) == 0
    m = read_json(manifest_path(out))
    assert m["skipped"] == {"too_deep": 1} and m["records_in"] == 3 and m["records_out"] == 2

    unified = tmp_path / "u.jsonl"
    unified.write_text(conversations(2) + DEEP + "\n")
    assert main(["data", "mix", "single:dolly", "--input", f"dolly={unified}", "-o", str(tmp_path / "m.jsonl")]) == 1
    assert_one_error_line(capsys.readouterr().err, f"{unified}:3", "nested too deeply")
    assert main(["data", "mix", "single:dolly", "--input", f"dolly={unified}", "-o", str(tmp_path / "m.jsonl"),
                 "--lenient"]) == 0
    assert read_json(tmp_path / "m.manifest.json")["skipped"] == {"too_deep": 1}
    capsys.readouterr()
    assert main(["data", "stats", str(unified), "--lenient", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["skipped"] == {"too_deep": 1}

    whole = tmp_path / "a.json"
    whole.write_text(DEEP)
    assert main(["data", "convert", "alpaca", str(whole), "-o", str(out), "--no-progress"]) == 1
    assert_one_error_line(capsys.readouterr().err, str(whole), "nested too deeply")


# -- files as editors save them ---------------------------------------------------------------------------

def as_editor_saves(text: str) -> bytes:
    """A UTF-8 byte-order mark and CRLF line ends (what Notepad writes)."""
    return b"\xef\xbb\xbf" + text.replace("\n", "\r\n").encode("utf-8")


@pytest.mark.parametrize("source,fixture", [("dolly", "dolly.jsonl"), ("alpaca", "alpaca.json"),
                                            ("cot", "cot.tsv")])
def test_bom_and_crlf_convert_to_the_same_data(source, fixture, tmp_path):
    from camels.data.convert import convert

    plain = tmp_path / fixture
    plain.write_bytes((RAW / fixture).read_bytes())
    edited = tmp_path / "edited" / fixture
    edited.parent.mkdir()
    edited.write_bytes(as_editor_saves((RAW / fixture).read_text(encoding="utf-8")))
    opts = {"tsv_templates": "camels"} if source == "cot" else None  # the fixture's name is no FLAN dataset
    a = convert(source, [plain], tmp_path / "a.jsonl", progress=False, lenient=True, options=opts)
    b = convert(source, [edited], tmp_path / "b.jsonl", progress=False, lenient=True, options=opts)
    assert b.skipped == a.skipped and b.records_out == a.records_out > 0
    assert (tmp_path / "b.jsonl").read_bytes() == (tmp_path / "a.jsonl").read_bytes()


def test_bom_and_crlf_in_unified_files_mix_stats_decontaminate(tmp_path, capsys):
    text = conversations(5)
    plain, edited = tmp_path / "p.jsonl", tmp_path / "e.jsonl"
    plain.write_text(text, encoding="utf-8")
    edited.write_bytes(as_editor_saves(text))
    for name in ("p", "e"):
        assert main(["data", "mix", "single:dolly", "--input", f"dolly={tmp_path / name}.jsonl", "-o",
                     str(tmp_path / f"mix_{name}.jsonl")]) == 0
    assert (tmp_path / "mix_e.jsonl").read_bytes() == (tmp_path / "mix_p.jsonl").read_bytes()
    assert read_json(tmp_path / "mix_e.manifest.json")["skipped_total"] == 0
    capsys.readouterr()
    outs = []
    for f in (plain, edited):
        assert main(["data", "stats", str(f), "--json"]) == 0
        outs.append(json.loads(capsys.readouterr().out))
    assert outs[0] == outs[1] and outs[0]["rows"][-1]["instances"] == 5


def test_bom_and_crlf_in_benchmark_files(tmp_path):
    """Benchmark CSV and JSONL files read the same with a byte-order mark and CRLF line ends."""
    from camels.data.decontam import NgramHasher, build_index

    for name, rel in (("mmlu", "mmlu_orig"), ("mmlu", "mmlu_hf"), ("gsm8k", "gsm8k")):
        src = BENCH / rel
        edited = tmp_path / rel
        shutil.copytree(src, edited)
        for f in edited.rglob("*"):
            if f.is_file() and f.suffix in (".csv", ".jsonl"):
                f.write_bytes(as_editor_saves(f.read_text(encoding="utf-8")))
        a = build_index(name, src, NgramHasher(8))
        b = build_index(name, edited, NgramHasher(8))
        assert (b.items, b.ngrams) == (a.items, a.ngrams) and a.items > 0


# -- outputs readable per umask ---------------------------------------------------------------------------

@pytest.mark.parametrize("mask,mode", [(0o022, 0o644), (0o002, 0o664)])
def test_outputs_follow_the_umask(mask, mode, tmp_path):
    src = tmp_path / "u.jsonl"
    src.write_text(conversations(3))
    old = os.umask(mask)
    try:
        assert main(["data", "convert", "dolly", str(RAW / "dolly.jsonl"), "-o", str(tmp_path / "c.jsonl"),
                     "--no-progress"]) == 0
        assert main(["data", "mix", "single:dolly", "--input", f"dolly={src}", "-o", str(tmp_path / "m.jsonl")]) == 0
        assert main(["data", "stats", str(src), "--csv", str(tmp_path / "s.csv")]) == 0
    finally:
        os.umask(old)
    for name in ("c.jsonl", "c.manifest.json", "m.jsonl", "m.manifest.json", "s.csv"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == mode, name


def test_a_replaced_output_keeps_its_mode(tmp_path):
    out = tmp_path / "c.jsonl"
    assert main(["data", "convert", "dolly", str(RAW / "dolly.jsonl"), "-o", str(out), "--no-progress"]) == 0
    os.chmod(out, 0o640)
    assert main(["data", "convert", "dolly", str(RAW / "dolly.jsonl"), "-o", str(out), "--no-progress"]) == 0
    assert stat.S_IMODE(out.stat().st_mode) == 0o640


# -- smaller: ids, NUL, empty inputs, ignored files --------------------------------------------------------

@pytest.mark.parametrize("bad_id,what", [("a/b", "path separator"), ("a\\\\b", "path separator"),
                                         ("a\\nb", "control character"), ("a\\u0007b", "control character")])
def test_ids_with_control_characters_or_separators(bad_id, what, tmp_path, capsys):
    good = conversations(2)
    bad = ('{"dataset": "dolly", "id": "' + bad_id + '", "messages": [{"role": "user", "content": "q"}, '
           '{"role": "assistant", "content": "a"}]}\n')
    src = tmp_path / "u.jsonl"
    src.write_text(good + bad)
    assert main(["data", "mix", "single:dolly", "--input", f"dolly={src}", "-o", str(tmp_path / "m.jsonl")]) == 1
    assert_one_error_line(capsys.readouterr().err, f"{src}:3", "id:", what)
    assert main(["data", "mix", "single:dolly", "--input", f"dolly={src}", "-o", str(tmp_path / "m.jsonl"),
                 "--lenient"]) == 0
    assert read_json(tmp_path / "m.manifest.json")["skipped"] == {"bad_id": 1}

    raw = tmp_path / "raw.jsonl"  # a raw record's own id goes through the same check
    raw.write_text('{"id": "' + bad_id + '", "instruction": "q", "context": "", "response": "a"}\n')
    assert main(["data", "convert", "dolly", str(raw), "-o", str(tmp_path / "c.jsonl"), "--no-progress",
                 "--lenient"]) == 0
    assert read_json(tmp_path / "c.manifest.json")["skipped"] == {"bad_id": 1}


def test_escaped_nul_in_content(tmp_path, capsys):
    src = tmp_path / "u.jsonl"
    src.write_text('{"dataset": "dolly", "id": "x", "messages": [{"role": "user", "content": "q\\u0000"}, '
                   '{"role": "assistant", "content": "a"}]}\n' + conversations(1))
    assert main(["data", "stats", str(src)]) == 1
    assert_one_error_line(capsys.readouterr().err, f"{src}:1", "messages[0].content", "NUL")
    assert main(["data", "stats", str(src), "--lenient", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["skipped"] == {"nul_in_content": 1}


def test_empty_input_warns_and_ignored_files_are_listed(tmp_path, capsys):
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "a.jsonl").write_text(dolly_rows(2))
    (folder / "b.jsonl").write_text("")
    (folder / "c.json").write_text("\n")
    (folder / "README.md").write_text("notes")
    (folder / "d.csv").write_text("x,y\n")
    out = tmp_path / "o.jsonl"
    assert main(["data", "convert", "dolly", str(folder), "-o", str(out), "--no-progress"]) == 0
    err = capsys.readouterr().err.splitlines()
    assert err == [f"camels: warning: {folder / 'b.jsonl'}: no records in this input (an empty file?)",
                   f"camels: warning: {folder / 'c.json'}: no records in this input (an empty file?)"]
    m = read_json(manifest_path(out))
    assert m["ignored_files"] == [str(folder / "README.md"), str(folder / "d.csv")]
    assert m["records_out"] == 2


def test_bom_and_crlf_in_evaluation_files(tmp_path, fixtures):
    """The evaluation readers (MMLU CSV, BBH prompt text and task JSON) see the same items."""
    from camels.evals.task import get_task

    for name, src in (("mmlu", fixtures / "evals" / "mmlu_hendrycks"), ("bbh", fixtures / "bbh")):
        edited = tmp_path / name
        shutil.copytree(src, edited)
        for f in edited.rglob("*"):
            if f.is_file() and f.suffix in (".csv", ".txt", ".json"):
                f.write_bytes(as_editor_saves(f.read_text(encoding="utf-8")))
        task = get_task(name)
        a, b = task.load(task.resolve_data_path(src)), task.load(task.resolve_data_path(edited))
        assert [(i.id, i.data) for i in b.items] == [(i.id, i.data) for i in a.items] and a.items
        assert [task.requests(i) for i in b.items] == [task.requests(i) for i in a.items]


def test_empty_inputs_warn_in_mix_and_decontaminate(tmp_path, capsys):
    full, empty = tmp_path / "full.jsonl", tmp_path / "empty.jsonl"
    full.write_text(conversations(2))
    empty.write_text("")
    assert main(["data", "mix", "single:dolly", "--input", f"dolly={full},{empty}", "-o", str(tmp_path / "m.jsonl")]) == 0
    err = capsys.readouterr().err
    assert f"camels: warning: {empty}: no records in this input (an empty file)" in err.splitlines()
    assert read_json(tmp_path / "m.manifest.json")["warnings"] == [
        f"{empty}: no records in this input (an empty file)"]
    assert main(["data", "decontaminate", str(empty), "-b", f"gsm8k={BENCH / 'gsm8k'}"]) == 0
    assert f"camels: warning: {empty}: no records in this input (an empty file?)" in capsys.readouterr().err
    assert main(["data", "stats", str(full), str(empty), "--json"]) == 0
    captured = capsys.readouterr()
    assert captured.err.splitlines() == [f"camels: warning: {empty}: no records in this input (an empty file)"]
    assert json.loads(captured.out)["rows"][-1]["instances"] == 2


def test_recursion_in_a_command_is_one_line(monkeypatch, capsys):
    """The last guard: a RecursionError no reader turned into a located error still ends as one line."""
    import camels.cli.data_ops as ops

    def deep(args):
        raise RecursionError("maximum recursion depth exceeded")

    monkeypatch.setattr(ops, "_stats", deep)
    assert main(["data", "stats", "x.jsonl"]) == 1
    assert_one_error_line(capsys.readouterr().err, "nested too deeply")
