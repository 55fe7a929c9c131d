"""The embedded CloudWatch evaluates metric alarms when their metric receives data, and puts each change of
state on the bus as AWS does (CloudWatch user guide: alarm evaluation, alarms-and-missing-data,
cloudwatch-and-eventbridge; "each unique combination of dimensions is a separate metric")."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from localcloud.aws.server import EmbeddedAws
from orchestrator.events import AlarmStateEvent
from tests.localcloud.conftest import EventRecorder

CHANGE = "CloudWatch Alarm State Change"


def drift_alarm(
    client: Callable[[str], Any], unique: Callable[[str], str], **changes: Any
) -> tuple[str, str]:
    """An alarm shaped like the stack's DataDriftAlarm, in a namespace of its own."""
    namespace = unique("test/DataQuality")
    name = unique("data-drift")
    spec = {
        "AlarmName": name,
        "Namespace": namespace,
        "MetricName": "DriftedFeatures",
        "Statistic": "Maximum",
        "Period": 3600,
        "EvaluationPeriods": 1,
        "Threshold": 1.0,
        "ComparisonOperator": "GreaterThanOrEqualToThreshold",
        "TreatMissingData": "notBreaching",
    } | changes
    client("cloudwatch").put_metric_alarm(**spec)
    return name, namespace


def put(client: Callable[[str], Any], namespace: str, value: float, **extra: Any) -> None:
    datum = {"MetricName": "DriftedFeatures", "Value": value, "Timestamp": datetime.now(UTC)} | extra
    client("cloudwatch").put_metric_data(Namespace=namespace, MetricData=[datum])


def state(client: Callable[[str], Any], name: str) -> str:
    return str(client("cloudwatch").describe_alarms(AlarmNames=[name])["MetricAlarms"][0]["StateValue"])


def changes(events: EventRecorder, name: str) -> list[dict[str, Any]]:
    return [e for e in events.of(CHANGE) if e["detail"]["alarmName"] == name]


def test_an_alarm_starts_with_insufficient_data_then_follows_its_metric(
    embedded_aws: EmbeddedAws,
    client: Callable[[str], Any],
    unique: Callable[[str], str],
    events: EventRecorder,
) -> None:
    # GIVEN a new alarm: "When you create an alarm, its initial state is INSUFFICIENT_DATA"
    name, namespace = drift_alarm(client, unique)
    assert state(client, name) == "INSUFFICIENT_DATA"

    # WHEN its metric receives a value under the threshold, then one at it, then another at it
    put(client, namespace, 0.0)
    assert embedded_aws.wait_for_events()
    assert state(client, name) == "OK"
    put(client, namespace, 2.0)
    assert embedded_aws.wait_for_events()
    put(client, namespace, 3.0)

    # THEN it went OK, then ALARM, and each change (not the repeated ALARM) is one event as AWS sends it
    found = changes(events, name)
    assert [(e["detail"]["previousState"]["value"], e["detail"]["state"]["value"]) for e in found] == [
        ("INSUFFICIENT_DATA", "OK"),
        ("OK", "ALARM"),
    ]
    alarm = found[-1]
    assert (alarm["source"], alarm["resources"]) == (
        "aws.cloudwatch",
        [f"arn:aws:cloudwatch:us-east-1:123456789012:alarm:{name}"],
    )
    metric = alarm["detail"]["configuration"]["metrics"][0]["metricStat"]
    assert metric["metric"] == {"dimensions": {}, "name": "DriftedFeatures", "namespace": namespace}
    assert (metric["period"], metric["stat"]) == (3600, "Maximum")
    assert state(client, name) == "ALARM"
    # AND the handlers' model of the event reads it (the timestamp in AWS's +0000 form)
    parsed = AlarmStateEvent.model_validate(alarm)
    assert parsed.detail.state.value == "ALARM" and parsed.detail.state.timestamp.tzinfo is not None


