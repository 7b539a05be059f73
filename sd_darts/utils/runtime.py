"""Run-time helpers shared by every command: seeding, device choice, RNG state capture for
exact resume, and progress reporting (a tqdm bar on a terminal, periodic log lines
otherwise).

torch and numpy are imported inside the functions that use them, so that the command line
(``sd-darts --help``, the signal and exit-code helpers) starts without them.
"""

from __future__ import annotations

import logging
import random
import re
import signal
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any

from ..errors import UserError

if TYPE_CHECKING:  # pragma: no cover
    import torch

log = logging.getLogger("sd_darts")


def setup_logging() -> None:
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s", stream=sys.stderr)


def seed_everything(seed: int) -> None:
    import numpy as np
    import torch

    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)


#: What ``--device`` accepts: the package runs on the CPU and on NVIDIA GPUs (CUDA).
DEVICE_PATTERN = re.compile(r"auto|cpu|cuda(:[0-9]+)?")


def check_device_name(name: str) -> str | None:
    """The problem with a ``--device`` value, or None (no hardware is queried)."""
    if not isinstance(name, str) or not DEVICE_PATTERN.fullmatch(name):
        return f"{name!r} is not supported; use auto, cpu, cuda or cuda:N"
    return None


def pick_device(name: str = "auto") -> torch.device:
    """``auto`` picks CUDA when available, else CPU; ``cuda``/``cuda:N``/``cpu`` force one."""
    import torch

    if name in (None, "", "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    problem = check_device_name(name)
    if problem:
        raise UserError(f"--device {problem}")
    dev = torch.device(name)
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise UserError(f"--device {name} asked for CUDA but no CUDA device is available; use --device cpu")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise UserError(f"--device {name}: only {torch.cuda.device_count()} CUDA device(s) are visible")
    return dev


class Terminated(KeyboardInterrupt):
    """SIGTERM, turned into an exception so that runs stop the same way as on Ctrl-C."""


class Interrupted(Exception):
    """A run stopped by Ctrl-C or SIGTERM; the message says what was saved and how to resume."""

    def __init__(self, message: str, signal_name: str = "SIGINT"):
        super().__init__(message)
        self.exit_code = 143 if signal_name == "SIGTERM" else 130


def install_signal_handlers(also: tuple[signal.Signals, ...] = ()) -> None:
    """Make SIGTERM (and the signals ``also``) raise :class:`Terminated` (Python's default is to die
    silently).  Inside a SLURM job the stages add SIGUSR2, the signal before the time limit."""

    def handler(signum, frame):
        raise Terminated()

    for sig in (signal.SIGTERM, *also):
        signal.signal(sig, handler)


def interrupted(exc: KeyboardInterrupt, saved: str) -> Interrupted:
    """The :class:`Interrupted` error for a run stopped by ``exc`` after saving ``saved``."""
    name = "SIGTERM" if isinstance(exc, Terminated) else "SIGINT"
    return Interrupted(f"stopped by {name}; {saved}", name)


def get_rng_state() -> dict[str, Any]:
    """All RNG states as tensors and plain Python values (loadable with weights_only=True)."""
    import numpy as np
    import torch

    np_state = np.random.get_state()
    state = {
        "python": random.getstate(),
        "numpy_keys": torch.from_numpy(np_state[1].astype(np.int64)),
        "numpy_pos": int(np_state[2]),
        "numpy_has_gauss": int(np_state[3]),
        "numpy_gauss": float(np_state[4]),
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    import numpy as np
    import torch

    py = state["python"]
    random.setstate((py[0], tuple(py[1]), py[2]))
    np.random.set_state(
        (
            "MT19937",
            state["numpy_keys"].numpy().astype(np.uint32),
            state["numpy_pos"],
            state["numpy_has_gauss"],
            state["numpy_gauss"],
        )
    )
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


class Progress:
    """Iterate with a tqdm bar on a terminal, or log a line every ``log_every`` seconds."""

    def __init__(self, desc: str, total: int | None = None, log_every: float = 30.0, enabled: bool = True):
        self.desc = desc
        self.total = total
        self.log_every = log_every
        self.enabled = enabled
        self.tty = sys.stderr.isatty()

    def __call__(self, iterable: Iterable) -> Iterator:
        if not self.enabled:
            yield from iterable
            return
        if self.tty:
            from tqdm import tqdm

            yield from tqdm(iterable, desc=self.desc, total=self.total, leave=False, dynamic_ncols=True)
            return
        last = time.monotonic()
        for i, item in enumerate(iterable):
            yield item
            now = time.monotonic()
            if now - last >= self.log_every:
                last = now
                total = f"/{self.total}" if self.total else ""
                log.info("%s: step %d%s", self.desc, i + 1, total)


def exit_code(name: str, run: Callable[[], int | None]) -> int:
    """Run ``run()`` as a command called ``name``: a :class:`UserError` or an interruption
    becomes one line on stderr and its exit code (2; 130 for SIGINT, 143 for SIGTERM)."""
    try:
        return int(run() or 0)
    except UserError as exc:
        print(f"{name}: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except Interrupted as exc:
        print(f"{name}: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt as exc:  # before a run started (or a command without checkpoints)
        signal_name = "SIGTERM" if isinstance(exc, Terminated) else "SIGINT"
        print(f"{name}: stopped by {signal_name} before anything was saved", file=sys.stderr)
        return 143 if signal_name == "SIGTERM" else 130
