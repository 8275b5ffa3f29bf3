"""Input-pipeline throughput (rows/s): span corruption + packing to 512/114, Multi30k rows.

  python benchmarks/benchmark_data.py --data_dir=../shared/data/multi30k \
      --vocab=tests/fixtures/t5_vocab/spiece.model
Prints one JSON line per pipeline.
"""

import argparse
import json
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from pipeline_speed import PIPELINES, pipeline_rows_per_second
from t5core.tokenizer import Tokenizer


def main(argv=None):
    here = os.path.dirname(os.path.abspath(__file__))
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data_dir",
                        default=os.path.join(here, "..", "..", "shared", "data", "multi30k"),
                        help="folder with Multi30k train.en.gz / train.de.gz")
    parser.add_argument("--vocab", default=os.path.join(here, "..", "tests", "fixtures", "t5_vocab",
                                                        "spiece.model"))
    parser.add_argument("--pipelines", default=",".join(PIPELINES))
    parser.add_argument("--batch_size", type=int, default=8)
    parser.add_argument("--num_batches", type=int, default=200)
    args = parser.parse_args(argv)
    tokenizer = Tokenizer(args.vocab)
    for name in args.pipelines.split(","):
        result = pipeline_rows_per_second(name, args.data_dir, tokenizer,
                                          batch_size=args.batch_size,
                                          num_batches=args.num_batches)
        print(json.dumps(result), flush=True)


if __name__ == "__main__":
    from t5core import cli

    cli.run_main(main)
