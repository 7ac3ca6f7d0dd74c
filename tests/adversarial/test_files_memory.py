"""Found by an attack test: README "Memory is bounded: files stream through in 1 MiB blocks"; the benchmark
target is peak RSS < 300 MiB whatever the file size."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

PROJECT = Path(__file__).resolve().parents[2]


def test_malformed_element_in_a_large_json_array_reads_the_whole_file_into_memory(tmp_path):
    """A 200 MiB JSON array whose first element is malformed (``tru``) should fail at once.

    ``json_reader._array_records`` treats every ``JSONDecodeError`` as "the element may
    continue in the next chunk": it appends chunk after chunk (``buffer[pos:] + chunk``,
    quadratic copying) until the file is exhausted, holding the entire file as one Python
    string before it reports "element 1 is not valid JSON". Peak RSS grows with the file
    (~500 MiB for 200 MiB; a 2 GiB file needs several GiB), against ~120 MiB for reading
    a valid file of the same size.
    """
    record = '{"id": 123456, "name": "abcdefghijklmnopqrstuvwxyz", "v": 1.5},'
    path = tmp_path / "big.json"
    block = record * 16384
    with path.open("w") as f:
        f.write('[{"id": 1, "ok": tru},')
        for _ in range((200 * 1024 * 1024) // len(block)):
            f.write(block)
        f.write('{"id": 2}]')
    script = textwrap.dedent(
        f"""
        from pathlib import Path
        from platform_assets.ingestion.files.convert import convert_json
        from platform_assets.ingestion.errors import SchemaDetectionError
        from platform_assets.ingestion.sink.memory import bound_resident_memory
        bound_resident_memory()
        try:
            convert_json(Path({str(path)!r}), Path({str(tmp_path / 'out.parquet')!r}))
        except SchemaDetectionError as e:
            print("refused:", str(e)[-60:])
        # VmHWM, not ru_maxrss: the latter keeps the parent's peak across exec
        hwm = [l for l in open("/proc/self/status") if l.startswith("VmHWM")][0]
        print("peak_mib", int(hwm.split()[1]) // 1024)
        """
    )
    done = subprocess.run([sys.executable, "-c", script], cwd=PROJECT, capture_output=True, text=True, timeout=60)
    assert "refused:" in done.stdout, done.stdout + done.stderr[-500:]
    peak = int(done.stdout.split("peak_mib")[1])
    assert peak < 300, f"peak RSS {peak} MiB to refuse a 200 MiB file with a bad first element"
