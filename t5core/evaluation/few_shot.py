"""Few-shot prompts: each input preceded by k solved examples (shots), drawn with a seed."""

from __future__ import annotations

import dataclasses
import random
from typing import Sequence

from t5core.errors import FlagError

SHOT_SEPARATOR = "\n\n"
TARGET_SEPARATOR = "\n"


@dataclasses.dataclass
class FewShotPrompts:
    prompts: list  # one prompt text per input
    dropped: int  # shots drawn but left out because the prompt would not fit
    shots_used: int  # shots placed in prompts, over all inputs


def _shot_text(shot) -> str:
    inputs, targets = shot
    return f"{inputs}{TARGET_SEPARATOR}{targets}"


def few_shot_prompts(inputs: Sequence[str], shots: Sequence, num_shots: int, *, seed: int = 0,
                     tokenizer=None, inputs_length: int | None = None) -> FewShotPrompts:
    """Prefixes each of `inputs` with `num_shots` examples drawn from `shots`.

    Args:
      inputs: texts (rendered by the task's template, if any).
      shots: (inputs text, targets text) pairs, rendered the same way.
      num_shots: 0: the inputs unchanged.
      seed: the same seed, the same prompts.
      tokenizer, inputs_length: with both, a shot is dropped when it would take the prompt past
        inputs_length tokens (EOS included).

    Returns:
      FewShotPrompts(prompts, dropped, shots_used).

    Raises:
      ValueError: num_shots < 0, or more than the shots.
    """
    if num_shots < 0:
        raise ValueError(f"num_shots must be >= 0 (got {num_shots})")
    if num_shots > len(shots):  # fewer shots than asked for would be a different k-shot run
        raise FlagError(f"num_shots={num_shots} but there are {len(shots) or 'no'} shots to "
                         "draw from")
    rng = random.Random(seed)
    prompts, dropped, used = [], 0, 0
    shots = [(str(i), str(t)) for i, t in shots]
    for text in inputs:
        if not num_shots:
            prompts.append(text)
            continue
        # One extra, in case the example itself is among those drawn.
        drawn = rng.sample(range(len(shots)), min(num_shots + 1, len(shots)))
        picked = [shots[i] for i in drawn if shots[i][0] != text][:num_shots]
        kept = []
        for shot in picked:
            candidate = SHOT_SEPARATOR.join([*map(_shot_text, kept), _shot_text(shot), text])
            if tokenizer is not None and inputs_length and \
                    len(tokenizer.encode(candidate, add_eos=True)) > inputs_length:
                dropped += 1
                continue
            kept.append(shot)
        used += len(kept)
        prompts.append(SHOT_SEPARATOR.join([*map(_shot_text, kept), text]))
    return FewShotPrompts(prompts, dropped, used)

