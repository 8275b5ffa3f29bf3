"""Looking inside a T5 model: parameters, position buckets, attention, norms and predictions.

- `tables`: the parameter table and the relative-position bucket table, from a config alone.
- `activations`: `inspect_row` runs a model on one row (or several examples packed into one) and
  returns attention maps, position biases, hidden-state norms, top-k predictions, a cache check.
- `report`: `build_report` gathers everything in one dict of plain data; JSON and text tables.
- `figures`: PNG heatmaps (matplotlib, imported only when called) and TensorBoard summaries.
- `command`: `run_command`, what `scripts/inspect_model.py` runs.

Named `inspection` so that it does not shadow the standard library's `inspect`. The guided tour
in docs/architecture.md says what each output shows about each part of the model.
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
