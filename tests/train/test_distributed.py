"""World-size invariance for real: a 2-process DDP run (gloo, CPU) equals a 1-process run that accumulates.

The 2-process run goes through ``accelerate launch`` with the shipped ``configs/accelerate/ddp.yaml`` and
the ``camels train`` command, exactly as a user would start it (``ACCELERATE_USE_CPU=1`` turns the
multi-GPU launcher into gloo on CPU processes). The data set is chosen so that every path of the step is
used: several packed micro-batches per process (accumulation with ``no_sync``), a last step of one
conversation (one process gets nothing and must still join the all-reduce) and gradient clipping.

Why the tolerances: the runs add the same per-token gradients in a different order (the 1-process run
sums over its rows, DDP sums each process's rows and then all-reduces), which changes float32 gradients
in the last bits (about 1e-7 relative). AdamW divides each gradient entry by its own running magnitude,
so for the few entries whose gradient is a near-cancelling sum that relative noise becomes a visible
share of the update. Measured here after six steps: at lr 1e-3 the worst entry differed by 6e-7; at the
lr 1e-4 used below, by 1.2e-7, one float32 step at 1.0 (most weights agree to 1e-8). ``atol=1e-6``
leaves a margin and still catches a real error: a wrong token weighting or a lost micro-batch changes the
update direction, which moves weights by the order of the learning rate (1e-4) per step, and a wrong
overall scale (which AdamW would hide) shows in the logged loss. Losses agree to 1e-5 relative.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("accelerate")

from camels.train.config import TrainConfig  # noqa: E402
from camels.train.loop import train  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
ACCELERATE_CONFIGS = REPO / "configs" / "accelerate"


def _conversations(n: int) -> list[dict]:
    """Uneven lengths (about 15 to 60 tokens), several assistant turns in some."""
    rows = []
    for i in range(n):
        msgs = [{"role": "user", "content": f"count {i}: " + "a b " * (i % 5)},
                {"role": "assistant", "content": " ".join(str(i + k) for k in range(1 + 3 * (i % 4)))}]
        if i % 3 == 0:
            msgs += [{"role": "user", "content": "and back?"},
                     {"role": "assistant", "content": " ".join(str(i - k) for k in range(1 + i % 4))}]
        rows.append({"dataset": "toy", "id": f"c{i}", "messages": msgs})
    return rows


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    from camels.tiny import save_tiny_model

    root = tmp_path_factory.mktemp("dist")
    model_dir = save_tiny_model(root / "model", seed=0)
    data = root / "data.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in _conversations(13)))
    return root, model_dir, data


def _overrides(model_dir: Path, data: Path, out: Path, **extra: object) -> list[str]:
    # 13 conversations, 6 per step: steps of 6, 6 and 1 conversations per epoch, 2 epochs = 6 steps.
    # Rows of at most 128 tokens: 2-3 packed micro-batches per step on one process, 1-2 on each of two.
    kv = dict(model=model_dir, train_files=f"[{data}]", output_dir=out, dtype="fp32", max_length=128,
              packing="true", max_tokens_per_batch=128, effective_batch_size=6, num_epochs=2,
              learning_rate=1e-4, warmup_ratio=0.0, max_grad_norm=1.0, logging_every=1, seed=3)
    kv.update(extra)
    return [f"{k}={v}" for k, v in kv.items()]


def _metrics(out: Path) -> list[dict]:
    return [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]


def _weights(out: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    files = sorted((out / "final").glob("*.safetensors"))
    assert files, f"no exported weights in {out / 'final'}"
    state: dict[str, torch.Tensor] = {}
    for f in files:
        state.update(load_file(str(f)))
    return state


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def one_process(setup):
    root, model_dir, data = setup
    out = root / "one"
    os.environ.setdefault("CAMELS_PROGRESS", "0")
    result = train(TrainConfig.load(None, _overrides(model_dir, data, out)))
    return out, result


@pytest.fixture(scope="module")
def two_processes(setup):
    root, model_dir, data = setup
    out = root / "two"
    config = root / "two.yaml"  # the resolved config of the run, as a user would write it
    config.write_text(TrainConfig.load(None, _overrides(model_dir, data, out)).to_yaml())
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--config_file", str(ACCELERATE_CONFIGS / "ddp.yaml"),
           "--num_processes", "2", "--main_process_port", str(_free_port()),
           "-m", "camels", "train", str(config), "logging_every=1",
           "encode_processes=2"]  # the data is far below the size from which auto shares
    env = {**os.environ, "ACCELERATE_USE_CPU": "1", "OMP_NUM_THREADS": "1", "CAMELS_PROGRESS": "0",
           "TOKENIZERS_PARALLELISM": "false"}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=str(root), timeout=600)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return out, proc


_IN_MEMORY = """
import sys
from transformers import AutoTokenizer
from camels.core.template import chat_format_for_tokenizer
from camels.train.config import TrainConfig
from camels.train.encode import encode_files
from camels.train.loop import train

