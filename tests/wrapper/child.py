"""Programs for the wrapper to supervise, one behaviour each: `child.py MODE LOG [ARGS]`.

Every mode appends "start <pid> <monotonic time>" to LOG when it starts, so a test
can count starts and order them against its own writes (CLOCK_MONOTONIC is system-wide).
"""

import os
import signal
import socket
import sys
import time


def log(path: str, line: str) -> None:
    with open(path, "a") as f:
        f.write(line + "\n")


def main() -> None:
    mode, path = sys.argv[1], sys.argv[2]
    log(path, f"start {os.getpid()} {time.monotonic():.6f}")

    if mode == "sleep":  # default dispositions: dies at the first TERM
        pass
    elif mode == "trap-term":  # a well-behaved server: cleans up, exits 0
        def stop(signum, frame):
            log(path, "term")
            time.sleep(float(sys.argv[3]) if len(sys.argv) > 3 else 0)
            sys.exit(0)
        signal.signal(signal.SIGTERM, stop)
    elif mode == "ignore-term":  # the program entr waits for forever
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    elif mode == "signals":  # print every signal received, one number a line
        def echo(signum, frame):
            print(signum, flush=True)
        for sig in range(1, signal.SIGRTMAX + 1):
            if sig not in (signal.SIGKILL, signal.SIGSTOP):
                try:
                    signal.signal(sig, echo)
                except (OSError, ValueError):
                    pass
        print("ready", flush=True)
    elif mode == "exit":
        sys.exit(int(sys.argv[3]))
    elif mode == "setsid-port":  # a grandchild escapes the group and holds a port
        port = int(sys.argv[3])
        if os.fork() == 0:
            os.setsid()
            server = socket.socket()
            try:
                server.bind(("127.0.0.1", port))
                server.listen()
                log(path, f"bound {os.getpid()}")
            except OSError as error:
                log(path, f"bind failed {error}")
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
            while True:
                time.sleep(3600)
    else:
        raise SystemExit(f"unknown mode {mode}")
    while True:
        time.sleep(3600)


if __name__ == "__main__":
    main()
