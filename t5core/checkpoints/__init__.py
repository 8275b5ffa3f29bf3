"""Reading every public T5 checkpoint format through one format table, and writing HF's."""

from __future__ import annotations

import dataclasses
import functools
import os
import re
from collections.abc import Callable

import tensorflow as tf

from t5core import file_writes, model_dir, quantization
from t5core.checkpoints import hf_bin, hf_h5, mesh_tf, t5x, tf_checkpoint
from t5core.checkpoints.export import export_hf, export_hf_tokenizer
from t5core.checkpoints.hf import hf_rules
from t5core.checkpoints.hf_bin import UnsafeCheckpointError
from t5core.checkpoints.loading import assign_from_reader, new_model_for_loading
from t5core.checkpoints.rules import CheckpointMismatchError, Rule, plan_mapping, skip
from t5core.checkpoints.safetensors_io import SafetensorsReader
from t5core.checkpoints.tf_checkpoint import write_tf_checkpoint
from t5core.classifier import T5EncoderClassifier
from t5core.config import T5Config
from t5core.errors import CheckpointError
from t5core.file_reads import check_model_fits_checkpoint, user_file
from t5core.peft import PromptTunedT5, apply_lora, unfreeze_all
from t5core.peft import merge_lora as merge

@dataclasses.dataclass(frozen=True)
class AdafactorLayout:
    """Where a format keeps Adafactor's state (read by `optimizer_state`)."""

    slot_names: Callable  # (shapes, weight name) -> {kind: slot tensor name}, used slots only
    step_names: tuple
    averaged_axes: Callable  # weight shape -> (axes v_row averages over, axes v_col ...) | None


@dataclasses.dataclass(frozen=True)
class CheckpointFormat:
    """One row of FORMAT_TABLE: how a checkpoint format is found, opened and configured.

    Attributes:
      name: as `detect_format` returns it.
      detect: `detect(path, names)` -> the location its reader opens, or None; `names` lists a
        directory, None for a file or prefix.
      open: `open(location, use_torch)` -> a `CheckpointReader`.
      rules: `rules()` -> the strict rules from its tensor names to t5core's variables.
      config: `config(location, reader)` -> the T5Config stored beside the checkpoint.
      adafactor: where a run's Adafactor state lies, or None.
    """

    name: str
    detect: Callable
    open: Callable
    rules: Callable
    config: Callable
    adafactor: AdafactorLayout | None = None


def _hf_detector(suffix, *files, location=None):
    """Detects a file ending in `suffix`, or a directory holding any of `files`; the location
    is the file, the directory, or the directory's file `location`."""
    def detect(path, names):
        if names is None:
            return path if path.endswith(suffix) else None
        if names & set(files):
            return user_file(path, location) if location else path
        return None
    return detect


def _detect_t5x(path, names):
    if names is None:
        return (path if tf.io.gfile.exists(path) and not path.endswith(".index")
                and t5x.is_t5x_file(path) else None)
    if model_dir.CHECKPOINT_STATE in names:  # TF's state file, or T5X's file of that name
        state = os.path.join(path, model_dir.CHECKPOINT_STATE)
        return state if t5x.is_t5x_file(state) else None
    if any(re.fullmatch(r"checkpoint_\d+", n) for n in names):
        return t5x.checkpoint_file(path)
    return None


def _tf_prefix_detector(object_graph):
    """Detects a TF checkpoint prefix (an object-keyed one when `object_graph`, else Mesh-TF's
    name-keyed one) from the prefix, its `.index` or a directory with a `checkpoint` file."""
    def detect(path, names):
        if names is None and not (path.endswith(".index") or not tf.io.gfile.exists(path)):
            return None
        if names is not None and model_dir.CHECKPOINT_STATE not in names:
            return None
        prefix = tf_checkpoint.checkpoint_prefix(path)
        return prefix if tf_checkpoint.is_object_prefix(prefix) == object_graph else None
    return detect


