"""The one printable-document module (CONTRACTS §5): a `Document` model, its PDF
(`render_pdf`, fpdf2 + Noto Sans CJK SC, in the thread pool) and its JSON for the printable
page `client_web/print.html`. Reading reports, consult opinions and MDT summaries all use it."""

from server.documents.model import (
    LABELS,
    DocImage,
    Document,
    DocumentError,
    Section,
    Verification,
)
from server.documents.pdf import find_font, render_pdf, render_pdf_async

__all__ = [
    "LABELS", "DocImage", "Document", "DocumentError", "Section", "Verification", "find_font",
    "render_pdf", "render_pdf_async",
]
