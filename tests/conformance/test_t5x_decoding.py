"""T5X's decoding vectors (google-research/t5x `t5x/decoding_test.py`), carried over as data.

Each test names the T5X test its inputs and expected outputs come from. T5X drives its searches
with a `tokens_to_logits` function instead of a network; here `ScriptedDecoder` plays that part
behind t5core's model interface (`encode`, `init_cache`, `decode_step`), so the vectors run through
t5core's own loops. How T5X's interface maps onto t5core's:

- T5X's `inputs` row `[0, p1, .., pn, 0, ..]` holds a forced prompt p1..pn; its output is the
  prompt followed by the new tokens, `inputs.shape[1]` tokens in all. t5core's `decoder_prompt` is
  one length for the whole batch, so each row runs alone with its prompt, and t5core returns the
  new tokens only: they are compared with the expected row after its prompt.
- T5X's `NEG_INF` is -1e7; logits of -1e7 are kept as the vectors give them. Where a prompt holds
  an id beyond the vector's vocabulary (T5X does not check ids), the vocabulary is widened with
  -1e7 logits, which the vectors already use for "never".
- t5core's sampling score is the log-probability under the unfiltered model at temperature 1,
  T5X's `rescale_log_probs=False`; vectors of the rescaled score do not apply.

Not carried over (T5X interfaces t5core does not have): state and logit callbacks, `num_decodes`
(several samples per row), `initial_index` with a prefilled cache and the call counts that go with
it, `max_decode_steps_hard_limit`, per-row temperatures (run here one row at a time instead), the
two-stage top-k, cache_map, and vectors that mock `jax.random.categorical` with random logits.

T5X's decoding_test.py has no beam vectors for early EOS, for EOS ranked between K and 2K, for a
cut-off beam against a finished one, or for the prompt in the length penalty: the tests after the
carried vectors build those cases from T5X's `beam_search` rules (t5x/decoding.py), and show that
the "hf" rules give the other answer on the same model.
"""

import json
import pathlib

import numpy as np
import pytest
import tensorflow as tf

import t5core
from t5core.decoding import filter_logits, generate
from t5core.decoding.beam import beam_search, length_penalty
from t5core.decoding.cache_ops import start_decoding

NEG_INF = -1.0e7  # t5x.decoding.NEG_INF
EOS_ID = 1


class ScriptedDecoder:
    """A stand-in for T5Model whose next-token logits come from a table, not a network.

    table: float [rows, steps, previous_token, vocab]: the logits at decoder position `step` for
    batch row `row` after `previous_token` (a first-order Markov model per row and step). A
    table with one `previous_token` entry ignores the token; steps past the table use its last.
    The batch row is the encoder input's first id minus 1; it reaches `decode_step` through the
    cache's cross keys, which the searches tile per beam but never reorder.
    """

    def __init__(self, table, decoder_start_token_id=0):
        table = np.asarray(table, np.float32)
        assert table.ndim == 4, "table must be [rows, steps, previous_token, vocab]"
        self.table = tf.constant(table)
        self.config = t5core.T5Config(vocab_size=table.shape[-1],
                                      decoder_start_token_id=decoder_start_token_id)
        self.decode_steps = tf.Variable(0)
        self.fed = []  # (token, step) of each eager decode_step call

    def encode(self, encoder_input_tokens, **unused):
        return tf.zeros(tf.concat([tf.shape(encoder_input_tokens), [1]], 0))

    def init_cache(self, encoder_output, encoder_input_tokens, max_length):
        batch = tf.shape(encoder_input_tokens)[0]
        self_kv = tf.zeros([batch, 1, max_length, 1])
        row = tf.cast(encoder_input_tokens[:, :1] - 1, tf.float32)[:, :, None, None]  # [B,1,1,1]
        return {"layers": [{"key": self_kv, "value": self_kv, "cross_key": row,
                            "cross_value": row}],
                "cross_bias": tf.zeros([batch, 1, 1, 1])}

    def decode_step(self, token_ids, cache, step):
        row = tf.cast(cache["layers"][0]["cross_key"][:, 0, 0, 0], tf.int32)
        rows, steps, previous, _ = self.table.shape
        step = tf.fill(tf.shape(row), tf.minimum(tf.cast(step, tf.int32), steps - 1))
        token = tf.minimum(tf.cast(token_ids, tf.int32), previous - 1)
        logits = tf.gather_nd(self.table, tf.stack([row, step, token], axis=-1))
        if tf.executing_eagerly():
            self.fed.append((token_ids.numpy().tolist(), int(step[0])))
        with tf.control_dependencies([self.decode_steps.assign_add(1)]):
            return tf.identity(logits), cache


