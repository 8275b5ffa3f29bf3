"""Looking inside a T5 model: parameters, position buckets, attention, norms and predictions:
`tables` (from a config alone), `activations` (`inspect_row`), `report` (plain data, JSON, text),
`figures` (PNGs, TensorBoard) and `command` (what t5core-inspect runs). Named so as not to shadow
the standard library's `inspect`; what each output shows: docs/architecture.md, "The inspection
tool in one minute".
"""

from t5core.inspection.activations import (cache_agreement, collect_activations, greedy_continue,
                                           inspect_row, pack_rows, piece_renderer,
                                           position_biases)
from t5core.inspection.command import run_command
from t5core.inspection.figures import save_pngs, write_tensorboard
from t5core.inspection.report import (bias_by_distance, build_report, format_buckets, format_cache,
                                      format_norms, format_parameters, format_predictions,
                                      write_json)
from t5core.inspection.tables import (bucket_ranges, bucket_table, kind_of, module_of,
                                      parameter_shapes, parameter_table)

__all__ = [
    "bias_by_distance", "bucket_ranges", "bucket_table", "build_report", "cache_agreement",
    "collect_activations", "format_buckets", "format_cache", "format_norms", "format_parameters",
    "format_predictions", "greedy_continue", "inspect_row", "kind_of", "module_of", "pack_rows",
    "parameter_shapes", "parameter_table", "piece_renderer", "position_biases", "run_command",
    "save_pngs", "write_json", "write_tensorboard",
]
