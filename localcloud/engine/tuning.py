"""The search behind a Tuning step: SageMaker's ParameterRanges sampled by optuna's TPE (Bayesian) sampler.

``HyperParameterSearch`` is ask/tell: the tuning step asks for a trial's hyper-parameters, runs a training
job with them, and tells the objective back, so trials can run in parallel while the sampler learns from
every finished one (``constant_liar`` keeps parallel asks from piling onto the same point).
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass
from typing import Any

import optuna
from optuna.distributions import BaseDistribution, CategoricalDistribution, FloatDistribution, IntDistribution

optuna.logging.set_verbosity(optuna.logging.WARNING)


class TuningConfigError(Exception):
    """A ParameterRanges or objective that SageMaker would reject."""


@dataclass(frozen=True)
class Trial:
    """One trial handed out by the search: its number and the hyper-parameters as training job strings."""

    number: int
    hyper_parameters: dict[str, str]
    _handle: Any


def _reverse_log(name: str) -> str:
    return f"__reverse_log__{name}"


class HyperParameterSearch:
    """Seeded ask/tell search over SageMaker ParameterRanges.

    ``strategy`` ``Bayesian`` uses TPE after a few random start-up trials; ``Random`` samples uniformly
    (per scaling); ``Grid`` is not offered by this engine.
    """

    def __init__(
        self,
        parameter_ranges: dict[str, Any],
        objective_type: str,
        max_trials: int,
        strategy: str = "Bayesian",
        seed: int = 0,
    ):
        if objective_type not in ("Minimize", "Maximize"):
            raise TuningConfigError(f"objective Type must be Minimize or Maximize, got {objective_type!r}")
        self.distributions = self._distributions(parameter_ranges)
        if not self.distributions:
            raise TuningConfigError("ParameterRanges define no hyper-parameter to tune")
        self.minimize = objective_type == "Minimize"
        if strategy == "Bayesian":
            startup = max(2, min(10, max_trials // 3))
            sampler: optuna.samplers.BaseSampler = optuna.samplers.TPESampler(
                seed=seed, n_startup_trials=startup, constant_liar=True, multivariate=True
            )
        elif strategy == "Random":
            sampler = optuna.samplers.RandomSampler(seed=seed)
        else:
            raise TuningConfigError(f"tuning Strategy {strategy!r} is not supported by the local engine")
        self.strategy = strategy
        self._study = optuna.create_study(
            direction="minimize" if self.minimize else "maximize", sampler=sampler
        )
        self._lock = threading.Lock()

    @staticmethod
    def _distributions(ranges: dict[str, Any]) -> dict[str, BaseDistribution]:
        out: dict[str, BaseDistribution] = {}
        for item in ranges.get("ContinuousParameterRanges", []) or []:
            low, high, scaling = (
                float(item["MinValue"]),
                float(item["MaxValue"]),
                item.get("ScalingType", "Auto"),
            )
            if low > high:
                raise TuningConfigError(f"MinValue > MaxValue for {item['Name']}")
            if scaling == "Logarithmic":
                if low <= 0:
                    raise TuningConfigError(f"Logarithmic scaling needs MinValue > 0 for {item['Name']}")
                out[item["Name"]] = FloatDistribution(low, high, log=True)
            elif scaling == "ReverseLogarithmic":
                if not (0 <= low < high < 1):
                    raise TuningConfigError(
                        f"ReverseLogarithmic scaling needs 0 <= min < max < 1 for {item['Name']}"
                    )
                # 1 - x is log-uniform: sample it, and map back when handing out the trial.
                out[_reverse_log(item["Name"])] = FloatDistribution(1 - high, 1 - low, log=True)
            else:
                out[item["Name"]] = FloatDistribution(low, high)
        for item in ranges.get("IntegerParameterRanges", []) or []:
            low_i, high_i = int(item["MinValue"]), int(item["MaxValue"])
            if low_i > high_i:
                raise TuningConfigError(f"MinValue > MaxValue for {item['Name']}")
            log = item.get("ScalingType") == "Logarithmic"
            if log and low_i <= 0:
                raise TuningConfigError(f"Logarithmic scaling needs MinValue > 0 for {item['Name']}")
            out[item["Name"]] = IntDistribution(low_i, high_i, log=log)
        for item in ranges.get("CategoricalParameterRanges", []) or []:
            values = list(item.get("Values", []))
            if not values:
                raise TuningConfigError(f"no Values for categorical {item['Name']}")
            out[item["Name"]] = CategoricalDistribution(values)
        return out

    def ask(self) -> Trial:
        with self._lock:
            handle = self._study.ask(self.distributions)
        values: dict[str, str] = {}
        for name, value in handle.params.items():
            if name.startswith("__reverse_log__"):
                values[name.removeprefix("__reverse_log__")] = _format(1 - value)
            else:
                values[name] = _format(value)
        return Trial(number=handle.number, hyper_parameters=values, _handle=handle)

    def tell(self, trial: Trial, objective: float | None) -> None:
        """Report a trial's final objective; ``None`` (failed job or no metric) marks the trial failed."""
        with self._lock:
            if objective is None or math.isnan(objective):
                self._study.tell(trial._handle, state=optuna.trial.TrialState.FAIL)
            else:
                self._study.tell(trial._handle, objective)

    def is_better(self, candidate: float, incumbent: float) -> bool:
        return candidate < incumbent if self.minimize else candidate > incumbent


def _format(value: Any) -> str:
    if isinstance(value, float):
        return repr(value)
    return str(value)