def row_logits(*rows, vocab=None):
    """A table whose logits depend on the batch row only; widened to `vocab` with NEG_INF."""
    rows = np.asarray(rows, np.float32)
    if vocab is not None and vocab > rows.shape[-1]:
        rows = np.pad(rows, [(0, 0), (0, vocab - rows.shape[-1])], constant_values=NEG_INF)
    return rows[:, None, None, :]


def encoder_rows(batch):
    """Encoder inputs that name rows 0..batch-1 to ScriptedDecoder."""
    return np.arange(1, batch + 1, dtype=np.int32)[:, None]


def log_softmax(x):
    x = np.asarray(x, np.float64)
    return x - np.log(np.sum(np.exp(x - x.max(-1, keepdims=True)), -1, keepdims=True)) - x.max(
        -1, keepdims=True)


def run_beam(model, rows, max_new_tokens, num_beams, alpha, eos_id=EOS_ID, prompt=None,
             semantics="t5x", num_results=None):
    """The num_results (default all) best beams of t5core's beam search, best first:
    (tokens, scores) numpy."""
    prompt = np.zeros([len(rows), 0], np.int32) if prompt is None else np.asarray(prompt, np.int32)
    cache, token, step = start_decoding(model, np.asarray(rows, np.int32), tf.constant(prompt),
                                        max_new_tokens)
    tokens, scores = beam_search(model, cache, token, step, max_new_tokens, num_beams, alpha,
                                 eos_id, semantics=semantics,
                                 num_results=num_results or num_beams)
    return tokens.numpy(), scores.numpy()


# ===================================================================== beam search: T5X's vectors


def test_beam_search():
    # t5x/decoding_test.py DecodeTest.test_beam_search: a first-order Markov model over
    # PAD, A, B, START, END whose edge potentials alternate, so that the best two paths tie.
    states = ["PAD", "A", "B", "START-", "-END"]
    ab_edge_potentials = np.asarray([[[1, -1], [-1, 1]], [[-1, 1], [1, -1]],
                                     [[1, -1], [-1, 1]], [[-1, 1], [1, -1]]])
    edge_potentials = np.ones([6, 5, 5]) * NEG_INF
    edge_potentials[1:5, 1:3, 1:3] = ab_edge_potentials
    edge_potentials[0, 3, 1] = edge_potentials[0, 3, 2] = 0  # START -> A or B at t0
    edge_potentials[5, 1, 4] = edge_potentials[5, 2, 4] = 0  # A or B -> END at t5
    edge_potentials[:, 0, :] = 0
    logits0 = np.asarray([NEG_INF, NEG_INF, NEG_INF, 0, NEG_INF])
    # T5X: logits0 at the first call, then edge_potentials[max(0, iteration - 1)][token].
    table = np.concatenate([np.broadcast_to(logits0, [1, 5, 5]), edge_potentials])[None]
    decode_length, beam_size, batch_size = 7, 2, 2
    model = ScriptedDecoder(table)
    tokens, scores = run_beam(model, np.ones([batch_size, 1]), decode_length, beam_size, alpha=0.0,
                              eos_id=4)
    for row in range(batch_size):
        strings = ["".join(states[t] for t in tokens[row, i]) for i in range(beam_size)]
        # T5X returns ['START-AABBA-END', 'START-BBAAB-END'], worst first; their scores tie, and
        # t5core breaks the tie as T5X does.
        assert strings[::-1] == ["START-AABBA-END", "START-BBAAB-END"]
        assert scores[row, 0] == scores[row, 1]


