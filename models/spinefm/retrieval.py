"""Retrieval agent: zero-shot search in the shared image/report embedding space.

Image-to-report: a case embedding against stored report embeddings (the top-1
report also feeds the report drafter). Report-to-image: a report embedding
against stored case embeddings. Both are cosine top-k; nothing is trained here.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass
class Hit:
    case_id: str
    score: float
    report: str
    rank: int


class EmbeddingIndex:
    """Stored cases: image embeddings, report embeddings (both L2-normalised), ids and report texts."""

    def __init__(self, image: torch.Tensor, text: torch.Tensor, case_ids: list[str], reports: list[str]):
        if not (image.shape[0] == text.shape[0] == len(case_ids) == len(reports)):
            raise ValueError("index arrays must have one row per case")
        self.image = F.normalize(image.float(), dim=-1)
        self.text = F.normalize(text.float(), dim=-1)
        self.case_ids, self.reports = list(case_ids), list(reports)

    def __len__(self) -> int:
        return len(self.case_ids)

    def _top(self, query: torch.Tensor, bank: torch.Tensor, k: int, exclude: str | None) -> list[Hit]:
        if len(self) == 0:
            return []
        scores = F.normalize(query.float().view(1, -1), dim=-1) @ bank.t()
        scores = scores[0]
        if exclude is not None and exclude in self.case_ids:
            scores = scores.clone()
            scores[self.case_ids.index(exclude)] = float("-inf")
        k = min(k, len(self) - (exclude in self.case_ids if exclude else 0))
        vals, idx = scores.topk(max(k, 0))
        return [Hit(self.case_ids[i], float(v), self.reports[i], r + 1) for r, (v, i) in enumerate(zip(vals.tolist(), idx.tolist()))]

    def image_to_report(self, case_embedding: torch.Tensor, k: int = 5, exclude: str | None = None) -> list[Hit]:
        return self._top(case_embedding, self.text, k, exclude)

    def report_to_image(self, report_embedding: torch.Tensor, k: int = 5, exclude: str | None = None) -> list[Hit]:
        return self._top(report_embedding, self.image, k, exclude)


def ranks(query: torch.Tensor, bank: torch.Tensor) -> torch.Tensor:
    """Rank (1 = best) of the matching row i of ``bank`` for each query row i."""
    sim = F.normalize(query.float(), dim=-1) @ F.normalize(bank.float(), dim=-1).t()
    true = sim.diagonal().unsqueeze(1)
    return (sim > true).sum(1) + 1
