"""A helper module beside the entry script: `source_dir` ships it, and the script imports it."""

import pandas as pd


def target_first(frame: pd.DataFrame, target: str) -> pd.DataFrame:
    return frame[[target] + [c for c in frame.columns if c != target]]
