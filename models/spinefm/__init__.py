"""SpineFM: the SpineAgent model library.

Importable without Django. Light modules (``conditions``, ``sequences``,
``results``) import no torch so the web tier can use the shared tables
without loading the model stack.
"""

__version__ = "0.1.0"
