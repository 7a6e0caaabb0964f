"""Holds a training right after global step ``$PAUSE_PROBE_STEP`` until the file ``$PAUSE_PROBE_RELEASE`` exists.

Once held it creates ``$PAUSE_PROBE_HELD``. The test then sends its signal and creates the release file: the signal
is pending before the release can be seen, so edflow stops after exactly that step, whatever the machine's load.
Without ``PAUSE_PROBE_STEP`` in the environment (the resumed and the reference runs) it does nothing.
"""
import os
import time

from edcore import hookimpl

HOLD_LIMIT_S = 300


@hookimpl
def edflow_after_step(global_step):
    if str(global_step) != os.environ.get("PAUSE_PROBE_STEP"):
        return
    open(os.environ["PAUSE_PROBE_HELD"], "w").close()
    deadline = time.monotonic() + HOLD_LIMIT_S
    while not os.path.exists(os.environ["PAUSE_PROBE_RELEASE"]) and time.monotonic() < deadline:
        time.sleep(0.01)
