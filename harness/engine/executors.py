"""Executors: where a sweep's tasks are measured.

An executor is one small interface: :meth:`Executor.results` takes tasks and yields ``(task, result, seconds)``
as each finishes, in any order. Everything else is shared (:meth:`Executor.run`): the points already in the store
are skipped, a progress bar counts the rest, and each point is committed to the SQLite store by this (the
driver) process the moment its result arrives, so a sweep interrupted anywhere (Ctrl-C, a killed worker, a lost
cluster) keeps every finished point and resumes where it stopped.

- :class:`LocalExecutor` (``--workers N``, default all cores): ``workers=1`` measures in this process, in order;
  more runs the tasks in that many spawned worker processes, one intra-op thread each.
- :class:`RayExecutor` (``--executor ray [--address ADDR]``): each task is a Ray task asking for one CPU (one GPU
  with ``--device cuda``) on an existing Ray cluster, or on a local one started for the sweep.

Adding another (Dask, a batch queue): subclass :class:`Executor`, implement ``results`` (submit each group of
:func:`group_tasks`' JSON to :func:`measure_batch`, or a single task's to :func:`measure_task`; yield as they
complete) and ``close``, and add it to :func:`make_executor`. A claim with ``seed_batch`` > 1 measures a group
of seeds in one call, so its groups must not be split. A task is
plain JSON (:meth:`Task.to_json`); a worker needs the package installed (and a user's claim files where
``Task.source`` says), nothing else.
"""
from __future__ import annotations

import os
import time
from typing import Iterable, Iterator

from ..errors import HarnessError

ONE_THREAD = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1",
              "XLA_FLAGS": "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1",
              # several workers may share one GPU: JAX must not grab 75% of its memory in each of them
              "XLA_PYTHON_CLIENT_PREALLOCATE": "false"}


# JAX's persistent compilation cache, shared by the workers of a sweep (and by later sweeps): a worker that meets a
# program another worker (or an earlier run) compiled loads it instead of compiling it again. The JAX points of six
# claims (2866) were bitwise equal with and without it; on the 2-core machine that sweep took 100 s without it, 86 s
# with an empty cache and 46 s with a filled one (a fresh clone's whole `claims run --all`: within the machine's
# run-to-run spread).
JAX_CACHE_VARS = {"JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES": "-1", "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0"}


def use_jax_compilation_cache(directory) -> str | None:
    """Point JAX's persistent compilation cache at ``directory`` for this process and the workers it starts
    (environment variables, read when a worker imports JAX), caching every program however small or quick to
    compile. ``CLAIMS_JAX_CACHE=off`` leaves it off, ``CLAIMS_JAX_CACHE=DIR`` chooses the directory, and a
    ``JAX_COMPILATION_CACHE_DIR`` the user set is kept as it is. Returns the directory in use, or ``None``."""
    import sys
    setting = os.environ.get("CLAIMS_JAX_CACHE", "").strip()
    if setting.lower() == "off":
        return None
    if os.environ.get("JAX_COMPILATION_CACHE_DIR"):
        return os.environ["JAX_COMPILATION_CACHE_DIR"]
    directory = str(setting or directory)
    os.environ["JAX_COMPILATION_CACHE_DIR"] = directory
    for var, value in JAX_CACHE_VARS.items():
        os.environ.setdefault(var, value)
    if "jax" in sys.modules:                    # already imported: its configuration read the variables before
        jax = sys.modules["jax"]
        jax.config.update("jax_compilation_cache_dir", directory)
        jax.config.update("jax_persistent_cache_min_entry_size_bytes",
                          int(os.environ["JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES"]))
        jax.config.update("jax_persistent_cache_min_compile_time_secs",
                          float(os.environ["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"]))
    return directory


# glibc's malloc hands every freed block larger than its mmap threshold (128 KiB, adjusted up to 32 MiB as it
# goes) back to the kernel and maps fresh pages for the next one, which are zero-filled on first touch: a float64
# 2048 x 2048 weight (32 MiB) is allocated anew by every step of a training loop, and the page faults cost as much
# as the matmuls. ntk-drift's measure (width 2048, depth 2, 100 steps with the NTK recorded at each) took 5.2 s on
# torch and 2.4 s on JAX with the defaults, 2.7 s and 1.8 s with these; the numbers are bit-for-bit the same (only
# where freed memory goes changes). Freed memory stays in the process for reuse, up to TRIM above what is in use.
MALLOC_MMAP_THRESHOLD = 64 << 20        # blocks up to 64 MiB come from the heap and are reused there
MALLOC_TRIM_THRESHOLD = 1 << 30         # the heap's free top is returned to the kernel beyond 1 GiB


