"""Builds the agent's files for the portal to serve (docs/agent-protocol.md,
section 6): the single-file ``fujissl-agent.pyz`` (a zipapp that runs with the
server's ``python3``), the wheel ``fujissl_agent-<version>-py3-none-any.whl``,
and ``SHA256SUMS`` over both, in the ``sha256sum`` format.

Offline and with the standard library only: the wheel is written here, not by
a build backend. Both are reproducible: the same sources give the same bytes,
so the checksums change only when the agent does.

From the repository root: ``python -m agent.build OUT`` (or ``make
agent-dist``); from Python: ``agent.build.build_zipapp(out_dir)``,
``build_wheel(out_dir)``, ``build_all(out_dir)``."""

from __future__ import annotations

import base64
import hashlib
import io
import os
import re
import stat
import sys
import tempfile
import zipapp
import zipfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
PACKAGE = HERE / "fujissl_agent"
ZIPAPP_NAME = "fujissl-agent.pyz"
SUMS_NAME = "SHA256SUMS"
INTERPRETER = "/usr/bin/env python3"
ENTRY_POINT = "fujissl_agent.cli:main"
# Every file in the archives gets this time (zip's earliest), for reproducible bytes.
FIXED_TIME = (1980, 1, 1, 0, 0, 0)


def version() -> str:
    text = (PACKAGE / "__init__.py").read_text(encoding="utf-8")
    match = re.search(r"__version__\s*=\s*[\"']([^\"']+)[\"']", text)
    if not match:
        raise RuntimeError(f"no __version__ in {PACKAGE / '__init__.py'}")
    return match.group(1)


def _sources() -> list[tuple[str, bytes]]:
    """(path in the archive, content) of each module of the package, sorted."""
    return [(f"fujissl_agent/{path.name}", path.read_bytes())
            for path in sorted(PACKAGE.glob("*.py"))]


def _zip_entry(name: str, mode: int = 0o644) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name, date_time=FIXED_TIME)
    info.compress_type = zipfile.ZIP_DEFLATED
    info.external_attr = (stat.S_IFREG | mode) << 16
    return info


def build_zipapp(out_dir: str | os.PathLike[str]) -> Path:
    """``fujissl-agent.pyz`` in ``out_dir`` (made if missing), with SHA256SUMS
    updated; its path."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    target = out / ZIPAPP_NAME
    with tempfile.TemporaryDirectory() as staging:
        source = Path(staging) / "app"
        (source / "fujissl_agent").mkdir(parents=True)
        for name, data in _sources():
            (source / name).write_bytes(data)
        # zipapp writes __main__.py (calling ENTRY_POINT) beside the package;
        # the times are fixed afterwards, as zipapp takes them from the files.
        raw = Path(staging) / "raw.pyz"
        zipapp.create_archive(source, raw, interpreter=None, main=ENTRY_POINT)
        archive = _fixed_times(raw.read_bytes())
    shebang = f"#!{INTERPRETER}\n".encode()
    _write(target, shebang + archive, mode=0o755)
    write_sums(out)
    return target


def _fixed_times(archive: bytes) -> bytes:
    """The zip ``archive`` again, entries sorted, every time FIXED_TIME."""
    result = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(archive)) as source, \
            zipfile.ZipFile(result, "w") as copy:
        for name in sorted(source.namelist()):
            if name.endswith("/"):
                continue
            copy.writestr(_zip_entry(name), source.read(name))
    return result.getvalue()


def build_wheel(out_dir: str | os.PathLike[str]) -> Path:
    """``fujissl_agent-<version>-py3-none-any.whl`` in ``out_dir``, with
    SHA256SUMS updated; its path. Installs with ``pip install`` and gives
    the ``fujissl-agent`` command."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    number = version()
    dist_info = f"fujissl_agent-{number}.dist-info"
    readme = (HERE / "README.md").read_text(encoding="utf-8")
    metadata = (f"Metadata-Version: 2.1\nName: fujissl-agent\nVersion: {number}\n"
                "Summary: Installs a server's TLS certificates from a FujiSSL portal "
                "(pull agent).\nRequires-Python: >=3.9\n"
                "Description-Content-Type: text/markdown\n\n" + readme)
    files = _sources() + [
        (f"{dist_info}/METADATA", metadata.encode()),
        (f"{dist_info}/WHEEL", b"Wheel-Version: 1.0\nGenerator: fujissl-agent build.py\n"
                               b"Root-Is-Purelib: true\nTag: py3-none-any\n"),
        (f"{dist_info}/entry_points.txt",
         f"[console_scripts]\nfujissl-agent = {ENTRY_POINT}\n".encode()),
        (f"{dist_info}/top_level.txt", b"fujissl_agent\n"),
    ]
    record = "".join(f"{name},sha256={_urlsafe_digest(data)},{len(data)}\n"
                     for name, data in files) + f"{dist_info}/RECORD,,\n"
    files.append((f"{dist_info}/RECORD", record.encode()))
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as wheel:
        for name, data in files:
            wheel.writestr(_zip_entry(name), data)
    for old in out.glob("fujissl_agent-*.whl"):
        old.unlink()
    target = out / f"fujissl_agent-{number}-py3-none-any.whl"
    _write(target, buffer.getvalue(), mode=0o644)
    write_sums(out)
    return target


def _urlsafe_digest(data: bytes) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


def write_sums(out_dir: str | os.PathLike[str]) -> Path:
    """``SHA256SUMS`` over the agent's files present in ``out_dir``, as
    ``sha256sum`` writes it (and ``sha256sum -c`` reads it)."""
    out = Path(out_dir)
    names = sorted(p.name for p in out.iterdir()
                   if p.name == ZIPAPP_NAME or re.fullmatch(r"fujissl_agent-.*\.whl", p.name))
    lines = "".join(f"{hashlib.sha256((out / name).read_bytes()).hexdigest()}  {name}\n"
                    for name in names)
    target = out / SUMS_NAME
    _write(target, lines.encode(), mode=0o644)
    return target


def build_all(out_dir: str | os.PathLike[str]) -> list[Path]:
    """The zipapp, the wheel and SHA256SUMS in ``out_dir``."""
    return [build_zipapp(out_dir), build_wheel(out_dir), Path(out_dir) / SUMS_NAME]


def _write(path: Path, data: bytes, *, mode: int) -> None:
    """Replace ``path`` at once: a portal serving it never sends half a file."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    temporary.write_bytes(data)
    temporary.chmod(mode)
    os.replace(temporary, path)


def main(argv: list[str] | None = None) -> int:
    arguments = sys.argv[1:] if argv is None else argv
    if len(arguments) != 1 or arguments[0].startswith("-"):
        print("usage: python -m agent.build OUT_DIR  (from the repository root)",
              file=sys.stderr)
        return 2
    for path in build_all(arguments[0]):
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
