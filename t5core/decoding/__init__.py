"""Decoding: greedy, beam search and sampling over the key/value cache, in one compiled loop.

`generate` is the entry point; `generate_text` adds tokenization and batching for texts.
"""

from t5core.decoding.beam import length_penalty
from t5core.decoding.generation import decode_graph, generate
from t5core.decoding.sampling import filter_logits
from t5core.decoding.text import generate_text
from t5core.xla import default_jit_compile

__all__ = ["generate", "generate_text", "decode_graph", "default_jit_compile", "length_penalty",
           "filter_logits"]
