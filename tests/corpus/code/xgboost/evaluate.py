"""Evaluation (run in the XGBoost image by a ScriptProcessor), as the project template's evaluate.py does it:
unpack model.tar.gz, unpickle `xgboost-model`, score the test split and write evaluation.json."""

import json
import pathlib
import pickle
import tarfile

import numpy as np
import pandas as pd
import xgboost
from sklearn.metrics import mean_squared_error

if __name__ == "__main__":
    with tarfile.open("/opt/ml/processing/model/model.tar.gz") as tar:
        tar.extractall(path=".")
    with open("xgboost-model", "rb") as handle:
        model = pickle.load(handle)
    frame = pd.read_csv("/opt/ml/processing/test/test.csv", header=None)
    y_test = frame.iloc[:, 0].to_numpy()
    frame = frame.drop(frame.columns[0], axis=1)
    predictions = model.predict(xgboost.DMatrix(frame.values))
    mse = mean_squared_error(y_test, predictions)
    report = {
        "regression_metrics": {
            "mse": {"value": mse, "standard_deviation": float(np.std(y_test - predictions))}
        }
    }
    pathlib.Path("/opt/ml/processing/evaluation").mkdir(parents=True, exist_ok=True)
    with open("/opt/ml/processing/evaluation/evaluation.json", "w") as handle:
        handle.write(json.dumps(report))
    print(f"mse={mse:.3f}")
