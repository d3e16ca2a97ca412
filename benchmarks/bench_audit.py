"""What signing the audit log costs: opening the cases of a run, and verifying the log.

``cases open`` of a run with ``--variances`` variances writes one audit entry per case,
each signed. Measured in the same run, on fresh stores:

* **unsigned** (baseline): the same import without signing (claimed actor);
* **key file**: signed in-process with an Ed25519 key file (``cryptography``);
* **ssh-agent**: signed by a real ``ssh-agent`` over its socket (one round trip per entry).

Then verifying the signed log as an auditor does (``check_audit``: chain, every
signature, the rules replayed, the store compared) against the hash chain alone
(``AuditLog.verify``), the check of the unsigned log.

The fixture runs come from ``tests/cases/runs.py`` (the variance log contract's columns).

Run: ``.venv/bin/python -m benchmarks.bench_audit [--variances 5000]``.
Writes ``benchmarks/results/audit.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import tempfile
import time
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Any

from tests.cases.runs import V, write_run

from tagsweep.config.cases import CasesSection
from tagsweep.engine.cases import CaseStore
from tagsweep.engine.sshsig import AgentSigner, KeyFileSigner, Signer, parse_public_key

RESULTS = Path(__file__).parent / "results" / "audit.json"


def _timed(work: Callable[[], Any]) -> float:
    started = time.perf_counter()
    work()
    return time.perf_counter() - started


def _agent(folder: Path, key: Path) -> tuple[subprocess.Popen[bytes], str]:
    sock = str(folder / "agent.sock")
    proc = subprocess.Popen(["ssh-agent", "-D", "-a", sock], stdout=subprocess.DEVNULL)
    env = {**os.environ, "SSH_AUTH_SOCK": sock}
    deadline = time.monotonic() + 30
    while (
        subprocess.run(["ssh-add", "-l"], env=env, capture_output=True, check=False).returncode == 2
    ):
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError("ssh-agent did not start")
        time.sleep(0.01)
    subprocess.run(["ssh-add", "-q", str(key)], env=env, check=True)
    return proc, sock


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--variances", type=int, default=5000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-audit-") as tmp:
        root = Path(tmp)
        items = [
            V("missing", f"AST-{i:06d}", expected_location="DC1/R1") for i in range(args.variances)
        ]
        run = write_run(root / "run", "run-1", date(2026, 5, 1), items)
        key = root / "bench"
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
        allowed = root / "allowed_signers"
        allowed.write_text(f"bench {(root / 'bench.pub').read_text()}")
        signed = CasesSection(allowed_signers=allowed)

        def import_with(name: str, signer: Signer | None) -> float:
            settings = signed if signer is not None else CasesSection()
            store = CaseStore(root / name, settings, signer=signer)
            return _timed(lambda: store.import_run(run, actor="bench"))

        unsigned = import_with("unsigned", None)
        key_file = import_with("keyfile", KeyFileSigner(key))
        proc, sock = _agent(root, key)
        try:
            blob = parse_public_key((root / "bench.pub").read_text())
            agent = import_with("agent", AgentSigner(blob, sock))
        finally:
            proc.terminate()
            proc.wait(timeout=30)
        store = CaseStore(root / "keyfile", signed)
        chain_only = _timed(store.verify_audit)
        checked: dict[str, Any] = {}
        full = _timed(lambda: checked.setdefault("r", store.check_audit()))
        assert checked["r"].ok, checked["r"].describe()
    entries = args.variances + 1
    result = {
        "variances": args.variances,
        "entries": entries,
        "import_s": {"unsigned": unsigned, "key_file": key_file, "ssh_agent": agent},
        "import_ratio_vs_unsigned": {
            "key_file": key_file / unsigned,
            "ssh_agent": agent / unsigned,
        },
        "sign_ms_per_entry": {
            "key_file": 1000 * (key_file - unsigned) / entries,
            "ssh_agent": 1000 * (agent - unsigned) / entries,
        },
        "verify_s": {"chain_only": chain_only, "full_check": full},
        "verify_ratio_full_vs_chain": full / chain_only,
        "verify_entries_per_s": entries / full,
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
