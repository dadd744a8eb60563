"""Runs every test_* function of the test_*.py modules in this folder (or those named on the
command line as module or module:function) and prints "N passed, N failed" as its last line."""
import importlib
import os
import sys
import time
import traceback

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    wanted = sys.argv[1:]
    modules = sorted(f[:-3] for f in os.listdir(here) if f.startswith("test_") and f.endswith(".py"))
    passed = failed = 0
    for name in modules:
        mod = importlib.import_module(name)
        for fname in sorted(n for n in dir(mod) if n.startswith("test_")):
            key = f"{name}:{fname}"
            if wanted and not any(w == name or w == key for w in wanted):
                continue
            t0 = time.time()
            try:
                getattr(mod, fname)()
                passed += 1
                print(f"ok   {key} ({time.time() - t0:.1f}s)", flush=True)
            except Exception:
                failed += 1
                print(f"FAIL {key} ({time.time() - t0:.1f}s)", flush=True)
                traceback.print_exc()
    print(f"blackbox: {passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
