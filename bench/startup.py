"""How soon `ipbot` answers: `ipbot --help`, and `ipbot chat` until it shows its first prompt.

    python bench/startup.py [--runs 10] [--baseline OTHER/.venv/bin/ipbot]

Each run is a new process with no bot settings in its environment, in a folder of its own.
`ipbot chat` runs on a pseudo-terminal, as in a terminal window: it prints the greeting and
then its prompt (`you> `), and the time is taken when the prompt arrives, that is when a talent
can type. It is timed twice: on a SQLite file an earlier chat made (every start after the
first) and in an empty folder, where it first creates the database.

`--baseline` names another `ipbot` executable (another checkout's, in its own environment),
timed in turn with this one, run by run, so that both meet the same load on a shared machine.
The table gives the median, quickest and slowest of the runs.

The last line is `runs=N help_s=… chat_s=… chat_new_s=…`: medians for this checkout (followed
by the baseline's as `baseline_help_s=…` and so on when there is one).
"""

import sys
from pathlib import Path

# Run as a script, the folder on the path is bench/: the repository root is wanted, for
# `bench` as a package.
if __name__ == "__main__":
    sys.path[0] = str(Path(__file__).resolve().parent.parent)

import argparse
import os
import pty
import select
import statistics
import subprocess
import tempfile
import time

from bench.arguments import whole
from bench.report import figures, table
from bot.config import Settings

PROMPT = b"you> "
TIMEOUT = 60.0
MEASURES = ("help", "chat", "chat_new")
SAID = {
    "help": "ipbot --help",
    "chat": "ipbot chat, first prompt",
    "chat_new": "ipbot chat, first prompt, new database",
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=whole(1), default=10)
    parser.add_argument("--baseline", type=Path, help="another checkout's `ipbot` executable")
    arguments = parser.parse_args()
    executables = {"this": Path(sys.executable).parent / "ipbot"}
    if arguments.baseline is not None:
        executables = {"baseline": arguments.baseline, **executables}
    for name, executable in executables.items():
        if not os.access(executable, os.X_OK):
            parser.error(f"no {name} `ipbot` executable at {executable}")

    with tempfile.TemporaryDirectory(prefix="ipbot-startup-") as scratch:
        folders = {name: Path(scratch, name) for name in executables}
        for name, executable in executables.items():
            folders[name].mkdir()
            # Untimed: compiles each checkout's bytecode and makes the database later runs use.
            time_help(executable, folders[name])
            time_chat(executable, folders[name])
        times = _runs(executables, folders, arguments.runs, Path(scratch))

    rows = []
    for name, executable in executables.items():
        print(f"{name}: {executable}")
        for measure in MEASURES:
            seconds = times[name][measure]
            rows.append(
                (SAID[measure], name, statistics.median(seconds), min(seconds), max(seconds))
            )
    print(f"\n{arguments.runs} runs each, in turn\n")
    print(table(("command", "checkout", "median s", "quickest s", "slowest s"), rows))
    print()
    medians = {
        f"{measure}_s": round(statistics.median(times["this"][measure]), 3) for measure in MEASURES
    }
    if "baseline" in times:
        medians |= {
            f"baseline_{measure}_s": round(statistics.median(times["baseline"][measure]), 3)
            for measure in MEASURES
        }
    print(figures(runs=arguments.runs, **medians))


def _runs(
    executables: dict[str, Path], folders: dict[str, Path], runs: int, scratch: Path
) -> dict[str, dict[str, list[float]]]:
    """Every measure `runs` times for each executable, one executable after the other."""
    times: dict[str, dict[str, list[float]]] = {
        name: {measure: [] for measure in MEASURES} for name in executables
    }
    for run in range(runs):
        for name, executable in executables.items():
            empty = scratch / f"{name}-{run}"
            empty.mkdir()
            times[name]["help"].append(time_help(executable, folders[name]))
            times[name]["chat"].append(time_chat(executable, folders[name]))
            times[name]["chat_new"].append(time_chat(executable, empty))
    return times


def time_help(executable: Path, folder: Path) -> float:
    """Seconds until `ipbot --help` has printed its help and ended."""
    started = time.perf_counter()
    subprocess.run(
        [str(executable), "--help"],
        cwd=folder,
        env=_environment(),
        capture_output=True,
        check=True,
        timeout=TIMEOUT,
    )
    return time.perf_counter() - started


def time_chat(executable: Path, folder: Path) -> float:
    """Seconds until `ipbot chat`, on a terminal, shows its prompt; then it is told the input
    ended (Ctrl+D) and waited for."""
    terminal, child_end = pty.openpty()
    started = time.perf_counter()
    chat = subprocess.Popen(
        [str(executable), "chat"],
        cwd=folder,
        env=_environment(),
        stdin=child_end,
        stdout=child_end,
        stderr=child_end,
    )
    os.close(child_end)
    try:
        shown = _read_until(terminal, PROMPT, started + TIMEOUT)
        elapsed = time.perf_counter() - started
        if not shown.endswith(PROMPT):
            raise RuntimeError(
                f"ipbot chat ended without a prompt:\n{shown.decode(errors='replace')}"
            )
        os.write(terminal, b"\x04")
        _read_until(terminal, None, started + TIMEOUT)
        chat.wait(TIMEOUT)
        return elapsed
    finally:
        chat.kill()
        chat.wait()
        os.close(terminal)


def _read_until(terminal: int, wanted: bytes | None, deadline: float) -> bytes:
    """What the terminal shows until it shows `wanted` (or, for None, until the process ends)."""
    shown = b""
    while wanted is None or not shown.endswith(wanted):
        left = deadline - time.perf_counter()
        if left <= 0:
            raise TimeoutError(f"ipbot chat showed no {wanted!r} in {TIMEOUT:.0f} s")
        ready, _, _ = select.select([terminal], [], [], left)
        if not ready:
            continue
        try:
            chunk = os.read(terminal, 65536)
        except OSError:
            # Linux reports the end of a pseudo-terminal whose process is gone as an error.
            break
        if not chunk:
            break
        shown += chunk
    return shown


def _environment() -> dict[str, str]:
    """This process's environment without any of the bot's settings."""
    return {
        name: value
        for name, value in os.environ.items()
        if name.lower() not in Settings.model_fields
    }


if __name__ == "__main__":
    main()
