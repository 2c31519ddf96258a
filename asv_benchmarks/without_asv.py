"""asv's benchmark rows without asv, for a machine where asv is not installed (the lent GPU machines):

    python -m asv_benchmarks.without_asv OUT.jsonl SECONDS ntk.NTK training.TrainStep ... [--device cuda]

For every parameter combination of each named class whose ``device`` is the one asked for: the benchmark's
``setup`` (which warms up, as every benchmark here does), then each ``time_*`` method timed 3-20 times (up to
4 s), the median written as one JSON line to OUT.jsonl (appended) and printed. A combination whose setup raises
``NotImplementedError`` (asv's skip) is recorded as skipped; one that runs past 45 s as a timeout. Stops starting
new combinations after SECONDS. The asv_benchmarks/README.md "cuda" table was measured this way."""
from __future__ import annotations

import argparse
import importlib
import itertools
import json
import signal
import statistics
import time


class _Timeout(Exception):
    pass


def _alarm(*_):
    raise _Timeout()


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out")
    ap.add_argument("seconds", type=float)
    ap.add_argument("benchmarks", nargs="+", help="module.Class, e.g. ntk.NTK")
    ap.add_argument("--device", default="cuda", choices=["cpu", "cuda"])
    a = ap.parse_args(argv)
    signal.signal(signal.SIGALRM, _alarm)
    deadline = time.time() + a.seconds
    with open(a.out, "a") as out:
        for target in a.benchmarks:
            mod_name, cls_name = target.split(".")
            cls = getattr(importlib.import_module(f"asv_benchmarks.{mod_name}"), cls_name)
            for combo in itertools.product(*cls.params):
                kw = dict(zip(cls.param_names, combo))
                if kw.get("device") != a.device:
                    continue
                if time.time() > deadline:
                    print("deadline reached", flush=True)
                    return 0
                obj, rec = cls(), {"bench": target, **kw}
                signal.alarm(45)
                try:
                    t0 = time.perf_counter()
                    obj.setup(*combo)
                    rec["setup_s"] = time.perf_counter() - t0
                    for meth in [m for m in dir(obj) if m.startswith("time_")]:
                        fn, times = getattr(obj, meth), []
                        t_end = time.perf_counter() + 4.0
                        while len(times) < 3 or (len(times) < 20 and time.perf_counter() < t_end):
                            t0 = time.perf_counter()
                            fn(*combo)
                            times.append(time.perf_counter() - t0)
                        rec[meth], rec[meth + "_n"] = statistics.median(times), len(times)
                except NotImplementedError as e:
                    rec["skipped"] = str(e)
                except _Timeout:
                    rec["error"] = "timeout 45 s"
                except Exception as e:                  # one broken row must not stop the others
                    rec["error"] = repr(e)[:300]
                finally:
                    signal.alarm(0)
                print(json.dumps(rec), flush=True)
                out.write(json.dumps(rec) + "\n")
                out.flush()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
