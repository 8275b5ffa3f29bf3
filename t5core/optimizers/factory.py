"""`make_optimizer`: the trainer's one entry point to build an optimizer from flag values."""

from t5core.dataclass_flags import NONNEGATIVE, check_bound
from t5core.optimizers.adafactor import Adafactor
from t5core.optimizers.clipping import AdamW

OPTIMIZER_NAMES = ("adafactor", "adamw")


def make_optimizer(name, learning_rate, weight_decay=0.0, clip_norm=None,
                   exclude_from_weight_decay=("scale",), **kwargs):
    """Builds an optimizer by name.

    Args:
      name: "adafactor" (`t5core.Adafactor`) or "adamw" (`t5core.AdamW`, epsilon 1e-8 unless
        given).
      learning_rate: a float or a schedule (see `make_schedule`).
      weight_decay: 0: none. adamw: `p -= lr * weight_decay * p`; adafactor: T5X's
        `weight_decay_rate`, `p -= weight_decay * p` (not lr-scaled).
      clip_norm: None/0: none; else the clip of the summed gradient's global norm.
      exclude_from_weight_decay: variable-name regexes kept out of weight decay (default: the
        RMS norm scales).
      **kwargs: the optimizer's (adafactor: beta1, decay_rate, ...; adamw: beta_1, beta_2,
        epsilon; both: gradient_accumulation_steps, name, ...).

    Returns:
      The Adafactor or AdamW, not yet built.

    Raises:
      ValueError: an unknown `name`, a negative weight_decay or clip_norm, or an argument the
        optimizer rejects.
    """
    check_bound("weight_decay", weight_decay, NONNEGATIVE)
    check_bound("clip_norm", clip_norm, NONNEGATIVE)
    global_clipnorm = clip_norm or None
    if name == "adafactor":
        optimizer = Adafactor(learning_rate=learning_rate,
                              weight_decay_rate=weight_decay or None,
                              global_clipnorm=global_clipnorm, **kwargs)
    elif name == "adamw":
        kwargs.setdefault("epsilon", 1e-8)  # PyTorch's default, used by T5 fine-tuning recipes
        optimizer = AdamW(learning_rate=learning_rate, weight_decay=weight_decay,
                          global_clipnorm=global_clipnorm, **kwargs)
    else:
        raise ValueError(f"unknown optimizer {name!r}; valid: {', '.join(OPTIMIZER_NAMES)}.")
    if weight_decay and exclude_from_weight_decay:
        optimizer.exclude_from_weight_decay(var_names=list(exclude_from_weight_decay))
    return optimizer
