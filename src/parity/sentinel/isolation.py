"""Load a verified model artifact and predict on a sample in a child process, under limits.

The artifact is verified in the parent first, by the registry's artifact store: its sha256
and its HMAC signature (made with a key outside the metadata database). An unsigned, tampered
or refused artifact (a pickle where the registry does not allow pickle) never reaches the
child: whoever can rewrite the metadata database cannot make the sentinel deserialise their
file. The child then loads the verified bytes, copied into its private folder, with the same
decoders as the registry (skops with an allow-list of types, LightGBM text; pickle only when
the registry opted in). A child is still used because even a legitimate model can crash the
interpreter, allocate without bound or never return: it runs with an address-space limit
(``RLIMIT_AS``) and a wall-clock timeout after which its whole process group is killed. Those
limits contain a broken model; they are not a sandbox, which is why nothing unverified is
ever deserialised.

Whatever happens, the parent ends up with an ``IsolatedRun`` whose ``kind`` says what:

    ok            loaded and predicted (or could not predict only for lack of sample columns)
    missing       no artifact file
    integrity     the bytes do not match the recorded sha256, or are not signed with the
                  registry's key (never deserialised)
    refused       a format the registry does not load (pickle without the opt-in)
    load_error    deserialising raised an exception
    not_a_model   the object has no callable predict
    predict_error predicting on the sample raised an exception
    memory        the memory limit was hit
    crash         the child died (a signal, or an exit without a result)
    timeout       no result within the time limit; the child was killed
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

import pyarrow as pa
import pyarrow.parquet as pq

from parity.errors import ArtifactIntegrityError, ArtifactNotFoundError, ModelSerializationError
from parity.registry.formats import Envelope, check_loadable

KINDS = (
    "ok",
    "missing",
    "integrity",
    "refused",
    "load_error",
    "not_a_model",
    "predict_error",
    "memory",
    "crash",
    "timeout",
)
# Fewer threads reserve less address space, so RLIMIT_AS measures the model, not thread stacks.
_CHILD_ENV = {
    "OMP_NUM_THREADS": "1",
    "OPENBLAS_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
    "MALLOC_ARENA_MAX": "2",
    "PYTHONDONTWRITEBYTECODE": "1",
}


class ArtifactReader(Protocol):
    """Reads an artifact only after verifying it (``parity.registry.ArtifactStore``)."""

    @property
    def allow_pickle(self) -> bool:
        """Whether pickled artifacts may be loaded (an explicit opt-in)."""
        ...

    def read_verified(self, sha256: str, *, label: str | None = None) -> Envelope:
        """The artifact's header and payload after its sha256 and signature were checked.

        Raises ``ArtifactNotFoundError`` or ``ArtifactIntegrityError``; deserialises nothing.
        """
        ...


@dataclass
class IsolatedRun:
    """What the child process did with the artifact (see the module docstring for ``kind``)."""

    kind: str
    message: str = ""
    seconds: float = 0.0
    load_seconds: float | None = None
    predict_seconds: float | None = None
    returncode: int | None = None
    peak_rss_mb: float | None = None
    predictor: dict[str, Any] = field(default_factory=dict)
    outputs: dict[str, Any] = field(default_factory=dict)
    missing_features: list[str] = field(default_factory=list)
    stderr_tail: str = ""

    @property
    def ok(self) -> bool:
        """Whether the artifact loaded (and predicted, where the sample allowed)."""
        return self.kind == "ok"

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return asdict(self)


class IsolatedLoad:
    """A child process loading one verified artifact; ``start`` it, do other work, ``wait``.

    ``envelope`` is an artifact already verified by an ``ArtifactReader`` (see ``verified``).
    ``sample`` (optional) holds rows to predict on. ``memory_mb`` caps the child's address
    space, ``timeout`` (seconds) its wall-clock time from ``start``. ``allow_pickle`` is the
    registry's opt-in, passed on to the child's decoder.
    """

    def __init__(
        self,
        envelope: Envelope,
        sample: pa.Table | None = None,
        *,
        allow_pickle: bool = False,
        timeout: float = 120.0,
        memory_mb: int = 4096,
        python: str | None = None,
    ) -> None:
        self.envelope = envelope
        self.sample = sample
        self.allow_pickle = allow_pickle
        self.timeout = timeout
        self.memory_mb = memory_mb
        self.python = python or sys.executable
        self._proc: subprocess.Popen[bytes] | None = None
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        self._started = 0.0

    @classmethod
    def verified(
        cls,
        reader: ArtifactReader | None,
        sha256: str,
        sample: pa.Table | None = None,
        *,
        label: str | None = None,
        timeout: float = 120.0,
        memory_mb: int = 4096,
    ) -> IsolatedLoad | Refused:
        """A child for the artifact ``sha256`` once ``reader`` verified it, else a ``Refused``
        saying why (missing, integrity, refused); nothing unverified is deserialised."""
        what = label or f"artifact {sha256}"
        if reader is None:
            return Refused(IsolatedRun(
                "integrity",
                f"{what} was not verified: no artifact reader (the registry's store) was given "
                f"to check its signature, so it was not loaded",
            ))
        try:
            envelope = reader.read_verified(sha256, label=label)
            check_loadable(envelope, allow_pickle=reader.allow_pickle, what=what)
        except ArtifactNotFoundError as err:
            return Refused(IsolatedRun("missing", str(err)))
        except ArtifactIntegrityError as err:
            return Refused(IsolatedRun("integrity", str(err)))
        except ModelSerializationError as err:
            return Refused(IsolatedRun("refused", str(err)))
        return cls(envelope, sample, allow_pickle=reader.allow_pickle, timeout=timeout,
                   memory_mb=memory_mb)

    def start(self) -> IsolatedLoad:
        """Launch the child process and return at once."""
        self._tmp = tempfile.TemporaryDirectory(prefix="parity-sentinel-")
        folder = Path(self._tmp.name)  # mode 0700: only this user can swap the verified copy
        sample_path = None
        if self.sample is not None:
            sample_path = folder / "sample.parquet"
            pq.write_table(self.sample, sample_path)
        payload_path = folder / "payload.bin"
        payload_path.write_bytes(self.envelope.payload)
        job = {
            "header": self.envelope.header,
            "payload": str(payload_path),
            "allow_pickle": self.allow_pickle,
            "sample": None if sample_path is None else str(sample_path),
            "memory_mb": self.memory_mb,
            "result": str(folder / "result.json"),
        }
        job_path = folder / "job.json"
        job_path.write_text(json.dumps(job))
        env = {**os.environ, **_CHILD_ENV}
        env["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p)
        self._stderr = open(folder / "stderr.txt", "wb")  # noqa: SIM115 - closed in wait()
        self._started = time.perf_counter()
        self._proc = subprocess.Popen(
            [self.python, "-m", "parity.sentinel._child", str(job_path)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=self._stderr,
            env=env,
            start_new_session=True,  # its own process group: a kill reaches its children too
        )
        return self

    def wait(self) -> IsolatedRun:
        """Wait for the child (killing it at the timeout) and return what happened."""
        if self._proc is None or self._tmp is None:
            self.start()
        assert self._proc is not None and self._tmp is not None
        folder = Path(self._tmp.name)
        remaining = self.timeout - (time.perf_counter() - self._started)
        timed_out = False
        try:
            self._proc.wait(timeout=max(remaining, 0.01))
        except subprocess.TimeoutExpired:
            timed_out = True
            _kill_group(self._proc)
        elapsed = time.perf_counter() - self._started
        self._stderr.close()
        stderr = (folder / "stderr.txt").read_bytes()[-4000:].decode("utf-8", "replace")
        result_path = folder / "result.json"
        try:
            if timed_out:
                return IsolatedRun(
                    "timeout",
                    f"loading and predicting did not finish within {self.timeout:g}s; the "
                    f"process was killed",
                    seconds=elapsed,
                    stderr_tail=stderr,
                )
            if result_path.exists():
                data = json.loads(result_path.read_text())
                run = IsolatedRun(**data)
                run.seconds = elapsed
                run.returncode = self._proc.returncode
                run.stderr_tail = stderr
                return run
            return _died(self._proc.returncode, stderr, elapsed, self.memory_mb)
        finally:
            self._tmp.cleanup()

    def cancel(self) -> None:
        """Kill the child (if running) and remove its files; for callers that give up."""
        if self._proc is not None and self._proc.poll() is None:
            _kill_group(self._proc)
        if self._tmp is not None:
            self._stderr.close()
            self._tmp.cleanup()
            self._tmp = None

    def run(self) -> IsolatedRun:
        """``start`` then ``wait``."""
        return self.start().wait()


class Refused:
    """An artifact refused before any child started: ``wait`` returns why, at once."""

    def __init__(self, run: IsolatedRun) -> None:
        self.result = run

    def start(self) -> Refused:
        """Nothing to start."""
        return self

    def wait(self) -> IsolatedRun:
        """What was refused and why."""
        return self.result

    def cancel(self) -> None:
        """Nothing to cancel."""

    def run(self) -> IsolatedRun:
        """``wait``."""
        return self.result


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    with contextlib.suppress(ProcessLookupError):
        proc.kill()
    proc.wait()


def _died(returncode: int | None, stderr: str, elapsed: float, memory_mb: int) -> IsolatedRun:
    if returncode is not None and returncode < 0:
        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            name = f"signal {-returncode}"
        message = f"the process died from {name} while loading or predicting"
    else:
        message = f"the process exited with code {returncode} before reporting a result"
    kind = "crash"
    if "MemoryError" in stderr or "std::bad_alloc" in stderr:
        kind = "memory"
        message += f" (out of memory: the limit is {memory_mb} MB)"
    last = [line for line in stderr.strip().splitlines() if line.strip()]
    if last:
        message += f"; last output: {last[-1][:300]}"
    return IsolatedRun(kind, message, seconds=elapsed, returncode=returncode, stderr_tail=stderr)
