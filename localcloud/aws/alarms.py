"""CloudWatch's evaluation of metric alarms, which moto does not do.

After each PutMetricData, every single-metric alarm on a metric it touched (namespace, name and exactly its
dimensions: "each unique combination of dimensions is a separate metric", cloudwatch_concepts) is evaluated
over its latest `EvaluationPeriods` periods: ALARM when `DatapointsToAlarm` of them (default: all) breach the
threshold, OK when enough do not, missing periods treated as `TreatMissingData` says (CloudWatch user guide,
alarms-and-missing-data). A change of state is recorded on the alarm (as SetAlarmState would) and put on the
default bus as "CloudWatch Alarm State Change" with the fields of AWS's example (cloudwatch-and-eventbridge).

A state set with SetAlarmState is put on the bus the same way ("CloudWatch sends events to Amazon EventBridge
whenever alarms change state", Acting_Alarm_Changes), for any alarm.

Unlike CloudWatch, periods without new data are not re-evaluated on a timer: an alarm changes state when data
arrives. Metric-math alarms (`Metrics`) are not evaluated.
"""

from __future__ import annotations

import json
import logging
import math
import queue
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

logger = logging.getLogger("localcloud.alarms")

_WORDS = {
    "GreaterThanOrEqualToThreshold": "greater than or equal to",
    "GreaterThanThreshold": "greater than",
    "LessThanThreshold": "less than",
    "LessThanOrEqualToThreshold": "less than or equal to",
}
_BREACHES: dict[str, Callable[[float, float], bool]] = {
    "GreaterThanOrEqualToThreshold": lambda v, t: v >= t,
    "GreaterThanThreshold": lambda v, t: v > t,
    "LessThanThreshold": lambda v, t: v < t,
    "LessThanOrEqualToThreshold": lambda v, t: v <= t,
}


def _statistic(values: list[float], statistic: str) -> float:
    if statistic == "Maximum":
        return max(values)
    if statistic == "Minimum":
        return min(values)
    if statistic == "Sum":
        return math.fsum(values)
    if statistic == "SampleCount":
        return float(len(values))
    return math.fsum(values) / len(values)  # Average


def _dimensions(items: Any) -> frozenset[tuple[str, str]]:
    found = set()
    for item in items or []:
        if isinstance(item, dict):
            found.add((str(item.get("Name")), str(item.get("Value"))))
        else:
            found.add((str(item.name), str(item.value)))
    return frozenset(found)