def _config_beside(location, reader, run_dir=False):
    """The config.json in the checkpoint's directory (or, `run_dir`, a trainer's own config)."""
    directory = location if tf.io.gfile.isdir(location) else os.path.dirname(location)
    config_path = os.path.join(directory, model_dir.CONFIG)
    if tf.io.gfile.exists(config_path):
        return T5Config.from_json(config_path)
    if run_dir:  # a trainer's model_dir (or its best/)
        config = model_dir.read_config(directory)
        if config is not None:
            return config
    raise FileNotFoundError(f"{location}: no config.json beside it; pass config= (a "
                            "T5Config, a preset name or a config.json path)")


def _mesh_tf_config(location, reader):
    gin = os.path.join(os.path.dirname(location), "operative_config.gin")
    return mesh_tf.derive_config(reader.shapes, gin if tf.io.gfile.exists(gin) else None,
                                 source=location)


def _t5x_config(location, reader):
    gin = t5x.find_config_gin(location)
    if gin is None:
        raise ValueError(f"{location}: a T5X checkpoint stores no model config and no "
                         "config.gin is beside it; pass config= (a T5Config, a preset name, "
                         "a config.json, or the run's gin files [base.gin, size.gin])")
    return t5x.config_from_gin([gin])


# Tried in order: the first row whose detector accepts a path names its format.
FORMAT_TABLE = (
    CheckpointFormat(
        "hf-safetensors",
        _hf_detector(".safetensors", "model.safetensors", "model.safetensors.index.json"),
        lambda location, use_torch: SafetensorsReader(location), hf_rules, _config_beside),
    CheckpointFormat(
        "hf-bin", _hf_detector(".bin", "pytorch_model.bin", "pytorch_model.bin.index.json"),
        lambda location, use_torch: hf_bin.HFBinReader(location, use_torch=use_torch),
        hf_rules, _config_beside),
    CheckpointFormat(
        "hf-h5", _hf_detector(".h5", "tf_model.h5", location="tf_model.h5"),
        lambda location, use_torch: hf_h5.H5Reader(location), hf_h5.h5_rules, _config_beside),
    CheckpointFormat("t5x", _detect_t5x, lambda location, use_torch: t5x.T5XReader(location),
                     t5x.t5x_rules, _t5x_config,
                     AdafactorLayout(t5x.adafactor_slot_names, t5x.T5X_STEP_NAMES,
                                     t5x.adafactor_averaged_axes)),
    CheckpointFormat("tf", _tf_prefix_detector(True),
                     lambda location, use_torch: tf_checkpoint.TFCheckpointReader(location),
                     tf_checkpoint.tf_rules, functools.partial(_config_beside, run_dir=True)),
    CheckpointFormat("mesh-tf", _tf_prefix_detector(False),
                     lambda location, use_torch: tf_checkpoint.TFCheckpointReader(location),
                     mesh_tf.mesh_tf_rules, _mesh_tf_config,
                     AdafactorLayout(mesh_tf.adafactor_slot_names, mesh_tf.MESH_TF_STEP_NAMES,
                                     mesh_tf.adafactor_averaged_axes)),
)
FORMATS = tuple(row.name for row in FORMAT_TABLE)
FORMAT_BY_NAME = {row.name: row for row in FORMAT_TABLE}


