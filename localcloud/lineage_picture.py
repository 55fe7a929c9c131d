"""Draw a lineage chain (the dicts the ledger queries return) as a left-to-right picture (PNG)."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any


def _nodes(chain: Any) -> list[tuple[str, str]]:
    """Flatten a lineage answer into (kind, label) boxes, in the order the chain lists them."""
    if isinstance(chain, dict) and isinstance(chain.get("chain"), list):
        chain = chain["chain"]
    if isinstance(chain, list):
        boxes = []
        for link in chain:
            if isinstance(link, dict):
                kind = str(link.get("kind") or link.get("type") or next(iter(link), "link"))
                label = str(link.get("name") or link.get("id") or link.get("arn") or link)
                boxes.append((kind, label))
            else:
                boxes.append(("link", str(link)))
        return boxes
    if isinstance(chain, dict):
        return [(str(k), v if isinstance(v, str) else str(v)) for k, v in chain.items()]
    return [("value", str(chain))]


def draw(chain: Any, path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    boxes = _nodes(chain)
    width = max(4, 3.2 * len(boxes))
    fig, ax = plt.subplots(figsize=(width, 2.6))
    ax.set_xlim(0, len(boxes))
    ax.set_ylim(0, 1)
    ax.axis("off")
    for i, (kind, label) in enumerate(boxes):
        short = label.rsplit("/", 1)[-1] if label.startswith("arn:") else label
        text = f"{kind}\n" + "\n".join(textwrap.wrap(short, 24)[:4])
        ax.text(
            i + 0.5,
            0.5,
            text,
            ha="center",
            va="center",
            fontsize=8,
            bbox={"boxstyle": "round,pad=0.5", "facecolor": "#e8f0fe", "edgecolor": "#3b6fb6"},
        )
        if i + 1 < len(boxes):
            ax.annotate(
                "",
                xy=(i + 1.08, 0.5),
                xytext=(i + 0.92, 0.5),
                arrowprops={"arrowstyle": "->", "color": "#3b6fb6"},
            )
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