def _force_decode_logits(vocab):
    logits = np.array([[-1e7, -1e10, -0.1, -0.9, -1e4, -1e4, -1e4, -1e4],
                       [-1e7, -1e10, -0.9, -0.1, -1e4, -1e4, -1e4, -1e4]], np.float32)
    return logits[:, :vocab]


@pytest.mark.parametrize("semantics", ["t5x", "hf"])
def test_beam_search_force_decode_prefix(semantics):
    # t5x/decoding_test.py DecodeTest.test_beam_search_force_decode_prefix: prompts [7] and
    # [4, 5], 5 tokens in all, alpha 0; EOS (-1e10) never finishes, so the live beams come back.
    # The second beams tie with another sequence (one 3 among 2s); "t5x" breaks the tie as T5X
    # does, "hf" may keep the other: for it the best beam and the scores are compared.
    logits = _force_decode_logits(8)
    model = ScriptedDecoder(row_logits(*logits))
    expected = [[[7, 2, 2, 2, 2], [7, 3, 2, 2, 2]],      # T5X's order reversed: best first
                [[4, 5, 3, 3, 3], [4, 5, 2, 3, 3]]]
    prompts = [[7], [4, 5]]
    for row, prompt in enumerate(prompts):
        new = 5 - len(prompt)
        tokens, scores = run_beam(model, [[row + 1]], new, 2, alpha=0.0, prompt=[prompt],
                                  semantics=semantics)
        want = np.asarray(expected[row])[:, len(prompt):]
        np.testing.assert_array_equal(tokens[0] if semantics == "t5x" else tokens[0, :1],
                                      want if semantics == "t5x" else want[:1])
        # T5X's expected score: the summed log-softmax of the new tokens (the prompt adds 0).
        log_probs = log_softmax(logits[row])
        expected_scores = [log_probs[np.asarray(beam[len(prompt):])].sum()
                           for beam in expected[row]]
        np.testing.assert_allclose(scores[0], expected_scores, atol=1e-5)


def test_beam_search_force_decode_no_prefix():
    # t5x/decoding_test.py DecodeTest.test_beam_search_force_decode_no_prefix: no prompt, the
    # default alpha 0.6, 5 tokens; nothing finishes.
    logits = _force_decode_logits(4)
    model = ScriptedDecoder(row_logits(*logits))
    expected = [[[2, 2, 2, 2, 2], [3, 2, 2, 2, 2]],
                [[3, 3, 3, 3, 3], [2, 3, 3, 3, 3]]]
    tokens, scores = run_beam(model, encoder_rows(2), 5, 2, alpha=0.6)
    np.testing.assert_array_equal(tokens, expected)
    # T5X's rule for a row where nothing finished: the live beams with their plain
    # log-probabilities, no length penalty (the test asserts only the order; the value is the
    # rule at alpha 0.6, where a penalised score would differ).
    plain = [[log_softmax(logits[r])[beam].sum() for beam in expected[r]] for r in range(2)]
    np.testing.assert_allclose(scores, plain, atol=1e-5)
    assert np.all(np.diff(-scores, axis=1) >= 0)
    # The "hf" rules score the same cut-off beams with the penalty of the full length (their
    # second beams may be the other sequence of the same score).
    hf_tokens, hf_scores = run_beam(model, encoder_rows(2), 5, 2, alpha=0.6, semantics="hf")
    np.testing.assert_array_equal(hf_tokens[:, 0], np.asarray(expected)[:, 0])
    np.testing.assert_allclose(hf_scores, np.asarray(plain) / ((5 + 5) / 6) ** 0.6, atol=1e-5)


# ======================================== beam search: T5X's rules on models built to order


