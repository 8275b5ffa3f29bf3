"""Decoding: cached search against full re-forwards, HF's greedy tokens and exhaustive search."""

import functools
import itertools
import logging

import keras
import numpy as np
import pytest
import tensorflow as tf

import t5core
from t5core.decoding import filter_logits, generate, length_penalty
from t5core.decoding.text import encode_inputs, generate_text, pad_batch
from t5core.evaluation.evaluators import DecodeEvaluator
from conftest import REFERENCE, REFERENCE_VARIANTS

NEW_TOKENS = 12  # what tests/make_reference.py asked HF for


@functools.lru_cache(maxsize=None)
def load(variant):
    """The fixture model and its HF outputs; shared by the tests (traced searches are reused)."""
    return (t5core.load_pretrained(str(REFERENCE / variant)),
            np.load(REFERENCE / variant / "reference.npz"))


def full_log_probs(model, encoder_tokens, decoder_inputs):
    """log-softmax of a full (uncached) forward pass: float32 [B, T, V]."""
    logits = model({"encoder_input_tokens": encoder_tokens,
                    "decoder_input_tokens": np.asarray(decoder_inputs, np.int32)})
    return tf.nn.log_softmax(logits, axis=-1).numpy()


def uncached_greedy(model, encoder_tokens, steps, prompt=None, eos=1):
    """Argmax of a full re-forward of the whole prefix at every step; 0 after EOS."""
    batch = encoder_tokens.shape[0]
    prefix = np.zeros([batch, 1], np.int32)
    if prompt is not None:
        prefix = np.concatenate([prefix, prompt], axis=1)
    out = np.zeros([batch, steps], np.int32)
    done = np.zeros([batch], bool)
    for i in range(steps):
        next_token = full_log_probs(model, encoder_tokens, prefix)[:, -1].argmax(-1)
        next_token = np.where(done, 0, next_token)
        out[:, i] = next_token
        done |= next_token == eos
        prefix = np.concatenate([prefix, next_token[:, None].astype(np.int32)], axis=1)
    return out


def sequence_log_prob(model, encoder_tokens, tokens):
    """(sum of log p of each row's tokens up to and including its EOS, by one full forward;
    each row's length, EOS included)."""
    inputs = np.concatenate([np.zeros([tokens.shape[0], 1], np.int32), tokens[:, :-1]], axis=1)
    log_probs = full_log_probs(model, encoder_tokens, inputs)
    picked = np.take_along_axis(log_probs, tokens[..., None], axis=-1)[..., 0]
    ended = np.cumsum(tokens == 1, axis=1) - (tokens == 1)  # > 0 strictly after the first EOS
    return np.where(ended > 0, 0.0, picked).sum(axis=1), (ended == 0).sum(axis=1)


# --------------------------------------------------------------------------- greedy


@pytest.mark.parametrize("variant", REFERENCE_VARIANTS)
def test_cached_greedy_equals_uncached_and_hf(variant):
    model, ref = load(variant)
    encoder_tokens = ref["encoder_input_tokens"]
    tokens, scores = generate(model, encoder_tokens, NEW_TOKENS, jit_compile=False)
    tokens = tokens.numpy()
    assert tokens.shape == (encoder_tokens.shape[0], NEW_TOKENS) and tokens.dtype == np.int32
    np.testing.assert_array_equal(tokens, uncached_greedy(model, encoder_tokens, NEW_TOKENS))
    # HF's generate output starts with the decoder start id 0.
    np.testing.assert_array_equal(tokens, ref["greedy_tokens"][:, 1:])
    expected_scores, _ = sequence_log_prob(model, encoder_tokens, tokens)
    np.testing.assert_allclose(scores.numpy(), expected_scores, rtol=1e-5, atol=1e-5)


