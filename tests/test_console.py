"""What the programs print besides their work: no TensorFlow start-up or INFO lines (unless
--verbose), help texts that list the program's own flags and read as written, and log lines that
say what their figures mean. Each program runs as a user starts it: a fresh process, without
TF_CPP_MIN_LOG_LEVEL set."""

import os
import pathlib
import re
import subprocess
import sys

import pytest

REPO = pathlib.Path(__file__).resolve().parents[1]
TINY = REPO / "tests" / "fixtures" / "reference" / "t5_v1_0_relu_tied"
# TensorFlow's C++ log lines ("I0000 00:00:17... port.cc:153] ...") and absl's Python ones
# ("I1206 20:29:36.26 ... signature_serialization.py:156] ...").
LIBRARY_LOG_LINE = re.compile(r"^([IWEF]\d{4} \d\d:\d\d:\d\d|WARNING: All log messages before "
                              r"absl|INFO:tensorflow)", re.MULTILINE)


def run_script(name, *args):
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    env["PYTHONPATH"] = str(REPO)
    return subprocess.run([sys.executable, str(REPO / "scripts" / f"{name}.py"), *args],
                          capture_output=True, text=True, env=env, timeout=600, cwd=REPO)


def test_export_prints_no_library_lines_and_verbose_shows_them(tmp_path):
    """Start-up lines (oneDNN, CUDA probe) and the SavedModel writer's INFO lines (one lists the
    renamed input of every weight) stay off the console; --verbose shows them."""
    args = [f"--checkpoint={TINY}", "--vocab=byte", "--max_new_tokens=2"]
    quiet = run_script("export", *args, f"--output_dir={tmp_path / 'quiet'}")
    assert quiet.returncode == 0, quiet.stderr[-3000:]
    assert "SavedModel (T5Model) written to" in quiet.stdout
    assert not LIBRARY_LOG_LINE.search(quiet.stderr), quiet.stderr[:3000]
    assert "contains input name(s)" not in quiet.stderr
    verbose = run_script("export", *args, f"--output_dir={tmp_path / 'verbose'}", "--verbose")
    assert verbose.returncode == 0, verbose.stderr[-3000:]
    assert LIBRARY_LOG_LINE.search(verbose.stderr)  # the same program, the lines it held back


def test_a_failing_tensorflow_import_still_shows_what_it_printed(tmp_path):
    """The captured start-up output is dropped only when the import works."""
    fake = tmp_path / "tensorflow"
    fake.mkdir()
    (fake / "__init__.py").write_text("import os\nos.write(2, b'broken install: libfoo.so\\n')\n"
                                      "raise ImportError('no libfoo')\n")
    code = ("import sys; sys.path.insert(0, sys.argv[1]); import t5core.commands\n"
            "try:\n    import tensorflow\nexcept ImportError as e:\n    print('caught', e)\n")
    proc = subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True,
                          text=True, env={**os.environ, "PYTHONPATH": str(REPO)}, timeout=120)
    assert "caught no libfoo" in proc.stdout
    assert "broken install: libfoo.so" in proc.stderr


@pytest.mark.parametrize("name", ["train", "evaluate", "export"])
def test_help_lists_the_programs_own_flags_and_reads_as_written(name):
    proc = run_script(name, "--help")  # (absl ends --help with status 1)
    listed = set(re.findall(r"^  --(?:\[no\])?(\w+)", proc.stdout, re.MULTILINE))
    # absl's test flags and TensorFlow's TPU flags are defined on import, not by the program.
    foreign = {"test_srcdir", "test_tmpdir", "test_random_seed", "xml_output_file",
               "runtime_oom_exit", "tt_check_filter", "hbm_oom_exit"}
    assert listed and not listed & foreign, sorted(listed & foreign)
    assert not LIBRARY_LOG_LINE.search(proc.stderr), proc.stderr[:3000]
    if name == "train":  # the example's continued line stays two lines
        assert "--vocab=spiece.model \\\n      --task=multi30k_en_de" in proc.stdout


def test_the_main_jobs_log_says_what_accuracy_and_mfu_are(tmp_path):
    proc = run_script("train", f"--model_dir={tmp_path / 'run'}", "--train_steps=2",
                      "--log_every=1", "--eval_every=2", "--eval_examples=4", "--batch_size=4",
                      "--inputs_length=16", "--targets_length=8", "--warmup_steps=1",
                      "--progress_bar=false", "--save_every=0", "--peak_flops=1e12")
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = proc.stdout
    assert "accuracy: exact match: outputs decoded equal to their whole target" in out
    assert "mfu: model FLOPs utilization" in out
    assert out.count("mfu: model FLOPs utilization") == 1  # once, not on every step


def test_an_output_folder_that_is_there_already_is_one_line(tmp_path):
    """export refuses a non-empty --output_dir (without --overwrite): a user's mistake, so one
    `error:` line naming the folder and the flag, and status 2, not a traceback."""
    (tmp_path / "old.txt").write_text("x")
    proc = run_script("export", f"--checkpoint={TINY}", "--vocab=byte",
                      f"--output_dir={tmp_path}")
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr
    assert f"error: {tmp_path} is not empty (old.txt)" in proc.stderr
    assert "--overwrite" in proc.stderr
    assert (tmp_path / "old.txt").read_text() == "x"
