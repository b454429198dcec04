"""HF backend on a tiny random LLaMA: exact scores, batch-size invariance, prefix reuse, stopping, seeds."""

from __future__ import annotations

import json

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from camels.backends.base import BackendError  # noqa: E402
from camels.backends.generation import _sample_seed  # noqa: E402
from camels.backends.hf import HFBackend  # noqa: E402
from camels.backends.tokens import split_at_boundary  # noqa: E402
from camels.core.requests import ChoiceRequest, GenerateRequest, LoglikelihoodRequest  # noqa: E402
from camels.core.template import TuluFormat  # noqa: E402
from camels.tiny import save_tiny_model, tiny_llama, tiny_tokenizer  # noqa: E402

LETTERS = (" A", " B", " C", " D")


@pytest.fixture(scope="module")
def tok():
    return tiny_tokenizer()


@pytest.fixture(scope="module")
def model(tok):
    return tiny_llama(tok, seed=0)


def backend(model, tok, **kw):
    return HFBackend(model, tokenizer=tok, device="cpu", **kw)


def mmlu_like(n_subjects=3, per_subject=7):
    reqs = []
    for s in range(n_subjects):
        header = f"The following are multiple choice questions (with answers) about subject {s}.\n\n"
        shots = "".join(f"Question: what is {s} plus {k}?\nA. 1\nB. 2\nC. 3\nD. 4\nAnswer: B\n\n" for k in range(3))
        for q in range(per_subject):
            body = f"Question: {'why ' * (q % 4)}is {q * 7} more than {q + s}?\nA. yes\nB. no\nC. maybe\nD. never\nAnswer:"
            reqs.append(ChoiceRequest([("user", header + shots + body)], LETTERS))
    return reqs


def manual_logprobs(model, ids):
    with torch.no_grad():
        return torch.log_softmax(model(torch.tensor([ids])).logits[0].float(), dim=-1)


def reference_greedy(model, ids, steps):
    """Greedy decoding without cache or padding: the slowest, simplest reference."""
    ids = list(ids)
    out = []
    with torch.no_grad():
        for _ in range(steps):
            nxt = int(model(torch.tensor([ids])).logits[0, -1].argmax())
            out.append(nxt)
            ids.append(nxt)
    return out


# -- prompts and BOS ---------------------------------------------------------------------------------------
def test_bos_exactly_once_plain_and_tulu(model, tok):
    for fmt in ("plain", "tulu"):
        b = backend(model, tok, chat_format=fmt)
        req = ChoiceRequest([("user", "Is it?")], LETTERS)
        text = b.prompt_text(req)
        assert text.startswith("<s>") and not text.startswith("<s><s>")
        ids = b.encode(text)
        assert ids[0] == tok.bos_token_id and ids[1] != tok.bos_token_id
        assert ids.count(tok.bos_token_id) == 1
        # the scored context is the same single-BOS sequence
        ctx, cont = split_at_boundary(tok, text, " A")
        assert ctx == ids and len(cont) == 1


def test_chat_format_resolution(tmp_path, tok):
    plain_dir = save_tiny_model(tmp_path / "base")
    assert HFBackend(str(plain_dir), device="cpu").chat_format.kind == "plain"
    tulu_dir = save_tiny_model(tmp_path / "ckpt")
    fmt = TuluFormat(bos_token="<s>", eos_token="</s>", add_bos=True)
    (tulu_dir / "chat_format.json").write_text(json.dumps(fmt.to_dict()))
    b = HFBackend(str(tulu_dir), device="cpu")
    assert b.chat_format == fmt
    assert b.prompt_text(GenerateRequest([("user", "hi")])) == "<s><|user|>\nhi\n<|assistant|>\n"
    # an explicit choice wins over the checkpoint's file
    assert HFBackend(str(tulu_dir), device="cpu", chat_format="plain").chat_format.kind == "plain"
    template_tok = tiny_tokenizer(chat_template="{% for m in messages %}[{{ m['role'] }}] {{ m['content'] }}\n"
                                                "{% endfor %}{% if add_generation_prompt %}[assistant] {% endif %}")
    b = HFBackend(tiny_llama(template_tok), tokenizer=template_tok, device="cpu")
    assert b.chat_format.kind == "hf_template"
    assert b.prompt_text(GenerateRequest([("user", "hi")])) == "<s>[user] hi\n[assistant] "


