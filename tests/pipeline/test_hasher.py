"""Input hashes are remembered between runs, but a file replaced by another of the same size with its old
modification time put back (``cp -p``, ``tar -x``, ``rsync -t`` of another version) is hashed again: the
memo also holds the inode change time, which no tool can set back."""

from __future__ import annotations

import hashlib
import os

from camels.pipeline.stages import Hasher


def test_same_size_same_mtime_replacement_is_seen(tmp_path):
    data = tmp_path / "train.json"
    data.write_bytes(b'{"answer": "0.5"}\n')
    st = data.stat()
    memo = tmp_path / "hashes.json"
    h = Hasher(memo)
    assert h.file(data) == hashlib.sha256(b'{"answer": "0.5"}\n').hexdigest()
    h.save()
    other = tmp_path / "v2.json"
    other.write_bytes(b'{"answer": "0.6"}\n')
    os.utime(other, ns=(st.st_atime_ns, st.st_mtime_ns))
    os.replace(other, data)  # a new version, same size, old mtime
    assert data.stat().st_size == st.st_size and data.stat().st_mtime_ns == st.st_mtime_ns
    assert Hasher(memo).file(data) == hashlib.sha256(b'{"answer": "0.6"}\n').hexdigest()
    # an unchanged file is not read again: the memo answers (a wrong digest planted in it is returned)
    h2 = Hasher(memo)
    h2.file(data)
    h2.save()
    h3 = Hasher(memo)
    h3._known[str(data.resolve())][-1] = "planted"
    assert h3.file(data) == "planted"
