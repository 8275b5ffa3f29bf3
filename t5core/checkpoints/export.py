"""Writing a model as a Hugging Face checkpoint (`export_hf`) and the tokenizer files
`transformers.AutoTokenizer` reads (`export_hf_tokenizer`)."""

from __future__ import annotations

import functools
import os
import re

import ml_dtypes
import numpy as np

from t5core import file_writes, model_dir, quantization
from t5core.checkpoints.hf import hf_name
from t5core.checkpoints.loading import nonfinite_summary
from t5core.checkpoints.safetensors_io import write_safetensors
from t5core.classifier import T5EncoderClassifier
from t5core.errors import CheckpointError
from t5core.file_reads import read_bytes
from t5core.peft import PromptTunedT5, lora_layers
from t5core.tokenizer import load_tokenizer

# The dtypes export_hf writes, by name.
EXPORT_DTYPES = {"float32": np.dtype(np.float32), "bfloat16": np.dtype(ml_dtypes.bfloat16),
                 "float16": np.dtype(np.float16)}
_UNITS = {"KB": 10**3, "MB": 10**6, "GB": 10**9, "KIB": 2**10, "MIB": 2**20, "GIB": 2**30, "B": 1}


def parse_size(size):
    """export_hf's max_shard_size in bytes: an int, or a string such as "5GB", "500MiB" or
    "1000000" (bytes)."""
    if size is None or isinstance(size, int):
        return size
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([KMG]I?B|B)?\s*", str(size).upper())
    if not m:
        raise ValueError(f"max_shard_size {size!r}: expected bytes or a size like '5GB'")
    return int(float(m.group(1)) * _UNITS[m.group(2) or "B"])


def export_hf(model, directory, dtype=None, max_shard_size="5GB", progress=None, vocab=None):
    """Writes `directory/config.json` and the weights as HF safetensors, which transformers'
    `T5ForConditionalGeneration` (MT5 / UMT5 by model_type) reads as the same model.

    Args:
      model: a T5Model (LoRA merged first, see `merge_lora`).
      directory: created if missing; local or `gs://...`.
      dtype: on disk: "float32" (default), "bfloat16" or "float16".
      max_shard_size: the most bytes per file, an int or a string ("5GB", "500MiB"); None: one
        file. Shards come with model.safetensors.index.json, as HF writes them.
      progress: None, or `progress(nbytes_done_now, nbytes_total, name)` after each tensor.
      vocab: the model's vocabulary (spiece.model, tokenizer.json or "byte"), whose
        `AutoTokenizer` files are written too (`export_hf_tokenizer`); None: none.

    Returns:
      The safetensors files written, relative to `directory`: ["model.safetensors"] or
      "model-00001-of-0000N.safetensors", ...

    Raises:
      CheckpointError: a prompt-tuned or classifier-head model, unmerged LoRA or int8 weights,
        which HF's T5 classes cannot hold; a weight past `dtype`'s range (float16: 65504).
      ValueError: an unknown dtype or an unreadable max_shard_size.
    """
    _check_exportable(model)
    out_dtype = EXPORT_DTYPES.get(dtype or "float32")
    if out_dtype is None:
        raise ValueError(f"dtype {dtype!r}: expected one of {', '.join(EXPORT_DTYPES)}")
    tensors = sorted(((*hf_name(path), variable) for path, variable in
                      model.variables_by_name().items()), key=lambda t: t[0])
    sizes = [int(np.prod(transform.output_shape(v.shape), dtype=np.int64)) * out_dtype.itemsize
             for _, transform, v in tensors]
    total = sum(sizes)

    def produce(name, transform, variable, size):
        array = transform(variable.numpy())
        with np.errstate(over="ignore"):
            cast = array.astype(out_dtype, copy=False)
        # load_pretrained refuses an Inf: a weight past the dtype's range is refused here.
        if cast is not array and (overflow := nonfinite_summary(cast)) \
                and not nonfinite_summary(array):
            largest = float(ml_dtypes.finfo(out_dtype).max)
            raise CheckpointError(f"{name}: {overflow} once cast to {out_dtype.name} (largest "
                                  f"{largest:g}); export as bfloat16 or float32")
        if progress:
            progress(size, total, name)
        return cast

    limit = parse_size(max_shard_size)
    shards, shard_size = [[]], 0
    for (name, transform, variable), size in zip(tensors, sizes):
        if shards[-1] and limit is not None and shard_size + size > limit:
            shards.append([])
            shard_size = 0
        shards[-1].append((name, transform.output_shape(variable.shape), out_dtype,
                           functools.partial(produce, name, transform, variable, size)))
        shard_size += size
    file_writes.make_dirs(directory)
    if len(shards) == 1:
        files = ["model.safetensors"]
    else:
        files = [f"model-{i + 1:05d}-of-{len(shards):05d}.safetensors" for i in range(len(shards))]
    for file_name, shard in zip(files, shards):
        write_safetensors(os.path.join(directory, file_name), shard, metadata={"format": "pt"})
    if len(shards) > 1:
        index = {"metadata": {"total_size": total},
                 "weight_map": {t[0]: f for f, shard in zip(files, shards) for t in shard}}
        file_writes.write_json(os.path.join(directory, "model.safetensors.index.json"), index,
                               indent=2, sort_keys=True)
    config = model.config.to_dict()
    config["torch_dtype"] = out_dtype.name
    file_writes.write_json(os.path.join(directory, model_dir.CONFIG), config, indent=2,
                           sort_keys=True)
    if vocab:
        export_hf_tokenizer(directory, vocab)
    return files


