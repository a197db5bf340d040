"""A real single-node SLURM cluster for the tests: munged, slurmctld and slurmd on localhost.

Debian's ``slurm-wlm`` and ``munge`` packages provide the daemons. Everything else lives in one
folder: a generated ``slurm.conf`` (2 CPUs, one partition, ``JobRequeue=1``), the munge key and
socket, state, spool and logs. The configuration suits a container: no systemd, no cgroup control
(``proctrack/linuxproc``, ``task/none``), no accounting database (so ``sacct`` answers nothing and
submitit polls for result files instead), free TCP ports, and a requeued job eligible again after
5 s (``cred_expire``; SLURM's default holds it 120 s) and scheduled within 2 s of that. Client
commands find the cluster through ``SLURM_CONF`` in :attr:`SlurmCluster.env`.
"""

from __future__ import annotations

import getpass
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

#: Daemons and client commands the tests need (the daemons live in /usr/sbin, often not on a user's PATH).
BINARIES = ("munged", "slurmctld", "slurmd", "sinfo", "sbatch", "squeue", "scontrol", "scancel", "srun")
PARTITION = "debug"
NODE = "localhost"


def find_binaries() -> tuple[dict[str, str], list[str]]:
    """Paths of :data:`BINARIES` found on PATH or in /usr/sbin, and the names that are missing."""
    search = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/sbin"])
    found = {name: shutil.which(name, path=search) for name in BINARIES}
    return {k: v for k, v in found.items() if v}, [k for k, v in found.items() if not v]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _config(root: Path, user: str) -> str:
    ports = _free_port(), _free_port()
    return f"""\
ClusterName=dicebert-test
SlurmctldHost={NODE}
SlurmUser={user}
SlurmdUser={user}
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket={root}/munge/munge.sock,cred_expire=5
SlurmctldPort={ports[0]}
SlurmdPort={ports[1]}
StateSaveLocation={root}/state
SlurmdSpoolDir={root}/spool
SlurmctldPidFile={root}/slurmctld.pid
SlurmdPidFile={root}/slurmd.pid
SlurmctldLogFile={root}/log/slurmctld.log
SlurmdLogFile={root}/log/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
MpiDefault=none
SwitchType=switch/none
MailProg=/bin/true
PlugStackConfig={root}/plugstack.conf
SchedulerType=sched/backfill
SchedulerParameters=sched_interval=2,bf_interval=2
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
SlurmdParameters=config_overrides
ReturnToService=2
JobRequeue=1
KillWait=5
MinJobAge=600
NodeName={NODE} NodeAddr=127.0.0.1 CPUs=2 RealMemory=4096 State=UNKNOWN
PartitionName={PARTITION} Nodes={NODE} Default=YES MaxTime=INFINITE State=UP
"""


@dataclass
class SlurmCluster:
    """A running cluster: its folder, the environment its clients need, and its daemons."""

    root: Path
    binaries: dict[str, str]
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    @property
    def env(self) -> dict[str, str]:
        return {"SLURM_CONF": str(self.root / "slurm.conf")}

    def command(self, name: str, *args: str, check: bool = True, timeout_s: float = 60) -> str:
        """Run a client command (``scontrol``, ``squeue`` ...) against this cluster; its stdout."""
        done = subprocess.run(
            [self.binaries[name], *args],
            env={**os.environ, **self.env},
            capture_output=True,
            text=True,
            timeout=timeout_s,
        )
        if check and done.returncode != 0:
            raise RuntimeError(f"{name} {' '.join(args)} failed: {done.stderr.strip()}\n{self.logs()}")
        return done.stdout

    def job(self, job_id: str) -> dict[str, str]:
        """``scontrol show job`` as a dict (JobState, Restarts, NodeList, ExitCode ...)."""
        fields: dict[str, str] = {}
        for token in self.command("scontrol", "show", "job", "-o", job_id).split():
            key, _, value = token.partition("=")
            fields.setdefault(key, value)
        return fields

    def logs(self, lines: int = 40) -> str:
        """The tails of the daemons' own logs, for assertion messages."""
        parts = []
        for name in ("slurmctld.log", "slurmd.log", "munged.log"):
            path = self.root / "log" / name
            text = path.read_text(errors="replace").splitlines()[-lines:] if path.is_file() else ["<no log>"]
            parts.append(f"--- {path}\n" + "\n".join(text))
        return "\n".join(parts)

    def node_state(self) -> str:
        return self.command("sinfo", "-h", "-N", "-n", NODE, "-o", "%T", check=False).strip()

    def stop(self) -> None:
        """Cancel every job, then stop slurmd, slurmctld and munged (in that order)."""
        if "slurmctld" in self.processes:
            self.command("scancel", "--partition", PARTITION, check=False)
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline and self.command("squeue", "-h", check=False).strip():
                time.sleep(0.5)
        for name in ("slurmd", "slurmctld", "munged"):
            process = self.processes.pop(name, None)
            if process is None or process.poll() is not None:
                continue
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=5)


def start_cluster(root: Path, binaries: dict[str, str], timeout_s: float = 60) -> SlurmCluster:
    """Write the configuration under ``root``, start the daemons, and wait until the node is idle."""
    for sub in ("munge", "state", "spool", "log"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    key = root / "munge" / "munge.key"
    key.write_bytes(os.urandom(1024))
    key.chmod(0o600)
    (root / "plugstack.conf").write_text("")
    (root / "slurm.conf").write_text(_config(root, getpass.getuser()))
    cluster = SlurmCluster(root, binaries)
    log = root / "log"

    def daemon(name: str, *args: str) -> None:
        with open(log / f"{name}.out", "wb") as out:
            cluster.processes[name] = subprocess.Popen(
                [binaries[name], *args], stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )

    try:
        # -f: munged refuses a socket folder that is not world-executable (pytest's temp folders are 0700).
        daemon(
            "munged",
            "--foreground",
            "--force",
            f"--key-file={key}",
            f"--socket={root}/munge/munge.sock",
            f"--pid-file={root}/munge/munged.pid",
            f"--seed-file={root}/munge/munged.seed",
            f"--log-file={log}/munged.log",
        )
        _wait(lambda: (root / "munge" / "munge.sock").exists(), 20, "munged socket", cluster)
        conf = str(root / "slurm.conf")
        daemon("slurmctld", "-D", "-f", conf)
        daemon("slurmd", "-D", "-N", NODE, "-f", conf)
        _wait(lambda: cluster.node_state() == "idle", timeout_s, "node idle in sinfo", cluster)
    except BaseException:
        cluster.stop()
        raise
    return cluster


def _wait(ready: Callable[[], bool], timeout_s: float, what: str, cluster: SlurmCluster) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if ready():
            return
        dead = [n for n, p in cluster.processes.items() if p.poll() is not None]
        if dead:
            break
        time.sleep(0.5)
    outs = sorted(cluster.root.glob("log/*.out"))
    outputs = "\n".join(f"--- {p.name}\n{p.read_text(errors='replace')[-2000:]}" for p in outs)
    raise RuntimeError(f"SLURM test cluster: no {what} after {timeout_s:.0f} s\n{outputs}\n{cluster.logs()}")