def reuse_freed_memory() -> bool:
    """Keep freed memory for reuse in this process (glibc's ``mallopt``: ``M_MMAP_THRESHOLD`` 64 MiB,
    ``M_TRIM_THRESHOLD`` 1 GiB; see above). Called by the CLI, its worker processes and the test suite, which
    measure many points in one process; ``CLAIMS_MALLOC=default`` leaves glibc's defaults. Returns whether it was
    applied (``False`` off Linux/glibc)."""
    import sys
    if os.environ.get("CLAIMS_MALLOC", "").strip().lower() == "default" or not sys.platform.startswith("linux"):
        return False
    try:
        import ctypes
        mallopt = ctypes.CDLL("libc.so.6").mallopt
    except (OSError, AttributeError):      # not glibc (musl, ...): its defaults stay
        return False
    M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3
    return bool(mallopt(M_MMAP_THRESHOLD, MALLOC_MMAP_THRESHOLD) and mallopt(M_TRIM_THRESHOLD, MALLOC_TRIM_THRESHOLD))


def one_thread_per_worker(parent: int | None = None):
    """Worker initialiser: one intra-op thread per process. The workers are the parallelism; with more threads,
    torch's OpenMP pools spin against each other on a small machine and small matmuls slow down many-fold.
    With ``parent`` (the driver's pid), the worker also exits when the driver dies, even by SIGKILL, instead of
    lingering as an orphan."""
    reuse_freed_memory()
    for var, value in ONE_THREAD.items():
        if var == "XLA_FLAGS":
            value = (os.environ.get(var, "") + " " + value).strip()
        os.environ[var] = value
    if parent is not None:
        import threading

        def watch():
            while os.getppid() == parent:
                time.sleep(0.5)
            os._exit(1)
        threading.Thread(target=watch, daemon=True, name="exit-with-driver").start()


def measure_task(task_json: str):
    """Measure one task given as JSON (what a worker runs): ``(result, seconds)``."""
    from .sweep import Task
    task = Task.from_json(task_json)
    t0 = time.perf_counter()
    result = task.run()
    return result, time.perf_counter() - t0


def measure_batch(task_jsons: list) -> list:
    """Measure tasks (JSON) that differ only in their seed in one batched call of their claim's measure
    (``Claim.seed_batch`` > 1): ``[(result, seconds), ...]`` in order, each point charged an equal share of the
    call's time."""
    from .sweep import Task, run_batch
    tasks = [Task.from_json(j) for j in task_jsons]
    t0 = time.perf_counter()
    results = run_batch(tasks)
    share = (time.perf_counter() - t0) / max(len(tasks), 1)
    return [(r, share) for r in results]


def _measured(jobs: list, batched: bool):
    """``(index, result, seconds)`` for ``jobs`` = ``[(index, task_json), ...]``: one batched call, or one task at
    a time (each yielded as it finishes)."""
    if batched:
        for (index, _), (result, seconds) in zip(jobs, measure_batch([j for _, j in jobs])):
            yield index, result, seconds
        return
    for index, task_json in jobs:
        result, seconds = measure_task(task_json)
        yield index, result, seconds


class Executor:
    """Base class: subclasses implement :meth:`results` (and :meth:`close` when they hold resources)."""
    name = "executor"

    def __init__(self, progress: bool = True):
        self.progress = progress

    def results(self, tasks: list) -> Iterator[tuple]:
        """Measure every task; yield ``(task, result, seconds)`` as each finishes (any order)."""
        raise NotImplementedError

    def close(self):
        """Release workers (a pool, a cluster this executor started)."""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def describe(self) -> str:
        """Where the points are measured, as the CLI prints it after "measuring" ("on ...", "in ...")."""
        return f"on {self.name}"

    def pipeline(self, store, label: str = "") -> Pipeline:
        """Measure tasks submitted as the sweep goes (see :class:`Pipeline`); by default one stage at a time."""
        return Pipeline(self, store, label)

    def run(self, tasks: Iterable, store, label: str = "") -> dict:
        """Measure the tasks the store lacks, committing each point as it arrives. Returns counts and seconds."""
        tasks = list(tasks)
        todo = [t for t in tasks if not store.has(t)]
        stats = {"total": len(tasks), "cached": len(tasks) - len(todo), "measured": 0, "seconds": 0.0}
        if not todo:
            return stats
        bar = None
        if self.progress:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
            bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                           TimeRemainingColumn(), transient=True)
            bar.start()
            job = bar.add_task(label or "sweep", total=len(todo))
        try:
            for task, result, seconds in self.results(todo):
                store.put(task, result, seconds)
                stats["measured"] += 1
                stats["seconds"] += seconds
                if bar is not None:
                    bar.advance(job)
        finally:
            if bar is not None:
                bar.stop()
        return stats