def test_greedy_eos_then_padding_matches_hf():
    # gated_silu's lm_head was nudged (make_reference.py) so that some rows end with EOS.
    model, ref = load("gated_silu")
    tokens = generate(model, ref["encoder_input_tokens"], NEW_TOKENS, jit_compile=False)[0].numpy()
    rows_with_eos = [row for row in tokens if 1 in row]
    assert rows_with_eos, "fixture no longer exercises EOS"
    for row in rows_with_eos:
        end = list(row).index(1)
        assert not row[end + 1:].any()


def test_xla_loop_equals_graph_loop():
    model, ref = load("umt5")
    encoder_tokens = ref["encoder_input_tokens"]
    for kwargs in (dict(), dict(method="beam", num_beams=3), dict(method="sample", seed=5)):
        graph = generate(model, encoder_tokens, NEW_TOKENS, jit_compile=False, **kwargs)
        xla = generate(model, encoder_tokens, NEW_TOKENS, jit_compile=True, **kwargs)
        np.testing.assert_array_equal(xla[0].numpy(), graph[0].numpy(), err_msg=str(kwargs))
        np.testing.assert_allclose(xla[1].numpy(), graph[1].numpy(), rtol=1e-4)


def test_decoder_prompt_is_forced_and_continued():
    model, ref = load("t5_v1_1_gated_gelu_untied")
    encoder_tokens = ref["encoder_input_tokens"]
    prompt = np.array([[7, 9], [3, 3], [100, 2]], np.int32)
    tokens = generate(model, encoder_tokens, 4, decoder_prompt=prompt, jit_compile=False)[0]
    np.testing.assert_array_equal(tokens.numpy(),
                                  uncached_greedy(model, encoder_tokens, 4, prompt=prompt))
    # Forcing greedy's own first tokens continues greedy's sequence.
    greedy = generate(model, encoder_tokens, NEW_TOKENS, jit_compile=False)[0].numpy()
    forced = generate(model, encoder_tokens, 4, decoder_prompt=greedy[:, :2], jit_compile=False)
    np.testing.assert_array_equal(forced[0].numpy(), greedy[:, 2:6])
    # A 1-D prompt is shared by every row.
    shared = generate(model, encoder_tokens, 4, decoder_prompt=[7, 9], jit_compile=False)[0]
    np.testing.assert_array_equal(shared.numpy()[0], tokens.numpy()[0])


class CountingModel:
    """A T5Model seen through counters: how often the encoder, the cache set-up and a step run."""

    def __init__(self, model):
        self.model, self.config = model, model.config
        self.counts = {name: tf.Variable(0) for name in ("encode", "init_cache", "decode_step")}

    def _count(self, name):
        self.counts[name].assign_add(1)

    def encode(self, *args, **kwargs):
        self._count("encode")
        return self.model.encode(*args, **kwargs)

    def init_cache(self, *args):
        self._count("init_cache")
        return self.model.init_cache(*args)

    def decode_step(self, *args):
        with tf.control_dependencies([self.counts["decode_step"].assign_add(1)]):
            return self.model.decode_step(*args)


@pytest.mark.parametrize("method", ["greedy", "beam"])
def test_encoder_runs_once_and_loop_stops_when_all_rows_are_done(method):
    model, ref = load("gated_silu")
    encoder_tokens = ref["encoder_input_tokens"][:1]  # this row's greedy output ends at step 4
    counting = CountingModel(model)
    tokens = generate(counting, encoder_tokens, 40, method=method, num_beams=2, alpha=0.0,
                      jit_compile=False)[0].numpy()
    counts = {name: int(v.numpy()) for name, v in counting.counts.items()}
    assert counts["encode"] == 1 and counts["init_cache"] == 1
    assert 1 in tokens[0]
    # Greedy stops right at EOS; beam once no live beam can beat the finished one.
    if method == "greedy":
        assert counts["decode_step"] == list(tokens[0]).index(1) + 1
    else:
        assert counts["decode_step"] < 40


# --------------------------------------------------------------------------- beam search