def markov_table(steps, vocab, transitions):
    """A one-row table: transitions {(step, previous): {token: prob}}; unlisted tokens get ~0."""
    table = np.full([1, steps, vocab, vocab], NEG_INF, np.float32)
    for (step, previous), probs in transitions.items():
        for token, prob in probs.items():
            table[0, step, previous, token] = np.log(prob)
    return table


def test_eos_ranked_between_k_and_2k_finishes_under_t5x_rules_only():
    # Two beams. First step: 2 (0.4), 3 (0.35), EOS (0.25): EOS ranks third of the 2K = 4
    # extensions. T5X lets every EOS among the 2K finish, so "EOS" finishes with log 0.25;
    # afterwards every path is at most 0.4 * 0.5 = 0.2 < 0.25. The HF rules drop that EOS (rank
    # >= K) and return a later one.
    later = {2: 0.5, 1: 0.5}
    table = markov_table(4, 4, {(0, 0): {2: 0.4, 3: 0.35, 1: 0.25},
                                **{(s, p): later for s in (1, 2, 3) for p in (2, 3)}})
    model = ScriptedDecoder(table)
    tokens, scores = run_beam(model, [[1]], 4, 2, alpha=0.0)
    np.testing.assert_array_equal(tokens[0, 0], [1, 0, 0, 0])
    assert scores[0, 0] == pytest.approx(np.log(0.25), abs=1e-6)
    tokens, scores = run_beam(model, [[1]], 4, 2, alpha=0.0, semantics="hf")
    np.testing.assert_array_equal(tokens[0, 0], [2, 1, 0, 0])
    assert scores[0, 0] == pytest.approx(np.log(0.4 * 0.5), abs=1e-6)


def test_early_eos_ends_the_search_once_no_live_beam_can_win():
    # EOS first with 0.9: under both rule sets it finishes at once, and since every live beam
    # is already below it (log 0.06 / penalty of the longest length, alpha 0.6), the loop stops
    # after that one step instead of running 6. (The search stops once the results asked for
    # can no longer change; T5X waits until all K finished slots are filled, which changes
    # when it stops, not what it returns.)
    table = markov_table(6, 4, {(0, 0): {1: 0.9, 2: 0.06, 3: 0.04},
                                **{(s, p): {2: 0.9, 1: 0.1} for s in range(1, 6) for p in (2, 3)}})
    for semantics in ("t5x", "hf"):
        model = ScriptedDecoder(table)
        tokens, scores = run_beam(model, [[1]], 6, 2, alpha=0.6, semantics=semantics,
                                  num_results=1)
        np.testing.assert_array_equal(tokens[0, 0], [1, 0, 0, 0, 0, 0])
        assert scores[0, 0] == pytest.approx(np.log(0.9) / (6 / 6) ** 0.6, abs=1e-6)
        assert int(model.decode_steps.numpy()) == 1, semantics


def test_a_cut_off_beam_never_beats_a_finished_one_under_t5x_rules():
    # 2 (0.7) or EOS (0.3) first, then 2 with 0.99 to the end of 3 tokens. The beam cut off at 3
    # tokens (log 0.7 * 0.99^2 = -0.38) is better than the finished "EOS" (log 0.3 = -1.20):
    # T5X returns the finished one (live beams only for a row where nothing finished); the HF
    # rules let the cut-off beam compete at the last step.
    table = markov_table(3, 4, {(0, 0): {2: 0.7, 1: 0.3},
                                **{(s, 2): {2: 0.99, 1: 0.0001, 3: 0.0099} for s in (1, 2)}})
    model = ScriptedDecoder(table)
    tokens, scores = run_beam(model, [[1]], 3, 2, alpha=0.0)
    np.testing.assert_array_equal(tokens[0, 0], [1, 0, 0])
    assert scores[0, 0] == pytest.approx(np.log(0.3), abs=1e-6)
    tokens, scores = run_beam(model, [[1]], 3, 2, alpha=0.0, semantics="hf")
    np.testing.assert_array_equal(tokens[0, 0], [2, 2, 2])
    assert scores[0, 0] == pytest.approx(np.log(0.7 * 0.99 * 0.99), abs=1e-5)


