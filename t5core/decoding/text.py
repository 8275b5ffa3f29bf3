"""Texts in, texts out: tokenization, length checks and batching around `generate`.

Used by scripts/generate.py; the in-graph twin of this path is `t5core.serving`.
"""

from __future__ import annotations

import logging
from typing import Iterable, Iterator, Sequence

import numpy as np

from t5core.decoding.generation import generate

logger = logging.getLogger(__name__)

# Batches are padded to a multiple of this many input tokens, so a stream of texts of varying
# lengths reuses a few compiled shapes instead of tracing (and under XLA compiling) one per batch.
LENGTH_BUCKET = 16


def encode_inputs(tokenizer, texts: Sequence[str], max_input_length: int, truncate: bool,
                  first_index: int = 0, source: str = "input") -> list[list[int]]:
    """Checked token ids (EOS appended) of each text; an empty text is [EOS] (see `is_empty`).
    Past max_input_length raises, unless truncate: first max_input_length - 1 tokens plus EOS
    (as seqio) and a warning. `first_index` and `source` locate texts in messages."""
    encoded = []
    for offset, text in enumerate(texts):
        where = f"{source} {first_index + offset + 1}"
        if not isinstance(text, str):
            raise TypeError(f"{where}: expected a string, got {type(text).__name__}")
        ids = tokenizer.encode(text, add_eos=True)
        if is_empty(ids):
            ids = [tokenizer.eos_id]
        elif len(ids) > max_input_length:
            if not truncate:
                raise ValueError(f"{where} has {len(ids)} tokens (EOS included), more than "
                                 f"max_input_length={max_input_length}; shorten it or truncate")
            logger.warning("%s: %d tokens truncated to max_input_length=%d", where, len(ids),
                           max_input_length)
            ids = ids[:max_input_length - 1] + [tokenizer.eos_id]
        encoded.append(ids)
    return encoded


def is_empty(ids) -> bool:
    """Whether encoded input ids hold no token besides EOS: such an input's output is empty
    (the same rule as the SavedModel's, `t5core.serving`)."""
    return len(ids) <= 1


def pad_batch(encoded: list[list[int]], rows: int) -> np.ndarray:
    """int32 [rows, length] with 0 padding; length rounded up to LENGTH_BUCKET. Rows beyond the
    inputs copy the first (so a short last batch reuses a compiled shape; callers drop them)."""
    length = -(-max(len(ids) for ids in encoded) // LENGTH_BUCKET) * LENGTH_BUCKET
    batch = np.zeros([rows, length], np.int32)
    for row in range(rows):
        ids = encoded[row] if row < len(encoded) else encoded[0]
        batch[row, :len(ids)] = ids
    return batch


def batch_options(options: dict, start: int, count: int, rows: int) -> dict:
    """`generate`'s options for texts [start, start + count) decoded as `rows` rows, so that a
    text's output never depends on its batch: first_row (its place in the seed's stream) and,
    of a 2-D decoder_prompt (a row per text), these texts' rows."""
    options = {**options, "first_row": options.get("first_row", 0) + start}
    prompt = options.get("decoder_prompt")
    if prompt is not None and np.ndim(prompt) == 2:
        mine = np.asarray(prompt)[start:start + count]
        if len(mine) < count:
            raise ValueError(f"decoder_prompt has {len(prompt)} rows, fewer than the texts")
        options["decoder_prompt"] = np.pad(mine, [(0, rows - count), (0, 0)], mode="edge")
    return options


def generate_text(model, tokenizer, texts: Iterable[str], *, batch_size: int = 32,
                  max_input_length: int = 512, truncate: bool = False, max_new_tokens: int = 64,
                  progress: bool = False, total: int | None = None, source: str = "input",
                  note=logger.warning, **generate_kwargs) -> Iterator[str]:
    """Yields the decoded output of each text, in order, `batch_size` texts per `generate` call.

    Args:
      model: a T5Model (or PromptTunedT5).
      tokenizer: the model's `Tokenizer` or `ByteTokenizer`.
      texts: strings (a list, or a generator read lazily); not one string.
      batch_size: >= 1.
      max_input_length: tokens per text, EOS included (>= 2).
      truncate: False raises for a longer text; True keeps its first max_input_length - 1
        tokens plus EOS, with a warning.
      max_new_tokens: the most tokens decoded per text.
      progress: show a tqdm bar counting texts.
      total: the number of texts, if known, for the bar.
      source: what messages call a text's origin ("input 3 is empty"), e.g. a file name.
      note: called once, at the end, with a note for the user when outputs reached
        max_new_tokens before their EOS (the outputs are unchanged).
      **generate_kwargs: `t5core.generate`'s (method, num_beams, ..., beam_semantics); a 2-D
        decoder_prompt holds one row per text.

    Yields:
      The decoded string of each text ("" for a text with no tokens).

    Raises:
      TypeError: `texts` is one string, or holds a non-string.
      ValueError: batch_size < 1, max_input_length < 2, or a long text without truncate.
    """
    if isinstance(texts, (str, bytes)):
        raise TypeError("generate_text takes a list of texts; for one text pass [text]")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if max_input_length < 2:
        raise ValueError(f"max_input_length must be >= 2 (a token and EOS), got {max_input_length}")
    bar = None
    if progress:
        from tqdm import tqdm
        bar = tqdm(total=total, unit="text", desc="generate")
    done = limited = 0  # limited: outputs that reached max_new_tokens before EOS
    pending: list[str] = []

    def flush():
        nonlocal limited
        encoded = encode_inputs(tokenizer, pending, max_input_length, truncate, done, source)
        # A short last batch is padded to the next power of two rows (few shapes, little waste).
        rows = min(batch_size, 1 << (len(pending) - 1).bit_length())
        tokens, _ = generate(model, pad_batch(encoded, rows), max_new_tokens,
                             **batch_options(generate_kwargs, done, len(pending), rows))
        outputs = list(zip(encoded, np.asarray(tokens)))
        limited += sum(tokenizer.eos_id not in row for ids, row in outputs if not is_empty(ids))
        return ["" if is_empty(ids) else tokenizer.decode(row) for ids, row in outputs]

    try:
        for text in texts:
            pending.append(text)
            if len(pending) == batch_size:
                yield from flush()
                done += len(pending)
                if bar is not None:
                    bar.update(len(pending))
                pending = []
        if pending:
            yield from flush()
            if bar is not None:
                bar.update(len(pending))
        if limited:
            # Said, not silent: a byte-level output cut inside a character's UTF-8 bytes decodes
            # without that character, which can leave it empty.
            note(f"{limited} output(s) reached max_new_tokens={max_new_tokens} before ending, "
                 "so may be cut short (a character whose bytes were cut is left out)")
    finally:
        if bar is not None:
            bar.close()
