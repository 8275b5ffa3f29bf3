"""Runs T5X's own `beam_search` on scripted models and writes what it returns as test vectors.

    python tests/make_t5x_beam_vectors.py --t5x_decoding=/path/to/t5x/t5x/decoding.py \
        --output=tests/fixtures/t5x_beam_search/vectors.json

Needs jax and flax (not t5core's dependencies; a throwaway venv serves) and the file
t5x/decoding.py of a google-research/t5x checkout, which is loaded on its own (T5X's package
__init__ imports far more than the beam search needs). The model is a first-order Markov table of
logits per batch row, decoder position and previous token, the same table that
tests/conformance/test_t5x_decoding.py feeds t5core's beam search through its model interface.
Random tables, with the EOS logit raised or lowered per row, make beams finish at many lengths,
rank EOS inside and outside the top K, and leave some rows with nothing finished.
"""

import argparse
import importlib.util
import json
import sys
import types

import numpy as np

EOS_ID = 1


def load_t5x_decoding(path):
    """t5x/decoding.py as a module, with the two names newer jax / numpy dropped put back."""
    import jax

    if not hasattr(jax, "tree_map"):
        jax.tree_map = jax.tree_util.tree_map
    if not hasattr(np, "NINF"):
        np.NINF = -np.inf
    package = types.ModuleType("t5x")
    package.binary_search = types.ModuleType("t5x.binary_search")  # used by sampling only
    sys.modules.setdefault("t5x", package)
    sys.modules.setdefault("t5x.binary_search", package.binary_search)
    spec = importlib.util.spec_from_file_location("t5x_decoding", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def make_case(rng, case_index):
    batch = 3
    vocab = int(rng.choice([6, 7, 9]))
    num_beams = int(rng.choice([1, 2, 3, 4]))
    prompt_length = int(rng.choice([0, 0, 1, 2]))
    length = int(rng.integers(prompt_length + 3, prompt_length + 7))  # prompt + new tokens
    alpha = float(rng.choice([0.0, 0.6, 1.0, 2.0]))
    table = rng.normal(0.0, 1.5, size=(batch, length, vocab, vocab))
    table[..., 0] = -9.0  # padding is (almost) never decoded
    # Per row: EOS never competes, is rare, or is likely; every fourth case has a row where
    # nothing can finish.
    eos_bias = rng.choice([-60.0, -1.0, 0.5, 1.5], size=batch)
    if case_index % 4 == 0:
        eos_bias[case_index % batch] = -60.0
    table[..., EOS_ID] += eos_bias[:, None, None]
    prompt = rng.integers(2, vocab, size=(prompt_length,)).tolist()
    return dict(alpha=alpha, num_beams=num_beams, length=length, prompt=prompt,
                table=np.round(table, 2))  # the stored logits are exactly the ones used


def t5x_beam(decoding, case):
    import jax.numpy as jnp

    table = jnp.asarray(case["table"], jnp.float32)
    batch, steps = table.shape[:2]
    length = case["length"]
    inputs = np.zeros([batch, length], np.int32)  # [0, prompt..., 0, ...]: T5X's forced prefix
    inputs[:, 1:1 + len(case["prompt"])] = case["prompt"]

    def tokens_to_logits(state):
        row = state.cache["row"][:, 0].astype(jnp.int32)
        step = jnp.minimum(state.cur_index, steps - 1)
        token = state.cur_token[:, 0]
        return table[row, step, token], state.cache

    cache = {"row": jnp.arange(batch, dtype=jnp.float32)[:, None]}
    sequences, scores = decoding.beam_search(inputs, cache, tokens_to_logits, EOS_ID,
                                             num_decodes=case["num_beams"],
                                             alpha=case["alpha"])
    return np.asarray(sequences), np.asarray(scores)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--t5x_decoding", required=True, help="path of t5x/decoding.py")
    parser.add_argument("--output", required=True)
    parser.add_argument("--cases", type=int, default=24)
    parser.add_argument("--seed", type=int, default=17)
    args = parser.parse_args()
    decoding = load_t5x_decoding(args.t5x_decoding)
    rng = np.random.default_rng(args.seed)
    cases = []
    for index in range(args.cases):
        case = make_case(rng, index)
        sequences, scores = t5x_beam(decoding, case)
        cases.append({
            "alpha": case["alpha"], "num_beams": case["num_beams"], "length": case["length"],
            "prompt": case["prompt"], "table": case["table"].tolist(),
            # T5X's order (worst beam first), the prompt included, as beam_search returns them.
            "sequences": sequences.tolist(), "scores": scores.astype(float).tolist()})
    with open(args.output, "w") as f:
        json.dump({"source": "google-research/t5x t5x/decoding.py beam_search, run by "
                             "tests/make_t5x_beam_vectors.py", "eos_id": EOS_ID,
                   "cases": cases}, f, separators=(",", ":"))
    print(f"wrote {len(cases)} cases to {args.output}")


if __name__ == "__main__":
    main()
