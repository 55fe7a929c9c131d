"""train.fit's refit: the validation rows pick the epoch count, the saved model also learns from them, and the
reported metrics stay the early-stopped run's."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from tests.training.conftest import SAMPLE_DATA
from training_code import train

pytestmark = pytest.mark.slow

QUICK = train.HyperParameters(epochs=4, batch_size=64, ensemble=2, patience=2, seed=3)


@pytest.fixture(scope="module")
def splits() -> tuple[pd.DataFrame, pd.DataFrame]:
    data = pd.read_csv(SAMPLE_DATA)
    return data.iloc[:300], data.iloc[300:360]


def member_count(model: object) -> int:
    return int(model.get_layer("member_outputs").kernel.shape[0])  # type: ignore[attr-defined]


def test_refit_keeps_the_early_stopped_metrics_and_doubles_the_members(
    splits: tuple[pd.DataFrame, pd.DataFrame],
) -> None:
    # GIVEN the same data and seed, trained without and with refit
    plain = train.fit(*splits, replace(QUICK, refit=0), verbose_metrics=False)
    refitted = train.fit(*splits, replace(QUICK, refit=1), verbose_metrics=False)

    # THEN the tuner sees the same early-stopped run either way
    assert refitted.history == plain.history
    assert refitted.best_epoch == plain.best_epoch
    assert refitted.best_metrics == pytest.approx(plain.best_metrics)

    # AND the refitted model averages the early-stopped members with as many retrained ones
    assert member_count(plain.model) == QUICK.ensemble
    assert member_count(refitted.model) == 2 * QUICK.ensemble
    test_x, _, _ = train.split_features(splits[1], QUICK.target_column)
    combined = refitted.model.predict(test_x, verbose=0)
    assert combined.shape == (len(test_x), 1)
    assert np.all(np.isfinite(combined))
    assert not np.allclose(combined, plain.model.predict(test_x, verbose=0))


def test_a_run_that_completes_its_epochs_keeps_its_final_weights(
    splits: tuple[pd.DataFrame, pd.DataFrame],
) -> None:
    # GIVEN patience longer than the run, so early stopping never fires
    run = train.fit(*splits, replace(QUICK, epochs=6, patience=50, refit=0), verbose_metrics=False)
    # THEN the model is the last epoch's, and what it reports is that epoch's validation score
    assert run.best_epoch == 6 == len(run.history["val_rmse"])
    assert run.best_metrics["val_rmse"] == pytest.approx(run.history["val_rmse"][-1], rel=1e-3)


def test_a_run_stopped_by_patience_restores_its_best_epoch(
    splits: tuple[pd.DataFrame, pd.DataFrame],
) -> None:
    # GIVEN a high learning rate and a patience of one epoch, so validation soon stops improving
    hyper = replace(QUICK, epochs=60, patience=1, learning_rate=0.2, refit=0)
    run = train.fit(*splits, hyper, verbose_metrics=False)
    # THEN the run stopped early, and the model is the best epoch's
    assert len(run.history["val_rmse"]) < 60
    assert run.best_metrics["val_rmse"] == pytest.approx(min(run.history["val_rmse"]), rel=1e-3)
    assert run.best_epoch == int(np.argmin(run.history["val_rmse"])) + 1
