"""EventBridge Scheduler for the template's ScheduleV2 events, which moto does not run.

Each ENABLED `rate(...)` schedule invokes its function asynchronously once per period, starting one period
after the local cloud starts, with the schedule's Input in which the context attributes are filled in
(`<aws.scheduler.scheduled-time>`, `<aws.scheduler.schedule-arn>`, `<aws.scheduler.execution-id>`,
`<aws.scheduler.attempt-number>`: EventBridge Scheduler user guide, managing-schedule-context-attributes).
`cron(...)` and `at(...)` expressions are listed but not run here; a DISABLED schedule never fires.
`localcloud up` runs the schedules; the demos and tests invoke the functions themselves.
"""

from __future__ import annotations

import json
import logging
import re
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

log = logging.getLogger("localcloud.scheduler")

_RATE = re.compile(r"^rate\((\d+) (minute|minutes|hour|hours|day|days)\)$")
_UNIT = {"minute": 60, "hour": 3600, "day": 86400}


@dataclass(frozen=True)
class Schedule:
    function: str  # the function's logical id
    name: str
    expression: str
    enabled: bool
    input: str

    @property
    def period(self) -> timedelta | None:
        """The period of a rate() expression (a value of 1 takes the singular unit, as Scheduler asks)."""
        match = _RATE.match(self.expression)
        if not match:
            return None
        return timedelta(seconds=int(match.group(1)) * _UNIT[match.group(2).rstrip("s")])


def schedules_of(template: Any) -> list[Schedule]:
    """The ScheduleV2 events of the template's functions, resolved with its parameters and conditions."""
    found = []
    for logical_id, resource in template.body.get("Resources", {}).items():
        if resource.get("Type") != "AWS::Serverless::Function":
            continue
        if "Condition" in resource and not template.condition(resource["Condition"]):
            continue
        for event_name, event in (resource.get("Properties", {}).get("Events") or {}).items():
            if event.get("Type") != "ScheduleV2":
                continue
            props = template.resolve(event.get("Properties", {}))
            found.append(
                Schedule(
                    function=logical_id,
                    name=str(props.get("Name") or f"{logical_id}{event_name}"),
                    expression=str(props["ScheduleExpression"]),
                    enabled=str(props.get("State", "ENABLED")) == "ENABLED",
                    input=str(props.get("Input", "{}")),
                )
            )
    return found


class LocalScheduler:
    """Fires the enabled rate() schedules: `tick(now)` fires what is due; the thread ticks every second."""

    def __init__(
        self,
        schedules: list[Schedule],
        invoke: Callable[[str, dict[str, Any]], None],
        region: str,
        account: str,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.invoke, self.region, self.account, self.clock = invoke, region, account, clock
        self.running = [s for s in schedules if s.enabled and s.period is not None]
        for schedule in schedules:
            if schedule.enabled and schedule.period is None:
                log.warning(
                    "schedule %s (%s) is not run locally: only rate() is", schedule.name, schedule.expression
                )
        started = clock().replace(microsecond=0)
        self.due = {s.name: started + s.period for s in self.running if s.period is not None}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="localcloud-scheduler", daemon=True)

    def arn(self, schedule: Schedule) -> str:
        return f"arn:aws:scheduler:{self.region}:{self.account}:schedule/default/{schedule.name}"

    def payload(self, schedule: Schedule, when: datetime) -> dict[str, Any]:
        text = (
            schedule.input.replace("<aws.scheduler.scheduled-time>", when.strftime("%Y-%m-%dT%H:%M:%SZ"))
            .replace("<aws.scheduler.schedule-arn>", self.arn(schedule))
            .replace("<aws.scheduler.execution-id>", str(uuid.uuid4()))
            .replace("<aws.scheduler.attempt-number>", "1")
        )
        return dict(json.loads(text))

    def tick(self, now: datetime) -> list[tuple[str, dict[str, Any]]]:
        """Invoke every schedule whose time has come (each missed time once, in order); returns them."""
        fired = []
        for schedule in self.running:
            period = schedule.period
            assert period is not None
            while self.due[schedule.name] <= now:
                payload = self.payload(schedule, self.due[schedule.name])
                self.invoke(schedule.function, payload)
                fired.append((schedule.function, payload))
                self.due[schedule.name] += period
        return fired

    def start(self) -> LocalScheduler:
        self._thread.start()
        for schedule in self.running:
            log.info(
                "schedule %s: %s, first at %s", schedule.name, schedule.expression, self.due[schedule.name]
            )
        return self

    def stop(self) -> None:
        self._stop.set()

    def _run(self) -> None:
        while not self._stop.wait(1.0):
            try:
                self.tick(self.clock())
            except Exception:  # one failed invocation must not stop the schedules
                log.exception("a schedule could not be fired")