def test_rows_where_nothing_finishes_return_live_beams_beside_rows_that_finish():
    # Row 0 ends with EOS at once; row 1 never puts EOS among its 2K extensions. T5X decides
    # per row: row 0 returns its finished beam (penalised), row 1 its best live beam with the
    # plain log-probability.
    finishing = np.log([1e-9, 0.8, 0.1, 0.05, 0.03, 0.02])
    never = np.log([1e-9, 1e-9, 0.3, 0.25, 0.25, 0.2])
    model = ScriptedDecoder(row_logits(finishing, never))
    tokens, scores = run_beam(model, encoder_rows(2), 3, 2, alpha=0.6)
    np.testing.assert_array_equal(tokens[:, 0], [[1, 0, 0], [2, 2, 2]])
    np.testing.assert_allclose(scores[:, 0], [np.log(0.8) / 1.0, 3 * np.log(0.3)], rtol=1e-5)


@pytest.mark.parametrize("semantics", ["t5x", "hf"])
def test_length_penalty_counts_a_forced_prompt_under_t5x_rules(semantics):
    # After a 10-token prompt: EOS at once (log-prob -1.0) or 2, 2, 2, EOS (log-prob -1.3).
    # alpha 1. T5X's length counts the prompt: -1.0 / bp(11) = -0.375 beats -1.3 / bp(14) =
    # -0.411. Counting only new tokens (the HF rules): -1.0 / bp(1) = -1.0 loses to
    # -1.3 / bp(4) = -0.867.
    prompt_length, alpha = 10, 1.0
    first = {1: np.exp(-1.0), 3: 0.01}
    first[2] = 1 - sum(first.values())
    tail = np.exp(-1.3 - np.log(first[2]) - 2 * np.log(0.9))  # p(EOS) at the 4th new token
    transitions = {(prompt_length, 5): first}
    for step in (prompt_length + 1, prompt_length + 2):
        transitions[(step, 2)] = {2: 0.9, 1: 0.05, 3: 0.05}
    transitions[(prompt_length + 3, 2)] = {1: tail, 2: 1 - tail - 0.01, 3: 0.01}
    model = ScriptedDecoder(markov_table(prompt_length + 5, 6, transitions))
    tokens, scores = run_beam(model, [[1]], 5, 2, alpha=alpha, prompt=[[5] * prompt_length],
                              semantics=semantics)
    short, long = [1, 0, 0, 0, 0], [2, 2, 2, 1, 0]
    counted = prompt_length if semantics == "t5x" else 0
    bp = lambda n: ((5 + counted + n) / 6) ** alpha
    expected = {"t5x": (short, -1.0 / bp(1)), "hf": (long, -1.3 / bp(4))}[semantics]
    np.testing.assert_array_equal(tokens[0, 0], expected[0])
    assert scores[0, 0] == pytest.approx(expected[1], abs=1e-5)


# ============================================= beam search: T5X's own beam_search on random tables

T5X_RUNS = pathlib.Path(__file__).parents[1] / "fixtures" / "t5x_beam_search" / "vectors.json"


def _t5x_cases():
    return json.loads(T5X_RUNS.read_text())["cases"]