class Pipeline:
    """Tasks submitted while earlier ones are still being measured (a sequential design adds a variant's next look
    as soon as its current look is in, without waiting for the rest of the sweep). :meth:`submit` queues tasks the
    store lacks; :meth:`wait` blocks until some have been measured and committed, and returns them ([] when nothing
    is pending). This base form is synchronous (what an executor without its own pipeline gets): ``wait``
    measures everything queued with :meth:`Executor.run`, as one stage."""

    def __init__(self, executor: "Executor", store, label: str = ""):
        self.executor, self.store, self.label = executor, store, label
        self.queued: list = []
        self._keys: set = set()
        self.measured = 0

    def _new(self, tasks) -> list:
        from .store import point_key
        out = []
        for t in tasks:
            k = point_key(t)
            if k not in self._keys and not self.store.has(t):
                self._keys.add(k)
                out.append(t)
        return out

    def submit(self, tasks) -> None:
        self.queued += self._new(tasks)

    def wait(self) -> list:
        done, self.queued = self.queued, []
        if done:
            self.executor.run(done, self.store, self.label)
            self.measured += len(done)
        return done

    def close(self) -> None:
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class _LocalPipeline(Pipeline):
    """The local executor's pipeline: in this process one group at a time, or on the worker pool, streaming each
    finished point back (committed by this process as it arrives), with a progress bar whose total grows as
    tasks are submitted."""

    def __init__(self, executor: "LocalExecutor", store, label: str = ""):
        super().__init__(executor, store, label)
        self._groups: list = []             # in process: groups not yet measured
        self._futures: dict = {}            # on the pool: future -> task indices
        self._tasks: list = []              # every task submitted, by index
        self._left = 0
        self._bar = None
        if executor.progress:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
            self._bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                 TimeRemainingColumn(), transient=True)
            self._bar.start()
            self._job = self._bar.add_task(label or "sweep", total=0)
        self._pooled = executor.workers > 1
        if self._pooled:
            executor._calls = getattr(executor, "_calls", 0) + 1
            self._call = executor._calls

    def submit(self, tasks) -> None:
        new = self._new(tasks)
        if not new:
            return
        base = len(self._tasks)
        self._tasks += new
        self._left += len(new)
        if self._bar is not None:
            self._bar.update(self._job, total=len(self._tasks))
        for idx, batched in group_tasks(new):
            idx = [base + i for i in idx]
            if self._pooled:
                pool = self.executor._get_pool()
                f = pool.submit(measure_group, self._call, [(i, self._tasks[i].to_json()) for i in idx], batched)
                self._futures[f] = idx
            else:
                self._groups.append((idx, batched))

    def _got(self, index, result, seconds) -> object:
        task = self._tasks[index]
        self.store.put(task, result, seconds)
        self._left -= 1
        self.measured += 1
        if self._bar is not None:
            self._bar.advance(self._job)
        return task

    def wait(self) -> list:
        if not self._left:
            return []
        if not self._pooled:
            idx, batched = self._groups.pop(0)
            return [self._got(i, r, sec) for i, r, sec in _measured([(i, self._tasks[i].to_json()) for i in idx],
                                                                   batched)]
        import queue as queue_mod
        from concurrent.futures.process import BrokenProcessPool
        points = self.executor._points
        while True:
            try:
                got_call, index, result, seconds = points.get(timeout=0.2)
            except queue_mod.Empty:
                for f, idx in self._futures.items():
                    if f.done() and f.exception() is not None:
                        err = f.exception()
                        if isinstance(err, BrokenProcessPool):
                            raise HarnessError(f"a worker process died while measuring {self._tasks[idx[0]].label()} "
                                               f"or a point after it; every finished point is stored: rerun to "
                                               f"resume") from None
                        if isinstance(err, HarnessError):
                            raise HarnessError(str(err)) from None
                        raise err
                continue
            if got_call != self._call:
                continue
            done = [self._got(index, result, seconds)]
            while True:                     # whatever else has arrived meanwhile
                try:
                    got_call, index, result, seconds = points.get_nowait()
                except queue_mod.Empty:
                    return done
                if got_call == self._call:
                    done.append(self._got(index, result, seconds))

    def close(self) -> None:
        for f in self._futures:
            f.cancel()
        if self._bar is not None:
            self._bar.stop()


