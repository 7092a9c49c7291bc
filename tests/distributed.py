"""Launching the real CLI under torchrun from tests, and comparing what two launches wrote.

For any test under tests/ (pytest puts tests/ on ``sys.path`` for its conftest.py):
``from distributed import cli_paths, ok, same_tree, wsl, wsl_nodes``. ``wsl(args, cwd, nproc=2)`` runs
``torchrun --standalone --nproc_per_node=2 -m wsl.run args`` (``nproc=1``: plain ``python -m wsl.run``),
``wsl_nodes`` starts two torchrun groups as two machines, ``same_tree`` asserts two output folders hold the
same files byte for byte.

Run as a script (``torchrun ... tests/distributed.py <overrides>``) it is the ``wsl.run`` entry point with
one fault injected: rank ``WSL_KILL_RANK`` of the FIRST attempt only keeps ``WSL_KILL_AFTER`` (wsl.io's
SIGKILL after the n-th write of a matching file); every other rank, and every rank of an attempt restarted
by ``torchrun --max-restarts``, runs without it.
"""

from __future__ import annotations

import filecmp
import json
import os
import socket
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
TORCHRUN = [sys.executable, "-m", "torch.distributed.run"]


def cli_paths(data_root: Path, out: Path) -> list[str]:
    """Overrides pointing the CLI at the session's small toy data (tests/conftest.py) and ``out``.
    ``threads=1``: the same intra-op threads in every process, so that kernels sum in the same order."""
    return [
        f"paths.data_root={data_root}",
        f"paths.output_root={out}",
        "num_workers=0",
        "threads=1",
        "++dataset.prepare.n_train=48",
        "++dataset.prepare.n_val=24",
    ]


def env(**extra: str) -> dict[str, str]:
    e = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "OMP_NUM_THREADS": "1", **extra}
    for key in ("WSL_KILL_AFTER", "WSL_KILL_RANK", "RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR"):
        if key not in extra:
            e.pop(key, None)
    return e


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wsl(
    args: Sequence[str],
    cwd: Path,
    nproc: int = 1,
    torchrun_args: Sequence[str] = (),
    script: str | None = None,
    timeout: float = 900,
    **extra_env: str,
) -> subprocess.CompletedProcess:
    """``python -m wsl.run args`` (``nproc=1``) or ``torchrun --standalone --nproc_per_node=nproc -m
    wsl.run args`` (or ``script`` instead of ``-m wsl.run``); output captured, never raises on failure."""
    if nproc == 1 and not torchrun_args and script is None:
        head = [sys.executable, "-m", "wsl.run"]
    else:
        entry = [script] if script else ["-m", "wsl.run"]
        head = [*TORCHRUN, "--standalone", f"--nproc_per_node={nproc}", *torchrun_args, *entry]
    return subprocess.run([*head, *args], cwd=cwd, env=env(**extra_env), capture_output=True, text=True,
                          timeout=timeout)  # fmt: skip


def wsl_nodes(args: Sequence[str], cwd: Path, nnodes: int = 2, timeout: float = 900) -> list[tuple[int, str]]:
    """``nnodes`` torchrun groups of one process each, started side by side on this machine as if on
    ``nnodes`` machines: c10d rendezvous on a free localhost port. Returns (exit code, output) per node."""
    port = free_port()
    head = [*TORCHRUN, f"--nnodes={nnodes}", "--nproc_per_node=1", "--rdzv_backend=c10d",
            f"--rdzv_endpoint=127.0.0.1:{port}", f"--rdzv_id=wsl-test-{port}", "-m", "wsl.run"]  # fmt: skip
    procs = [
        subprocess.Popen(
            [*head, *args], cwd=cwd, env=env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )  # fmt: skip
        for _ in range(nnodes)
    ]
    results = []
    for p in procs:
        try:
            out, _ = p.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            p.kill()
            out, _ = p.communicate()
        results.append((p.returncode, out))
    return results


def ok(r: subprocess.CompletedProcess) -> subprocess.CompletedProcess:
    assert r.returncode == 0, (r.stdout + r.stderr)[-4000:]
    assert "Traceback" not in r.stderr, r.stderr[-4000:]
    return r


def same_tree(a: Path, b: Path, skip: Sequence[str] = ("manifest.json",), json_root: tuple | None = None):
    """Assert folders ``a`` and ``b`` hold the same files with the same bytes, except the names in
    ``skip`` (manifests record times and the world size). JSON files are compared as objects, with
    ``json_root = (root_of_b, root_of_a)`` replaced in their strings (paths in metrics files)."""
    names_a = sorted(str(p.relative_to(a)) for p in a.rglob("*") if p.is_file() and p.name not in skip)
    names_b = sorted(str(p.relative_to(b)) for p in b.rglob("*") if p.is_file() and p.name not in skip)
    assert names_a == names_b, set(names_a) ^ set(names_b)
    assert names_a, f"{a} is empty"
    for name in names_a:
        if name.endswith(".json"):
            text = (b / name).read_text()
            if json_root:
                text = text.replace(str(json_root[0]), str(json_root[1]))
            assert json.loads((a / name).read_text()) == json.loads(text), name
        else:
            assert filecmp.cmp(a / name, b / name, shallow=False), f"{b / name} differs from {a / name}"


def _killing_entry() -> None:
    if not (os.environ.get("RANK") == os.environ.get("WSL_KILL_RANK", "1")
            and os.environ.get("TORCHELASTIC_RESTART_COUNT", "0") == "0"):  # fmt: skip
        os.environ.pop("WSL_KILL_AFTER", None)
    sys.path.insert(0, str(REPO_ROOT))
    from wsl.run import main

    main()


if __name__ == "__main__":
    _killing_entry()
