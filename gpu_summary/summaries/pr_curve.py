"""Precision-recall curves: the ``pr_curves`` plugin's float tensor [6, num_thresholds].

Rows: true positives, false positives, true negatives, false negatives, precision, recall, at
thresholds i / (num_thresholds − 1). From the per-bucket positive and negative weights a
backend counts (``pr_counts``), by TensorBoard's own arithmetic (float64, then float32 in the
tensor): reverse cumulative sums give TP and FP, ``TN = FP[0] − FP``, ``FN = TP[0] − TP``,
``precision = TP / max(1e-7, TP + FP)``, ``recall = TP / max(1e-7, TP + FN)``.
"""

from __future__ import annotations

import numpy as np

from gpu_summary.proto import plugin_data_pb2, summary_pb2, tensor_pb2, types_pb2

PLUGIN_NAME = "pr_curves"
MINIMUM_COUNT = 1e-7
ROWS = ("true_positives", "false_positives", "true_negatives", "false_negatives",
        "precision", "recall")  # fmt: skip


def curve(tp_buckets: np.ndarray, fp_buckets: np.ndarray) -> np.ndarray:
    """The [6, n] float64 curve from per-bucket positive and negative weights."""
    tp = np.cumsum(tp_buckets[::-1])[::-1]
    fp = np.cumsum(fp_buckets[::-1])[::-1]
    tn = fp[0] - fp
    fn = tp[0] - tp
    precision = tp / np.maximum(MINIMUM_COUNT, tp + fp)
    recall = tp / np.maximum(MINIMUM_COUNT, tp + fn)
    return np.stack((tp, fp, tn, fn, precision, recall))


def pr_curve_summary(tag: str, data: np.ndarray) -> summary_pb2.Summary:
    """A Summary of one curve, ``data`` a [6, num_thresholds] array."""
    rows, thresholds = data.shape
    content = plugin_data_pb2.PrCurvePluginData(version=0, num_thresholds=thresholds)
    value = summary_pb2.Summary.Value(tag=tag)
    value.metadata.plugin_data.plugin_name = PLUGIN_NAME
    value.metadata.plugin_data.content = content.SerializeToString()
    tensor = tensor_pb2.TensorProto(dtype=types_pb2.DT_FLOAT)
    tensor.tensor_shape.dim.add(size=rows)
    tensor.tensor_shape.dim.add(size=thresholds)
    tensor.float_val.extend(np.asarray(data, np.float32).reshape(-1).tolist())
    value.tensor.CopyFrom(tensor)
    return summary_pb2.Summary(value=[value])
