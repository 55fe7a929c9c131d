"""The local cloud's EventBridge Scheduler: the template's ScheduleV2 events, as `localcloud up` runs them
(context attributes: EventBridge Scheduler user guide, managing-schedule-context-attributes)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from localcloud.provision import plan_names
from localcloud.scheduler import LocalScheduler, Schedule, schedules_of
from localcloud.template import StackTemplate

ROOT = Path(__file__).resolve().parents[2]
START = datetime(2026, 12, 7, 9, 0, 0, tzinfo=UTC)


def template(**overrides: str) -> StackTemplate:
    loaded = StackTemplate.load(ROOT / "template.yaml", overrides=overrides, stack_name="mlops-local")
    loaded.physical_names, loaded.attributes = plan_names(loaded)
    return loaded


def by_name(schedules: list[Schedule]) -> dict[str, Schedule]:
    return {s.name: s for s in schedules}


def test_the_templates_schedules_are_on_only_when_their_parameters_ask() -> None:
    off = by_name(schedules_of(template()))
    assert set(off) == {"mlops-local-retrain", "mlops-local-monitor"}
    assert not off["mlops-local-retrain"].enabled  # RetrainSchedule empty
    assert not off["mlops-local-monitor"].enabled  # no data capture, nothing to monitor
    on = by_name(schedules_of(template(RetrainSchedule="rate(7 days)", DataCapturePercent="10")))
    assert on["mlops-local-retrain"].enabled and on["mlops-local-retrain"].period == timedelta(days=7)
    monitor = on["mlops-local-monitor"]
    assert (monitor.function, monitor.enabled, monitor.period) == ("DeployFunction", True, timedelta(hours=1))


def test_each_period_invokes_the_function_once_with_the_context_attributes_filled_in() -> None:
    [monitor] = [s for s in schedules_of(template(DataCapturePercent="10")) if s.name.endswith("-monitor")]
    calls: list[tuple[str, dict[str, Any]]] = []
    scheduler = LocalScheduler(
        [monitor], lambda f, p: calls.append((f, p)), "us-east-1", "123456789012", lambda: START
    )
    assert scheduler.tick(START + timedelta(minutes=59)) == []
    scheduler.tick(START + timedelta(hours=3, minutes=1))  # three periods due: each time once, in order
    assert [p["monitoring"]["scheduledTime"] for _, p in calls] == [
        "2026-12-07T10:00:00Z",
        "2026-12-07T11:00:00Z",
        "2026-12-07T12:00:00Z",
    ]
    assert {f for f, _ in calls} == {"DeployFunction"}
    assert calls[0][1]["monitoring"]["scheduleArn"] == (
        "arn:aws:scheduler:us-east-1:123456789012:schedule/default/mlops-local-monitor"
    )
    assert scheduler.tick(START + timedelta(hours=3, minutes=30)) == []


def test_disabled_and_cron_schedules_never_fire() -> None:
    cron = Schedule("StartPipelineFunction", "nightly", "cron(0 3 * * ? *)", True, "{}")
    disabled = Schedule("DeployFunction", "off", "rate(1 minute)", False, "{}")
    calls: list[Any] = []
    scheduler = LocalScheduler(
        [cron, disabled], lambda f, p: calls.append(f), "us-east-1", "1", lambda: START
    )
    assert scheduler.running == [] and scheduler.tick(START + timedelta(days=2)) == [] and calls == []
    assert Schedule("F", "one", "rate(1 minute)", True, "{}").period == timedelta(minutes=1)
    assert Schedule("F", "bad", "rate(1 fortnight)", True, "{}").period is None
