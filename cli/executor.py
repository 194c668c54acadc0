"""Where independent jobs run: in this process, on local processes, or on a Ray cluster.

``Executor.map(job, inputs)`` runs a pure, picklable function (a module-level function, or
a ``functools.partial`` of one) once per input and yields the results in input order, as
they become available in that order; what a command prints from them is therefore the same
whichever way they ran. The three ways:

- ``--jobs 1``, or a single input: in this process, one after another (nothing pickled);
- ``--jobs N`` (default: the cores this process may use): N local worker processes, forked
  from this one, so that they start with everything it already imported;
- ``--ray ADDRESS``: tasks on the Ray cluster at ADDRESS (``ray.init(address=...)``), one
  CPU each; Ray is the optional extra ``scale`` and is imported only then.

Whatever raises inside a job is a bug of the job (jobs report bad input in their results):
it stops the command with one line naming the input it failed on (exit 70, ``CCL_DEBUG=1``
for the traceback). A worker that dies (killed, out of memory) is reported the same way.
Ctrl-C stops the workers and exits 130. Determinism is the jobs' part: each gets everything
it depends on (seeds included) in its input, and nothing flows between jobs.
"""

from __future__ import annotations

import functools
import os
import signal
import socket
import sys
import traceback
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import click

from cli.console import EXIT_INTERNAL, EXIT_USAGE, MODE, Failure

In = TypeVar("In")
Out = TypeVar("Out")
F = TypeVar("F", bound=Callable[..., Any])

RAY_HINT = "pip install -e '.[scale]' (Ray is an optional extra)"
_CONNECT_SECONDS = 5.0  # how long an unreachable cluster may keep the command waiting


def local_cores() -> int:
    """The cores this process may run on (its CPU affinity, else the machine's)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not on Linux
        return os.cpu_count() or 1


@dataclass(frozen=True)
class _Raised:
    """What a job raised, carried back to the caller as a value (a worker's exception would
    arrive as a traceback of the pool's or Ray's own making)."""

    kind: str
    message: str
    trace: str


@dataclass(frozen=True)
class _Guarded(Generic[In, Out]):
    """``job`` with what it raises turned into a ``_Raised`` result (picklable, so that it
    travels to a worker process or a Ray task)."""

    job: Callable[[In], Out]

    def __call__(self, item: In) -> Out | _Raised:
        try:
            return self.job(item)
        except Exception as exc:  # noqa: BLE001 - reported with its input by the caller
            return _Raised(type(exc).__name__, str(exc), traceback.format_exc())


def _call(guarded: _Guarded[In, Out], item: In) -> Out | _Raised:
    """A Ray task: Ray runs functions (not callable objects)."""
    return guarded(item)


def _job_failed(item: Any, raised: _Raised) -> Failure:
    if os.environ.get("CCL_DEBUG"):
        print(raised.trace, file=sys.stderr, flush=True)
    return Failure(f"a job failed on {_shown(item)}: {raised.kind}: {raised.message}",
                   "this is a bug; rerun with CCL_DEBUG=1 for the traceback (or --jobs 1 "
                   "to run it in this process)", EXIT_INTERNAL)


def _shown(item: Any) -> str:
    text = repr(item)
    return text if len(text) <= 200 else text[:197] + "..."


def _start_worker() -> None:
    # Ctrl-C reaches the whole process group: the workers leave it to the parent, which
    # stops them, so that no worker prints a traceback of its own. Workers draw no
    # progress and print no notes: the parent reports.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    MODE.quiet = True


class Executor:
    """Maps jobs over inputs: serially in this process, on local processes or on Ray."""

    def __init__(self, jobs: int | None = None, ray_address: str | None = None) -> None:
        self.jobs = jobs if jobs is not None else local_cores()
        self.ray_address = ray_address
        self.asked = jobs is not None or ray_address is not None  # not just the default

    def describe(self, n: int) -> str:
        """How ``n`` inputs would run, for a note or a benchmark's context."""
        if self.ray_address is not None:
            return f"ray at {self.ray_address}"
        workers = self.workers(n)
        return "serial" if workers == 1 else f"{workers} local processes"

    def workers(self, n: int) -> int:
        """Local processes used for ``n`` inputs (1: in this process)."""
        return max(1, min(self.jobs, n))

    def map(self, job: Callable[[In], Out], inputs: Iterable[In]) -> Iterator[Out]:
        """``job`` applied to each of ``inputs``, in input order."""
        items = list(inputs)
        if self.ray_address is not None:
            return self._on_ray(job, items)
        if self.workers(len(items)) == 1:
            return self._here(job, items)
        return self._on_processes(job, items)

    @staticmethod
    def _here(job: Callable[[In], Out], items: Sequence[In]) -> Iterator[Out]:
        guarded = _Guarded(job)
        for item in items:
            result = guarded(item)
            if isinstance(result, _Raised):
                raise _job_failed(item, result)
            yield result

    def _on_processes(self, job: Callable[[In], Out], items: Sequence[In]) -> Iterator[Out]:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor
        from concurrent.futures.process import BrokenProcessPool

        # fork: the workers start with the modules already imported here (Z3, textX...);
        # the pool is made and fed before the caller draws any progress (no thread to fork)
        pool = ProcessPoolExecutor(self.workers(len(items)),
                                   mp_context=multiprocessing.get_context("fork"),
                                   initializer=_start_worker)
        guarded = _Guarded(job)
        futures = [pool.submit(guarded, item) for item in items]

        def results() -> Iterator[Out]:
            done = False
            try:
                for item, future in zip(items, futures, strict=True):
                    try:
                        result = future.result()
                    except BrokenProcessPool:
                        raise Failure(f"a worker process died while running {_shown(item)} "
                                      "(killed, or out of memory)", "run fewer jobs at once "
                                      "(--jobs), or give the workers more memory",
                                      EXIT_INTERNAL) from None
                    if isinstance(result, _Raised):
                        raise _job_failed(item, result)
                    yield result
                done = True
            finally:  # failed or interrupted: no worker outlives the command
                if not done:
                    for process in list((getattr(pool, "_processes", None) or {}).values()):
                        if process.is_alive():
                            process.terminate()
                pool.shutdown(wait=True, cancel_futures=True)

        return results()

    def _on_ray(self, job: Callable[[In], Out], items: Sequence[In]) -> Iterator[Out]:
        ray = connect_ray(self.ray_address or "auto")
        remote = ray.remote(num_cpus=1, max_retries=0)(_call)
        guarded = ray.put(_Guarded(job))  # shipped once, shared by the tasks
        refs = [remote.remote(guarded, item) for item in items]

        def results() -> Iterator[Out]:
            done = False
            try:
                for item, ref in zip(items, refs, strict=True):
                    try:
                        result = ray.get(ref)
                    except ray.exceptions.RayError as exc:  # a worker or node died
                        raise Failure(f"the Ray task for {_shown(item)} failed: "
                                      f"{type(exc).__name__}", "see the cluster's logs "
                                      "(`ray status`, the dashboard)", EXIT_INTERNAL) from None
                    if isinstance(result, _Raised):
                        raise _job_failed(item, result)
                    yield result
                done = True
            finally:
                if not done:
                    for ref in refs:
                        try:
                            ray.cancel(ref, force=True)
                        except Exception:  # noqa: BLE001, S110 - finished already
                            pass
                ray.shutdown()

        return results()