@pytest.mark.parametrize("index", range(len(_t5x_cases())))
def test_beam_search_agrees_with_t5x_run(index):
    # T5X's t5x/decoding.py beam_search, run by tests/make_t5x_beam_vectors.py on the same
    # scripted Markov tables (beams finishing at many lengths, EOS inside and outside the top K,
    # rows where nothing finishes, forced prompts, alpha 0 to 2): every beam and score agrees.
    case = _t5x_cases()[index]
    table = np.asarray(case["table"], np.float32)
    prompt, length, k = case["prompt"], case["length"], case["num_beams"]
    rows = len(table)
    tokens, scores = run_beam(ScriptedDecoder(table), encoder_rows(rows), length - len(prompt), k,
                              case["alpha"], prompt=[prompt] * rows)
    want_tokens = np.asarray(case["sequences"])[:, ::-1, len(prompt):]  # best first, new tokens
    want_scores = np.asarray(case["scores"])[:, ::-1]
    filled = want_scores > NEG_INF / 2  # T5X's unfilled finished slots score -1e7; here -inf
    np.testing.assert_array_equal(np.where(filled[..., None], tokens, 0),
                                  np.where(filled[..., None], want_tokens, 0))
    np.testing.assert_allclose(scores[filled], want_scores[filled], rtol=2e-6, atol=2e-6)
    assert np.all(scores[~filled] == -np.inf)


def test_t5x_runs_cover_the_cases_where_the_rules_differ():
    # The recorded T5X runs include rows where nothing finished (T5X returns plain log-probs)
    # and rows whose best beam the "hf" rules would pick differently.
    nothing, differ = 0, 0
    for case in _t5x_cases():
        table = np.asarray(case["table"], np.float32)
        prompt, length, k = case["prompt"], case["length"], case["num_beams"]
        rows = len(table)
        best = np.asarray(case["sequences"])[:, -1, len(prompt):]
        nothing += int(sum(1 not in row for row in best))
        hf, _ = run_beam(ScriptedDecoder(table), encoder_rows(rows), length - len(prompt), k,
                         case["alpha"], prompt=[prompt] * rows, semantics="hf", num_results=1)
        differ += int(np.sum(np.any(hf[:, 0] != best, axis=1)))
    assert nothing >= 5 and differ >= 5, (nothing, differ)


def test_beam_options_reach_generate():
    # generate(..., beam_semantics=) returns the best beam of run_beam's search.
    table = markov_table(3, 4, {(0, 0): {2: 0.7, 1: 0.3},
                                **{(s, 2): {2: 0.99, 1: 0.0001, 3: 0.0099} for s in (1, 2)}})
    model = ScriptedDecoder(table)
    for semantics, expected in (("t5x", [1, 0, 0]), ("hf", [2, 2, 2])):
        tokens, _ = generate(model, [[1]], 3, method="beam", num_beams=2, alpha=0.0,
                             beam_semantics=semantics, jit_compile=False)
        np.testing.assert_array_equal(tokens.numpy()[0], expected)
    with pytest.raises(ValueError, match="beam_semantics must be one of t5x, hf"):
        generate(model, [[1]], 3, method="beam", beam_semantics="fairseq")
    assert float(length_penalty(11, 1.0)) == pytest.approx(16 / 6)


# ============================================================== temperature sampling: T5X's vectors

ALWAYS_2_AND_3 = ([-1e7, -1e7, 0, -1e7], [-1e7, -1e7, -1e7, 0])  # row 0 draws 2, row 1 draws 3


def sample_row(logits, new_tokens, prompt=None, vocab=None, **kwargs):
    """The new tokens t5core samples for one row (the ScriptedDecoder row 0)."""
    model = ScriptedDecoder(row_logits(logits, vocab=vocab))
    kwargs.setdefault("seed", 0)
    tokens, scores = generate(model, [[1]], new_tokens, method="sample", jit_compile=False,
                              decoder_prompt=None if prompt is None else [prompt], **kwargs)
    return tokens.numpy()[0].tolist(), float(scores.numpy()[0])


def test_temperature_sample_no_prefix():
    # t5x/decoding_test.py DecodeTest.test_temperature_sample_no_prefix
    model = ScriptedDecoder(row_logits(*ALWAYS_2_AND_3))
    tokens, _ = generate(model, encoder_rows(2), 3, method="sample", seed=0, jit_compile=False)
    np.testing.assert_array_equal(tokens.numpy(), [[2, 2, 2], [3, 3, 3]])


