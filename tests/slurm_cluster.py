"""A throwaway one-node Slurm for tests: Debian's slurmctld, slurmd and munge, every file under
one temporary directory, daemons stopped by their PID files. Facts it relies on are in
shared/notes/slurm-and-pypi-mpi.md (measured on this kind of machine, no systemd).
"""
from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

PACKAGES = ["slurmd", "slurmctld", "slurm-client", "munge"]
TERMINAL = {"COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL", "OUT_OF_MEMORY", "BOOT_FAIL",
            "DEADLINE", "PREEMPTED"}


def why_not_available() -> str | None:
    """None when a Slurm can be started here, else the reason to skip."""
    if os.name != "posix" or os.geteuid() != 0:
        return "needs root to run slurmctld/slurmd and munged"
    if all(shutil.which(t) for t in ("slurmctld", "slurmd", "sbatch", "munged", "mungekey")):
        return None
    if not shutil.which("apt-get"):
        return "Slurm is not installed and there is no apt-get to install it"
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    install = ["apt-get", "install", "-y", "-q", "--no-install-recommends", *PACKAGES]
    if subprocess.run(install, env=env, capture_output=True, timeout=600).returncode != 0:
        subprocess.run(["apt-get", "update", "-q"], env=env, capture_output=True, timeout=600)
        result = subprocess.run(install, env=env, capture_output=True, text=True, timeout=600)
        if result.returncode != 0:
            return f"could not install Slurm from Debian's packages: {result.stderr.strip()[-300:]}"
    return None