@pytest.mark.parametrize("variant", REFERENCE_VARIANTS)
def test_one_beam_equals_greedy_under_hf_rules(variant):
    # Under the "hf" rules with alpha = 0 one beam is exactly greedy: only a top-ranked EOS
    # finishes a beam, and then the live beam (lower log-prob) can no longer win. (With alpha > 0
    # a longer live beam may legitimately overtake a short finished one.)
    model, ref = load(variant)
    encoder_tokens = ref["encoder_input_tokens"]
    greedy, greedy_scores = generate(model, encoder_tokens, NEW_TOKENS, jit_compile=False)
    greedy, greedy_scores = greedy.numpy(), greedy_scores.numpy()
    beam, beam_scores = generate(model, encoder_tokens, NEW_TOKENS, method="beam", num_beams=1,
                                 alpha=0.0, beam_semantics="hf", jit_compile=False)
    np.testing.assert_array_equal(beam.numpy(), greedy)
    np.testing.assert_allclose(beam_scores.numpy(), greedy_scores, rtol=1e-5)
    # Under T5X's rules an EOS ranked second (of the 2K = 2 extensions) finishes too, so one
    # beam follows greedy's path but may return a shorter sequence of higher log-probability:
    # never a worse one where greedy ended with EOS.
    t5x, t5x_scores = generate(model, encoder_tokens, NEW_TOKENS, method="beam", num_beams=1,
                               alpha=0.0, jit_compile=False)
    t5x, t5x_scores = t5x.numpy(), t5x_scores.numpy()
    ended = (greedy == 1).any(axis=1)
    assert np.all(t5x_scores[ended] >= greedy_scores[ended] - 1e-5)
    for row in range(len(greedy)):
        end = list(t5x[row]).index(1) if 1 in t5x[row] else NEW_TOKENS
        np.testing.assert_array_equal(t5x[row, :end], greedy[row, :end])


def test_length_penalty_is_t5s_formula():
    for length, alpha in itertools.product([1, 2, 7, 30], [0.0, 0.6, 1.0, 2.5]):
        assert float(length_penalty(length, alpha)) == pytest.approx(((5 + length) / 6) ** alpha,
                                                                     rel=1e-6)


@pytest.mark.parametrize("semantics", ["t5x", "hf"])
@pytest.mark.parametrize("alpha", [0.6, 0.0])
def test_beam_score_is_log_prob_over_length_penalty(alpha, semantics):
    model, ref = load("gated_silu")
    encoder_tokens = ref["encoder_input_tokens"]
    tokens, scores = generate(model, encoder_tokens, NEW_TOKENS, method="beam", num_beams=4,
                              alpha=alpha, beam_semantics=semantics, jit_compile=False)
    log_prob, length = sequence_log_prob(model, encoder_tokens, tokens.numpy())
    expected = log_prob / ((5 + length) / 6) ** alpha
    if semantics == "t5x":  # a row where nothing finished: the live beam's plain log-prob
        expected = np.where((tokens.numpy() == 1).any(axis=1), expected, log_prob)
    np.testing.assert_allclose(scores.numpy(), expected, rtol=1e-5)
    assert np.any(length < NEW_TOKENS), "no beam ended with EOS: the penalty went untested"


def exhaustive_best(model, encoder_tokens, steps, alpha, vocab, cut_off_competes):
    """Best penalised score per row over every sequence ending with EOS at step 1..steps, and
    if cut_off_competes (the "hf" rules), every sequence cut off at `steps` without EOS."""
    batch = encoder_tokens.shape[0]
    non_eos = [t for t in range(vocab) if t != 1]
    best = np.full([batch], -np.inf)
    best_tokens = np.zeros([batch, steps], np.int32)
    for prefix in itertools.product(non_eos, repeat=steps - 1):
        inputs = np.tile(np.array([[0, *prefix]], np.int32), [batch, 1])
        log_probs = full_log_probs(model, encoder_tokens, inputs)  # [B, steps, V]
        running = np.zeros([batch])
        for n in range(1, steps + 1):
            # length n ends with EOS, or hits the limit
            last = range(vocab) if n == steps and cut_off_competes else [1]
            for token in last:
                score = (running + log_probs[:, n - 1, token]) / ((5 + n) / 6) ** alpha
                sequence = [*prefix[:n - 1], token] + [0] * (steps - n)
                better = score > best
                best = np.where(better, score, best)
                best_tokens[better] = sequence
            if n < steps:
                running = running + log_probs[:, n - 1, prefix[n - 1]]
    return best_tokens, best


