"""DataLoader workers that end with the process that started them.

When the main process is killed (SIGKILL, or SIGTERM, whose default action skips all clean-up),
PyTorch's workers notice only when they next poll their parent (every 5 s), and a worker that still
has results to send blocks at exit on its full result pipe, for good: the set writer's workers,
which send whole images through that pipe, stayed orphaned for minutes. :func:`exit_with_parent`
has the Linux kernel kill a worker as soon as its parent ends.

Workers also ignore SIGTERM. SLURM sends it to every process of a job, workers included; a worker
that died of it would make the main process fail at once ("DataLoader worker is killed by signal:
Terminated") instead of saving a checkpoint at its next step. The main process decides when to
stop, and its workers end with it.
"""

from __future__ import annotations

import ctypes
import multiprocessing
import os
import signal
import sys

__all__ = ["exit_with_parent"]

PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>


def exit_with_parent(worker_id: int = 0) -> None:
    """``worker_init_fn`` for a DataLoader: ignore SIGTERM, and SIGKILL this worker when its
    parent ends (Linux only; a no-op elsewhere). If the parent is already gone, exit at once.

    The kernel ties the signal to the *thread* that started the worker, so iterate the loader in a
    thread that lives as long as the loader (the main thread, as Lightning and hgtrain do).
    """
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    if not sys.platform.startswith("linux"):
        return
    parent = os.getppid()
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_PDEATHSIG, ctypes.c_ulong(signal.SIGKILL)) != 0:
        error = ctypes.get_errno()
        raise OSError(error, f"prctl(PR_SET_PDEATHSIG): {os.strerror(error)}")
    creator = multiprocessing.parent_process()
    if os.getppid() != parent or (creator is not None and not creator.is_alive()):
        os._exit(1)
