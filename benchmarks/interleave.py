"""Backends measured in alternating rounds, each in its own process.

Every backend's process loads its model and warms up, then waits. Round by round, each process in turn
times its share of the chunk runs and one whole-file conversion with and one without F0 extraction, while
the others sleep on their command pipe. A stretch of time when the machine runs slower (another tenant,
a frequency change) then falls on every backend alike, so the ratios between them hold up where
measuring one backend after another would credit the slow stretch to whichever was running. The order
rotates each round, so no backend always runs first.
"""

from __future__ import annotations

import json
import os
import selectors
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO

from benchmarks.child import DONE, READY, round_sizes


class ChildFailed(RuntimeError):
    pass


def failure_reason(log_path: Path, returncode: int | None) -> str:
    """The child's own ``error:`` line if it wrote one, else its exit status and last lines."""
    lines = log_path.read_text(errors="replace").strip().splitlines() if log_path.is_file() else []
    errors = [line.removeprefix("error: ") for line in lines if line.startswith("error: ")]
    return errors[-1] if errors else f"exit {returncode}: " + " / ".join(lines[-6:])


class RoundChild:
    """One ``python -m benchmarks.child SPEC OUT`` process in mode ``backend``, and its command pipe."""

    def __init__(self, label: str, spec: dict[str, Any], env: dict[str, str], work: Path, timeout: float) -> None:
        self.label, self.timeout = label, timeout
        name = f"round_{label.replace('/', '_').replace('@', '_')}"
        spec_path, self.out_path = work / f"{name}.spec.json", work / f"{name}.json"
        self.log_path = work / f"{name}.log"
        spec_path.write_text(json.dumps(spec))
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen([sys.executable, "-m", "benchmarks.child", str(spec_path), str(self.out_path)],
                                     env=env, cwd=work, stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=self._log, bufsize=0)
        self._pending = b""

    def _stdout(self) -> BinaryIO:
        assert self.proc.stdout is not None
        return self.proc.stdout  # type: ignore[return-value]

    def expect(self, word: str) -> None:
        """Wait for the child's ``word`` line (other output lines are ignored)."""
        deadline = time.monotonic() + self.timeout
        fd = self._stdout().fileno()
        with selectors.DefaultSelector() as sel:
            sel.register(fd, selectors.EVENT_READ)
            while True:
                while b"\n" in self._pending:
                    line, self._pending = self._pending.split(b"\n", 1)
                    if line.decode(errors="replace").strip() == word:
                        return
                left = deadline - time.monotonic()
                if left <= 0:
                    raise ChildFailed(f"no answer within {self.timeout:.0f} s")
                if not sel.select(left):
                    continue
                data = os.read(fd, 4096)
                if not data:
                    raise ChildFailed(failure_reason(self.log_path, self.proc.wait()))
                self._pending += data

    def send(self, command: str) -> None:
        assert self.proc.stdin is not None
        try:
            self.proc.stdin.write((command + "\n").encode())
            self.proc.stdin.flush()
        except BrokenPipeError:
            raise ChildFailed(failure_reason(self.log_path, self.proc.wait())) from None

    def finish(self) -> dict[str, Any]:
        self.send("finish")
        try:
            code = self.proc.wait(timeout=self.timeout)
        except subprocess.TimeoutExpired:
            raise ChildFailed(f"did not finish within {self.timeout:.0f} s") from None
        if code != 0 or not self.out_path.is_file():
            raise ChildFailed(failure_reason(self.log_path, code))
        return json.loads(self.out_path.read_text())

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        for stream in (self.proc.stdin, self.proc.stdout):
            if stream is not None:
                stream.close()
        self._log.close()


def measure_interleaved(children: dict[str, tuple[dict[str, Any], dict[str, str]]], work: Path, repeats: int,
                        rounds: int, timeout: float, say: Callable[[str], None]
                        ) -> tuple[dict[str, dict[str, Any]], dict[str, str]]:
    """``children``: label -> (spec, environment). Returns (results by label, failure reasons by label)."""
    running: dict[str, RoundChild] = {}
    failed: dict[str, str] = {}
    results: dict[str, dict[str, Any]] = {}

    def drop(label: str, exc: Exception) -> None:
        failed[label] = str(exc)
        say(f"{label}: FAILED: {exc}")
        running.pop(label).close()

    try:
        for label, (spec, env) in children.items():
            running[label] = RoundChild(label, spec, env, work, timeout)
        for label in list(running):  # they load side by side; each answers when warmed up
            try:
                running[label].expect(READY)
            except ChildFailed as exc:
                drop(label, exc)
        sizes = round_sizes(repeats, rounds)
        for i, runs in enumerate(sizes):
            if not running:
                break
            order = list(running)
            order = order[i % len(order):] + order[: i % len(order)]
            for label in order:
                try:
                    running[label].send(f"round {runs}")
                    running[label].expect(DONE)
                except ChildFailed as exc:
                    drop(label, exc)
            say(f"round {i + 1}/{len(sizes)} done ({', '.join(running) or 'every backend failed'})")
        for label in list(running):
            try:
                results[label] = running[label].finish()
            except ChildFailed as exc:
                drop(label, exc)
    finally:
        for child in running.values():
            child.close()
    return results, failed
