"""A processing script that writes where it ran: its output folder holds one file naming the execution."""

import argparse
import json
import os

if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--execution-id", required=True)
    parser.add_argument("--rows", type=int, required=True)
    args = parser.parse_args()
    os.makedirs("/opt/ml/processing/out", exist_ok=True)
    with open("/opt/ml/processing/out/run.json", "w") as handle:
        json.dump({"execution_id": args.execution_id, "rows": args.rows}, handle)
