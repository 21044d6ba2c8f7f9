"""HParams: the ``hparams`` plugin's experiment, session-start and session-end summaries.

Each is a Summary.Value with one of the plugin's fixed tags, an empty float tensor, and the
message itself in ``SummaryMetadata.plugin_data.content`` (``HParamsPluginData``, version 0), as
TensorBoard's ``hparams.summary`` writes them. The dashboard reads the experiment (hparam and
metric infos with their domains) and the session's hparam values from the run's event files,
and the metric values from the run's scalars of the metrics' tags.
"""

from __future__ import annotations

from google.protobuf import struct_pb2

from gpu_summary import hparams as hp
from gpu_summary.proto import hparams_pb2, summary_pb2, tensor_pb2, types_pb2

PLUGIN_NAME = "hparams"
EXPERIMENT_TAG = "_hparams_/experiment"
SESSION_START_INFO_TAG = "_hparams_/session_start_info"
SESSION_END_INFO_TAG = "_hparams_/session_end_info"

_DATA_TYPES = {
    hp.STRING: hparams_pb2.DATA_TYPE_STRING,
    hp.BOOL: hparams_pb2.DATA_TYPE_BOOL,
    hp.FLOAT64: hparams_pb2.DATA_TYPE_FLOAT64,
}
STATUSES = {"success": hparams_pb2.STATUS_SUCCESS, "failure": hparams_pb2.STATUS_FAILURE}


def _summary(tag: str, data: hparams_pb2.HParamsPluginData) -> summary_pb2.Summary:
    value = summary_pb2.Summary.Value(tag=tag)
    value.metadata.plugin_data.plugin_name = PLUGIN_NAME
    value.metadata.plugin_data.content = data.SerializeToString()
    value.tensor.CopyFrom(
        tensor_pb2.TensorProto(dtype=types_pb2.DT_FLOAT, tensor_shape={"dim": [{"size": 0}]})
    )
    return summary_pb2.Summary(value=[value])


def _set_value(target: struct_pb2.Value, value: str | bool | float | int) -> None:
    """Store an hparam value in a google.protobuf.Value, keeping its kind."""
    if isinstance(value, bool):
        target.bool_value = value
    elif isinstance(value, str):
        target.string_value = value
    else:
        target.number_value = float(value)


def hparam_info(hparam: hp.HParam, value: object) -> hparams_pb2.HParamInfo:
    """The dashboard's description of one hyperparameter (its type from the domain, or else
    from the value logged)."""
    info = hparams_pb2.HParamInfo(
        name=hparam.name, display_name=hparam.display_name, description=hparam.description
    )
    domain = hparam.domain
    if isinstance(domain, (hp.RealRange, hp.IntegerRange)):
        info.domain_interval.min_value = float(domain.min_value)
        info.domain_interval.max_value = float(domain.max_value)
    elif isinstance(domain, hp.ValueSet):
        for item in domain.values:
            _set_value(info.domain_discrete.values.add(), item)
    data_type = domain.data_type if domain is not None else hp._value_type(value)
    info.type = _DATA_TYPES[data_type]
    return info


def experiment_summary(session: hp.Session, time_created: float) -> summary_pb2.Summary:
    """``_hparams_/experiment``: every hparam with its domain and every metric."""
    experiment = hparams_pb2.Experiment(time_created_secs=time_created)
    for hparam, value in session.hparams:
        experiment.hparam_infos.append(hparam_info(hparam, value))
    for metric, _ in session.metrics:
        info = experiment.metric_infos.add(
            display_name=metric.display_name, description=metric.description
        )
        info.name.tag = metric.name
    return _summary(EXPERIMENT_TAG, hparams_pb2.HParamsPluginData(experiment=experiment))


def session_start_summary(session: hp.Session, start_time: float) -> summary_pb2.Summary:
    """``_hparams_/session_start_info``: this run's value of each hparam."""
    start = hparams_pb2.SessionStartInfo(start_time_secs=start_time)
    for name, value in session.values().items():
        _set_value(start.hparams[name], value)
    return _summary(SESSION_START_INFO_TAG, hparams_pb2.HParamsPluginData(session_start_info=start))


def session_end_summary(status: str, end_time: float) -> summary_pb2.Summary:
    """``_hparams_/session_end_info``: how the run ended (``"success"`` or ``"failure"``)."""
    end = hparams_pb2.SessionEndInfo(status=STATUSES[status], end_time_secs=end_time)
    return _summary(SESSION_END_INFO_TAG, hparams_pb2.HParamsPluginData(session_end_info=end))