_POINTS = None          # in a pool worker: the queue on which measure_group streams each finished point
GROUP_SIZE = 8         # at most this many points of one setting (claim, case, variant, scale, backend) per job


def _pool_worker_init(parent: int, points) -> None:
    global _POINTS
    _POINTS = points
    one_thread_per_worker(parent)


def measure_group(call: int, jobs: list, batched: bool = False) -> int:
    """Measure ``[(index, task_json), ...]`` in one worker (in order, or in one call when ``batched``), putting
    ``(call, index, result, seconds)`` on the pool's queue as each point finishes (so the driver commits it at
    once). The points of a group share a setting, so what the worker compiles for the first is reused by the
    rest."""
    for index, result, seconds in _measured(jobs, batched):
        _POINTS.put((call, index, result, seconds))
    return len(jobs)


def group_tasks(tasks: list, size: int = GROUP_SIZE) -> list:
    """``(indices, batched)`` of ``tasks`` grouped by what their compiled kernels depend on (all but the seed), in
    plan order, each group cut into chunks of at most ``size`` tasks, or of the claim's ``seed_batch`` for a claim
    that measures seeds in one batched call (``batched`` True)."""
    from .sweep import batch_key, seed_batch_of
    groups: dict = {}
    for i, t in enumerate(tasks):
        groups.setdefault(batch_key(t), []).append(i)
    out = []
    for idx in groups.values():
        batch = seed_batch_of(tasks[idx[0]])
        step = batch if batch > 1 else size
        out += [(idx[k:k + step], batch > 1) for k in range(0, len(idx), step)]
    return out


class LocalExecutor(Executor):
    """All local cores by default. ``workers=1``: in this process, in order (what a test or a debugger wants).
    ``workers>1``: a pool of spawned processes, one intra-op thread each, started on first use and kept until
    :meth:`close`, so the frameworks are imported once per worker. Points that share a setting (all but the seed)
    go to one worker together, up to :data:`GROUP_SIZE` at a time, so a kernel is compiled once rather than in
    every worker; each point still streams back to the driver, which commits it, the moment it finishes."""
    name = "local"

    def __init__(self, workers: int | None = 1, progress: bool = True):
        super().__init__(progress)
        workers = (os.cpu_count() or 1) if workers is None else int(workers)
        if workers < 1:
            raise HarnessError(f"--workers must be at least 1, got {workers}")
        self.workers = workers
        self._pool = None

    def describe(self) -> str:
        return "in this process" if self.workers == 1 else f"on {self.workers} local worker processes"

    def pipeline(self, store, label: str = "") -> Pipeline:
        return _LocalPipeline(self, store, label)

    def _get_pool(self):
        if self._pool is None:
            import multiprocessing
            from concurrent.futures import ProcessPoolExecutor
            ctx = multiprocessing.get_context("spawn")
            self._points = ctx.Queue()
            self._pool = ProcessPoolExecutor(self.workers, mp_context=ctx, initializer=_pool_worker_init,
                                             initargs=(os.getpid(), self._points))
        return self._pool

    def results(self, tasks):
        if self.workers == 1 or len(tasks) == 1:
            for idx, batched in group_tasks(tasks):
                for index, result, seconds in _measured([(i, tasks[i].to_json()) for i in idx], batched):
                    yield tasks[index], result, seconds
            return
        import queue as queue_mod
        from concurrent.futures.process import BrokenProcessPool
        pool = self._get_pool()
        self._calls = getattr(self, "_calls", 0) + 1       # points of an earlier, interrupted call are ignored
        call = self._calls
        futures = {pool.submit(measure_group, call, [(i, tasks[i].to_json()) for i in idx], batched): idx
                   for idx, batched in group_tasks(tasks)}
        remaining = len(tasks)
        try:
            while remaining:
                try:
                    got_call, index, result, seconds = self._points.get(timeout=0.2)
                except queue_mod.Empty:
                    for f, idx in futures.items():
                        if f.done() and f.exception() is not None:
                            err = f.exception()
                            if isinstance(err, BrokenProcessPool):
                                raise HarnessError(f"a worker process died while measuring "
                                                   f"{tasks[idx[0]].label()} or a point after it; every finished "
                                                   f"point is stored: rerun to resume") from None
                            if isinstance(err, HarnessError):
                                raise HarnessError(str(err)) from None
                            raise err
                    continue
                if got_call != call:
                    continue
                remaining -= 1
                yield tasks[index], result, seconds
        finally:
            for f in futures:
                f.cancel()

    def close(self):
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None


