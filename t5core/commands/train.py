"""Train or fine-tune a T5 model. With no flags: the embedded tasks, offline, in minutes.

Examples:
  python scripts/train.py
  python scripts/train.py --model=t5-small --init_checkpoint=/ckpt/t5-small --vocab=spiece.model \\
      --task=multi30k_en_de --data_dir=../shared/data/multi30k --model_dir=runs/m30k
"""

import tensorflow as tf
from absl import flags, logging

from t5core import cli, dataclass_flags
from t5core.training.run import RunOptions, run


def define_flags(flag_values: flags.FlagValues = flags.FLAGS) -> None:
    """One flag per field of RunOptions and of its TrainConfig (t5core.dataclass_flags)."""
    dataclass_flags.define_flags(RunOptions, flag_values, module_name=__name__)
    cli.mark_outputs(flag_values, folders=("model_dir",))


def train(args: flags.FlagValues) -> None:
    tf.get_logger().setLevel("ERROR")
    logging.set_verbosity(logging.WARNING)  # TensorFlow's checkpoint saver is chatty at INFO
    run(dataclass_flags.from_flags(RunOptions, args))


def main(argv=None):
    """`t5core-train`; see `t5core.cli.command` for `argv`."""
    return cli.command(define_flags, train, argv, doc=__doc__)


if __name__ == "__main__":
    main()
