"""t5core: T5 in TensorFlow / Keras 3, exact to the public checkpoints.

The public names load their modules on first use, so `import t5core` does not pay for
importing TensorFlow.
"""

import importlib as _importlib
import os as _os

_os.environ.setdefault("KERAS_BACKEND", "tensorflow")

__version__ = "0.1.0"

_EXPORTS = {
    "T5Config": "t5core.config",
    "T5Model": "t5core.model",
    "count_parameters": "t5core.presets",
    "preset_names": "t5core.presets",
    "load_pretrained": "t5core.checkpoints",
    "load_tokenizer": "t5core.tokenizer",
    "export_hf": "t5core.checkpoints",
    "export_hf_tokenizer": "t5core.checkpoints",
    "write_tf_checkpoint": "t5core.checkpoints",
    "detect_format": "t5core.checkpoints",
    "CheckpointMismatchError": "t5core.checkpoints",
    "UnsafeCheckpointError": "t5core.checkpoints",
    "Tokenizer": "t5core.tokenizer",
    "ByteTokenizer": "t5core.tokenizer",
    "generate": "t5core.decoding",
    "cross_entropy_loss": "t5core.losses",
    "Adafactor": "t5core.optimizers",
    "AdamW": "t5core.optimizers",
    "make_optimizer": "t5core.optimizers",
    "make_schedule": "t5core.optimizers",
    "apply_peft": "t5core.peft",
    "merge_lora": "t5core.peft",
    "quantize": "t5core.quantization",
    "T5EncoderClassifier": "t5core.classifier",
    "PromptTunedT5": "t5core.peft",
    "export_saved_model": "t5core.serving",
    # The notebook path (README "Python API"): data from pairs, decoding texts, scoring.
    "pairs_dataset": "t5core.data.pairs",
    "generate_text": "t5core.decoding.text",
    "evaluate_task": "t5core.evaluation.evaluators",
    "few_shot_prompts": "t5core.evaluation.few_shot",
    "classification_report": "t5core.metrics",
    "compute_metrics": "t5core.metrics",
    "load_keras_model": "t5core.keras_saving",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name):
    if name in _EXPORTS:
        value = getattr(_importlib.import_module(_EXPORTS[name]), name)
        globals()[name] = value  # later lookups skip this function
        return value
    raise AttributeError(f"module 't5core' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_EXPORTS))
