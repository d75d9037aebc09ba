"""Real output of wrk 4.1.0 and pgbench 15 (PostgreSQL 15.18), captured on loopback
and kept byte for byte in samples/ (wrk pads some percentiles with a space):

- wrk-ok: `python -m http.server`; wrk-all-non-2xx: a missing path on it;
- wrk-503-and-closed: a server that answers every third request 503 and closes
  each connection (wrk counts a read error per close);
- wrk-timeouts: half the requests slower than `--timeout 1s`;
- wrk-seconds: answers after 0.3 or 1.2 s; wrk-nothing: a listener that never
  answers; wrk-refused: a closed port (wrk exits 1);
- pgbench-direct, pgbench-reconnect: `pgbench -S -n -c4 -j2 -T1`, the second with
  -C through PgBouncer.
"""

from pathlib import Path

SAMPLES = Path(__file__).resolve().parent / "samples"


def sample_read(name: str) -> str:
    return (SAMPLES / f"{name}.txt").read_text()
