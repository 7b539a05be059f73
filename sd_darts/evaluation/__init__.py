"""Evaluation of a searched cell (paper §4.2–4.3, Tables 2–3): the networks, the training recipes,
the training loop (one process or DDP), parameter and mult-add counts."""
