"""Emulated nodes on one host, for the multi-node tests and benchmarks: each node is a network
namespace with its own link (a veth pair into a hub namespace's bridge), optionally capped with
`tc ... tbf`; hydra starts ranks in them through a launcher script that enters the namespace.

    with EmulatedCluster(nodes=2, rate="1gbit") as cluster:
        result = cluster.mpiexec(4, [sys.executable, "-m", "mpireg.train", JOB], ranks_per_node=2)
        cluster.link_bytes()          # bytes the nodes sent over their links (the qdisc counters)

The facts it relies on were measured on this kind of machine (shared/notes/multi-node-on-one-
host.md): namespaces entered with nsenter, MPICH's netmod forced onto TCP (else the bytes take
a same-host shortcut and never touch the link), one BLAS thread a rank (the nodes share the
host's cores), netem unavailable (bandwidth can be capped, latency cannot be added).
"""
from __future__ import annotations

import itertools
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

SUBNET = "10.78.0"
IFACE = "mpl0"  # the node's end of its link, the same name inside every node's namespace
NETNS = Path("/var/run/netns")
# MPICH's netmod on TCP through libfabric: without it a same-host shared-memory path carries the
# bytes (the qdisc saw 57 KB of a 64 MiB transfer); one BLAS thread a rank (2 threads on the
# shared cores made an MLP step 74 ms instead of 3 ms).
MPI_ENV = {"MPICH_CH4_NETMOD": "ofi", "FI_PROVIDER": "tcp", "OMP_NUM_THREADS": "1"}

_cached_reason: list = []
_serial = itertools.count()


def why_not_available() -> str | None:
    """None where network namespaces (and a capped link) can be made here, else why not."""
    if _cached_reason:
        return _cached_reason[0]
    reason = _probe()
    _cached_reason.append(reason)
    return reason


def _probe() -> str | None:
    if os.name != "posix" or os.geteuid() != 0:
        return "emulated nodes need root (network namespaces)"
    for tool in ("ip", "tc", "nsenter"):
        if not shutil.which(tool):
            return f"emulated nodes need the {tool!r} tool (iproute2, util-linux)"
    name = f"mpiregprobe{os.getpid()}"
    made = subprocess.run(["ip", "netns", "add", name], capture_output=True, text=True)
    if made.returncode != 0:
        return f"cannot create a network namespace here: {made.stderr.strip()}"
    subprocess.run(["ip", "netns", "del", name], capture_output=True)
    return None


def _ip(*args, ns: str | None = None) -> None:
    cmd = ["ip", *(["-n", ns] if ns else []), *args]
    result = subprocess.run(cmd, capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)}: {result.stderr.strip()}")


