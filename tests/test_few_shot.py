"""Few-shot prompts: the API (`t5core.few_shot_prompts`) and what evaluate.py / generate.py build
from --num_shots, --shots_file, --shots_seed."""

import json
import types

import pytest

import t5core
from t5core import model_dir
from t5core.commands import generate as generate_command
from t5core.commands import shared_flags
from t5core.errors import FlagError
from t5core.evaluation import reports
from t5core.tokenizer import load_tokenizer

SHOTS = [("问题: 一加一等于几?", "二"), ("问题: 天空是什么颜色?", "蓝色"),
         ("问题: 中国的首都是哪里?", "北京"), ("问题: 一年有几个月?", "十二"),
         ("问题: 水在几度结冰?", "零度")]
QUERIES = ["问题: 一周有几天?", "问题: 中国的首都是哪里?"]


def test_zero_shot_leaves_the_inputs():
    made = t5core.few_shot_prompts(QUERIES, SHOTS, 0)
    assert made.prompts == QUERIES and made.dropped == made.shots_used == 0


def test_prompts_hold_k_shots_then_the_input():
    made = t5core.few_shot_prompts(QUERIES, SHOTS, 2, seed=3)
    for query, prompt in zip(QUERIES, made.prompts):
        blocks = prompt.split("\n\n")
        assert len(blocks) == 3 and blocks[-1] == query
        for block in blocks[:-1]:
            inputs, targets = block.split("\n")
            assert (inputs, targets) in SHOTS
            assert inputs != query  # never the example itself
        assert len(set(blocks)) == 3
    assert made.shots_used == 4 and made.dropped == 0


def test_the_draw_follows_the_seed():
    again = t5core.few_shot_prompts(QUERIES, SHOTS, 2, seed=3).prompts
    assert again == t5core.few_shot_prompts(QUERIES, SHOTS, 2, seed=3).prompts
    others = {tuple(t5core.few_shot_prompts(QUERIES, SHOTS, 2, seed=s).prompts)
              for s in range(6)}
    assert len(others) > 1


def test_shots_that_do_not_fit_are_dropped_and_counted():
    tokenizer = load_tokenizer("byte")
    query = QUERIES[0]
    one_shot = len(tokenizer.encode(f"{SHOTS[0][0]}\n{SHOTS[0][1]}\n\n{query}", add_eos=True))
    made = t5core.few_shot_prompts([query], SHOTS, 4, seed=0, tokenizer=tokenizer,
                                   inputs_length=one_shot + 2)
    assert made.shots_used == 1 and made.dropped == 3
    assert len(tokenizer.encode(made.prompts[0], add_eos=True)) <= one_shot + 2
    tiny = t5core.few_shot_prompts([query], SHOTS, 2, tokenizer=tokenizer, inputs_length=4)
    assert tiny.prompts == [query] and tiny.dropped == 2  # the input itself is never cut


def test_bad_requests_are_refused():
    with pytest.raises(ValueError, match="num_shots must be >= 0"):
        t5core.few_shot_prompts(QUERIES, SHOTS, -1)
    with pytest.raises(ValueError, match="no shots"):
        t5core.few_shot_prompts(QUERIES, [], 1)
    # More shots than the pool holds: refused, not silently a smaller k.
    with pytest.raises(ValueError, match="num_shots=6 but there are 5 shots"):
        t5core.few_shot_prompts(QUERIES, SHOTS, 6)
    assert t5core.few_shot_prompts(QUERIES[:1], SHOTS, 5).shots_used == 5


def _jsonl(path, pairs):
    path.write_text("".join(json.dumps({"q": i, "a": t}, ensure_ascii=False) + "\n"
                            for i, t in pairs), encoding="utf-8")
    return str(path)


def _options(**given):
    return reports.data_options({"inputs_field": "q", "targets_field": "a", **given}, None)


