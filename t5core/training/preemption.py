"""Stopping a training run cleanly on SIGTERM or SIGINT: finish the step, save it, return (on
several workers, the same step on each: docs/architecture.md, "Preemption")."""

from __future__ import annotations

import contextlib
import signal
import threading

import tensorflow as tf

SIGNALS = (signal.SIGTERM, signal.SIGINT)


class _Stop(Exception):
    """Raised by the preemption handler's exit function once every worker has saved."""


class Interrupted(Exception):
    """A signal arrived within `Preemption.interruptible()`; its name is the message."""


class Preemption:
    """Signal handling around a training loop (a context manager).

    manager: this worker's CheckpointManager; checkpoints are numbered by step.
    num_workers: > 1 uses TensorFlow's multi-worker preemption handler.
    """

    def __init__(self, strategy, manager, num_workers: int, save=None):
        self.strategy = strategy
        self.manager = manager
        # save(step): the trainer's save of a stopped single-worker run, which checks the weights
        # first. (A multi-worker run's handler saves through TensorFlow itself.)
        self.save = save
        self.num_workers = num_workers
        self.signal_name = ""  # the signal that asked this process to stop, if one did
        self._previous: dict = {}
        self._handler = None
        self._interruptible = False

    @property
    def requested(self) -> bool:
        return bool(self.signal_name)

    def _on_signal(self, signum, frame):
        if self.requested and signum == signal.SIGINT:
            self._restore()
            raise KeyboardInterrupt("second Ctrl-C: stopped without saving")
        # Only a flag: printing from a signal handler can re-enter a write in progress.
        self.signal_name = signal.Signals(signum).name
        if self._interruptible:
            self._interruptible = False
            raise Interrupted(self.signal_name)

    @contextlib.contextmanager
    def interruptible(self):
        """Work within is abandoned when a signal arrives (Interrupted raised), on a single
        worker: an evaluation changes nothing a checkpoint holds, and can outlast a preemption's
        grace period. Several workers evaluate together and stop only between steps."""
        if self._handler is not None or not self._previous:
            yield
            return
        if self.requested:
            raise Interrupted(self.signal_name)
        self._interruptible = True
        try:
            yield
        finally:
            self._interruptible = False

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():  # handlers need the main one
            # A signal ignored on purpose stays ignored (a shell's background job ignores
            # SIGINT, so Ctrl-C in the terminal is not meant for it).
            self._previous = {s: signal.getsignal(s) for s in SIGNALS
                              if signal.getsignal(s) is not signal.SIG_IGN}
            for s in self._previous:
                signal.signal(s, self._on_signal)
        if self.num_workers > 1:
            config = tf.distribute.experimental.TerminationConfig(
                termination_watcher_fn=lambda: self.requested, exit_fn=_raise_stop,
                grace_period=0)
            self._handler = tf.distribute.experimental.PreemptionCheckpointHandler(
                self.strategy.cluster_resolver, self.manager, termination_config=config)
        return self

    def __exit__(self, *exc):
        self._restore()
        self._handler = None  # its watcher threads stop when it is collected

    def _restore(self):
        for s, handler in self._previous.items():
            signal.signal(s, handler)
        self._previous = {}

    def stop_after(self, step: int, saved: bool) -> bool:
        """Called after every step on every worker; True once the step is saved and the run
        must stop. saved: a checkpoint of this step was written already."""
        if self._handler is not None:
            try:
                self._handler.save_checkpoint_if_preempted(checkpoint_number=step)
            except _Stop:
                return True
            return False
        if not self.requested:
            return False
        if not saved:
            self.save(step)
        return True


def _raise_stop():
    raise _Stop()