class RayExecutor(Executor):
    """Tasks as Ray tasks on a cluster: one CPU each (one GPU each for cuda tasks). ``address`` connects to a
    running cluster (``ray start --head`` / ``auto``); without it a local cluster of ``num_cpus`` is started for
    the sweep and stopped by :meth:`close`. Results come back to this process, which alone writes the store.
    A task whose worker dies is retried up to ``max_retries`` times by Ray; past that the sweep stops with a
    one-line error and every finished point stays stored."""
    name = "ray"

    def __init__(self, address: str | None = None, num_cpus: int | None = None, progress: bool = True,
                 max_retries: int = 3, env: dict | None = None):
        super().__init__(progress)
        try:
            import ray  # noqa: F401
        except ImportError:
            raise HarnessError("--executor ray needs Ray: pip install 'dltheory-suite[ray]'") from None
        self.address, self.num_cpus, self.max_retries = address, num_cpus, max_retries
        self.env = dict(env or {})          # extra environment variables for the tasks' workers
        self._started = False

    def describe(self) -> str:
        return f"on ray ({self.address or 'a local cluster'})"

    def _connect(self):
        import ray
        if ray.is_initialized():
            return ray
        env = dict(ONE_THREAD)
        for var in ("CLAIMS_PATH", "PYTHONPATH", "JAX_COMPILATION_CACHE_DIR", *JAX_CACHE_VARS):
            if os.environ.get(var):
                env[var] = os.environ[var]
        kwargs = {"address": self.address} if self.address else {"num_cpus": self.num_cpus}
        try:
            ray.init(**kwargs, include_dashboard=False, log_to_driver=False, configure_logging=False,
                     runtime_env={"env_vars": env})
        except (ConnectionError, RuntimeError, ValueError) as e:
            raise HarnessError(f"cannot start or reach a Ray cluster at {self.address or 'a local address'}: "
                               f"{str(e).splitlines()[0] if str(e) else type(e).__name__}") from None
        self._started = True
        return ray

    def results(self, tasks):
        ray = self._connect()
        remote = ray.remote(measure_batch)
        refs = {}
        for idx, _ in group_tasks(tasks, size=1):         # one task per Ray task, or one seed batch
            t = tasks[idx[0]]
            gpu = 1 if t.device == "cuda" else 0
            opts = {"num_cpus": 0 if gpu else 1, "num_gpus": gpu, "max_retries": self.max_retries}
            if self.env:
                opts["runtime_env"] = {"env_vars": {**ONE_THREAD, **self.env}}
            refs[remote.options(**opts).remote([tasks[i].to_json() for i in idx])] = [tasks[i] for i in idx]
        pending = list(refs)
        try:
            while pending:
                done, pending = ray.wait(pending, num_returns=1)
                for ref in done:
                    try:
                        measured = ray.get(ref)
                    except ray.exceptions.RayTaskError as e:
                        cause = e.cause if getattr(e, "cause", None) is not None else e
                        if isinstance(cause, HarnessError):
                            raise HarnessError(str(cause)) from None
                        raise HarnessError(f"{refs[ref][0].label()} failed on the cluster: "
                                           f"{type(cause).__name__}: {str(cause).splitlines()[0] if str(cause) else ''}"
                                           ) from None
                    except ray.exceptions.RayError as e:
                        raise HarnessError(f"{refs[ref][0].label()}: the Ray worker died ({type(e).__name__}) after "
                                           f"{self.max_retries} retries; every finished point is stored: rerun to "
                                           f"resume") from None
                    for task, (result, seconds) in zip(refs[ref], measured):
                        yield task, result, seconds
        finally:
            for ref in pending:
                try:
                    ray.cancel(ref, force=True)
                except Exception:      # noqa: BLE001 - best effort on the way out
                    pass

    def close(self):
        if self._started:
            import ray
            ray.shutdown()
            self._started = False


EXECUTORS = ("local", "ray")


def make_executor(name: str = "local", workers: int | None = None, address: str | None = None,
                  progress: bool = True) -> Executor:
    """The executor a command asked for: ``local`` (``workers``, default all cores) or ``ray`` (``address``;
    ``workers`` sizes a local cluster when no address is given)."""
    if name == "local":
        if address:
            raise HarnessError("--address needs --executor ray")
        return LocalExecutor(workers, progress)
    if name == "ray":
        return RayExecutor(address, workers, progress)
    raise HarnessError(f"unknown executor {name!r}; choose {' or '.join(EXECUTORS)}")
