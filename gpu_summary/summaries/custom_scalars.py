"""The Custom Scalars dashboard's layout: a ``Layout`` message in a DT_STRING tensor under the
tag ``custom_scalars__config__`` (plugin ``custom_scalars``), as TensorBoard reads it."""

from __future__ import annotations

from gpu_summary.proto import layout_pb2, summary_pb2, tensor_pb2, types_pb2

PLUGIN_NAME = "custom_scalars"
CONFIG_TAG = "custom_scalars__config__"


def layout_message(layout: dict[str, dict[str, tuple[str, list[str]]]]) -> layout_pb2.Layout:
    """``{category: {chart title: ("Multiline", tag regexes) | ("Margin", [value, lower,
    upper])}}`` (checked) as a Layout, categories and charts in the dict's order."""
    message = layout_pb2.Layout()
    for title, charts in layout.items():
        category = message.category.add(title=title)
        for chart_title, (kind, tags) in charts.items():
            chart = category.chart.add(title=chart_title)
            if kind == "Margin":
                value, lower, upper = tags
                chart.margin.series.add(value=value, lower=lower, upper=upper)
            else:
                chart.multiline.tag.extend(tags)
    return message


def layout_summary(layout: layout_pb2.Layout) -> summary_pb2.Summary:
    """A Summary holding ``layout``."""
    value = summary_pb2.Summary.Value(tag=CONFIG_TAG)
    value.metadata.plugin_data.plugin_name = PLUGIN_NAME
    tensor = tensor_pb2.TensorProto(dtype=types_pb2.DT_STRING)
    tensor.string_val.append(layout.SerializeToString())
    value.tensor.CopyFrom(tensor)
    return summary_pb2.Summary(value=[value])