def test_evaluate_builds_prompts_from_the_shots_file(tmp_path):
    train = _jsonl(tmp_path / "train.jsonl", SHOTS)
    test = _jsonl(tmp_path / "test.jsonl", [(QUERIES[0], "七")])
    tokenizer = load_tokenizer("byte")
    options = _options(eval_file=test, inputs_length=512)
    shots = {"num_shots": 2, "shots_file": train, "seed": 0}
    loaded = reports.load_test_set(options, tokenizer, shots=shots)
    prompt = tokenizer.decode(loaded.inputs[0])
    assert prompt.endswith("\n\n" + QUERIES[0]) and prompt.count("\n\n") == 2
    assert loaded.targets == ["七"]
    assert "2-shot prompts" in loaded.note and "0 dropped" in loaded.note
    plain = reports.load_test_set(options, tokenizer)
    assert tokenizer.decode(plain.inputs[0]) == QUERIES[0] and plain.note == ""
    short = reports.load_test_set(_options(eval_file=test, inputs_length=40), tokenizer,
                                  shots=shots)
    assert "0 shots placed, 2 dropped that did not fit --inputs_length=40" in short.note
    # An over-long query is cut as at every other door: its first tokens and EOS.
    tiny = reports.load_test_set(_options(eval_file=test, inputs_length=8), tokenizer,
                                 shots=shots)
    zero_shot = reports.load_test_set(_options(eval_file=test, inputs_length=8), tokenizer)
    assert tiny.inputs == zero_shot.inputs and tiny.inputs[0][-1] == tokenizer.eos_id
    assert len(tiny.inputs[0]) == 8
    assert "inputs longer than 8 tokens cut to it (EOS kept" in zero_shot.read_note


def _flags(**values):
    base = {"num_shots": 0, "shots_file": None, "shots_seed": 0, "checkpoint": "ckpt",
            "max_input_length": 512}
    return types.SimpleNamespace(**{**base, **values})


def test_the_shots_file_defaults_to_the_runs_training_file(tmp_path):
    run = model_dir.RunDescription(data={"train_file": "runs/train.jsonl"})
    settings = shared_flags.few_shot_settings(_flags(num_shots=3, shots_seed=5), run)
    assert settings == {"num_shots": 3, "shots_file": "runs/train.jsonl", "seed": 5}
    assert shared_flags.few_shot_settings(_flags(), run) is None
    with pytest.raises(FlagError, match="--num_shots=2 needs --shots_file"):
        shared_flags.few_shot_settings(_flags(num_shots=2), model_dir.RunDescription())


def test_generate_reads_shots_through_the_runs_fields(tmp_path, capsys):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    train = _jsonl(tmp_path / "train.jsonl", SHOTS)
    model_dir.write_run(str(run_dir), model_dir.RunDescription(
        tokenizer="byte", data={"train_file": train, "inputs_field": "q", "targets_field": "a"}))
    args = _flags(num_shots=2, checkpoint=str(run_dir))
    prompts = generate_command.few_shot_inputs(args, QUERIES[:1], load_tokenizer("byte"))
    assert prompts[0].endswith("\n\n" + QUERIES[0]) and prompts[0].count("\n\n") == 2
    assert "2 shots placed, 0 dropped" in capsys.readouterr().err


def test_evaluation_phrases_instruction_rows_with_the_run_s_seed(tmp_path):
    """--instruction draws each row's phrasing with the run's --seed; run.json records it, so
    evaluate.py (and the shots it draws) phrase the test rows as the run's own evaluation did,
    not with seed 0."""
    from t5core.data.option_tasks import task_from_options
    from t5core.data.tasks import task_examples
    from t5core.model_dir import RunDescription
    from t5core.training.run import RunOptions, run_description
    from t5core.training.trainer import TrainConfig

    rows = tmp_path / "dev.jsonl"
    rows.write_text("".join(json.dumps({"sentence": f"text {i}", "label": "no"}) + "\n"
                            for i in range(16)))
    args = json.dumps({"label_words": {"no": "no", "yes": "yes"}})
    options = RunOptions(train_file=str(rows), template="classification", template_args=args,
                         instruction=True, train=TrainConfig(seed=1))
    recorded = run_description(options, "byte")
    assert recorded.data["seed"] == 1
    run = RunDescription(data={**recorded.data, "eval_file": str(rows)})
    tokenizer = load_tokenizer("byte")
    test = reports.load_test_set(reports.data_options({}, run), tokenizer)
    lengths = {"inputs": run.data["inputs_length"], "targets": run.data["targets_length"]}
    for seed, same in ((1, True), (0, False)):
        task, _ = task_from_options(train_file=str(rows), template="classification",
                                    template_args=args, instruction=True, seed=seed,
                                    lengths=lengths)
        inputs, _ = task_examples(task, "train", tokenizer, lengths)
        assert (test.inputs == inputs) == same, seed