def _check_exportable(model):
    """Refuses, saying what to do, a soft prompt, classifier head or unmerged LoRA (not HF's T5)."""
    what = None
    if isinstance(model, PromptTunedT5):
        what = "a prompt-tuned model: HF T5 has no soft prompt"
    elif isinstance(model, T5EncoderClassifier):
        what = ("a classifier-head model: HF T5 has no encoder classifier with this head (HF's "
                "T5ForSequenceClassification classifies from the decoder)")
    if what:
        raise CheckpointError(f"Cannot export {what}. Export a SavedModel "
                              "(scripts/export.py), or a t5core TF checkpoint "
                              "(convert_checkpoint.py --format=tf), which keep it.")
    if lora_layers(model):
        raise CheckpointError("The model has unmerged LoRA layers; t5core.merge_lora(model) first")
    quantization.check_float(model, "an HF checkpoint")


# The special tokens of every T5 vocabulary, by HF's argument names (ids 0, 1, 2).
SPECIAL_TOKENS = {"pad_token": "<pad>", "eos_token": "</s>", "unk_token": "<unk>"}


def export_hf_tokenizer(directory, vocab, tokenizer=None) -> list[str]:
    """Writes what `transformers.AutoTokenizer.from_pretrained(directory)` needs to encode as
    t5core does, and `special_tokens_map.json` (pad, eos, unk, the sentinels).

    A SentencePiece model: `spiece.model` and a `T5Tokenizer` config with `extra_ids` and
    `legacy` (t5core splits on special tokens as HF's legacy T5 does). "byte": a
    `ByT5Tokenizer` config (ids are UTF-8 bytes + 3). A `tokenizer.json`: copied, with a
    `PreTrainedTokenizerFast` config (the file holds the EOS template).

    Args:
      directory: the HF export folder.
      vocab: spiece.model, tokenizer.json or "byte".
      tokenizer: `vocab`'s t5core tokenizer, if loaded (read for its extra_ids).

    Returns:
      The names of the files written, relative to `directory`.
    """
    tokenizer = tokenizer or load_tokenizer(vocab)
    extra_ids = int(tokenizer.extra_ids)
    sentinels = [f"<extra_id_{i}>" for i in range(extra_ids)]
    config = {**SPECIAL_TOKENS, "extra_ids": extra_ids, "additional_special_tokens": sentinels,
              "model_max_length": 1_000_000_000}
    files = {}
    if vocab == "byte":
        config["tokenizer_class"] = "ByT5Tokenizer"
    else:
        name = model_dir.tokenizer_file_name(vocab)
        files[name] = read_bytes(vocab, CheckpointError)
        if name == model_dir.HF_TOKENIZER:
            config["tokenizer_class"] = "PreTrainedTokenizerFast"
            del config["extra_ids"]  # the file's own added tokens hold the sentinels
        else:
            config.update(tokenizer_class="T5Tokenizer", legacy=True)
    special_map = {**SPECIAL_TOKENS, "additional_special_tokens": sentinels}
    files["tokenizer_config.json"] = file_writes.json_text(config, indent=2,
                                                           ensure_ascii=False) + "\n"
    files["special_tokens_map.json"] = file_writes.json_text(special_map, indent=2) + "\n"
    file_writes.make_dirs(directory)
    for name, content in files.items():
        write = file_writes.write_text if isinstance(content, str) else file_writes.write_bytes
        write(os.path.join(directory, name), content)
    return list(files)