@pytest.mark.parametrize("name, inputs, expected, top_k", [
    # t5x/decoding_test.py DecodeTest.test_temperature_sample_prefix
    ("prefix", [[0, 5, 6, 7, 0], [0, 8, 9, 0, 0]], [[5, 6, 7, 2, 2], [8, 9, 3, 3, 3]], 0),
    # DecodeTest.test_temperature_sample_prefix_ending_with_eos: EOS in the prompt does not end
    # the row.
    ("prefix_ending_with_eos", [[0, 5, 6, 1, 0], [0, 8, 1, 0, 0]],
     [[5, 6, 1, 2, 2], [8, 1, 3, 3, 3]], 1),
    # DecodeTest.test_temperature_sample_uneven_prefix (its initial_index [3, 2] is where each
    # prompt ends).
    ("uneven_prefix", [[0, 5, 7, 1, 0, 0], [0, 6, 1, 0, 0, 0]],
     [[5, 7, 1, 2, 2, 2], [6, 1, 3, 3, 3, 3]], 0),
])
def test_temperature_sample_with_prompts(name, inputs, expected, top_k):
    for row, (given, want) in enumerate(zip(inputs, expected)):
        prompt = [t for t in given[1:] if t]
        new, _ = sample_row(ALWAYS_2_AND_3[row], len(want) - len(prompt), prompt=prompt,
                            vocab=10, top_k=top_k)
        assert prompt + new == want, (name, row)


def test_temperature_sample_with_zero_temperature():
    # t5x/decoding_test.py DecodeTest.test_temperature_sample_with_zero_temperature: very large,
    # close logits; temperature 0 is the argmax whatever top_k says.
    logits = ([1700.47, 1700.48, 1700.51, 1700.45], [3.2, 4.8, -5.3, 5.6])
    model = ScriptedDecoder(row_logits(*logits))
    tokens, _ = generate(model, encoder_rows(2), 3, method="sample", temperature=0.0, top_k=4,
                         jit_compile=False)
    np.testing.assert_array_equal(tokens.numpy(), [[2, 2, 2], [3, 3, 3]])


def test_temperature_sample_prefix_ending_with_eos_early_stop():
    # t5x/decoding_test.py DecodeTest.test_temperature_sample_prefix_ending_with_eos_early_stop:
    # the draws are scripted per loop step (T5X mocks jax.random.categorical; here the logits put
    # all the mass on the scripted token). Row 0 draws EOS at step 4, row 1 at step 3; after EOS
    # a row holds 0.
    max_decode_len = 7
    script = [[2, 3]] * max_decode_len
    script[3] = [2, 1]
    script[4] = [1, 3]
    inputs = [[0, 5, 1, 0, 0, 0, 0], [0, 8, 0, 0, 0, 0, 0]]
    expected = [[5, 1, 2, 2, 1, 0, 0], [8, 3, 3, 1, 0, 0, 0]]
    for row in range(2):
        # Step s's draw is the token at output position s, i.e. decoder position s + 1 - 1.
        table = np.full([1, max_decode_len, 1, 10], NEG_INF, np.float32)
        for step in range(max_decode_len):
            table[0, step, 0, script[step][row]] = 0.0
        prompt = [t for t in inputs[row][1:] if t]
        model = ScriptedDecoder(table)
        tokens, _ = generate(model, [[1]], max_decode_len - len(prompt), method="sample", seed=0,
                             decoder_prompt=[prompt], jit_compile=False)
        assert prompt + tokens.numpy()[0].tolist() == expected[row]


def test_greedy_decoding_topk_sample_log_probs():
    # t5x/decoding_test.py DecodeTest.test_greedy_decoding_topk_sample_log_probs, the
    # rescale_log_probs=False half: top_k 1 picks 2 (p 0.6) after the prompt [2, 2, 3]; the score
    # is the unfiltered log-probability of the two new tokens.
    new, score = sample_row([-1e7, -1e7, -0.510825624, -0.916290732], 2, prompt=[2, 2, 3],
                            top_k=1)
    assert [2, 2, 3] + new == [2, 2, 3, 2, 2]
    assert score == pytest.approx(-1.02165125, abs=1e-6)


