"""metrics.jsonl rows (values, not just keys), the window averaging, the multi-process loss sum, the bar."""

from __future__ import annotations

import json

import pytest

torch = pytest.importorskip("torch")

from camels.train.metrics import MetricsLogger  # noqa: E402


def _rows(path):
    return [json.loads(x) for x in path.read_text().splitlines()]


def test_rows_every_n_steps_and_at_the_last(tmp_path, monkeypatch):
    monkeypatch.setenv("CAMELS_PROGRESS", "0")
    path = tmp_path / "metrics.jsonl"
    log = MetricsLogger(path, total_steps=5, start_step=0, every=2)
    losses = [4.0, 2.0, 3.0, 1.0, 0.5]
    for step, loss in enumerate(losses, start=1):
        # losses arrive as device tensors (no sync in the loop); tokens and trained tokens as integers
        log.step(step, torch.tensor(loss), lr=0.1 * step, tokens=100 + step, trained=10 * step, epoch=0)
    log.close()
    rows = _rows(path)
    assert [r["step"] for r in rows] == [2, 4, 5]  # every 2 steps, and the last step even off the grid
    assert [r["loss"] for r in rows] == [3.0, 2.0, 0.5]  # mean of the window's step losses
    assert [r["lr"] for r in rows] == pytest.approx([0.2, 0.4, 0.5])  # lr of the window's last step
    assert [r["tokens"] for r in rows] == [101 + 102, 103 + 104, 105]
    assert [r["trained_tokens"] for r in rows] == [10 + 20, 30 + 40, 50]
    assert [r["epoch"] for r in rows] == [0, 0, 0]
    for r in rows:
        assert r["tokens_per_s"] > 0 and r["trained_tokens_per_s"] > 0
        assert r["tokens_per_s"] / r["trained_tokens_per_s"] == pytest.approx(r["tokens"] / r["trained_tokens"])
    assert rows[0]["elapsed_s"] <= rows[1]["elapsed_s"] <= rows[2]["elapsed_s"]
    assert log.last_loss == 0.5 and log.total_tokens == 515 and log.total_trained == 150


def test_resumed_logger_appends(tmp_path, monkeypatch):
    monkeypatch.setenv("CAMELS_PROGRESS", "0")
    path = tmp_path / "metrics.jsonl"
    path.write_text(json.dumps({"step": 1, "loss": 9.0}) + "\n")
    log = MetricsLogger(path, total_steps=3, start_step=1, every=1)
    log.step(2, torch.tensor(1.5), lr=0.01, tokens=7, trained=3, epoch=1)
    log.close()
    assert [(r["step"], r["loss"]) for r in _rows(path)] == [(1, 9.0), (2, 1.5)]


class _TwoProcesses:
    """An accelerator whose other process holds the other share of each step's loss."""

    num_processes = 2

    def __init__(self, other):
        self.other = other
        self.calls = []

    def reduce(self, tensor, reduction):
        self.calls.append((tensor.tolist(), reduction))
        return tensor + self.other[: tensor.numel()]


def test_logged_loss_is_summed_over_processes(tmp_path, monkeypatch):
    """Each process holds its share of a step's mean token loss; the logged loss is the whole step's."""
    monkeypatch.setenv("CAMELS_PROGRESS", "0")
    acc = _TwoProcesses(torch.tensor([0.25, 0.5]))
    path = tmp_path / "metrics.jsonl"
    log = MetricsLogger(path, total_steps=2, start_step=0, every=2, accelerator=acc)
    log.step(1, torch.tensor(1.0), lr=0.1, tokens=10, trained=4, epoch=0)
    log.step(2, torch.tensor(2.0), lr=0.1, tokens=10, trained=4, epoch=0)
    log.close()
    assert acc.calls == [([1.0, 2.0], "sum")]  # one collective for the whole window, not one per step
    assert _rows(path)[0]["loss"] == pytest.approx((1.25 + 2.5) / 2)
    assert log.last_loss == pytest.approx(2.5)


def test_non_main_process_writes_nothing_but_still_reduces(tmp_path, monkeypatch):
    monkeypatch.setenv("CAMELS_PROGRESS", "1")
    acc = _TwoProcesses(torch.tensor([1.0]))
    log = MetricsLogger(None, total_steps=1, start_step=0, every=1, accelerator=acc)
    assert log.bar is None
    log.step(1, torch.tensor(1.0), lr=0.1, tokens=1, trained=1, epoch=0)
    log.close()
    assert len(acc.calls) == 1 and not list(tmp_path.iterdir())


def test_progress_bar_shows_loss_lr_tokens_per_s_and_eta(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("CAMELS_PROGRESS", "1")  # force the bar on although stderr is not a terminal
    log = MetricsLogger(tmp_path / "m.jsonl", total_steps=4, start_step=0, every=1)
    for step in range(1, 3):
        log.step(step, torch.tensor(0.75), lr=2e-5, tokens=50, trained=20, epoch=0)
    log.bar.refresh()
    text = capsys.readouterr().err
    log.close()
    last = text.replace("\r", "\n").strip().splitlines()[-1]
    assert "2/4" in last and "loss=0.7500" in last and "lr=2.00e-05" in last and "tok_s=" in last
    assert "<" in last  # tqdm's elapsed<remaining: the ETA


def test_resumed_logger_drops_the_steps_it_will_train_again(tmp_path, monkeypatch):
    # a run killed at step 4 after its checkpoint at step 2 logged steps 3 and 4 (and half a line):
    # the resumed run trains them again, so they must not stay in the file twice
    monkeypatch.setenv("CAMELS_PROGRESS", "0")
    path = tmp_path / "metrics.jsonl"
    path.write_text("".join(json.dumps({"step": s, "loss": 10.0 - s}) + "\n" for s in (1, 2, 3, 4))
                    + '{"step": 5, "lo')
    log = MetricsLogger(path, total_steps=4, start_step=2, every=1)
    for step in (3, 4):
        log.step(step, torch.tensor(float(step)), lr=0.01, tokens=7, trained=3, epoch=0)
    log.close()
    assert [(r["step"], r["loss"]) for r in _rows(path)] == [(1, 9.0), (2, 8.0), (3, 3.0), (4, 4.0)]
