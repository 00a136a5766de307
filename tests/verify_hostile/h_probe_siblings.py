"""Hostile: looks for the other files verified in parallel and tries to read their memory and environment."""
import os
import time


def answer():
    time.sleep(8)
    out = []
    try:
        pids = os.listdir("/proc")
    except OSError as exc:
        pids = []
        out.append(f"listing /proc: {exc.strerror}")
    for d in pids:
        if d.isdigit() and int(d) != os.getpid():
            try:
                cmd = open(f"/proc/{d}/cmdline", "rb").read()
            except OSError:
                continue
            if b"ddpm.verify.child" in cmd:
                for what in ("mem", "environ"):
                    try:
                        open(f"/proc/{d}/{what}", "rb").read(1)
                        out.append(f"{d}:{what}:OPEN")
                    except OSError as e:
                        out.append(f"{d}:{what}:{e.strerror}")
    print("PROBE " + " ".join(out))
    return 0