@pytest.mark.parametrize("semantics", ["t5x", "hf"])
@pytest.mark.parametrize("alpha", [0.0, 0.6, 3.0])
def test_wide_beam_finds_the_exhaustive_optimum(alpha, semantics):
    vocab, steps = 5, 3
    keras.utils.set_random_seed(7)  # weights only; the golden is exhaustive search over them
    config = t5core.T5Config(vocab_size=vocab, d_model=16, d_kv=4, num_heads=2, d_ff=16,
                             num_layers=1, num_decoder_layers=2, relative_attention_num_buckets=8,
                             relative_attention_max_distance=16, dropout_rate=0.0,
                             feed_forward_proj="relu", tie_word_embeddings=False,
                             initializer_factor=3.0)  # peakier distributions than the default
    model = t5core.T5Model(config)
    encoder_tokens = np.array([[2, 3, 4, 1], [4, 4, 1, 0], [3, 1, 0, 0], [2, 2, 2, 1]], np.int32)
    expected_tokens, expected_scores = exhaustive_best(model, encoder_tokens, steps, alpha, vocab,
                                                       cut_off_competes=semantics == "hf")
    # "hf": vocab ** (steps - 1) beams keep every prefix alive, so the search is exact. "t5x":
    # every EOS extension competes only if the 2K ranks hold every extension of every live prefix.
    num_beams = (vocab ** (steps - 1) if semantics == "hf"
                 else (vocab - 1) ** (steps - 1) * vocab // 2)
    tokens, scores = generate(model, encoder_tokens, steps, method="beam", num_beams=num_beams,
                              alpha=alpha, beam_semantics=semantics, jit_compile=False)
    np.testing.assert_array_equal(tokens.numpy(), expected_tokens)
    np.testing.assert_allclose(scores.numpy(), expected_scores, rtol=1e-5)
    # A narrow beam can only do as well or worse (where it finished a beam: a "t5x" row where
    # nothing finished is scored by its plain log-prob).
    narrow_tokens, narrow = generate(model, encoder_tokens, steps, method="beam", num_beams=2,
                                     alpha=alpha, beam_semantics=semantics, jit_compile=False)
    finished = (narrow_tokens.numpy() == 1).any(axis=1) | (semantics == "hf")
    assert np.all(narrow.numpy()[finished] <= expected_scores[finished] + 1e-5)


# --------------------------------------------------------------------------- sampling


def test_sampling_is_reproducible_and_seed_dependent():
    model, ref = load("umt5")
    encoder_tokens = ref["encoder_input_tokens"]
    draw = lambda seed: generate(model, encoder_tokens, NEW_TOKENS, method="sample", seed=seed,
                                 temperature=2.0, jit_compile=False)
    first, again, other = draw(11), draw(11), draw(12)
    np.testing.assert_array_equal(first[0].numpy(), again[0].numpy())
    np.testing.assert_array_equal(first[1].numpy(), again[1].numpy())
    assert not np.array_equal(first[0].numpy(), other[0].numpy())
    log_prob, _ = sequence_log_prob(model, encoder_tokens, first[0].numpy())
    np.testing.assert_allclose(first[1].numpy(), log_prob, rtol=1e-5)


@pytest.mark.parametrize("variant", ["t5_v1_0_relu_tied", "gated_silu"])
def test_top_k_1_and_tiny_top_p_equal_greedy(variant):
    model, ref = load(variant)
    encoder_tokens = ref["encoder_input_tokens"]
    greedy = generate(model, encoder_tokens, NEW_TOKENS, jit_compile=False)[0].numpy()
    for kwargs in (dict(top_k=1), dict(top_p=1e-6), dict(top_k=1, temperature=5.0)):
        sampled = generate(model, encoder_tokens, NEW_TOKENS, method="sample", seed=3,
                           jit_compile=False, **kwargs)[0].numpy()
        np.testing.assert_array_equal(sampled, greedy, err_msg=str(kwargs))


def test_filter_logits_keeps_top_k_and_the_nucleus():
    logits = tf.math.log(tf.constant([[0.05, 0.4, 0.1, 0.3, 0.15]]))
    kept = lambda out: np.flatnonzero(np.isfinite(out.numpy()[0])).tolist()
    assert kept(filter_logits(logits, 1.0, 2, 1.0, False)) == [1, 3]
    # Nucleus 0.75: 0.4 + 0.3 = 0.7 is short of it, so 0.15 joins; 0.1 and 0.05 do not.
    assert kept(filter_logits(logits, 1.0, 0, 0.75, True)) == [1, 3, 4]
    assert kept(filter_logits(logits, 1.0, 0, 0.7, True)) == [1, 3]
    np.testing.assert_allclose(filter_logits(logits, 2.0, 0, 1.0, False).numpy(),
                               logits.numpy() / 2.0)


def test_sampled_frequencies_follow_the_filtered_distribution():
    model, ref = load("t5_v1_1_gated_gelu_untied")
    rows = 4000
    encoder_tokens = np.repeat(ref["encoder_input_tokens"][2:3], rows, axis=0)
    logits = model({"encoder_input_tokens": encoder_tokens[:1],
                    "decoder_input_tokens": np.zeros([1, 1], np.int32)})[0, 0].numpy()
    for kwargs in (dict(temperature=1.5), dict(top_k=3), dict(top_p=0.5)):
        probs = tf.nn.softmax(filter_logits(
            logits[None], kwargs.get("temperature", 1.0), kwargs.get("top_k", 0),
            kwargs.get("top_p", 1.0), "top_p" in kwargs)).numpy()[0]
        first = generate(model, encoder_tokens, 1, method="sample", seed=1, jit_compile=False,
                         **kwargs)[0].numpy()[:, 0]
        freq = np.bincount(first, minlength=probs.size) / rows
        assert np.all(freq[probs == 0] == 0), kwargs
        # 4000 draws: a standard error of at most 0.008 per token.
        assert np.max(np.abs(freq - probs)) < 0.035, kwargs


# --------------------------------------------------------------------------- bad input


def test_bad_arguments_raise_clear_errors():
    model, ref = load("t5_v1_0_relu_tied")
    tokens = ref["encoder_input_tokens"]
    cases = [
        (dict(encoder_input_tokens=np.zeros([0, 5], np.int32)), ValueError, "empty"),
        (dict(encoder_input_tokens=np.zeros([2, 0], np.int32)), ValueError, "empty"),
        (dict(encoder_input_tokens=np.array([[5, 1], [0, 0]])), ValueError, r"rows \[1\].*padding"),
        (dict(encoder_input_tokens=np.array([5, 1])), ValueError, r"\[batch, length\]"),
        (dict(encoder_input_tokens=np.array([[5, 500]])), ValueError, "outside the model's vocab"),
        (dict(max_new_tokens=0), ValueError, "max_new_tokens must be an integer >= 1"),
        (dict(max_new_tokens=-3), ValueError, "max_new_tokens must be an integer >= 1"),
        (dict(max_new_tokens=2.5), TypeError, "max_new_tokens must be an int"),
        (dict(num_beams=0), ValueError, "num_beams must be an integer >= 1"),
        (dict(method="beam", num_beams=0), ValueError, "num_beams must be an integer >= 1"),
        (dict(method="nucleus"), ValueError, "method must be one of"),
        (dict(method="sample", temperature=-0.5), ValueError, "temperature must be >= 0"),
        (dict(method="beam", beam_semantics="HF"), ValueError, "beam_semantics must be one of"),
        (dict(method="sample", top_p=0.0), ValueError, r"top_p must be in \(0, 1\]"),
        (dict(method="sample", top_k=-1), ValueError, "top_k must be an integer >= 0"),
        (dict(max_input_length=10), ValueError, "row 0 has 40 tokens, more than max_input_length"),
        (dict(decoder_prompt=np.zeros([2, 1], np.int32)), ValueError, "decoder_prompt must be"),
    ]
    for overrides, error, message in cases:
        kwargs = dict(encoder_input_tokens=tokens, max_new_tokens=4)
        kwargs.update(overrides)
        with pytest.raises(error, match=message):
            generate(model, **kwargs)


class ToyTokenizer:
    """Whitespace words -> ids 3.. (enough to test the text path without SentencePiece)."""
    eos_id = 1

    def encode(self, text, add_eos=False):
        return [3 + len(word) for word in text.split()] + ([1] if add_eos else [])

    def decode(self, ids):
        return " ".join(str(i) for i in ids if i > 1)

    def unknown_tokens_warning(self, *args):  # it spells every text (DecodeEvaluator asks)
        return None

    unwritable_warning = unknown_tokens_warning


def test_text_inputs_empty_long_and_truncated(caplog):
    tok = ToyTokenizer()
    assert encode_inputs(tok, ["a bb", "   ", ""], 8, truncate=False) == [[4, 5, 1], [1], [1]]
    with pytest.raises(ValueError, match="in.txt line 6 has 5 tokens.*max_input_length=4"):
        encode_inputs(tok, ["a", "a b c d"], 4, truncate=False, first_index=4, source="in.txt line")
    with caplog.at_level(logging.WARNING):
        ids = encode_inputs(tok, ["a", "a bb ccc dddd"], 4, truncate=True)
    assert ids == [[4, 1], [4, 5, 6, 1]]
    assert "input 2: 5 tokens truncated to max_input_length=4" in caplog.text


def test_generate_text_batches_like_single_calls():
    model, _ = load("t5_v1_0_relu_tied")
    tok = ToyTokenizer()
    texts = ["a bb", "ccc", "a a a a a", "dd e", "f"]
    batched = list(generate_text(model, tok, texts, batch_size=2, max_new_tokens=5,
                                 jit_compile=False))
    single = [tok.decode(generate(model, np.array([tok.encode(t, add_eos=True)]), 5,
                                  jit_compile=False)[0].numpy()[0]) for t in texts]
    assert batched == single
    # A prompt per text follows its text, whatever batch and place the text lands in.
    prompts = np.array([[7, 9], [3, 3], [100, 2], [5, 6], [8, 8]], np.int32)
    batched = list(generate_text(model, tok, texts, batch_size=2, max_new_tokens=5,
                                 decoder_prompt=prompts, jit_compile=False))
    single = [tok.decode(generate(model, np.array([tok.encode(t, add_eos=True)]), 5,
                                  decoder_prompt=p, jit_compile=False)[0].numpy()[0])
              for t, p in zip(texts, prompts)]
    assert batched == single
    evaluator = DecodeEvaluator([tok.encode(t, add_eos=True) for t in texts], texts, tok,
                                ["accuracy"], 8, 5, batch_size=2, decoder_prompt=prompts,
                                jit_compile=False)
    assert evaluator.predict(model) == single


@pytest.mark.parametrize("method", ["greedy", "beam"])
def test_an_empty_text_gets_an_empty_output_and_fails_no_other(method):
    model, _ = load("t5_v1_0_relu_tied")
    tok = ToyTokenizer()
    texts = ["", "a bb", "   ", "ccc", ""]
    kwargs = dict(max_new_tokens=5, method=method, num_beams=2, jit_compile=False)
    got = list(generate_text(model, tok, texts, batch_size=4, **kwargs))
    alone = list(generate_text(model, tok, ["a bb", "ccc"], batch_size=4, **kwargs))
    assert got == ["", alone[0], "", alone[1], ""]
    assert all(alone), "empty outputs everywhere would prove nothing"


def test_max_new_tokens_is_bounded_by_the_memory_budget(monkeypatch, capsys):
    from t5core.commands.generate import main as generate_main
    from t5core.decoding import budget
    from t5core.errors import FlagError

    model, _ = load("t5_v1_0_relu_tied")
    tokens = np.array([[4, 5, 1], [6, 1, 0]], np.int32)
    with pytest.raises(FlagError, match=r"max_new_tokens=1000000000 would need .* TiB .* for 8 "
                                        r"row\(s\).*at most \d+ fit"):
        generate(model, tokens, 10**9, method="beam", num_beams=4, jit_compile=False)
    # The stated most fits, one more does not: the bound is the budget, exactly.
    per_row_position = budget.search_bytes(model.config, 1, 1)
    monkeypatch.setattr(budget, "machine_memory_bytes", lambda: 2 * 2 * 7 * per_row_position)
    with pytest.raises(FlagError, match="at most 7 fit"):
        generate(model, tokens, 8, jit_compile=False)
    assert generate(model, tokens, 7, jit_compile=False)[0].shape == (2, 7)
    # A program says it in one line, before decoding anything (exit status 2); one input is one
    # row, so twice as many positions fit.
    assert generate_main(["--checkpoint", str(REFERENCE / "t5_v1_0_relu_tied"), "--vocab=byte",
                          "--input=ab", "--max_new_tokens=15", "--jit_compile=false"]) == 2
    errors = [line for line in capsys.readouterr().err.splitlines() if "error" in line]
    assert len(errors) == 1 and errors[0].startswith("error: max_new_tokens=15 would need")
    assert errors[0].endswith("at most 14 fit")


def test_beam_semantics_flag_reaches_the_search():
    from t5core.cli import parse_flags
    from t5core.commands.generate import define_flags

    def parse_args(argv):
        return parse_flags(define_flags, argv)[0]

    base = ["--checkpoint", "c", "--vocab", "byte"]
    assert parse_args(base).beam_semantics == "t5x"
    assert parse_args(base + ["--beam_semantics", "hf"]).beam_semantics == "hf"
    with pytest.raises(SystemExit):
        parse_args(base + ["--beam_semantics", "fairseq"])
    # generate_text hands it to generate.
    model, _ = load("gated_silu")
    tok = ToyTokenizer()
    texts = ["a bb", "ccc dd", "a a a a a"]
    for semantics in ("t5x", "hf"):
        through_text = list(generate_text(model, tok, texts, batch_size=3, max_new_tokens=6,
                                          method="beam", num_beams=2, alpha=0.0,
                                          beam_semantics=semantics, jit_compile=False))
        ids = encode_inputs(tok, texts, 64, truncate=False)
        direct = generate(model, pad_batch(ids, len(ids)), 6, method="beam", num_beams=2, alpha=0.0,
                          beam_semantics=semantics, jit_compile=False)[0].numpy()
        assert through_text == [tok.decode(row) for row in direct], semantics


@pytest.mark.parametrize("compiled", [False, True])
def test_first_argmax_is_tf_argmax(compiled):
    from t5core.decoding.sampling import first_argmax

    rng = np.random.default_rng(3)
    logits = rng.normal(size=[6, 50]).astype(np.float32)
    logits[1, [7, 30]] = 9.0  # a tie: the first index wins, as in tf.argmax
    logits[2, :] = 0.0
    run = tf.function(first_argmax, jit_compile=True) if compiled else first_argmax
    got = run(tf.constant(logits)).numpy()
    np.testing.assert_array_equal(got, tf.argmax(logits, axis=-1).numpy())
    assert got[1] == 7 and got[2] == 0
    logits[3, :] = np.nan  # nothing equals a NaN maximum: the id still lies in the vocabulary
    assert 0 <= run(tf.constant(logits)).numpy()[3] < 50