def test_fingerprint_tracks_weights_format_and_files(tmp_path, tok):
    m1 = tiny_llama(tok, seed=0)
    fp = backend(m1, tok).info.fingerprint
    assert backend(tiny_llama(tok, seed=0), tok).info.fingerprint == fp
    assert backend(tiny_llama(tok, seed=1), tok).info.fingerprint != fp
    assert backend(m1, tok, chat_format="tulu").info.fingerprint != fp
    d = save_tiny_model(tmp_path / "m")
    a, b = HFBackend(str(d), device="cpu").info, HFBackend(str(d), device="cpu").info
    assert a.fingerprint == b.fingerprint and a.details["dtype"] == "float32"


# -- scoring -------------------------------------------------------------------------------------------------
def test_choice_equals_manual_forward(model, tok):
    b = backend(model, tok)
    reqs = mmlu_like(1, 3)
    res = b.choose(reqs)
    for req, r in zip(reqs, res):
        ids = b.encode(b.prompt_text(req))
        lp = manual_logprobs(model, ids)[-1]
        want = [float(lp[tok.convert_tokens_to_ids("Ġ" + c.strip())]) for c in LETTERS]
        assert r.logprobs == pytest.approx(want, abs=1e-4)


def test_choice_leading_space_merge(model, tok):
    """A prompt ending in a space: the space merges into the choice token, the context loses it."""
    b = backend(model, tok)
    req = ChoiceRequest([("user", "Answer:")], ("A", "B"), assistant_prefix=" ")
    text = b.prompt_text(req)
    assert text.endswith("Answer: ")
    res = b.choose([req])[0]
    ids = b.encode("<s>Answer:")
    lp = manual_logprobs(model, ids)[-1]
    assert res.logprobs == pytest.approx([float(lp[tok.convert_tokens_to_ids("ĠA")]),
                                          float(lp[tok.convert_tokens_to_ids("ĠB")])], abs=1e-4)


def test_loglikelihood_equals_manual_forward(model, tok):
    b = backend(model, tok)
    reqs = [LoglikelihoodRequest([("user", "The sea is")], " wide and blue"),
            LoglikelihoodRequest([("user", "print(add(1, 2))")], "\n3")]
    # a continuation made of the model's own greedy token: is_greedy must be true
    ctx_ids = b.encode(b.prompt_text(reqs[0]))
    greedy_tok = reference_greedy(model, ctx_ids, 1)
    greedy_text = tok.decode(greedy_tok)
    reqs.append(LoglikelihoodRequest([("user", "The sea is")], greedy_text))
    assert split_at_boundary(tok, b.prompt_text(reqs[2]), greedy_text)[1] == greedy_tok
    res = b.loglikelihood(reqs)
    for req, r in zip(reqs, res):
        ctx, cont = split_at_boundary(tok, b.prompt_text(req), req.continuation)
        lp = manual_logprobs(model, ctx + cont)
        rows = lp[len(ctx) - 1: len(ctx) + len(cont) - 1]
        want = float(sum(rows[k, t] for k, t in enumerate(cont)))
        assert r.logprob == pytest.approx(want, abs=1e-4)
        assert r.n_tokens == len(cont)
        assert r.is_greedy == all(int(rows[k].argmax()) == t for k, t in enumerate(cont))
    assert res[2].is_greedy and res[2].n_tokens == 1
    assert not res[0].is_greedy


