"""A stand-in for `python -m engine.worker`, for GUI tests of starting, failing and stopping.

    python fake_worker.py MODE RUN_DIR STORE

exit7     prints a line and exits with code 7 without registering (a worker that cannot start)
crash     registers, then records an error with a traceback and exits 1
obedient  registers and stops (status stopped, exit 3) when a stop command arrives
stubborn  registers and ignores stop commands and SIGTERM: only a kill ends it
"""

import os
import signal
import sys
import time
import traceback

import psutil

from engine.store import RunStore

mode, run_dir, store_path = sys.argv[1:4]
sys.stdout.write(f"fake worker {mode} starting\n")
sys.stdout.flush()
if mode == "exit7":
    sys.exit(7)
store = RunStore(store_path)
run = store.find_run_by_dir(run_dir)
store.update_run(run["id"], status="running", pid=os.getpid(), pid_started=psutil.Process().create_time())
store.log_event(run["id"], "info", f"fake worker {mode} started")
if mode == "crash":
    try:
        raise ValueError("boom")
    except ValueError as exc:
        detail = "".join(traceback.format_exception(exc))
    store.update_run(run["id"], status="failed", error_type="ValueError", error_message="ValueError: boom",
                     error_traceback=detail, finished=time.time())
    sys.exit(1)
if mode == "stubborn":
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
deadline = time.time() + 60
while time.time() < deadline:
    if mode == "obedient" and store.take_command(run["id"], "stop"):
        store.update_run(run["id"], status="stopped", finished=time.time())
        sys.exit(3)
    time.sleep(0.1)
sys.exit(0)