def test_a_metric_with_other_dimensions_is_another_metric(
    embedded_aws: EmbeddedAws,
    client: Callable[[str], Any],
    unique: Callable[[str], str],
    events: EventRecorder,
) -> None:
    name, namespace = drift_alarm(client, unique)
    put(client, namespace, 5.0, Dimensions=[{"Name": "EndpointName", "Value": "mlops-demo-endpoint"}])
    assert embedded_aws.wait_for_events()
    assert state(client, name) == "INSUFFICIENT_DATA" and changes(events, name) == []
    # and a dimensioned alarm is not raised by the stack-wide metric either
    per_endpoint, _ = drift_alarm(
        client,
        unique,
        Namespace=namespace,
        Dimensions=[{"Name": "EndpointName", "Value": "mlops-demo-endpoint"}],
    )
    put(client, namespace, 5.0)
    assert embedded_aws.wait_for_events()
    assert state(client, per_endpoint) == "INSUFFICIENT_DATA"
    assert state(client, name) == "ALARM"


def test_datapoints_before_the_evaluated_periods_do_not_count(
    embedded_aws: EmbeddedAws,
    client: Callable[[str], Any],
    unique: Callable[[str], str],
    events: EventRecorder,
) -> None:
    name, namespace = drift_alarm(client, unique)
    put(client, namespace, 5.0, Timestamp=datetime.now(UTC) - timedelta(hours=3))
    assert embedded_aws.wait_for_events()
    assert state(client, name) == "OK"  # no recent data, treated as not breaching


def test_datapoints_to_alarm_of_the_evaluation_periods_must_breach(
    embedded_aws: EmbeddedAws,
    client: Callable[[str], Any],
    unique: Callable[[str], str],
    events: EventRecorder,
) -> None:
    # 2 of 3 periods of 60 s; missing data stays missing
    name, namespace = drift_alarm(
        client, unique, Period=60, EvaluationPeriods=3, DatapointsToAlarm=2, TreatMissingData="missing"
    )
    now = datetime.now(UTC)
    put(client, namespace, 5.0, Timestamp=now - timedelta(seconds=130))
    assert embedded_aws.wait_for_events()
    assert state(client, name) == "OK"  # 1 breaching of the periods with data
    put(client, namespace, 5.0, Timestamp=now)
    assert embedded_aws.wait_for_events()
    assert state(client, name) == "ALARM"


def test_another_namespace_leaves_the_alarm_alone(
    embedded_aws: EmbeddedAws,
    client: Callable[[str], Any],
    unique: Callable[[str], str],
    events: EventRecorder,
) -> None:
    name, namespace = drift_alarm(client, unique)
    put(client, f"{namespace}-other", 5.0)
    assert embedded_aws.wait_for_events()
    assert state(client, name) == "INSUFFICIENT_DATA" and changes(events, name) == []


def test_alarms_are_still_evaluated_after_motos_backends_are_reset(
    embedded_aws: EmbeddedAws,
    client: Callable[[str], Any],
    unique: Callable[[str], str],
    events: EventRecorder,
) -> None:
    # a `mock_aws` elsewhere in the process resets moto's backends, which drops the evaluator's hooks
    embedded_aws.backend("cloudwatch").reset()
    name, namespace = drift_alarm(client, unique)
    assert state(client, name) == "INSUFFICIENT_DATA"
    put(client, namespace, 2.0)
    embedded_aws.wait_for_events()
    assert state(client, name) == "ALARM"


def test_an_alarm_changes_state_on_the_bus_of_the_server_that_received_its_data(
    embedded_aws: EmbeddedAws,
    client: Callable[[str], Any],
    unique: Callable[[str], str],
    events: EventRecorder,
    aws_session: Any,
) -> None:
    # GIVEN a second embedded AWS in this process, as a test's LocalCloud starts while the session's one
    # runs: both serve moto's process-wide backends, and the first one's evaluator has its hooks in place
    name, namespace = drift_alarm(client, unique)
    with EmbeddedAws() as second:
        other = EventRecorder(second)
        cloudwatch = aws_session.client("cloudwatch", endpoint_url=second.endpoint_url)
        # WHEN the metric's breaching data reaches the second server
        cloudwatch.put_metric_data(
            Namespace=namespace,
            MetricData=[{"MetricName": "DriftedFeatures", "Value": 2.0, "Timestamp": datetime.now(UTC)}],
        )
        # THEN the change of state is on the second server's bus (its functions retrain), not the first's
        assert second.wait_for_events()
        assert [e["detail"]["state"]["value"] for e in changes(other, name)] == ["ALARM"]
        assert changes(events, name) == []
        other.unsubscribe()
    # and the first server, receiving data again, evaluates it on its own bus
    first, first_namespace = drift_alarm(client, unique)
    put(client, first_namespace, 3.0)
    assert embedded_aws.wait_for_events()
    assert [e["detail"]["state"]["value"] for e in changes(events, first)] == ["ALARM"]
    assert state(client, first) == "ALARM"


