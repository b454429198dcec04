"""``camels eval --backend-option``: a typo or a wrong type is one line naming the option, before any model
is loaded and before a cache file is made (not a TypeError traceback from the backend's constructor)."""

from __future__ import annotations

from camels.cli import main


def test_bad_backend_option_is_one_line(tmp_path, fixtures, capsys):
    base = ["eval", "--model", str(tmp_path / "no-model-needed"), "--tasks", "gsm8k_cot", "--data",
            str(fixtures / "evals" / "gsm8k"), "--output", str(tmp_path / "runs")]
    assert main([*base, "--backend-option", "batchsize=4"]) == 1
    assert capsys.readouterr().err == \
        "camels: error: --backend-option batchsize: not an option of backend hf (did you mean batch_size?)\n"
    assert main([*base, "--backend-option", "block_size=big"]) == 1
    assert capsys.readouterr().err == \
        "camels: error: --backend-option block_size: expected an integer, got 'big'\n"
    assert not (tmp_path / "runs").exists()  # nothing made, no model loaded
