"""Running test code in threads released at once, for the races that need PostgreSQL's row locks."""

import threading

from django.db import connection


def run_at_once(*calls, timeout=30):
    """Run each zero-argument callable in its own thread, all released together by a barrier.

    Returns their results in order. An exception in a thread would vanish with the thread, so
    it fails the test here instead. Each thread opens its own database connection and closes it.
    """
    barrier = threading.Barrier(len(calls))
    results = [None] * len(calls)
    failures = []

    def run(index, call):
        try:
            barrier.wait(timeout=10)
            results[index] = call()
        except Exception as exc:  # reported below, in the test's own thread
            failures.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(index, call)) for index, call in enumerate(calls)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=timeout)
    assert not failures, failures
    return results