def test_set_alarm_state_puts_the_change_on_the_bus_as_an_evaluation_does(
    client: Callable[[str], Any], unique: Callable[[str], str], events: EventRecorder
) -> None:
    # "CloudWatch sends events to Amazon EventBridge whenever alarms change state" (user guide,
    # Acting_Alarm_Changes); SetAlarmState changes the state, for testing alarms' consumers
    name, _ = drift_alarm(client, unique)
    cloudwatch = client("cloudwatch")
    cloudwatch.set_alarm_state(AlarmName=name, StateValue="ALARM", StateReason="testing the rollback")
    [change] = changes(events, name)
    assert (change["detail"]["previousState"]["value"], change["detail"]["state"]["value"]) == (
        "INSUFFICIENT_DATA",
        "ALARM",
    )
    assert change["detail"]["state"]["reason"] == "testing the rollback"
    assert (
        change["detail"]["configuration"]["metrics"][0]["metricStat"]["metric"]["name"] == "DriftedFeatures"
    )
    assert (
        AlarmStateEvent.model_validate(change).detail.state.value == "ALARM"
    )  # the handlers' model reads it
    # the same state again is no change: nothing more on the bus
    cloudwatch.set_alarm_state(AlarmName=name, StateValue="ALARM", StateReason="still")
    assert len(changes(events, name)) == 1
    # and an alarm that does not exist is moto's ResourceNotFound, with nothing on the bus
    missing = unique("no-such-alarm")
    try:
        cloudwatch.set_alarm_state(AlarmName=missing, StateValue="ALARM", StateReason="x")
    except cloudwatch.exceptions.ResourceNotFound:
        pass
    else:
        raise AssertionError("SetAlarmState of a missing alarm succeeded")
    assert changes(events, missing) == []


def test_a_metric_math_alarm_set_by_hand_shows_its_expression(
    client: Callable[[str], Any], unique: Callable[[str], str], events: EventRecorder
) -> None:
    # the shape of AWS's "Metric math alarm" example (CloudWatch user guide, cloudwatch-and-eventbridge):
    # each query with its id and returnData, an expression with its label, a metric with its metricStat
    name = unique("dead-letters")
    client("cloudwatch").put_metric_alarm(
        AlarmName=name,
        Metrics=[
            {"Id": "total", "Expression": "a + b", "Label": "both", "ReturnData": True},
            {
                "Id": "a",
                "ReturnData": False,
                "MetricStat": {
                    "Metric": {"Namespace": "AWS/SQS", "MetricName": "ApproximateNumberOfMessagesVisible"},
                    "Period": 300,
                    "Stat": "Maximum",
                },
            },
        ],
        EvaluationPeriods=1,
        Threshold=1,
        ComparisonOperator="GreaterThanOrEqualToThreshold",
    )
    client("cloudwatch").set_alarm_state(AlarmName=name, StateValue="ALARM", StateReason="a letter")
    [change] = changes(events, name)
    assert change["detail"]["configuration"]["metrics"][0] == {
        "id": "total",
        "returnData": True,
        "expression": "a + b",
        "label": "both",
    }
    assert change["detail"]["configuration"]["metrics"][1] == {
        "id": "a",
        "returnData": False,
        "metricStat": {
            "metric": {
                "dimensions": {},
                "name": "ApproximateNumberOfMessagesVisible",
                "namespace": "AWS/SQS",
            },
            "period": 300,
            "stat": "Maximum",
        },
    }
