"""The columns and cells of a prediction row, as every file of predictions writes them."""

from __future__ import annotations

from ..models.meta import BundleMeta
from .answers import PredictionRow


def csv_header(meta: BundleMeta, top_k: int, accepting: bool) -> list[str]:
    """path, then multiclass: label_1, prob_1, ... of the top k; multi-label: the labels at or
    over their thresholds, then every class's probability; then accepted and unknown_score
    (when the model says whether a photo is one of its classes), then error."""
    header = ["path"]
    if meta.task == "multilabel":
        header += ["labels", *(f"prob_{name}" for name in meta.class_names)]
    else:
        for k in range(1, top_k + 1):
            header += [f"label_{k}", f"prob_{k}"]
    return [*header, *(["accepted", "unknown_score"] if accepting else []), "error"]


def csv_cells(row: PredictionRow, meta: BundleMeta, top_k: int, accepting: bool) -> list[object]:
    cells: list[object] = [row.source]
    found = row.top
    if meta.task == "multilabel":
        # every class's probability, not only the top k's (an error row has none)
        probs = found.every or {}
        cells.append(" ".join(found.labels or []) if not row.error else "")
        cells += [probs.get(name, "") for name in meta.class_names]
    else:
        for k in range(top_k):
            cells += list(found[k]) if k < len(found) else ["", ""]
    if accepting:
        cells += ["" if row.error else found.accepted, "" if row.error else found.score]
    return [*cells, row.error or ""]
