"""Regenerate everything derived from protos/: Python stubs (+ typed stubs), Envoy's descriptor set and the OpenAPI
document of the REST surface (gateway/openapi.py reads the descriptor set; the gateway serves it at
/api/v1/openapi.json).

One command (`python tools/gen.py`); CI runs it with `--check` and fails if the committed output differs.
google/api protos are materialised from the installed googleapis-common-protos package into .build/ (ignored),
so no third-party .proto is committed and buf sees the same files.
"""

from __future__ import annotations

import argparse
import filecmp
import shutil
import subprocess
import sys
import sysconfig
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PROTOS = ROOT / "protos"
THIRD_PARTY = ROOT / ".build" / "googleapis"
OUT = ROOT / "gen"
GOOGLE_API_FILES = ("annotations.proto", "http.proto", "httpbody.proto", "field_behavior.proto")
GOOGLE_RPC_FILES = ("status.proto", "error_details.proto", "code.proto")
# Not used by our contracts, but Envoy's transcoder must know these types to turn error details into JSON.
EXTRA_DESCRIPTOR_SOURCES = ("google/rpc/error_details.proto", "google/rpc/status.proto")


def materialise_googleapis() -> Path:
    """Copy google/api and google/rpc protos from the installed package (namespace packages: no __init__)."""
    import google.api.annotations_pb2 as annotations
    import google.rpc.status_pb2 as status

    for module, folder, names in ((annotations, "api", GOOGLE_API_FILES), (status, "rpc", GOOGLE_RPC_FILES)):
        src = Path(module.__file__).parent
        dst = THIRD_PARTY / "google" / folder
        dst.mkdir(parents=True, exist_ok=True)
        for name in names:
            shutil.copyfile(src / name, dst / name)
    return THIRD_PARTY


def well_known_include() -> Path:
    import grpc_tools

    return Path(grpc_tools.__file__).parent / "_proto"


def generate(out: Path) -> None:
    third_party = materialise_googleapis()
    sources = sorted(str(p.relative_to(PROTOS)) for p in PROTOS.rglob("*.proto"))
    py_out = out / "python"
    py_out.mkdir(parents=True, exist_ok=True)
    includes = [f"-I{PROTOS}", f"-I{third_party}", f"-I{well_known_include()}"]
    protoc = [sys.executable, "-m", "grpc_tools.protoc", *includes]
    # The mypy-protobuf plugins live beside this interpreter: named here, they are found without an activated venv
    # (`./dev test` runs the venv's python directly).
    scripts = Path(sysconfig.get_path("scripts"))
    plugins = [
        f"--plugin={name}={scripts / name}"
        for name in ("protoc-gen-mypy", "protoc-gen-mypy_grpc")
        if (scripts / name).exists()
    ]
    subprocess.run(
        [
            *protoc,
            *plugins,
            f"--python_out={py_out}",
            f"--grpc_python_out={py_out}",
            f"--mypy_out={py_out}",
            f"--mypy_grpc_out={py_out}",
            *sources,
        ],
        check=True,
        cwd=PROTOS,
    )
    subprocess.run(
        [
            *protoc,
            "--include_imports",
            "--include_source_info",
            f"--descriptor_set_out={out / 'python' / 'flowdock' / 'descriptor.binpb'}",
            *sources,
            *EXTRA_DESCRIPTOR_SOURCES,
        ],
        check=True,
        cwd=PROTOS,
    )
    for pkg_dir in sorted({p.parent for p in py_out.rglob("*.py")}):
        while pkg_dir != py_out:
            init = pkg_dir / "__init__.py"
            if not init.exists():
                init.write_text('"""Generated from protos/ by tools/gen.py; do not edit."""\n')
            pkg_dir = pkg_dir.parent
    (py_out / "flowdock" / "py.typed").write_text("")
    # Beside the descriptor set (package data): the gateway finds both the same way, installed or from a checkout.
    sys.path.insert(0, str(ROOT))
    from gateway.openapi import render_openapi

    descriptor = py_out / "flowdock" / "descriptor.binpb"
    (py_out / "flowdock" / "openapi.json").write_text(render_openapi(descriptor), encoding="utf-8")


def trees_equal(a: Path, b: Path) -> list[str]:
    cmp = filecmp.dircmp(a, b, ignore=["__pycache__"])
    diffs: list[str] = []

    def walk(c: filecmp.dircmp[str], prefix: str) -> None:
        diffs.extend(f"{prefix}{n} (only in one tree)" for n in c.left_only + c.right_only)
        diffs.extend(f"{prefix}{n}" for n in c.diff_files)
        for name, sub in c.subdirs.items():
            walk(sub, f"{prefix}{name}/")

    walk(cmp, "")
    # dircmp compares shallowly by stat; confirm differing candidates byte by byte.
    return [d for d in diffs if "only in" in d or not filecmp.cmp(a / d, b / d, shallow=False)]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--check", action="store_true", help="fail if regenerating would change gen/")
    parser.add_argument("--materialise-only", action="store_true", help="only write .build/googleapis (for buf)")
    parser.add_argument("--gen-dir", type=Path, default=OUT, help="the generated tree to check (default: gen/)")
    args = parser.parse_args()
    if args.materialise_only:
        materialise_googleapis()
        return 0
    if args.check:
        with tempfile.TemporaryDirectory() as tmp:
            generate(Path(tmp))
            diffs = trees_equal(args.gen_dir, Path(tmp))
        if diffs:
            print("gen/ is stale or hand-edited; run `python tools/gen.py`. Differs:", *diffs, sep="\n  ")
            return 1
        print("gen/ is up to date")
        return 0
    if OUT.exists():
        shutil.rmtree(OUT)
    generate(OUT)
    print(f"generated into {OUT.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