def connect_ray(address: str) -> Any:
    """``ray``, connected to the cluster at ``address`` (``host:port`` of its head, as
    ``ray start --head`` prints it, ``ray://host:port`` for a Ray client, or ``auto``).
    Missing Ray or an unreachable address is a usage failure (exit 2) with a hint."""
    try:
        import ray
    except ImportError:
        raise Failure("--ray needs Ray, which is not installed", RAY_HINT, EXIT_USAGE,
                      "--ray") from None
    if address != "auto":
        _reachable(address)
    import logging

    try:
        ray.init(address=address, logging_level=logging.ERROR, log_to_driver=False,
                 configure_logging=True)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        raise Failure(f"cannot join the Ray cluster at {address}: {exc}".splitlines()[0],
                      "start it with `ray start --head` and give the address it prints",
                      EXIT_USAGE, "--ray") from None
    return ray


def _reachable(address: str) -> None:
    """Fail at once when nothing listens at ``address`` (Ray itself would retry for a
    minute, then raise)."""
    hostport = address.removeprefix("ray://")
    host, _, port = hostport.rpartition(":")
    if not host or not port.isdigit():
        raise Failure(f"--ray {address}: not a cluster address", "give HOST:PORT of the "
                      "cluster's head (as `ray start --head` prints it), ray://HOST:PORT, "
                      "or auto", EXIT_USAGE, "--ray")
    try:
        with socket.create_connection((host, int(port)), timeout=_CONNECT_SECONDS):
            pass
    except OSError as exc:
        raise Failure(f"cannot reach the Ray cluster at {address}: {exc.strerror or exc}",
                      "check the address, or start a cluster with `ray start --head`",
                      EXIT_USAGE, "--ray") from None


def executor_options(command: F) -> F:
    """``--jobs N`` and ``--ray ADDRESS``, passed to the command as one ``executor``."""

    @functools.wraps(command)
    def with_executor(*args: Any, jobs: int | None, ray_address: str | None,
                      **kwargs: Any) -> Any:
        return command(*args, executor=Executor(jobs, ray_address), **kwargs)

    wrapped: Any = with_executor
    wrapped = click.option(
        "--ray", "ray_address", metavar="ADDRESS",
        help="Run the jobs on the Ray cluster at ADDRESS (HOST:PORT of its head, "
             "ray://HOST:PORT, or auto); needs the extra `scale`.")(wrapped)
    wrapped = click.option(
        "-j", "--jobs", type=click.IntRange(min=1), default=None,
        help="Local processes to run the jobs on (default: the cores; 1: one after "
             "another, in this process).")(wrapped)
    return wrapped  # type: ignore[no-any-return]
