"""The in-memory vector index of one knowledge scope: a float32 matrix and a matrix-vector product.

Vectors are L2-normalised when they are made, so a dot product is the cosine similarity. An index
never changes once built: adding or removing a document makes a new one, so a search running in a
worker thread always sees one consistent matrix while the event loop swaps in the next.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from bot.knowledge.records import DocumentRecord

__all__ = [
    "VECTOR_DTYPE",
    "Hit",
    "Matrix",
    "ScopeIndex",
    "VectorRows",
    "from_vector_bytes",
    "normalize_rows",
    "vector_bytes",
]

# How vectors are stored: little-endian float32, the precision Ollama computes them in.
VECTOR_DTYPE = np.dtype("<f4")
Matrix = npt.NDArray[np.float32]
Rows = npt.NDArray[np.int32]


def normalize_rows(matrix: npt.ArrayLike) -> Matrix:
    """Each row scaled to length 1 (an all-zero row stays zero), as float32."""
    array = np.asarray(matrix, dtype=np.float32)
    if array.ndim == 1:
        array = array.reshape(1, -1)
    norms = np.linalg.norm(array, axis=1, keepdims=True)
    out: Matrix = np.zeros_like(array)
    np.divide(array, norms, out=out, where=norms > 0)
    return out


def vector_bytes(vector: Matrix) -> bytes:
    """One vector as stored: little-endian float32."""
    return np.ascontiguousarray(vector, dtype=VECTOR_DTYPE).tobytes()


def from_vector_bytes(blobs: Sequence[bytes], dimensions: int) -> Matrix:
    """Stored vectors back into a matrix (one row each)."""
    matrix = np.empty((len(blobs), dimensions), dtype=np.float32)
    for row, blob in enumerate(blobs):
        matrix[row] = np.frombuffer(blob, dtype=VECTOR_DTYPE, count=dimensions)
    return matrix


@dataclass(frozen=True, slots=True)
class VectorRows:
    """Every chunk vector of a scope for one embedding model, as the store hands it over.

    Row i of `matrix` is chunk `positions[i]` of `documents[doc_rows[i]]`. `other_models` counts the
    scope's documents embedded with another model (not in here; they wait to be embedded again).
    """

    documents: list[DocumentRecord]
    doc_rows: Rows
    positions: Rows
    matrix: Matrix
    other_models: int = 0

    @classmethod
    def empty(cls, other_models: int = 0) -> VectorRows:
        """No vectors."""
        none = np.zeros(0, dtype=np.int32)
        return cls([], none, none.copy(), np.zeros((0, 0), dtype=np.float32), other_models)


@dataclass(frozen=True, slots=True)
class Hit:
    """A chunk that matched a query, and how well (cosine similarity)."""

    document: DocumentRecord
    position: int
    score: float


class ScopeIndex:
    """The vectors of one scope for one embedding model, searched with one matrix-vector product."""

    __slots__ = ("_doc_rows", "_documents", "_matrix", "_positions", "model", "other_models")

    def __init__(self, model: str, rows: VectorRows) -> None:
        self.model = model
        self.other_models = rows.other_models
        self._documents = list(rows.documents)
        self._doc_rows = rows.doc_rows
        self._positions = rows.positions
        self._matrix = rows.matrix

    @property
    def size(self) -> int:
        """How many chunks the index holds."""
        return int(self._matrix.shape[0])

    @property
    def dimensions(self) -> int:
        """The vectors' length (0 when empty)."""
        return int(self._matrix.shape[1]) if self.size else 0

    @property
    def documents(self) -> list[DocumentRecord]:
        """The documents in the index."""
        return list(self._documents)

    @property
    def nbytes(self) -> int:
        """Memory held by the arrays."""
        return int(self._matrix.nbytes + self._doc_rows.nbytes + self._positions.nbytes)

    def search(self, query: Matrix, *, limit: int, min_score: float) -> list[Hit]:
        """The best `limit` chunks with a similarity of at least `min_score`, best first.

        `query` must be normalised like the stored vectors. Runs in a worker thread: numpy releases
        the GIL for the product.
        """
        if not self.size or limit <= 0 or query.shape[-1] != self.dimensions:
            return []
        scores = self._matrix @ query.reshape(-1)
        count = int(scores.shape[0])
        best = np.argpartition(-scores, limit - 1)[:limit] if count > limit else np.arange(count)
        best = best[np.argsort(-scores[best], kind="stable")]
        return [
            Hit(self._documents[int(self._doc_rows[row])], int(self._positions[row]), float(scores[row]))
            for row in best
            if scores[row] >= min_score
        ]

    def with_document(self, document: DocumentRecord, vectors: Matrix) -> ScopeIndex:
        """A new index that also holds `document` (replacing a document with the same id)."""
        return self.with_documents([(document, vectors)])

    def with_documents(self, added: Sequence[tuple[DocumentRecord, Matrix]]) -> ScopeIndex:
        """A new index that also holds these documents (replacing any with the same ids), in one copy."""
        base = self.without_documents([document.document_id for document, _ in added])
        added = [(document, vectors) for document, vectors in added if vectors.shape[0]]
        if not added:
            return base
        dimensions = base.dimensions if base.size else int(added[0][1].shape[1])
        for document, vectors in added:
            if vectors.shape[1] != dimensions:
                raise ValueError(f"{document.name}: {vectors.shape[1]} dimensions, the index has {dimensions}")
        documents = [*base._documents, *(document for document, _ in added)]
        first = len(base._documents)
        rows = VectorRows(
            documents=documents,
            doc_rows=np.concatenate(
                [base._doc_rows, *(np.full(v.shape[0], first + i, dtype=np.int32) for i, (_, v) in enumerate(added))]
            ),
            positions=np.concatenate([base._positions, *(np.arange(v.shape[0], dtype=np.int32) for _, v in added)]),
            matrix=np.vstack([base._matrix, *(v for _, v in added)]) if base.size else np.vstack([v for _, v in added]),
            other_models=self.other_models,
        )
        return ScopeIndex(self.model, rows)

    def without_documents(self, document_ids: Iterable[str]) -> ScopeIndex:
        """A new index without these documents (itself when none of them is in it)."""
        gone = set(document_ids)
        doomed = {number for number, document in enumerate(self._documents) if document.document_id in gone}
        if not doomed:
            return self
        keep_rows = ~np.isin(self._doc_rows, sorted(doomed))
        kept = [number for number in range(len(self._documents)) if number not in doomed]
        kept_documents = [self._documents[number] for number in kept]
        renumber = np.full(len(self._documents), -1, dtype=np.int32)
        renumber[kept] = np.arange(len(kept), dtype=np.int32)
        rows = VectorRows(
            documents=kept_documents,
            doc_rows=renumber[self._doc_rows[keep_rows]],
            positions=self._positions[keep_rows],
            matrix=self._matrix[keep_rows],
            other_models=self.other_models,
        )
        return ScopeIndex(self.model, rows)

    def with_other_models(self, count: int) -> ScopeIndex:
        """The same index, with a new count of documents waiting for this model."""
        rows = VectorRows(self._documents, self._doc_rows, self._positions, self._matrix, max(0, count))
        return ScopeIndex(self.model, rows)
