"""The experiment layer: the only code that knows ``params.yaml``, ``runs/`` and ``metrics/``
(docs/ARCHITECTURE.md).

Submodules are imported where they are used (this file imports nothing), so that a stage's
import closure, its DVC dependencies, holds only the code that stage runs.
"""
