"""How many new tokens one search may decode: its preallocated buffers must fit in half of this
machine's memory, else one line refuses the setting before anything is allocated (why:
docs/architecture.md, Decoding budget).
"""

from __future__ import annotations

import os

from t5core.errors import FlagError

# The share of the machine's memory the search's preallocated buffers may take.
BUDGET_FRACTION = 0.5


def machine_memory_bytes() -> int:
    """This machine's physical memory in bytes."""
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def search_bytes(config, rows: int, positions: int, dtype_bytes: int = 4,
                 beam: bool = False) -> int:
    """Bytes the search preallocates for `rows` rows of `positions` decoder positions each: every
    decoder layer's keys and values, plus the int32 tokens (live and finished for beams)."""
    cache = 2 * config.num_decoder_layers * config.num_heads * config.d_kv * dtype_bytes
    tokens = 4 * (2 if beam else 1)
    return rows * positions * (cache + tokens)


def check_max_new_tokens(config, max_new_tokens: int, rows: int, prompt_length: int = 0,
                         dtype_bytes: int = 4, beam: bool = False) -> int:
    """max_new_tokens if its search fits the memory budget; else a FlagError naming the most."""
    budget = int(machine_memory_bytes() * BUDGET_FRACTION)
    need = search_bytes(config, rows, prompt_length + max_new_tokens, dtype_bytes, beam)
    if need <= budget:
        return max_new_tokens
    per_position = search_bytes(config, rows, 1, dtype_bytes, beam)
    most = max(budget // per_position - prompt_length, 0)
    raise FlagError(
        f"max_new_tokens={max_new_tokens} would need {_size(need)} of decoding buffers for "
        f"{rows} row(s) (inputs x beams) of this model, more than the budget of {_size(budget)} "
        f"(half this machine's memory); at most {most} fit")


def _size(n: float) -> str:
    unit = "B"
    for bigger in ("KiB", "MiB", "GiB", "TiB"):
        if n < 1024:
            break
        n, unit = n / 1024, bigger
    return f"{n:.0f} B" if unit == "B" else f"{n:.2f} {unit}"


__all__ = ["check_max_new_tokens", "machine_memory_bytes", "search_bytes"]
