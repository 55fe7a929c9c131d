"""Processing with SKLearnProcessor (code=): summary statistics of the input, beside the preparation."""

import os

import pandas as pd

if __name__ == "__main__":
    frame = pd.read_csv("/opt/ml/processing/input/boston_housing.csv")
    os.makedirs("/opt/ml/processing/summary", exist_ok=True)
    frame.describe().to_csv("/opt/ml/processing/summary/summary.csv")
