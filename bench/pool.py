"""The coordinator's side of the load generator: its processes, and sessions spread over them.

Workers are started once and reused for every run; client ``i`` lives in worker ``i % W``.
"""

from __future__ import annotations

import dataclasses
import multiprocessing
import os
import time
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from typing import Any

from bench import proc, worker
from bench.servers import Server

ANSWER_TIMEOUT_SECONDS = 300.0
LATENCY_SAMPLE_CLIENTS = 100  # receivers whose latencies are recorded, spread over the room


class WorkerPool:
    def __init__(self, size: int) -> None:
        context = multiprocessing.get_context("spawn")
        self.pipes: list[Connection] = []
        self.processes: list[BaseProcess] = []
        self._number = 0
        for _ in range(size):
            ours, theirs = context.Pipe()
            process = context.Process(target=worker.main, args=(theirs,), daemon=True)
            process.start()
            theirs.close()
            self.pipes.append(ours)
            self.processes.append(process)

    def __len__(self) -> int:
        return len(self.pipes)

    def ask(
        self,
        command: str,
        arguments: dict[str, Any] | list[dict[str, Any]] | None = None,
        timeout: float = ANSWER_TIMEOUT_SECONDS,
    ) -> list[dict[str, Any]]:
        """Send ``command`` to every worker at once (the same arguments, or one set each),
        then wait for every answer.
        """
        self._number += 1
        each = arguments if isinstance(arguments, list) else [arguments or {}] * len(self)
        for pipe, own in zip(self.pipes, each, strict=True):
            pipe.send((self._number, command, own))
        deadline = time.monotonic() + timeout
        answers = []
        for pipe in self.pipes:
            while True:
                if not pipe.poll(max(0.0, deadline - time.monotonic())):
                    raise RuntimeError(f"a generator process did not answer {command!r} in time")
                number, answer = pipe.recv()
                # An answer to an earlier command that timed out: not this one's.
                if number == self._number:
                    break
            if "error" in answer:
                raise RuntimeError(f"generator: {answer['error']}")
            answers.append(answer)
        return answers

    def split(self, indices: list[int]) -> list[list[int]]:
        return [indices[number :: len(self)] for number in range(len(self))]

    def cpu_seconds(self) -> list[float]:
        """CPU time of each generator process, the coordinator (this process) last."""
        pids = [process.pid for process in self.processes if process.pid is not None]
        return [proc.cpu_seconds(pid, descendants=False) for pid in [*pids, os.getpid()]]

    def close(self) -> None:
        for pipe in self.pipes:
            try:
                pipe.send((0, "stop", {}))
            except OSError:
                continue
        for process in self.processes:
            process.join(timeout=10)
            if process.is_alive():
                process.kill()
                process.join(timeout=10)


@dataclasses.dataclass
class Sessions:
    """Sessions opened on one server, and how opening them went."""

    shares: list[list[int]]  # client indices held by each worker
    connect_ms: list[float]  # sorted
    failures: int
    first_failure: str
    cipher: str


def open_sessions(pool: WorkerPool, server: Server, count: int, *, room: bool) -> Sessions:
    shares = pool.split(list(range(count)))
    every = max(1, count // LATENCY_SAMPLE_CLIENTS)
    answers = pool.ask(
        "connect",
        [
            {
                "protocol": server.protocol,
                "port": server.port,
                "indices": share,
                "room": room,
                "sampled": [index for index in share if index % every == 0],
            }
            for share in shares
        ],
    )
    failures = [answer["first_failure"] for answer in answers if answer["failures"]]
    return Sessions(
        shares=shares,
        connect_ms=sorted(ns / 1e6 for answer in answers for ns in answer["connect_ns"]),
        failures=sum(answer["failures"] for answer in answers),
        first_failure=failures[0] if failures else "",
        cipher=next((answer["cipher"] for answer in answers if answer["cipher"]), ""),
    )
