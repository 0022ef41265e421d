"""polyhead: one shared transformer encoder, many task heads."""
from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["SentenceEncoder", "MultiTaskModel", "__version__"]


def __getattr__(name: str):
    # Lazy: `import polyhead` (and `polyhead --help`) must not pay for importing torch and transformers.
    if name == "SentenceEncoder":
        from polyhead.encoder import SentenceEncoder

        return SentenceEncoder
    if name == "MultiTaskModel":
        from polyhead.model import MultiTaskModel

        return MultiTaskModel
    raise AttributeError(f"module 'polyhead' has no attribute {name!r}")