def _free_ports(count: int) -> list[int]:
    """Distinct free ports: every socket stays bound until all are chosen, so the kernel cannot
    hand the same port out twice (it did: slurmctld and slurmd were given one port and slurmd
    could not bind)."""
    sockets = [socket.socket() for _ in range(count)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


class OneNodeSlurm:
    def __init__(self, root: Path, cpus: int = 8):
        self.root = Path(root)
        self.host = socket.gethostname().split(".")[0]
        self.conf = self.root / "slurm.conf"
        self.env = dict(os.environ, SLURM_CONF=str(self.conf))
        self.cpus = cpus

    def start(self, attempts: int = 3) -> None:
        """Start munged, slurmctld and slurmd; a port taken between choosing and binding it
        (another process on the machine) restarts the daemons on fresh ports."""
        for attempt in range(attempts):
            try:
                self._start_once()
                return
            except RuntimeError:
                if "Address already in use" not in self.logs() or attempt == attempts - 1:
                    raise
                self.stop()
                for log in self.root.glob("*.log"):
                    log.unlink()

    def _start_once(self) -> None:
        self._start_munge(["state", "spool"])
        for daemon in ("slurmctld", "slurmd"):
            subprocess.run([daemon, "-f", str(self.conf)], check=True, env=self.env, capture_output=True)
        self._wait_idle()

    def _start_munge(self, folders) -> None:
        """The folders under root, munged with a key of its own, and the config written."""
        r = self.root
        for sub in folders:
            (r / sub).mkdir(parents=True, exist_ok=True)
        if not (r / "munge.key").exists():
            subprocess.run(["mungekey", "-c", "-k", str(r / "munge.key")], check=True, capture_output=True)
            os.chmod(r / "munge.key", 0o600)
        subprocess.run(["munged", "--force", f"--socket={r}/munge.socket", f"--key-file={r}/munge.key",
                        f"--pid-file={r}/munged.pid", f"--log-file={r}/munged.log",
                        f"--seed-file={r}/munged.seed"], check=True, capture_output=True)
        self.conf.write_text(self._config())

    def _config(self) -> str:
        r = self.root
        ctld_port, slurmd_port = _free_ports(2)
        return f"""ClusterName=mpireg-test
SlurmctldHost={self.host}(127.0.0.1)
SlurmUser=root
SlurmdUser=root
SlurmctldPort={ctld_port}
SlurmdPort={slurmd_port}
AuthType=auth/munge
AuthInfo=socket={r}/munge.socket
StateSaveLocation={r}/state
SlurmdSpoolDir={r}/spool
SlurmctldPidFile={r}/slurmctld.pid
SlurmdPidFile={r}/slurmd.pid
SlurmctldLogFile={r}/slurmctld.log
SlurmdLogFile={r}/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
MailProg=/bin/true
MpiDefault=pmi2
SlurmdParameters=config_overrides
ReturnToService=2
NodeName={self.host} NodeAddr=127.0.0.1 CPUs={self.cpus} State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
"""

    def _wait_idle(self, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            out = subprocess.run(["sinfo", "-h", "-o", "%t"], env=self.env, capture_output=True, text=True)
            if out.returncode == 0 and out.stdout.strip() in ("idle", "mix", "alloc"):
                return
            if "Address already in use" in self.logs():
                break  # a daemon could not bind its port: it will not come up
            time.sleep(0.2)
        raise RuntimeError(f"the node never became idle:\n{self.logs()}")

    def submit(self, *args, cwd, env=None) -> int:
        out = subprocess.run(["sbatch", "--parsable", *map(str, args)], cwd=cwd, env={**self.env, **(env or {})},
                             capture_output=True, text=True, check=True)
        return int(out.stdout.strip().split(";")[0].split("_")[0])

    def state(self, job: str) -> dict:
        out = subprocess.run(["scontrol", "show", "job", "-o", str(job)], env=self.env,
                             capture_output=True, text=True)
        fields = dict(item.split("=", 1) for item in out.stdout.split() if "=" in item)
        return fields

    def wait(self, job, timeout: float = 180, states=TERMINAL) -> dict:
        """Poll scontrol every 0.2 s (sbatch --wait backs off up to 10 s per poll)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            fields = self.state(job)
            if fields.get("JobState") in states:
                return fields
            time.sleep(0.2)
        raise TimeoutError(f"job {job} still {self.state(job).get('JobState')} after {timeout} s\n{self.logs()}")

    def run(self, *args, cwd, env=None):
        return subprocess.run([*args], cwd=cwd, env={**self.env, **(env or {})}, capture_output=True, text=True)

    def logs(self) -> str:
        return "\n".join(f"--- {p.name}\n{p.read_text()[-2000:]}" for p in sorted(self.root.glob("*.log")))

    def stop(self) -> None:
        """SIGTERM by PID file, then SIGKILL after a few seconds; never by process name."""
        pids = []
        for name in ("slurmd", "slurmctld", "munged"):
            path = self.root / f"{name}.pid"
            if path.exists():
                try:
                    pid = int(path.read_text().strip())
                    os.kill(pid, signal.SIGTERM)
                    pids.append(pid)
                except (ValueError, ProcessLookupError):
                    pass
        deadline = time.monotonic() + 5
        for pid in pids:
            while time.monotonic() < deadline:
                try:
                    os.kill(pid, 0)
                except ProcessLookupError:
                    break
                time.sleep(0.1)
            else:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass


class MultiNodeSlurm(OneNodeSlurm):
    """A Slurm across emulated nodes (tests/emulated_cluster.py): slurmctld in the first node's
    namespace, one slurmd in each, each daemon with its node's host name (a UTS namespace:
    slurmctld refuses to run on a host that is not its SlurmctldHost). Started with nsenter, not
    `ip netns exec`, which mounts a fresh /sys and loses the cgroup mounts slurmd reads; one
    munged in the host's namespace serves all (its socket is a file)."""

    def __init__(self, root: Path, cluster, cpus: int = 4):
        super().__init__(root, cpus)
        self.cluster = cluster
        self.names = [f"n{i + 1}" for i in range(cluster.n)]

    def _in_node(self, index: int, hostname: str | None, command: list) -> list:
        inner = " ".join(map(str, command))
        enter = ["nsenter", f"--net=/var/run/netns/{self.cluster.nodes[index]}"]
        return [*enter, "unshare", "--uts", "sh", "-c", f"hostname {hostname}; exec {inner}"] if hostname else \
            [*enter, *command]

    def _start_once(self) -> None:
        self._start_munge(["state", *(f"spool/{n}" for n in self.names)])
        subprocess.run(self._in_node(0, "ctl", ["slurmctld", "-f", self.conf]), check=True, env=self.env,
                       capture_output=True)
        for i, name in enumerate(self.names):
            subprocess.run(self._in_node(i, name, ["slurmd", "-f", self.conf]), check=True, env=self.env,
                           capture_output=True)
        self._wait_idle()

    def _config(self) -> str:
        one = super()._config()
        r, first = self.root, self.cluster.addresses[0]
        lines = [line for line in one.splitlines()
                 if not line.startswith(("SlurmctldHost", "NodeName", "SlurmdSpoolDir", "SlurmdPidFile",
                                         "SlurmdLogFile", "SlurmctldPort", "SlurmdPort"))]
        # fresh namespaces: the default ports are free in each
        lines += [f"SlurmctldHost=ctl({first})", f"SlurmdSpoolDir={r}/spool/%n",
                  f"SlurmdPidFile={r}/slurmd-%n.pid", f"SlurmdLogFile={r}/slurmd-%n.log"]
        lines += [f"NodeName={n} NodeAddr={a} CPUs={self.cpus} State=UNKNOWN"
                  for n, a in zip(self.names, self.cluster.addresses)]
        partition = next(line for line in lines if line.startswith("PartitionName"))
        lines.remove(partition)
        return "\n".join([*lines, partition]) + "\n"

    def _wait_idle(self, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            out = self.run("sinfo", "-h", "-N", "-o", "%t", cwd=self.root)
            states = out.stdout.split()
            if out.returncode == 0 and len(states) == len(self.names) and all(s in ("idle", "mix", "alloc") for s in states):
                return
            time.sleep(0.2)
        raise RuntimeError(f"the nodes never became idle:\n{self.logs()}")

    def submit(self, *args, cwd, env=None) -> int:
        out = self.run("sbatch", "--parsable", *args, cwd=cwd, env=env)
        if out.returncode != 0:
            raise RuntimeError(f"sbatch failed: {out.stderr}")
        return int(out.stdout.strip().split(";")[0].split("_")[0])

    def state(self, job: str) -> dict:
        out = self.run("scontrol", "show", "job", "-o", job, cwd=self.root)
        return dict(item.split("=", 1) for item in out.stdout.split() if "=" in item)

    def run(self, *args, cwd, env=None):
        """A client command, from the first node (where the controller is reachable)."""
        return subprocess.run(self._in_node(0, None, [*map(str, args)]), cwd=cwd,
                              env={**self.cluster.env(), **self.env, **(env or {})}, capture_output=True, text=True)

    def stop(self) -> None:
        """Each node's slurmd by its PID file, then the controller and munged (the cluster's
        own teardown kills whatever is left inside the namespaces)."""
        for path in self.root.glob("slurmd-*.pid"):
            try:
                os.kill(int(path.read_text().strip()), signal.SIGTERM)
            except (ValueError, ProcessLookupError):
                pass
        super().stop()