def test_prefix_reuse_equals_no_reuse(model, tok):
    reqs = mmlu_like(3, 7)
    with_reuse = backend(model, tok, batch_size=4)
    a = with_reuse.choose(reqs)
    without = backend(model, tok, batch_size=4, prefix_reuse=False)
    b = without.choose(reqs)
    assert with_reuse.stats["prefix_tokens_reused"] > 0 and without.stats["prefix_tokens_reused"] == 0
    # each subject's shared blocks ran once: every token not run again is counted as reused
    assert with_reuse.stats["forward_tokens"] + with_reuse.stats["prefix_tokens_reused"] == \
        without.stats["forward_tokens"]
    assert with_reuse.stats["forward_tokens"] < 0.75 * without.stats["forward_tokens"]
    # the same blocks, shared or not: the same floats to the last bit
    assert [x.logprobs for x in a] == [y.logprobs for y in b]
    ll = [LoglikelihoodRequest(r.messages, " B because it is so") for r in reqs]
    la = with_reuse.loglikelihood(ll)
    lb = without.loglikelihood(ll)
    assert [(x.logprob, x.is_greedy) for x in la] == [(y.logprob, y.is_greedy) for y in lb]
    assert with_reuse.info.details["scoring_path"] == "prefix_blocks"
    assert without.info.details["scoring_path"] == "blocks"


def test_scores_do_not_depend_on_batch_size_or_company(model, tok):
    """Bit-identical scores whatever the batch size and whichever requests arrive together."""
    reqs = mmlu_like(2, 9) + [ChoiceRequest([("user", "short one")], LETTERS)]
    r1 = [r.logprobs for r in backend(model, tok, batch_size=1).choose(reqs)]
    b16 = backend(model, tok, batch_size=16)
    assert [r.logprobs for r in b16.choose(reqs)] == r1
    # in chunks that split the subjects' groups differently (one request alone, groups of 2 and 5)
    parts = [reqs[:1], reqs[1:3], reqs[3:8], reqs[8:]]
    assert [r.logprobs for part in parts for r in backend(model, tok, batch_size=3).choose(part)] == r1
    ll = [LoglikelihoodRequest([("user", "x" * k)], " and then some" * (k % 3 + 1)) for k in range(1, 12)]
    l1 = backend(model, tok, batch_size=1).loglikelihood(ll)
    l16 = backend(model, tok, batch_size=16).loglikelihood(ll)
    assert [x.logprob for x in l1] == [y.logprob for y in l16]
    assert [x.logprob for x in b16.loglikelihood(ll[5:]) + b16.loglikelihood(ll[:5])] == \
        [x.logprob for x in l1[5:] + l1[:5]]


def test_too_long_prompt_is_a_clear_error(model, tok):
    b = backend(model, tok, max_length=32)
    with pytest.raises(BackendError, match="choice request 0: .* do not fit the model's context of 32"):
        b.choose([ChoiceRequest([("user", "word " * 50)], LETTERS)])
    with pytest.raises(BackendError, match="generate request 0"):
        b.generate([GenerateRequest([("user", "word " * 50)])])


# -- generation ------------------------------------------------------------------------------------------------
PROMPTS = ["Write a short poem about the sea.", "def add(a, b):", "Give three tips", "0 1 2 3 4 5 6 7 8 9 10 100",
           "The answer is", "Translate to French: good morning", "Question: What is 12 plus 30?", "hi"]


def test_greedy_matches_uncached_reference_and_batch_size(model, tok):
    reqs = [GenerateRequest([("user", p)], max_tokens=12) for p in PROMPTS]
    g1 = backend(model, tok, batch_size=1).generate(reqs)
    g16 = backend(model, tok, batch_size=16).generate(reqs)
    b = backend(model, tok)
    for req, x, y in zip(reqs, g1, g16):
        ref = reference_greedy(model, b.encode(b.prompt_text(req)), 12)
        assert x.texts == y.texts
        if not any(t in b.eos_ids for t in ref):
            assert x.texts[0] == tok.decode(ref, skip_special_tokens=False)
            assert x.finish_reasons == ("length",) and x.completion_tokens == (12,)
        assert x.prompt_tokens == len(b.encode(b.prompt_text(req)))