@pytest.mark.parametrize("prompt, expected", [
    # t5x/decoding_test.py DecodeTest.test_temperature_sample_max_decode_steps_with_initial_index
    # (no_initial_index case): max_decode_steps 4 counts the new tokens after the prompt, which
    # is t5core's max_new_tokens; the rest of T5X's row is padding.
    ([2], [2, 3, 3, 3, 3, 0, 0, 0]),
    ([2, 2], [2, 2, 3, 3, 3, 3, 0, 0]),
])
def test_temperature_sample_max_decode_steps(prompt, expected):
    new, score = sample_row([-1e7, -1e7, -1e7, 0], 4, prompt=prompt, top_k=4)
    assert prompt + new == [t for t in expected if t]
    assert score == pytest.approx(0.0, abs=1e-6)


def test_temperature_sample_topp():
    # t5x/decoding_test.py DecodeTest.test_temperature_sample_topp: probabilities
    # (0.3, 0, 0.1, 0.6); top_p 0.55 keeps only token 3; at temperature 0.8 the distribution is
    # (0.27, 0, 0.069, 0.65), so top_p 0.63 keeps only token 3 too.
    logits = [-1.2, -1e7, -2.3, -0.51]
    assert sample_row(logits, 20, top_p=0.55, top_k=0)[0] == [3] * 20
    assert sample_row(logits, 20, temperature=0.8, top_p=0.63, top_k=0)[0] == [3] * 20


@pytest.mark.parametrize("logits, temperature, expected", [
    # t5x/decoding_test.py DecodeTest.test_temperature_sample_per_item_temperature, one row at a
    # time (t5core's temperature is one number per call): top_p 0.63 after the temperature
    # leaves one token; temperature 0 is the argmax (token 0); token 1 is EOS, then padding.
    ([-1.2, -1e7, -2.3, -0.51], 0.5, [3] * 20),
    ([-0.51, -1.2, -1e7, -2.3], 0.0, [0] * 20),
    ([-1.2, -1e7, -0.51, -2.3], 0.3, [2] * 20),
    ([-1.2, -0.51, -1e7, -2.3], 0.2, [1] + [0] * 19),
])
def test_temperature_sample_per_item_temperature(logits, temperature, expected):
    assert sample_row(logits, 20, temperature=temperature, top_p=0.63, top_k=0)[0] == expected


def test_dynamic_topp_max_decode_steps():
    # t5x/decoding_test.py DecodeTest.test_dynamic_topp_max_decode_steps: 10 steps of token 3,
    # T5X's padding after them is t5core's shorter result.
    assert sample_row([-1.2, -1e7, -2.3, -0.51], 10, temperature=0.8, top_p=0.63,
                      top_k=0)[0] == [3] * 10


def test_topp_log_probs():
    # t5x/decoding_test.py DecodeTest.test_topp_log_probs: the logits the draw sees after
    # temperature 1.4 and top_p 0.7.
    logits = tf.constant([[-1.2, NEG_INF, -2.3, -0.51]], tf.float32)
    filtered = filter_logits(logits, 1.4, 0, 0.7, True).numpy()
    np.testing.assert_allclose(np.where(np.isinf(filtered), NEG_INF, filtered),
                               [[-0.85714293, NEG_INF, NEG_INF, -0.36428571]], rtol=1e-6)


# =========================================================================== decoder start id


def test_decoding_starts_from_the_configured_decoder_start_id():
    # The first fed token is config.decoder_start_token_id (0 for every released T5).
    model = ScriptedDecoder(row_logits([-1e7, -1e7, 0, -1e7]), decoder_start_token_id=3)
    cache, token, step = start_decoding(model, np.array([[1]], np.int32),
                                        tf.constant([[2]], tf.int32), 2)
    assert model.fed == [([3], 0)] and token.numpy().tolist() == [2] and int(step) == 1