def detect_format(path):
    """(format, location) of the checkpoint at `path`.

    Args:
      path: a checkpoint file, a directory holding one (HF snapshot, TF or T5X checkpoint,
        training run), or a TF prefix (with or without ".index"); local or `gs://...`.

    Returns:
      (format, location): format is one of FORMATS; location is what its reader opens (an HF
      snapshot's directory, the h5 or T5X file, the TF prefix).

    Raises:
      FileNotFoundError: nothing at `path`, or a directory holding no checkpoint t5core
        recognises (the message lists what it holds).
      CheckpointError: a file of no format t5core recognises.
    """
    path = os.fspath(path)
    if not tf.io.gfile.exists(path) and not tf.io.gfile.exists(path + ".index"):
        raise FileNotFoundError(f"No checkpoint at {path}")
    is_dir = tf.io.gfile.isdir(path)
    file_writes.check_complete(path if is_dir else os.path.dirname(path) or ".")
    names = {n.rstrip("/") for n in tf.io.gfile.listdir(path)} if is_dir else None
    for row in FORMAT_TABLE:
        location = row.detect(path, names)
        if location is not None:
            return row.name, location
    if names is not None:
        shown = ", ".join(sorted(names)[:12]) or "nothing"
        raise FileNotFoundError(
            f"{path}: no checkpoint t5core recognises (looked for model.safetensors, "
            "pytorch_model.bin, tf_model.h5, a TF `checkpoint` file, a T5X checkpoint or "
            f"checkpoint_N/); it holds {shown}")
    raise CheckpointError(f"{path}: not a checkpoint format t5core recognises "
                          f"({', '.join(FORMATS)})")


def open_checkpoint(path, use_torch=None):
    """(format, reader, rules, location) for the checkpoint at `path`, nothing read yet."""
    fmt, location = detect_format(path)
    row = FORMAT_BY_NAME[fmt]
    return fmt, row.open(location, use_torch=use_torch), row.rules(), location


def resolve_config(config, fmt=None, location=None, reader=None) -> T5Config:
    """A T5Config from config= (T5Config, dict, preset name, config.json path, gin path(s)), or
    from what lies beside the checkpoint when config is None."""
    if isinstance(config, T5Config):
        return config
    if isinstance(config, os.PathLike):
        config = os.fspath(config)
    if isinstance(config, dict):
        return T5Config.from_dict(config, source="config=")
    if isinstance(config, str) and config.endswith(".gin"):
        config = [config]
    if isinstance(config, (list, tuple)):
        return t5x.config_from_gin([os.fspath(c) for c in config])
    if isinstance(config, str):
        if tf.io.gfile.isdir(config):
            return T5Config.from_json(model_dir.path(config, model_dir.CONFIG))
        if config.endswith(".json"):
            return T5Config.from_json(config)
        return T5Config.from_preset(config)
    if config is not None:
        raise TypeError(f"config= must be a T5Config, dict, preset name or path, not "
                        f"{type(config).__name__}")
    if fmt not in FORMAT_BY_NAME:
        raise ValueError(f"unknown checkpoint format {fmt!r}")
    return FORMAT_BY_NAME[fmt].config(location, reader)


