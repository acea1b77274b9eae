"""Worker processes for the work a task spreads over the machine's cores (lawyer letters drawn,
mail sent over several SMTP sessions)."""
from __future__ import annotations

import logging
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context

log = logging.getLogger(__name__)


def start_pool(workers: int, initializer, initargs: tuple = (), what: str = "workers"
               ) -> ProcessPoolExecutor | None:
    """``workers`` processes, each started by ``initializer(*initargs)``, or None (the caller
    works in its own process) when this process may not start children, e.g. a daemonic worker."""
    # spawn, not fork: the Airflow task process has threads, and forking them is unsafe.
    pool = ProcessPoolExecutor(workers, mp_context=get_context("spawn"), initializer=initializer,
                               initargs=initargs)
    try:  # every process started and initialised now (submitted at once, each starts its own)
        for started in [pool.submit(int) for _ in range(workers)]:
            started.result()
    except Exception as exc:  # noqa: BLE001 - any failure to start means: work here instead
        pool.shutdown(cancel_futures=True)
        log.warning("%s: no worker processes (%r); working in this process", what, exc)
        return None
    return pool
