"""Prints a Markdown table of error paths: for every program, a mistaken input, the lines it
printed on stderr, and its exit status. Not a test: run it by hand and paste its table.

    python tests/make_error_paths_table.py > /tmp/error_paths.md

Each program runs as a user starts it: `python scripts/<name>.py`, in a fresh process, without
TF_CPP_MIN_LOG_LEVEL set, so start-up lines would show. The inputs live in a temporary folder.
"""

import json
import os
import pathlib
import subprocess
import sys
import tempfile
import time

REPO = pathlib.Path(__file__).resolve().parents[1]
TINY = str(REPO / "tests" / "fixtures" / "reference" / "t5_v1_0_relu_tied")
HINT = "(run with --verbose or T5CORE_VERBOSE=1 for the traceback)"


def write_inputs(folder: pathlib.Path) -> dict:
    """The files the cases name, by key."""
    good = {"inputs": "a b", "targets": "c"}
    paths = {
        "surrogate": folder / "surrogate.jsonl",
        "deep": folder / "deep.jsonl",
        "full": folder / "full",
        "empty": folder / "empty.txt",
    }
    paths["surrogate"].write_text(json.dumps(good) + '\n{"inputs": "x\\ud800", "targets": "c"}\n')
    paths["deep"].write_text(json.dumps(good) + "\n" + '{"inputs": ' + "[" * 100_000
                             + "]" * 100_000 + ', "targets": "c"}\n')
    paths["full"].mkdir()
    (paths["full"] / "keep.txt").write_text("not empty\n")
    paths["empty"].write_text("")
    return {key: str(path) for key, path in paths.items()}


def cases(files: dict, out: str):
    """(program, arguments, what is wrong) of every case."""
    model = [f"--checkpoint={TINY}", "--vocab=byte"]
    return [
        ("train", ["--nosuch_flag=1"], "an unknown flag"),
        ("train", ["--batch_size=0", f"--model_dir={out}/t0"], "a batch size of 0"),
        ("train", [f"--train_file={out}/missing.jsonl", f"--model_dir={out}/t1"],
         "a missing --train_file"),
        ("train", [f"--train_file={files['surrogate']}", f"--model_dir={out}/t2"],
         "a lone surrogate in a JSONL row"),
        ("train", [f"--train_file={files['deep']}", f"--model_dir={out}/t3"],
         "a JSONL row nested 100,000 deep"),
        ("train", ["--cluster_resolver=slurm", f"--model_dir={out}/t4"],
         "--cluster_resolver=slurm outside srun"),
        ("train", ["--cluster_resolver=slurm", "--strategy=mirrored", f"--model_dir={out}/t5"],
         "a resolver contradicting --strategy"),
        ("generate", ["--input=hi"], "no --checkpoint"),
        ("generate", ["--checkpoint=/nonexistent", "--input=hi"], "a missing checkpoint"),
        ("generate", [*model, "--input=ab", "--max_new_tokens=1000000000"],
         "--max_new_tokens=1e9"),
        ("generate", [*model, f"--input_file={out}/missing.txt"], "a missing --input_file"),
        ("generate", [*model, f"--input_file={files['empty']}"], "an empty --input_file"),
        ("evaluate", ["--checkpoint=/nonexistent", f"--eval_file={files['surrogate']}"],
         "a missing checkpoint"),
        ("evaluate", [*model, f"--eval_file={files['surrogate']}"],
         "a lone surrogate in --eval_file"),
        ("evaluate", [*model, f"--eval_file={files['deep']}"], "a JSONL row nested too deep"),
        ("export", [*model, f"--output_dir={files['full']}"], "a non-empty --output_dir"),
        ("export", [*model, f"--output_dir={out}/e1", "--max_new_tokens=1000000000"],
         "--max_new_tokens=1e9"),
        ("convert_checkpoint", ["--input=/nonexistent", f"--output={out}/c0"],
         "a missing --input"),
        ("convert_checkpoint", [f"--input={TINY}", f"--output={out}/c1", "--format=onnx"],
         "an unknown --format"),
        ("inspect_model", ["--checkpoint=/nonexistent", "--input=hi"], "a missing checkpoint"),
        ("inspect_model", [*model, "--input_ids=1,x"], "a token id that is not a number"),
        ("sweep", [], "no --space"),
        ("sweep", ["--space={not json", "--objective=accuracy", f"--sweep_dir={out}/s0"],
         "a --space that is not JSON"),
    ]


def run_case(program, args):
    env = {k: v for k, v in os.environ.items()
           if k not in ("TF_CPP_MIN_LOG_LEVEL", "T5CORE_VERBOSE")}
    env["PYTHONPATH"] = str(REPO)
    start = time.time()
    proc = subprocess.run([sys.executable, str(REPO / "scripts" / f"{program}.py"), *args],
                          capture_output=True, text=True, env=env, cwd=REPO, timeout=600,
                          stdin=subprocess.DEVNULL)
    lines = [line for line in proc.stderr.splitlines() if line.strip() and line != HINT]
    return proc.returncode, lines, time.time() - start


def cell(text: str) -> str:
    return text.replace("|", "\\|").replace("`", "'")


def main():
    with tempfile.TemporaryDirectory() as tmp:
        files = write_inputs(pathlib.Path(tmp))
        print("| program | input | what it printed on stderr (besides the --verbose hint) "
              "| lines | exit |")
        print("|---|---|---|---|---|")
        for program, args, what in cases(files, tmp):
            status, lines, _ = run_case(program, args)
            shown = " ⏎ ".join(cell(line.replace(tmp, "$TMP").replace(str(REPO), "."))
                               for line in lines) or "(nothing)"
            print(f"| {program} | {what} | {shown} | {len(lines)} | {status} |", flush=True)


if __name__ == "__main__":
    main()
