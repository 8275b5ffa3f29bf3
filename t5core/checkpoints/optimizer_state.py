"""Continuing a T5X or Mesh-TF run: its Adafactor state and step, into t5core's Adafactor."""

from __future__ import annotations

import collections
import dataclasses
import itertools

import numpy as np

from t5core.checkpoints import FORMAT_BY_NAME, open_checkpoint
from t5core.checkpoints.rules import plan_mapping
from t5core.checkpoints.untrusted import listing, shown
from t5core.errors import CheckpointError, FlagError
from t5core.optimizers import Adafactor


class OptimizerStateMismatchError(CheckpointError):
    """The checkpoint's optimizer state does not fit the model or the optimizer's settings."""


@dataclasses.dataclass
class ImportedOptimizerState:
    """What `import_optimizer_state` did."""
    source: str
    step: int
    variables: int  # variables whose slots were filled
    factored: int  # ... of which with factored second moments
    momentum: bool
    untrained: list  # checkpoint weights the optimizer does not train (frozen): slots left out

    def describe(self) -> str:
        text = (f"Adafactor state of {self.variables} variables ({self.factored} factored"
                f"{', with momentum' if self.momentum else ''}) and step {self.step} from "
                f"{self.source}")
        if self.untrained:
            text += f"; {len(self.untrained)} frozen variables' slots left out"
        return text


def _averaging_candidates(shape, slot_shape):
    """Every set of axes whose removal from `shape` leaves `slot_shape`."""
    found = []
    for count in range(1, len(shape)):
        for axes in itertools.combinations(range(len(shape)), count):
            if tuple(d for i, d in enumerate(shape) if i not in axes) == tuple(slot_shape):
                found.append(axes)
    return found


def _source_averaged_axes(fmt, shape, row_shape, col_shape):
    """(axes v_row averages over, axes v_col averages over) in the checkpoint's layout, or None."""
    pairs = [(r, c) for r in _averaging_candidates(shape, row_shape)
             for c in _averaging_candidates(shape, col_shape) if not set(r) & set(c)]
    convention = fmt.averaged_axes(shape)
    if convention in pairs:
        return convention
    return pairs[0] if len(pairs) == 1 else None


def _target_averaged_axes(transform, source_shape, averaged, target_shape):
    """The model's dims a slot averaging over `averaged` source dims averages over; None when the
    layout change splits an averaged dim from a kept one (a merged attention dim half-averaged)."""
    kept_shape = tuple(1 if i in averaged else d for i, d in enumerate(source_shape))
    out = transform.output_shape(kept_shape)
    if len(out) != len(target_shape) or any(o not in (1, t) for o, t in zip(out, target_shape)):
        return None
    return tuple(i for i, (o, t) in enumerate(zip(out, target_shape)) if o == 1 and t != 1)


def _full_move(slot, name, transform, shapes, here, problems):
    """A slot of the weight's own shape (v, m): it takes the weight's layout change."""
    got = transform.output_shape(shapes[name])
    if got != tuple(slot.shape):
        problems["slots of the wrong shape"].append(
            f"{here}: {name} {tuple(shapes[name])} gives {got}, the slot is {tuple(slot.shape)}")
    return slot, name, transform


def _factor_slot(transform, source_axes, target_axis):
    return lambda array: np.squeeze(transform(np.expand_dims(array, source_axes)),
                                    axis=target_axis)


def _plan_variable(fmt, reader, name, target, transform, variable, optimizer, problems):
    """[(slot variable, tensor name, array -> slot value)] of one variable; misfits: `problems`."""
    shapes = reader.shapes
    source_shape, target_shape = tuple(shapes[name]), tuple(variable.shape)
    stored = fmt.slot_names(shapes, name)
    slots = optimizer.slots(variable)
    here = f"{target} {target_shape} (checkpoint {name})"
    if not stored:
        problems["no Adafactor slots in the checkpoint"].append(here)
        return []
    moves = []
    if "m" in stored and slots["m"] is None:
        problems["the checkpoint has momentum (slot m), the optimizer has none (beta1=None); "
                 "give Adafactor the run's beta1"].append(here)
    elif "m" not in stored and slots["m"] is not None:
        problems[f"the optimizer has momentum (beta1={optimizer.beta1}), the checkpoint has no "
                 "momentum slot m; use beta1=None"].append(here)
    elif "m" in stored:
        moves.append(_full_move(slots["m"], stored["m"], transform, shapes, here, problems))
    axes = optimizer.factored_axes(target_shape)
    settings = (f"factored={optimizer.factored}, "
                f"min_dim_size_to_factor={optimizer.min_dim_size_to_factor}")
    if "v" in stored:
        if axes is not None:
            problems["the checkpoint keeps the whole second moment v, t5core's Adafactor "
                     f"factors it ({settings})"].append(here)
        else:
            moves.append(_full_move(slots["v"], stored["v"], transform, shapes, here, problems))
        return moves
    if "v_row" not in stored or "v_col" not in stored:
        problems["half a factored second moment"].append(f"{here}: only {sorted(stored)}")
        return moves
    row_shape, col_shape = tuple(shapes[stored["v_row"]]), tuple(shapes[stored["v_col"]])
    factored = f"v_row {row_shape}, v_col {col_shape}"
    if axes is None:
        problems["the checkpoint factors the second moment, t5core's Adafactor keeps it "
                 f"whole ({settings})"].append(f"{here}: {factored}")
        return moves
    source_axes = _source_averaged_axes(fmt, source_shape, row_shape, col_shape)
    if source_axes is None:
        problems["factored slots whose shapes do not say which dims they average over"].append(
            f"{here}: {factored}")
        return moves
    second, largest = axes
    for kind, averaged in zip(("v_row", "v_col"), source_axes):
        over = _target_averaged_axes(transform, source_shape, averaged, target_shape)
        # t5core's v_row averages over the largest dim, v_col over the second largest.
        slot_kind = {(largest,): "v_row", (second,): "v_col"}.get(over)
        if slot_kind is None:
            problems["factored over other dims than t5core's Adafactor factors"].append(
                f"{here}: the checkpoint's {kind} averages over dims {averaged} of "
                f"{source_shape}, t5core factors dims {axes}")
            continue
        moves.append((slots[slot_kind], stored[kind],
                      _factor_slot(transform, averaged, over[0])))
    return moves