def test_stop_strings_per_sequence_and_slots_freed(model, tok):
    b = backend(model, tok, batch_size=8)
    refs = [tok.decode(reference_greedy(model, b.encode(b.prompt_text(GenerateRequest([("user", p)]))), 16))
            for p in PROMPTS]
    reqs, expected = [], []
    for k, (p, ref) in enumerate(zip(PROMPTS, refs)):
        # each row stops at a different place: a stop string taken from its own reference output
        start = 1 + (k % 5) * 2
        stop = ref[start:start + 2]
        assert stop, ref
        reqs.append(GenerateRequest([("user", p)], max_tokens=16, stop=(stop, "never-seen-string")))
        expected.append(ref[: ref.find(stop)])
    sizes = []
    hook = model.register_forward_hook(lambda mod, args, kwargs, out: sizes.append(kwargs["input_ids"].shape[0]),
                                       with_kwargs=True)
    try:
        out = b.generate(reqs)
    finally:
        hook.remove()
    assert [g.texts[0] for g in out] == expected
    assert all(g.finish_reasons == ("stop",) for g in out)
    assert len({g.completion_tokens[0] for g in out}) > 1
    # finished rows leave the batch: the decoding steps' batch only shrinks, and the last steps run fewer rows
    assert sizes[0] <= len(PROMPTS) and sizes == sorted(sizes, reverse=True) and sizes[-1] < len(PROMPTS)


