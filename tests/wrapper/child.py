"""Programs for the wrapper to supervise, one behaviour each: `child.py MODE LOG [ARGS]`.

Every mode appends "start <pid> <monotonic time>" to LOG when it starts, so a test
can count starts and order them against its own writes (CLOCK_MONOTONIC is system-wide).
"""

import json
import os
import signal
import socket
import sys
import time


def log(path: str, line: str) -> None:
    with open(path, "a") as f:
        f.write(line + "\n")


def handle_signals(mode: str, path: str) -> None:
    """The mode's signal dispositions. They come before the start line: a test acts as soon as
    it sees "start", and a TERM that beat SIG_IGN would kill an "ignore-term" child."""
    if mode == "trap-term":  # a well-behaved server: cleans up, exits 0
        def stop(signum, frame):
            log(path, "term")
            time.sleep(float(sys.argv[3]) if len(sys.argv) > 3 else 0)
            sys.exit(0)
        signal.signal(signal.SIGTERM, stop)
    elif mode == "ignore-term":  # the program entr waits for forever
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    elif mode == "ignore":  # ignores signal SIG
        signal.signal(int(sys.argv[3]), signal.SIG_IGN)
    elif mode == "exit-on":  # exits with STATUS at signal SIG, which nobody else would stop it with
        status = int(sys.argv[4])
        def leave(signum, frame):
            log(path, f"got {signum}")
            sys.exit(status)
        signal.signal(int(sys.argv[3]), leave)
    elif mode == "signals":  # print every signal received, one number a line
        def echo(signum, frame):
            print(signum, flush=True)
        for sig in range(1, signal.SIGRTMAX + 1):
            if sig not in (signal.SIGKILL, signal.SIGSTOP):
                try:
                    signal.signal(sig, echo)
                except (OSError, ValueError):
                    pass


def main() -> None:
    mode, path = sys.argv[1], sys.argv[2]
    handle_signals(mode, path)
    log(path, f"start {os.getpid()} {time.monotonic():.6f}")

    if mode in ("sleep", "trap-term", "ignore-term", "ignore", "exit-on"):  # sleep: dies at the first TERM
        pass
    elif mode == "signals":
        print("ready", flush=True)
    elif mode == "exit":
        sys.exit(int(sys.argv[3]))
    elif mode == "runs":  # the Nth start runs for the Nth of these seconds (0 after the list), then exits 3
        durations = [float(x) for x in sys.argv[3].split(",")]
        with open(path) as f:
            run = sum(1 for line in f if line.startswith("start")) - 1
        time.sleep(durations[run] if run < len(durations) else 0)
        sys.exit(3)
    elif mode == "env":  # the variables whose names start with one of PREFIX,PREFIX…, as one JSON line
        prefixes = tuple(sys.argv[3].split(","))
        found = {k: v for k, v in os.environ.items() if k.startswith(prefixes)}
        log(path, "env " + json.dumps(found, sort_keys=True, ensure_ascii=True))
        if len(sys.argv) > 4:  # then exit with this status
            sys.exit(int(sys.argv[4]))
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