class EmulatedCluster:
    """`nodes` namespaces joined through a hub's bridge; each node's sending side capped at
    `rate` (tc's units: "1gbit", "4gbit"; None: uncapped, about 8 Gbit/s here)."""

    def __init__(self, nodes: int = 2, rate: str | None = None):
        if not 1 <= nodes <= 8:
            raise ValueError(f"1 to 8 emulated nodes, not {nodes}")
        self.n, self.rate = nodes, rate
        tag = f"{os.getpid() % 100000}{next(_serial) % 100}"  # unique among this host's clusters
        self.hub = f"mrh{tag}"
        self.nodes = [f"mrn{tag}x{i}" for i in range(nodes)]
        self.addresses = [f"{SUBNET}.{i + 1}" for i in range(nodes)]
        self.workdir = Path(tempfile.mkdtemp(prefix="mpireg-cluster-"))
        self.launcher = self.workdir / "enter-node"

    # ------------------------------------------------------------------ lifetime
    def __enter__(self) -> "EmulatedCluster":
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def start(self) -> None:
        _ip("netns", "add", self.hub)
        _ip("link", "add", "br0", "type", "bridge", ns=self.hub)
        _ip("link", "set", "br0", "up", ns=self.hub)
        for i, (node, address) in enumerate(zip(self.nodes, self.addresses)):
            outer, inner = f"{self.hub}h{i}"[-15:], f"{self.hub}v{i}"[-15:]
            _ip("netns", "add", node)
            _ip("link", "add", inner, "type", "veth", "peer", "name", outer)
            _ip("link", "set", inner, "netns", node)
            _ip("link", "set", inner, "name", IFACE, ns=node)
            _ip("addr", "add", f"{address}/24", "dev", IFACE, ns=node)
            _ip("link", "set", IFACE, "up", ns=node)
            _ip("link", "set", "lo", "up", ns=node)
            _ip("link", "set", outer, "netns", self.hub)
            _ip("link", "set", outer, "master", "br0", ns=self.hub)
            _ip("link", "set", outer, "up", ns=self.hub)
            if self.rate:
                self._cap(node)
        self._write_launcher()

    def _cap(self, node: str) -> None:
        """What a node sends is capped once, on its way out (each direction of a transfer
        crosses one sender's qdisc)."""
        cmd = ["tc", "-n", node, "qdisc", "add", "dev", IFACE, "root", "tbf", "rate", self.rate,
               "burst", "256kb", "latency", "10ms"]
        result = subprocess.run(cmd, capture_output=True, text=True)
        if result.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd)}: {result.stderr.strip()}")

    def _write_launcher(self) -> None:
        """hydra calls `LAUNCHER -x HOST COMMAND...` (its ssh launcher's arguments): run COMMAND
        inside HOST's namespace."""
        cases = "\n".join(f"  {a}) ns={n} ;;" for a, n in zip(self.addresses, self.nodes))
        self.launcher.write_text(f"""#!/bin/sh
[ "$1" = "-x" ] && shift
host=$1; shift
case $host in
{cases}
  *) echo "enter-node: unknown host $host" >&2; exit 2 ;;
esac
exec nsenter --net={NETNS}/$ns /bin/sh -c "$*"
""")
        self.launcher.chmod(0o755)

    def stop(self) -> None:
        """Every process still inside a node goes with it, then the namespaces."""
        for ns in [*self.nodes, self.hub]:
            if (NETNS / ns).exists():
                pids = subprocess.run(["ip", "netns", "pids", ns], capture_output=True, text=True).stdout.split()
                for pid in pids:
                    try:
                        os.kill(int(pid), 9)
                    except (ProcessLookupError, ValueError):
                        pass
                subprocess.run(["ip", "netns", "del", ns], capture_output=True)
        shutil.rmtree(self.workdir, ignore_errors=True)

    # ------------------------------------------------------------------ running ranks
    def mpiexec_command(self, n: int, command, ranks_per_node: int = 1, options=()) -> list[str]:
        """`mpiexec` started in the first node, its ranks placed `ranks_per_node` a node."""
        from tests.helpers import mpiexec_path

        mpiexec = mpiexec_path()
        nodes = -(-n // ranks_per_node)
        if nodes > self.n:
            raise ValueError(f"{n} ranks at {ranks_per_node} a node need {nodes} nodes; the cluster has {self.n}")
        return ["nsenter", f"--net={NETNS / self.nodes[0]}", mpiexec, "-launcher", "ssh",
                "-launcher-exec", str(self.launcher), "-hosts", ",".join(self.addresses[:nodes]),
                "-ppn", str(ranks_per_node), "-n", str(n), "-iface", IFACE, "-genvall", *options, *map(str, command)]

    def env(self, extra: dict | None = None) -> dict:
        root = str(Path(__file__).resolve().parents[1])
        return {**os.environ, **MPI_ENV, "PYTHONPATH": root + os.pathsep + os.environ.get("PYTHONPATH", ""),
                **(extra or {})}

    def start_ranks(self, n: int, command, ranks_per_node: int = 1, cwd=None, env=None, options=()) -> subprocess.Popen:
        return subprocess.Popen(self.mpiexec_command(n, command, ranks_per_node, options), stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, cwd=cwd, env=self.env(env),
                                start_new_session=True, stdin=subprocess.DEVNULL)

    def run(self, n: int, command, ranks_per_node: int = 1, cwd=None, env=None, timeout: float = 180):
        """Run to the end (the load-scaled limit of tests/helpers.py's finish_command)."""
        from tests.helpers import finish_command

        return finish_command(self.start_ranks(n, command, ranks_per_node, cwd, env), timeout)

    # ------------------------------------------------------------------ the links
    def link_bytes(self) -> int:
        """Bytes every node has sent over its link so far (headers included): the qdisc's
        counter where the link is capped, else the interface's."""
        total = 0
        for node in self.nodes:
            out = subprocess.run(["ip", "-n", node, "-s", "link", "show", IFACE], capture_output=True,
                                 text=True).stdout.split("\n")
            tx = next(i for i, line in enumerate(out) if line.strip().startswith("TX:"))
            total += int(out[tx + 1].split()[0])
        return total

    def processes(self, node: int | None = None, matching: str = "") -> list[int]:
        """PIDs inside one node (or any), whose command line holds `matching`."""
        found = []
        for ns in self.nodes if node is None else [self.nodes[node]]:
            pids = subprocess.run(["ip", "netns", "pids", ns], capture_output=True, text=True).stdout.split()
            for pid in map(int, pids):
                try:
                    with open(f"/proc/{pid}/cmdline", "rb") as f:
                        if matching.encode() in f.read():
                            found.append(pid)
                except OSError:
                    pass  # (ended meanwhile)
        return found

    def cut(self, node: int) -> None:
        """Take a node's link down (a cable pulled)."""
        _ip("link", "set", IFACE, "down", ns=self.nodes[node])