def load_pretrained(path, config=None, dtype=None, *, progress=None, use_torch=None,
                    merge_lora=True, allow_nonfinite=False, quantize=None):
    """A built model filled from the checkpoint at `path`; raises without a half-loaded model.

    A t5core training run (its model_dir, `best/`, or a checkpoint in either) is rebuilt as its
    `run.json` says: a LoRA run as a T5Model with the updates merged (merge_lora=False keeps the
    LoRA layers, only they trainable); a prompt-tuned run as a `PromptTunedT5`; a
    `--head=classifier` run as a `T5EncoderClassifier` with the run's `labels`. Otherwise every
    variable is trainable; `t5core.apply_peft` chooses what trains next.

    Args:
      path: an HF directory or file (safetensors, pytorch_model.bin, tf_model.h5), a Mesh-TF or
        T5X checkpoint, or a training run (see `detect_format`); local or `gs://...`.
      config: None reads the config beside the checkpoint (config.json, the run's, a Mesh-TF
        operative_config.gin, a T5X config.gin); else a T5Config, a dict, a preset name, a
        config.json path (or its directory), or gin path(s).
      dtype: the Keras dtype policy (see T5Model).
      progress: None, or `progress(nbytes_done_now, nbytes_total, tensor_name)` after each
        tensor.
      use_torch: for pytorch_model.bin, force (True) or avoid (False) torch.load; None: torch
        when installed, else t5core's restricted reader.
      merge_lora: for a LoRA run, merge the updates into the kernels (default) or keep the layers.
      allow_nonfinite: load NaN or Inf with a warning listing them, instead of a CheckpointError.
      quantize: "int8" quantizes every projection and the shared embedding for serving as each
        tensor is read, so the float32 model is never held (see `t5core.quantization`); the
        model can then no longer be trained or exported. None keeps the loaded weights.

    Returns:
      The built T5Model, PromptTunedT5 or T5EncoderClassifier.

    Raises:
      FileNotFoundError: no checkpoint at `path`, or no config beside it and none given.
      CheckpointMismatchError: tensors missing, unexpected or misshapen for the config (all
        listed).
      UnsafeCheckpointError: a pytorch_model.bin whose pickle asks to run code.
      CheckpointError: a file t5core cannot read, or NaN / Inf without allow_nonfinite.
      ConfigError: a config.json field of the wrong type or range.
    """
    if quantize is not None:
        quantization.check_mode(quantize, "load_pretrained(quantize=...)")
    fmt, reader, rules, location = open_checkpoint(path, use_torch=use_torch)
    with reader:
        config = resolve_config(config, fmt, location, reader)
        run = model_dir.read_run(location) if fmt == "tf" else None
        check_model_fits_checkpoint(config, run, reader.shapes, location)
        model, deferred = _new_model(config, run, dtype)
        # Quantized tensor by tensor as it is read, so the float32 model never exists; a LoRA
        # run is loaded in float, merged, then quantized.
        quantize_as_read = quantize is not None and not (run is not None and run.lora_rank)
        if quantize_as_read:
            dropped = quantization.quantize_structure(model, quantize)
            if deferred is not None:
                deferred.forget(dropped)
        try:
            assign_from_reader(model, reader, rules, source=location, progress=progress,
                               allow_nonfinite=allow_nonfinite)
        except BaseException:
            if deferred is not None:
                deferred.discard()
            raise
    if deferred is not None:
        deferred.finish()
    kept_lora = run is not None and run.lora_rank and not merge_lora
    if run is not None and run.lora_rank and merge_lora:
        merge(model)
    if not kept_lora:  # kept LoRA layers stay as in training: only they train
        model = unfreeze_all(model)
    if quantize is not None and not quantize_as_read:
        quantization.quantize(model, quantize)  # refuses unmerged LoRA layers
    return model


def _new_model(config, run, dtype):
    """(model, deferred-initialisation handle or None) with the structure a run describes."""
    if run is None:
        return new_model_for_loading(config, dtype=dtype)
    if run.model_class == "T5EncoderClassifier":
        if len(run.labels) < 2:
            raise CheckpointError(f"{model_dir.RUN} of a classifier run lists {len(run.labels)} "
                                  "labels; it needs its classes' labels")
        model, deferred = T5EncoderClassifier(config, len(run.labels), pooling=run.pooling,
                                              dtype=dtype, labels=run.labels), None
    elif run.model_class in ("T5Model", "PromptTunedT5"):
        model, deferred = new_model_for_loading(config, dtype=dtype)
        if run.model_class == "PromptTunedT5":
            # "random": no read of the (not yet loaded) embeddings; the checkpoint sets the value.
            model = PromptTunedT5(model, run.prompt_length, "random")
            model.prompt_init = run.prompt_init
    else:
        raise CheckpointError(f"{model_dir.RUN}: unknown model_class {run.model_class!r} "
                              "(T5Model, PromptTunedT5 or T5EncoderClassifier)")
    if run.lora_rank:
        apply_lora(model, run.lora_rank, run.lora_alpha or None, run.lora_targets)
    return model, deferred


__all__ = ["load_pretrained", "export_hf", "export_hf_tokenizer", "write_tf_checkpoint",
           "detect_format", "open_checkpoint", "resolve_config", "CheckpointMismatchError",
           "UnsafeCheckpointError", "Rule", "skip", "plan_mapping", "assign_from_reader"]
