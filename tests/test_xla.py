"""The one "XLA by default?" rule (t5core.xla) that the trainer and decoding share."""

import pytest

from t5core import xla
from t5core.decoding import default_jit_compile as decoding_default
from t5core.training.run import resolve_jit_compile


def test_on_cpu_only_small_decoding_searches_use_xla(monkeypatch):
    monkeypatch.setattr(xla, "has_accelerator", lambda: False)
    assert xla.default_jit_compile() is False  # training and evaluation steps
    assert xla.default_jit_compile(1) is True
    assert xla.default_jit_compile(xla.CPU_XLA_MAX_ROWS) is True
    assert xla.default_jit_compile(xla.CPU_XLA_MAX_ROWS + 1) is False
    assert resolve_jit_compile("auto") is False


def test_on_an_accelerator_everything_uses_xla(monkeypatch):
    monkeypatch.setattr(xla, "has_accelerator", lambda: True)
    assert xla.default_jit_compile() is True
    assert xla.default_jit_compile(10_000) is True
    assert resolve_jit_compile("auto") is True


@pytest.mark.parametrize("flag, expected", [("true", True), ("false", False)])
def test_an_explicit_flag_wins(monkeypatch, flag, expected):
    monkeypatch.setattr(xla, "has_accelerator", lambda: not expected)
    assert resolve_jit_compile(flag) is expected


def test_decoding_exports_the_same_rule():
    assert decoding_default is xla.default_jit_compile
