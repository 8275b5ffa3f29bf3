"""Writes tests/fixtures/byte_fallback_vocab/spiece.model: a tiny SentencePiece Unigram vocabulary
trained with byte_fallback=True (as mT5-style vocabularies for unseen characters), T5's special
ids (pad 0, eos 1, unk 2, no bos) and no normaliser (identity keeps the file a few KB). Its few
pieces cover English and two Chinese characters; every other character is spelled by <0xNN>
byte pieces.

    python tests/make_byte_fallback_vocab.py
"""

import io
import os

import sentencepiece as spm

OUT = os.path.join(os.path.dirname(__file__), "fixtures", "byte_fallback_vocab", "spiece.model")
CORPUS = ([f"the quick brown fox jumps over the lazy dog {i}" for i in range(200)]
          + ["hello world 你好"] * 5)


def main():
    model = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(CORPUS), model_writer=model, vocab_size=300,
        model_type="unigram", byte_fallback=True, pad_id=0, eos_id=1, unk_id=2, bos_id=-1,
        character_coverage=1.0, normalization_rule_name="identity", num_threads=1,
        minloglevel=2)
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    with open(OUT, "wb") as f:
        f.write(model.getvalue())
    print(f"wrote {OUT} ({len(model.getvalue())} bytes)")


if __name__ == "__main__":
    main()