def _iso(moment: datetime) -> str:
    """CloudWatch's timestamps in alarm events: 2019-10-02T17:04:40.989+0000."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}+0000"


class AlarmEvaluator:
    """Evaluates the embedded CloudWatch's alarms when their metrics receive data."""

    def __init__(self, aws: Any, clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self.aws = aws
        self.clock = clock
        self._work: queue.Queue[tuple[str, frozenset[tuple[str, frozenset[tuple[str, str]]]]] | None] = (
            queue.Queue()
        )
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name="localcloud-alarms", daemon=True)

    def attach(self) -> AlarmEvaluator:
        self.ensure_attached()
        self._thread.start()
        return self

    def ensure_attached(self) -> None:
        """Wrap the CloudWatch backend's PutMetricData and PutMetricAlarm, unless this evaluator has already.
        Moto's reset (every `mock_aws` in the same process does one) rebuilds a backend's attributes, and a
        second embedded AWS in the process (a test's LocalCloud beside the session's server) serves the same
        backends; so the server calls this before each CloudWatch request, and the evaluator of the server
        that received the data evaluates it and puts the change on that server's bus."""
        backend = self.aws.backend("cloudwatch")
        if getattr(backend.put_metric_data, "localcloud_alarms", None) is self:
            return
        # another evaluator's wrappers are replaced, not wrapped: each datum is evaluated once
        original = getattr(backend.put_metric_data, "localcloud_original", backend.put_metric_data)

        def put_metric_data(namespace: str, metric_data: list[dict[str, Any]]) -> Any:
            result = original(namespace, metric_data)
            touched = frozenset((str(m["MetricName"]), _dimensions(m.get("Dimensions"))) for m in metric_data)
            self._work.put((namespace, touched))
            return result

        put_metric_data.localcloud_alarms = self  # type: ignore[attr-defined]
        put_metric_data.localcloud_original = original  # type: ignore[attr-defined]
        backend.put_metric_data = put_metric_data
        create_alarm = getattr(backend.put_metric_alarm, "localcloud_original", backend.put_metric_alarm)

        def put_metric_alarm(name: str, *args: Any, **kwargs: Any) -> Any:
            new = name not in backend.alarms
            alarm = create_alarm(name, *args, **kwargs)
            if new:  # "When you create an alarm, its initial state is INSUFFICIENT_DATA" (moto says OK)
                alarm.state_value = "INSUFFICIENT_DATA"
            return alarm

        put_metric_alarm.localcloud_original = create_alarm  # type: ignore[attr-defined]
        backend.put_metric_alarm = put_metric_alarm
        set_state = getattr(backend.set_alarm_state, "localcloud_original", backend.set_alarm_state)

        def set_alarm_state(alarm_name: str, reason: str, reason_data: str, state_value: str) -> None:
            # SetAlarmState: "CloudWatch sends events to Amazon EventBridge whenever alarms change state"
            # (user guide, Acting_Alarm_Changes), so a change set by hand is on the bus too.
            with self._lock:
                alarm = backend.alarms.get(alarm_name)
                previous = _state_of(alarm) if alarm is not None else None
                set_state(alarm_name, reason, reason_data, state_value)  # moto checks name, value and JSON
                if previous is not None and previous["value"] != state_value:
                    self._announce(alarm, previous)

        set_alarm_state.localcloud_original = set_state  # type: ignore[attr-defined]
        backend.set_alarm_state = set_alarm_state

    def close(self) -> None:
        if self._thread.is_alive():
            self._work.put(None)

    def wait_until_idle(self) -> None:
        """Return once every PutMetricData so far has been evaluated."""
        self._work.join()

    def _run(self) -> None:
        while True:
            item = self._work.get()
            try:
                if item is None:
                    return
                self.evaluate(*item)
            except Exception:  # an evaluation that fails must not stop the next ones
                logger.exception("alarm evaluation failed")
            finally:
                self._work.task_done()

    def evaluate(self, namespace: str, touched: frozenset[tuple[str, frozenset[tuple[str, str]]]]) -> None:
        backend = self.aws.backend("cloudwatch")
        with self._lock:
            for alarm in list(backend.alarms.values()):
                if alarm.metric_data_queries or alarm.namespace != namespace:
                    continue
                if (alarm.metric_name, _dimensions(alarm.dimensions)) not in touched:
                    continue
                self._evaluate_alarm(backend, alarm)

    def _evaluate_alarm(self, backend: Any, alarm: Any) -> None:
        period = int(alarm.period)
        periods = int(alarm.evaluation_periods)
        needed = int(alarm.datapoints_to_alarm or periods)
        now = self.clock()
        start = now - timedelta(seconds=period * periods)
        wanted = _dimensions(alarm.dimensions)
        buckets: dict[int, list[float]] = {}
        for datum in backend.metric_data:
            if datum.namespace != alarm.namespace or datum.name != alarm.metric_name:
                continue
            if _dimensions(datum.dimensions) != wanted:
                continue
            moment = datum.timestamp if datum.timestamp.tzinfo else datum.timestamp.replace(tzinfo=UTC)
            if not (start <= moment <= now):
                continue
            index = min(int((moment - start).total_seconds() // period), periods - 1)
            buckets.setdefault(index, []).append(float(datum.value))
        breaches = _BREACHES[alarm.comparison_operator]
        values = {i: _statistic(v, alarm.statistic or "Average") for i, v in buckets.items()}
        breaching = sum(1 for v in values.values() if breaches(v, float(alarm.threshold)))
        missing = periods - len(values)
        treat = alarm.treat_missing_data or "missing"
        if treat == "breaching":
            breaching += missing
        if breaching >= needed:
            state = "ALARM"
        elif values or treat in ("notBreaching", "breaching"):
            state = "OK"
        elif treat == "ignore":
            return
        else:
            state = "INSUFFICIENT_DATA"
        if state == alarm.state_value:
            return
        recent = [values[i] for i in sorted(values)]
        reason = (
            f"Threshold Crossed: {breaching} out of the last {periods} datapoints {recent} was "
            f"{'' if state == 'ALARM' else 'not '}{_WORDS[alarm.comparison_operator]} the threshold "
            f"({float(alarm.threshold)})."
        )
        reason_data = json.dumps(
            {
                "version": "1.0",
                "queryDate": _iso(now),
                "startDate": _iso(start),
                "statistic": alarm.statistic,
                "period": period,
                "recentDatapoints": recent,
                "threshold": float(alarm.threshold),
            }
        )
        self.change_state(alarm, state, reason, reason_data)

    def change_state(self, alarm: Any, state: str, reason: str, reason_data: str | None) -> None:
        """Record the alarm's new state and put the change on the bus."""
        previous = _state_of(alarm)
        alarm.update_state(reason, reason_data, state)
        self._announce(alarm, previous)

    def _announce(self, alarm: Any, previous: dict[str, Any]) -> None:
        """Put the change from ``previous`` to the alarm's state now on the bus, with the fields of AWS's
        example events (CloudWatch user guide, cloudwatch-and-eventbridge)."""
        if alarm.metric_data_queries:
            metrics = [_query(query) for query in alarm.metric_data_queries]
        else:
            stat = _metric_stat(
                alarm.namespace, alarm.metric_name, alarm.dimensions, alarm.period, alarm.statistic
            )
            metrics = [{"id": "m1", "metricStat": stat, "returnData": True}]
        detail = {
            "alarmName": alarm.name,
            "configuration": {"description": alarm.description or "", "metrics": metrics},
            "previousState": previous,
            "state": _state_of(alarm),
        }
        logger.info("alarm %s: %s -> %s", alarm.name, previous["value"], alarm.state_value)
        self.aws.emit_event("aws.cloudwatch", "CloudWatch Alarm State Change", detail, [alarm.alarm_arn])


def _state_of(alarm: Any) -> dict[str, Any]:
    return {
        "reason": alarm.state_reason,
        "reasonData": alarm.state_reason_data,
        "timestamp": _iso(alarm.state_updated_timestamp),
        "value": alarm.state_value,
    }


def _query(query: Any) -> dict[str, Any]:
    """A metric-math alarm's query as the state change event shows it (AWS's "Metric math alarm" example)."""
    shown: dict[str, Any] = {"id": query.id, "returnData": str(query.return_data).lower() != "false"}
    if query.expression:
        shown |= {"expression": query.expression, "label": query.label}
    stat = query.metric_stat
    if stat is not None:
        metric = stat.metric
        shown["metricStat"] = _metric_stat(
            metric.namespace, metric.metric_name, metric.dimensions, stat.period, stat.stat
        )
    return shown


def _metric_stat(namespace: str, name: str, dimensions: Any, period: Any, stat: str) -> dict[str, Any]:
    """A metric as alarm state change events show it (`metricStat`)."""
    metric = {"dimensions": dict(_dimensions(dimensions)), "name": name, "namespace": namespace}
    return {"metric": metric, "period": int(period), "stat": stat}
