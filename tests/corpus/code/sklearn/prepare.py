"""Processing with FrameworkProcessor (source_dir): split the CSV into train and validation, target first."""

import argparse
import os

import pandas as pd
from features import target_first

if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--target", default="MEDV")
    args = parser.parse_args()
    frame = target_first(pd.read_csv("/opt/ml/processing/input/boston_housing.csv"), args.target)
    frame = frame.sample(frac=1, random_state=1)
    cut = int(len(frame) * 0.8)
    for name, part in (("train", frame[:cut]), ("validation", frame[cut:])):
        os.makedirs(f"/opt/ml/processing/{name}", exist_ok=True)
        part.to_csv(f"/opt/ml/processing/{name}/{name}.csv", header=False, index=False)
    print(f"train={cut} validation={len(frame) - cut}")