def test_late_stop_found_with_bounded_decoding(model, tok):
    """A stop string completed late in a long output is found at the same place as in the whole text, while
    every step decodes only the last few tokens (the whole output only when a stop may have been hit)."""
    from camels.backends.generation import stop_window

    b = backend(model, tok, batch_size=2)
    p = PROMPTS[0]
    ref = tok.decode(reference_greedy(model, b.encode(b.prompt_text(GenerateRequest([("user", p)]))), 48))
    # a 3-character stop string that first occurs late in the output
    stop = next(ref[i:i + 3] for i in range(len(ref) - 3, 0, -1)
                if "\ufffd" not in ref[i:i + 3] and ref.find(ref[i:i + 3]) >= len(ref) // 2)
    decoded = []
    plain_decode = b._decode
    b._decode = lambda ids: decoded.append(len(ids)) or plain_decode(ids)
    g = b.generate([GenerateRequest([("user", p)], max_tokens=48, stop=(stop,))])[0]
    assert g.texts[0] == ref[: ref.find(stop)] and g.finish_reasons == ("stop",)
    window = stop_window((stop,) + tuple(b.chat_format.stop_strings))
    assert max(decoded[:-1]) <= window < g.completion_tokens[0]  # per step: a window, not the whole output


def test_eos_and_chat_end_of_turn(model, tok):
    b = backend(model, tok, chat_format="tulu")
    req = GenerateRequest([("user", "hi")], max_tokens=10)
    ref = reference_greedy(model, b.encode(b.prompt_text(req)), 10)
    b.eos_ids = {ref[3]} | b.eos_ids  # pretend the 4th greedy token is the EOS token
    g = b.generate([req])[0]
    first = ref.index(ref[3])
    assert g.finish_reasons == ("eos",) and g.completion_tokens == (first + 1,)
    assert g.texts[0] == tok.decode(ref[:first], skip_special_tokens=False)
    assert "\n<|user|>" in b.chat_format.stop_strings


def test_samples_seeded_and_independent_of_batch(model, tok):
    req = GenerateRequest([("user", "Write a short poem")], max_tokens=8, temperature=1.0, n=3, seed=7)
    others = [GenerateRequest([("user", p)], max_tokens=8, temperature=0.7, seed=1) for p in PROMPTS]
    alone = backend(model, tok, batch_size=1).generate([req])[0]
    mixed = backend(model, tok, batch_size=16).generate(others[:3] + [req] + others[3:])[3]
    assert alone.texts == mixed.texts
    assert len(set(alone.texts)) > 1  # three different samples
    other_seed = backend(model, tok).generate([GenerateRequest(req.messages, max_tokens=8, temperature=1.0,
                                                               n=3, seed=8)])[0]
    assert other_seed.texts != alone.texts
    assert _sample_seed(7, 0) != _sample_seed(7, 1) and _sample_seed(7, 0) == _sample_seed(7, 0)


def test_tiny_top_p_is_greedy(model, tok):
    b = backend(model, tok)
    greedy = b.generate([GenerateRequest([("user", p)], max_tokens=6) for p in PROMPTS[:4]])
    nucleus = b.generate([GenerateRequest([("user", p)], max_tokens=6, temperature=1.0, top_p=1e-6, seed=3)
                          for p in PROMPTS[:4]])
    assert [g.texts for g in greedy] == [g.texts for g in nucleus]


def test_split_choices_equals_whole_prompt_tokenization(tok):
    from camels.backends.tokens import split_choices

    prompts = ["<s>" + r.messages[0].content for r in mmlu_like(2, 3)]
    prompts += ["<s>The answer is: ", "<s>short", "<s>" + "x" * 300 + " Answer:", "<s>" + "a b " * 40 + "end  "]
    conts = [" A", "B", " Bob's", "\n3", "  spaced", "é"]
    for p in prompts:
        assert split_choices(tok, p, conts) == [split_at_boundary(tok, p, c) for c in conts]


def test_split_choices_shared_equals_per_prompt(tok):
    from camels.backends.tokens import split_choices_shared

    prompts = ["<s>" + r.messages[0].content for r in mmlu_like(3, 4)]
    # prompts sharing a long text prefix that ends inside a word, a lone prompt, a prompt that is the prefix
    stem = "<s>" + "The sea is wide and blue, and it shines in the sun. " * 8
    prompts += [stem + "Answ", stem + "Answer:", stem + "Ans wer: ", stem, "<s>short"]
    conts = [[" A", " B", "B", "\n3"] for _ in prompts]
    got = split_choices_shared(tok, prompts, conts)
    assert got == [[split_at_boundary(tok, p, c) for c in cs] for p, cs in zip(prompts, conts)]
    # the last lines re-tokenized per choice: used for an MMLU-like prompt, and exact
    from camels.backends.tokens import _split_last_lines_many

    got = _split_last_lines_many(tok, [prompts[0], "<s>no newline at all " * 5, prompts[1]], conts[:3])
    assert got[0] == [split_at_boundary(tok, prompts[0], c) for c in conts[0]]
    assert got[1] is None  # no stable cut: the caller tokenizes that prompt whole
    assert got[2] == [split_at_boundary(tok, prompts[1], c) for c in conts[1]]


def test_encode_with_offsets_equals_the_tokenizer_call(tok):
    """The Rust tokenizer called directly gives what the tokenizer's ``__call__`` gives."""
    from camels.backends.tokens import encode_with_offsets

    texts = ["<s>" + r.messages[0].content for r in mmlu_like(1, 2)] + ["", "é \n\n x</s>", "<pad> A"]
    enc = tok(texts, add_special_tokens=False, return_offsets_mapping=True)
    want = ([list(x) for x in enc["input_ids"]], [[tuple(o) for o in x] for x in enc["offset_mapping"]])
    ids, offsets = encode_with_offsets(tok, texts)
    assert (ids, [[tuple(o) for o in x] for x in offsets]) == want


def _full_forward_letters(model, tok, b, reqs):
    """Log-probs of the four letters after each prompt from one plain forward of the whole prompt."""
    ids = [tok.convert_tokens_to_ids("Ġ" + c.strip()) for c in LETTERS]
    return [[float(x) for x in manual_logprobs(model, b.encode(b.prompt_text(r)))[-1, ids]] for r in reqs]


def test_block_path_equals_full_forward_float32(model, tok):
    """Shared-prefix blocks vs one plain forward per prompt, float32: equal to float rounding."""
    reqs = mmlu_like(3, 7)
    b = backend(model, tok, batch_size=5, block_size=16)  # prompts of ~150 tokens: many blocks each
    got = [r.logprobs for r in b.choose(reqs)]
    assert b.stats["prefix_tokens_reused"] > 0
    want = _full_forward_letters(model, tok, b, reqs)
    for g, w in zip(got, want):
        assert g == pytest.approx(w, abs=1e-5)


def test_block_path_bfloat16_within_bf16_rounding(tok):
    """bfloat16: the block path differs from a bfloat16 full forward by rounding only. bfloat16 keeps 8
    significant bits (relative step 2**-8 = 0.4%), so computing the same sums in another order moves the
    log-probs by about as much as bfloat16 itself moves them away from float32: the bound is that
    float32-vs-bfloat16 distance (measured here on the same prompts). Every predicted letter is the same."""
    reqs = mmlu_like(3, 7) + [ChoiceRequest([("user", f"Is {k} a prime number?")], LETTERS) for k in range(8)]
    m32 = tiny_llama(tok, seed=0)
    m16 = tiny_llama(tok, seed=0).to(torch.bfloat16)
    b = backend(m16, tok, batch_size=4)
    assert b.info.details["dtype"] == "bfloat16" and b.info.details["scoring_path"] == "prefix_blocks"
    got = [r.logprobs for r in b.choose(reqs)]
    full16 = _full_forward_letters(m16, tok, b, reqs)
    full32 = _full_forward_letters(m32, tok, b, reqs)
    bf16_rounding = max(abs(x - y) for a, c in zip(full16, full32) for x, y in zip(a, c))
    assert 0 < bf16_rounding < 0.05
    assert max(abs(x - y) for a, c in zip(got, full16) for x, y in zip(a, c)) <= bf16_rounding

    def best(lps):
        return [max(range(4), key=lambda k: lp[k]) for lp in lps]

    assert best(got) == best(full16)
    # and bfloat16 scores do not depend on the batch size either
    assert [r.logprobs for r in backend(m16, tok, batch_size=1).choose(reqs)] == got


def test_generation_reuses_a_shared_few_shot_prefix(model, tok):
    """8-shot-like prompts: the shared prefix is prefilled once and reused; greedy outputs are the same
    tokens as decoding each prompt alone without any cache, and as with prefix reuse off."""
    shots = "".join(f"Question: what is {k} plus {k + 2}?\nAnswer: {k} plus {k + 2} is {2 * k + 2}. "
                    f"The answer is {2 * k + 2}.\n\n" for k in range(6))
    reqs = [GenerateRequest([("user", shots + f"Question: what is {q} plus {q * 3}?\nAnswer:")], max_tokens=10)
            for q in range(7)]
    on = backend(model, tok, batch_size=3, block_size=16)
    off = backend(model, tok, batch_size=3, block_size=16, prefix_reuse=False)
    got_on, got_off = on.generate(reqs), off.generate(reqs)
    prompt_len = len(on.encode(on.prompt_text(reqs[0])))
    # every prompt after the first took the shared blocks from the store (across batches of 3, too)
    assert on.stats["prefix_tokens_reused"] >= 6 * (len(on.encode(on.prompt_text(GenerateRequest(
        [("user", shots)])))) // 16 - 1) * 16 and off.stats["prefix_tokens_reused"] == 0
    assert on.stats["forward_tokens"] < 0.5 * off.stats["forward_tokens"]
    for req, a, c in zip(reqs, got_on, got_off):
        ids = on.encode(on.prompt_text(req))
        ref = reference_greedy(model, ids, 10)
        n = next((i for i, t in enumerate(ref) if t in on.eos_ids), len(ref))
        assert a.texts == c.texts
        if n == len(ref):
            assert a.texts[0] == tok.decode(ref, skip_special_tokens=False)
        assert a.prompt_tokens == len(ids)
    assert prompt_len > 160


def test_blocks_end_where_few_shot_prompts_part(model, tok):
    """Blocks end at blank lines, so the exemplars of a few-shot prompt form whole blocks and the last
    block of each question starts where its exemplars end: the shared prefix runs once and only the few
    tokens the questions have in common after it ("Question:") run again. Scores equal one plain forward per
    prompt (float32 rounding) and the letters are the same."""
    from camels.backends.hf import _padded_width

    reqs = mmlu_like(3, 7)
    b = backend(model, tok, batch_size=4)
    prompts = [tuple(b.encode(b.prompt_text(r))) for r in reqs]
    ends = [b._block_ends(p) for p in prompts]
    for s in range(3):
        group = list(range(7 * s, 7 * s + 7))
        part = min(next(i for i, (x, y) in enumerate(zip(prompts[group[0]], prompts[g])) if x != y)
                   for g in group[1:])
        cuts = {max(e for e in ends[g] if e <= part) for g in group}
        assert len(cuts) == 1 and 0 < part - cuts.pop() <= 4 and part > 100
        assert all(ends[g][-1] == len(prompts[g]) and len(ends[g]) >= 4 for g in group)
    got = [r.logprobs for r in b.choose(reqs)]
    blocks = {p[:e]: e - start for p, es in zip(prompts, ends) for start, e in zip([0, *es], es)}
    assert b.stats["forward_tokens"] == sum(_padded_width(w) for w in blocks.values())
    assert b.stats["forward_tokens"] < 0.45 * sum(len(p) for p in prompts)
    want = _full_forward_letters(model, tok, b, reqs)
    for g, w in zip(got, want):
        assert g == pytest.approx(w, abs=1e-5)
    assert [max(range(4), key=lambda k: g[k]) for g in got] == [max(range(4), key=lambda k: w[k]) for w in want]


def test_cache_with_room_holds_what_a_dynamic_cache_holds():
    """Decoding writes each step's keys/values into spare room instead of concatenating: after any steps
    and row removals the layer holds exactly the tensors a plain DynamicCache holds."""
    from transformers import DynamicCache

    from camels.backends.generation import with_room

    g = torch.Generator().manual_seed(0)
    plain, roomy = DynamicCache(), DynamicCache()
    k0, v0 = torch.randn(3, 2, 5, 4, generator=g), torch.randn(3, 2, 5, 4, generator=g)
    for c in (plain, roomy):
        c.update(k0, v0, 0)
    roomy = with_room(roomy, 2)  # less room than steps: the buffer grows
    assert type(roomy.layers[0]).__name__ == "RoomyLayer"
    for step in range(4):
        k, v = torch.randn(3 - (step > 1), 2, 1, 4, generator=g), torch.randn(3 - (step > 1), 2, 1, 4, generator=g)
        if step == 2:
            for c in (plain, roomy):
                c.batch_select_indices(torch.tensor([0, 2]))
        a, b = plain.update(k, v, 0), roomy.update(k, v, 0)
        assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
        assert roomy.get_seq_length() == plain.get_seq_length() == 6 + step


def test_loglikelihood_reads_across_shared_blocks(model, tok):
    """Continuations that span several blocks (blank lines inside them, blocks of 16 tokens) and share
    their first blocks with each other and with another request's context: log-probs equal one plain
    forward per request, bit-identical with batch size 1 and 16 and with prefix reuse off."""
    shots = "".join(f"Q: what is {k} and {k + 1}?\nA: {2 * k + 1}\n\n" for k in range(4))
    conts = [" 7\n\nQ: and then?\nA: 9", " 7\n\nQ: and then?\nA: 11 or so", " 7", " 8\n\n\n\nQ: no"]
    reqs = [LoglikelihoodRequest([("user", shots + "Q: what is 3 and 4?\nA:")], c) for c in conts]
    reqs.append(LoglikelihoodRequest([("user", shots + "Q: what is 3 and 4?\nA: 7\n\nQ: and then?\nA:")], " 9"))
    runs = [backend(model, tok, batch_size=bs, block_size=16, prefix_reuse=reuse).loglikelihood(reqs)
            for bs, reuse in ((1, True), (16, True), (16, False))]
    assert [r.logprob for r in runs[0]] == [r.logprob for r in runs[1]] == [r.logprob for r in runs[2]]
    b = backend(model, tok)
    for req, r in zip(reqs, runs[1]):
        ctx, cont = split_at_boundary(tok, b.prompt_text(req), req.continuation)
        lp = manual_logprobs(model, ctx + cont)
        want = float(sum(lp[len(ctx) - 1 + k, t] for k, t in enumerate(cont)))
        assert r.logprob == pytest.approx(want, abs=1e-4)
        assert r.is_greedy == all(int(lp[len(ctx) - 1 + k].argmax()) == t for k, t in enumerate(cont))
        assert r.n_tokens == len(cont) and len(cont) > (3 if "so" in req.continuation else 0)