def _read_step(fmt, reader, location):
    for step_name in fmt.step_names:
        if step_name in reader.shapes:
            # A step counter is one number: a larger declared shape is refused before it is read.
            if tuple(reader.shapes[step_name]) != ():
                raise CheckpointError(f"{location}: {step_name} has shape "
                                      f"{shown(reader.shapes[step_name])}, not a step count's ()")
            reader.validate([step_name])
            step = np.asarray(reader.read(step_name))
            if step.shape != () or not np.issubdtype(step.dtype, np.integer) or int(step) < 0:
                raise CheckpointError(f"{location}: {step_name} is {step!r}, not a step count")
            return int(step)
    return None


def import_optimizer_state(path, model, optimizer) -> ImportedOptimizerState:
    """Fills the built Adafactor `optimizer` with the state and step of the T5X or Mesh-TF
    checkpoint at `path`, whose weights `model` holds; every check runs before any assignment.

    Raises FlagError (not Adafactor), CheckpointError (another format, or no state) or
    OptimizerStateMismatchError (listing every variable that does not fit).
    """
    if not isinstance(optimizer, Adafactor):
        raise FlagError(f"importing the Adafactor state of {path} needs t5core's Adafactor "
                        f"(--optimizer=adafactor), not {type(optimizer).__name__}")
    if not optimizer.built:
        raise ValueError("build the optimizer on the model's trainable variables first")
    fmt_name, reader, rules, location = open_checkpoint(path)
    with reader:  # its open files (an HDF5 file, tensorstore arrays) are let go however it ends
        return _import_state(fmt_name, reader, rules, location, model, optimizer)


def _import_state(fmt_name, reader, rules, location, model, optimizer):
    fmt = FORMAT_BY_NAME[fmt_name].adafactor
    if fmt is None:
        raise CheckpointError(
            f"{location}: a {fmt_name} checkpoint holds no Adafactor state t5core can import "
            "(T5X and Mesh-TF checkpoints do); to resume a t5core run, rerun it with its "
            "--model_dir instead")
    variables = model.variables_by_name()
    plan = plan_mapping(reader.shapes, rules, {k: tuple(v.shape) for k, v in variables.items()},
                        source=location)
    step = _read_step(fmt, reader, location)
    if step is None and not any(fmt.slot_names(reader.shapes, name)
                                for name, _, _ in plan.assignments):
        raise CheckpointError(f"{location} holds no optimizer state (no Adafactor slots, no "
                              f"{' / '.join(fmt.step_names)}): it cannot continue a run")
    problems, moves, untrained, factored = collections.defaultdict(list), [], [], 0
    if step is None:
        problems["no step counter"].append(" / ".join(fmt.step_names))
    for name, target, transform in plan.assignments:
        variable = variables[target]
        try:
            optimizer.slots(variable)
        except KeyError:
            untrained.append(target)  # frozen: the optimizer keeps no state for it
            continue
        planned = _plan_variable(fmt, reader, name, target, transform, variable, optimizer,
                                 problems)
        factored += any(slot is optimizer.slots(variable)["v_row"] for slot, _, _ in planned)
        moves += planned
    if problems:
        raise OptimizerStateMismatchError(
            f"{location}: its Adafactor state does not fit this optimizer:\n"
            + "\n".join(f"{headline}:\n    " + listing(items, 5, "\n    ")
                        for headline, items in problems.items()))
    reader.validate([name for _, name, _ in moves])
    for slot, name, convert in moves:
        value = np.asarray(convert(np.asarray(reader.read(name), np.float32)), np.float32)
        if value.shape != tuple(slot.shape):
            raise OptimizerStateMismatchError(f"{location}: {name} gives {value.shape}, the slot "
                                              f"is {tuple(slot.shape)}")
        slot.assign(value)
    optimizer.iterations.assign(step)
    trained = len(plan.assignments) - len(untrained)
    return ImportedOptimizerState(location, step, trained, factored,
                                  optimizer.beta1 is not None, untrained)


def continue_checkpoint_run(trainer, path, log=print):
    """`--init_optimizer_state`'s hook: once, after the optimizer is built, unless resuming (the
    model_dir's own state is newer). Returns the ImportedOptimizerState, or None."""
    latest = trainer.manager.latest_checkpoint
    if latest:
        log(f"--init_optimizer_state: resuming from {latest}, not from {path}")
        return None
    imported = import_optimizer_state(path, trainer.model, trainer.optimizer)
    steps = trainer.config.train_steps
    if imported.step >= steps:
        raise FlagError(
            f"--train_steps={steps} is not above the step of {path} ({imported.step}): it counts "
            f"every step of the run, the imported ones included (as in T5X); for N more steps "
            f"use --train_steps={imported.step}+N")
    log("Continuing the run: " + imported.describe())
    return imported