cfg = TrainConfig.load(sys.argv[1], sys.argv[2:])
tok = AutoTokenizer.from_pretrained(cfg.model)
train(cfg, dataset=encode_files(cfg.train_files, tok, chat_format_for_tokenizer(tok, cfg.chat_format), cfg.max_length))
"""


@pytest.mark.slow
def test_two_processes_from_the_store_equal_two_processes_from_memory(setup, two_processes):
    """Bit-identical weights, 2 processes: every rank reading the one memory-mapped store (built once), and
    every rank handed its own in-memory encoding of the same conversations (how runs read data before)."""
    root, model_dir, data = setup
    stores = [p for p in (two_processes[0] / "token_store").iterdir()]
    assert len(stores) == 1 and (stores[0] / "COMPLETE").is_file()  # one store, no half-written copy
    script = root / "in_memory.py"
    script.write_text(_IN_MEMORY)
    out = root / "two_memory"
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--config_file", str(ACCELERATE_CONFIGS / "ddp.yaml"),
           "--num_processes", "2", "--main_process_port", str(_free_port()), str(script), str(root / "two.yaml"),
           f"output_dir={out}", "logging_every=1"]
    env = {**os.environ, "ACCELERATE_USE_CPU": "1", "OMP_NUM_THREADS": "1", "CAMELS_PROGRESS": "0",
           "TOKENIZERS_PARALLELISM": "false"}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=str(root), timeout=600)
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert not (out / "token_store").exists()
    w_store, w_memory = _weights(two_processes[0]), _weights(out)
    assert w_store.keys() == w_memory.keys()
    for name in w_store:
        assert torch.equal(w_store[name], w_memory[name]), name
    assert [r["loss"] for r in _metrics(two_processes[0])] == [r["loss"] for r in _metrics(out)]


def test_two_processes_encode_a_share_each_into_the_one_process_store(one_process, two_processes):
    """Under ``accelerate launch`` each process encodes half the records into the shared temporary folder and
    the main process joins them: the same key and the same bytes as the store one process encodes alone."""
    from camels.train.store import FILES, MARKER

    (one,) = (one_process[0] / "token_store").iterdir()
    (two,) = (two_processes[0] / "token_store").iterdir()
    assert one.name == two.name
    for name in (*FILES, MARKER):
        assert (one / name).read_bytes() == (two / name).read_bytes(), name
    build_one, build_two = (json.loads((s / "build.json").read_text()) for s in (one, two))
    assert build_one["encoded_by"] == {"0": 13} and build_one["processes"] == 1
    assert build_two["encoded_by"] == {"0": 6, "1": 7} and build_two["processes"] == 2
    assert "(2 processes, a part each)" in two_processes[1].stdout
    assert not list((two_processes[0] / "token_store").glob(".tmp-*"))


def test_two_processes_really_ran_as_two(two_processes):
    out, proc = two_processes
    provenance = json.loads(next((out / "checkpoints").glob("step-*/provenance.json")).read_text())
    assert provenance["num_processes"] == 2
    assert sorted(p.name for p in next((out / "checkpoints").glob("step-*")).glob("random_states_*.pkl")) == \
        ["random_states_0.pkl", "random_states_1.pkl"]
    assert "final_loss=" in proc.stdout  # printed once, by the main process only
    assert proc.stdout.count("final_loss=") == 1


def test_ddp_losses_equal_one_process_with_accumulation(one_process, two_processes):
    one, res1 = one_process
    two, _ = two_processes
    m1, m2 = _metrics(one), _metrics(two)
    assert [r["step"] for r in m1] == [r["step"] for r in m2] == [1, 2, 3, 4, 5, 6]
    # the same conversations in every step: token counts are integers and must be equal
    assert [(r["tokens"], r["trained_tokens"], r["epoch"]) for r in m1] == \
        [(r["tokens"], r["trained_tokens"], r["epoch"]) for r in m2]
    assert sum(r["trained_tokens"] for r in m1) == res1.trained_tokens
    # the logged loss is the whole step's (all-reduced over processes), not the main process's share
    for a, b in zip(m1, m2):
        assert b["loss"] == pytest.approx(a["loss"], rel=1e-5), (a, b)
        assert b["lr"] == a["lr"]
    assert m1[0]["loss"] > 5.0  # random init over a 512-token vocabulary: about ln(512) = 6.2


def test_ddp_final_weights_equal_one_process_with_accumulation(one_process, two_processes):
    w1, w2 = _weights(one_process[0]), _weights(two_processes[0])
    init = _weights_of_init(one_process[0])
    assert w1.keys() == w2.keys()
    moved = 0.0
    for name in w1:
        torch.testing.assert_close(w2[name], w1[name], rtol=0, atol=1e-6, msg=name)
        moved = max(moved, (w1[name] - init[name]).abs().max().item())
    assert moved > 2e-4  # training really changed the weights (so equality above is not trivial)


def _weights_of_init(one: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    model_dir = one.parent / "model"
    state: dict[str, torch.Tensor] = {}
    for f in sorted(model_dir.glob("*.safetensors")):
        state.update(load_file(str(f)))
    return state


def test_padded_run_equals_packed_run(setup, one_process):
    """A whole run without packing (padded micro-batches of 2, accumulated) equals the packed run."""
    root, model_dir, data = setup
    out = root / "padded"
    train(TrainConfig.load(None, _overrides(model_dir, data, out, packing="false", per_device_batch_size=2)))
    packed_metrics, padded_metrics = _metrics(one_process[0]), _metrics(out)
    assert [r["trained_tokens"] for r in padded_metrics] == [r["trained_tokens"] for r in packed_metrics]
    for a, b in zip(packed_metrics, padded_metrics):
        assert b["loss"] == pytest.approx(a["loss"], rel=1e-5)
    w_packed, w_padded = _weights(one_process[0]), _weights(out)
    for name in w_packed:
        torch.testing.assert_close(w_padded[name], w_packed[name], rtol=0, atol=1e-6, msg=name)


# -- the shipped accelerate configs ---------------------------------------------------------------------


@pytest.mark.parametrize("name,distributed_type,extra", [
    ("ddp.yaml", "MULTI_GPU", {}),
    ("fsdp.yaml", "FSDP", {"fsdp_config": {"fsdp_version": 2, "fsdp_auto_wrap_policy": "TRANSFORMER_BASED_WRAP"}}),
    ("deepspeed_zero2.yaml", "DEEPSPEED", {"deepspeed_config": {"zero_stage": 2, "gradient_accumulation_steps": 1}}),
    ("deepspeed_zero3.yaml", "DEEPSPEED", {"deepspeed_config": {"zero_stage": 3, "gradient_accumulation_steps": 1,
                                                                "zero3_save_16bit_model": True}}),
])
def test_shipped_accelerate_configs_load(name, distributed_type, extra):
    from accelerate.commands.config.config_args import ClusterConfig, load_config_from_file
    from accelerate.utils import DistributedType

    cfg = load_config_from_file(str(ACCELERATE_CONFIGS / name))
    assert isinstance(cfg, ClusterConfig)
    assert cfg.distributed_type == DistributedType(distributed_type)
    assert cfg.num_machines == 1 and cfg.num_processes == 8 and cfg.mixed_precision == "no"
    for section, values in extra.items():
        got = getattr(cfg, section)
        assert {k: got[k] for k in values} == values


def test_metrics_rows_hold_the_plan_and_the_true_first_loss(setup, one_process):
    """metrics.jsonl values recomputed independently: token counts from the data plan, and the first
    step's loss from the initial model on that step's conversations."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from camels.core.template import chat_format_for_tokenizer
    from camels.train.encode import encode_files
    from camels.train.loop import epoch_order, n_targets, step_indices
    from camels.train.pack import padded_batch

    _, model_dir, data = setup
    out, result = one_process
    tok = AutoTokenizer.from_pretrained(model_dir)
    examples = encode_files([data], tok, chat_format_for_tokenizer(tok, "tulu"), 128).examples
    expected = []
    for epoch in range(2):
        assert sorted(epoch_order(13, 3, epoch)) == list(range(13))
        for s in range(3):
            idx = step_indices(13, 3, epoch, s, 6)
            expected.append((sum(len(examples[i]) for i in idx), sum(n_targets(examples[i]) for i in idx),
                             epoch + (s == 2)))
    rows = _metrics(out)
    assert [(r["tokens"], r["trained_tokens"], r["epoch"]) for r in rows] == expected
    assert result.tokens == sum(e[0] for e in expected) and result.trained_tokens == sum(e[1] for e in expected)
    assert [r["lr"] for r in rows] == pytest.approx([1e-4 * (1 - k / 6) for k in range(6)])  # linear, no warmup

    from camels.train.loop import loss_sum

    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
    first = [examples[i] for i in step_indices(13, 3, 0, 0, 6)]
    with torch.no_grad():
        batch = padded_batch(first, tok.pad_token_id)
        loss = loss_sum(model, batch).item() / batch.n_trained
    assert rows[0]["loss"] == pytest.approx(loss, rel=1e-5)
