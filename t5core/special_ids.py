"""The ids every T5 vocabulary reserves, below both the model's config and the tokenizers that
read them: padding (also the decoder's start), end of sequence, unknown."""

PAD_ID, EOS_ID, UNK_ID = 0, 1, 2
