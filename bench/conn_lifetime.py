"""How long should Django keep its connection to PgBouncer? Measures the list page
under gunicorn + PgBouncer for CONN_MAX_AGE=0 and for persistent connections with
and without health checks, interleaved in rounds; prints medians (min..max).

    .venv/bin/python -m bench.conn_lifetime [--rounds 3] [--seconds 10]
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from devstack.process import Account, port_pick, run_checked
from devstack.stack import PROJECT_DIR, Stack, StackSettings, web_child

CONFIGS = {
    "CONN_MAX_AGE=0": {"CONN_MAX_AGE": "0", "CONN_HEALTH_CHECKS": "0"},
    "CONN_MAX_AGE=600, health checks": {
        "CONN_MAX_AGE": "600",
        "CONN_HEALTH_CHECKS": "1",
    },
    "CONN_MAX_AGE=600, no health checks": {
        "CONN_MAX_AGE": "600",
        "CONN_HEALTH_CHECKS": "0",
    },
}


def wrk(url: str, seconds: int, connections: int) -> float:
    out = subprocess.run(
        ["wrk", "-t2", f"-c{connections}", f"-d{seconds}s", url],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    match = re.search(r"Requests/sec:\s+([\d.]+)", out)
    if not match:
        raise RuntimeError(out)
    return float(match.group(1))


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=16)
    args = parser.parse_args()
    if not shutil.which("wrk"):
        sys.exit("wrk is not installed: apt-get install wrk")
    root = Path(tempfile.mkdtemp(prefix="bench-"))
    root.chmod(0o755)
    stack = Stack(
        StackSettings(
            root=root,
            postgres_port=port_pick(),
            pgbouncer_port=port_pick(),
            web_port=port_pick(),
        )
    )
    stack.start()
    results: dict[str, list[float]] = {name: [] for name in CONFIGS}
    try:
        base = {
            **stack.site_env(),
            "DJANGO_DEBUG": "0",
            "DJANGO_HTTPS": "0",
            "DJANGO_SECRET_KEY": stack.secrets["django_secret_key"],
            "DJANGO_ALLOWED_HOSTS": "127.0.0.1",
            "PATH": "/usr/bin:/bin",
        }
        manage = [sys.executable, str(PROJECT_DIR / "manage.py")]
        run_checked([*manage, "migrate", "-v0"], what="migrate", env=base)
        run_checked([*manage, "seed_posts", "--count", "50"], what="seed", env=base)
        for _ in range(args.rounds):
            for name, extra in CONFIGS.items():
                web = web_child(stack, {**base, **extra}, account=Account())
                web.start()
                try:
                    wrk(stack.web_url + "/", 2, args.connections)  # warm up
                    results[name].append(
                        wrk(stack.web_url + "/", args.seconds, args.connections)
                    )
                finally:
                    web.stop()
    finally:
        stack.stop()
        shutil.rmtree(root, ignore_errors=True)
    summary = {
        name: {"median": statistics.median(v), "min": min(v), "max": max(v), "runs": v}
        for name, v in results.items()
    }
    print(
        f"list page, wrk -c{args.connections} -d{args.seconds}s, "
        f"{args.rounds} rounds interleaved (req/s):"
    )
    for name, s in summary.items():
        print(
            f"  {name:38} median {s['median']:7.0f}  ({s['min']:.0f}..{s['max']:.0f})"
        )
    out = PROJECT_DIR / "bench" / "results" / "conn_lifetime.json"
    out.write_text(json.dumps(summary, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
