"""Regenerate everything derived from protos/: Python stubs (+ typed stubs), Envoy's descriptor set, the OpenAPI
document of the REST surface (gateway/openapi.py reads the descriptor set; the gateway serves it at
/api/v1/openapi.json) and the TypeScript SDK's protobuf-es code (clients/ts/src/gen/).

One command (`python tools/gen.py`); CI runs it with `--check` and fails if the committed output differs.
google/api protos are materialised from the installed googleapis-common-protos package into .build/ (ignored),
so no third-party .proto is committed and buf sees the same files. The TypeScript code is made by buf (buf-bin, in
the venv) with the protoc-gen-es plugin from clients/node_modules (`npm ci --prefix clients` installs it).
"""

from __future__ import annotations

import argparse
import filecmp
import json
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
TS_OUT = ROOT / "clients" / "ts" / "src" / "gen"
TS_PLUGIN = ROOT / "clients" / "node_modules" / ".bin" / "protoc-gen-es"
TS_README = (
    "# Generated code: do not edit\n\n"
    "Everything here is generated from `protos/` by `python tools/gen.py` (buf + protoc-gen-es, target=ts, with\n"
    "imports); CI's `python tools/gen.py --check` fails on any hand edit. Change the protos and rerun the tool.\n"
)
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


class MissingTool(Exception):
    """A generator the TypeScript output needs is not installed; the message says how to install it."""


def generate_ts(out: Path) -> None:
    """protobuf-es v2 code for the TypeScript SDK; Connect-ES takes its service descriptors directly."""
    materialise_googleapis()
    if not TS_PLUGIN.exists():
        raise MissingTool(
            f"{TS_PLUGIN.relative_to(ROOT)} is missing: the TypeScript code cannot be generated or checked. "
            "Install the npm workspace first: `npm ci --prefix clients` (Node 20 + npm)."
        )
    buf = Path(sysconfig.get_path("scripts")) / "buf"
    if not buf.exists():
        found = shutil.which("buf")
        if found is None:
            raise MissingTool("buf is missing: install the Python dev dependencies (`./dev setup`; buf-bin)")
        buf = Path(found)
    template = {
        "version": "v2",
        "plugins": [
            {"local": str(TS_PLUGIN), "out": str(out), "opt": ["target=ts"], "include_imports": True},
        ],
    }
    out.mkdir(parents=True, exist_ok=True)
    subprocess.run([str(buf), "generate", "--template", json.dumps(template)], check=True, cwd=ROOT)
    (out / "README.md").write_text(TS_README)


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
    parser.add_argument(
        "--ts-dir", type=Path, default=TS_OUT, help="the generated TypeScript to check (default: clients/ts/src/gen/)"
    )
    args = parser.parse_args()
    if args.materialise_only:
        materialise_googleapis()
        return 0
    try:
        if args.check:
            return check(args.gen_dir, args.ts_dir)
        for folder in (OUT, TS_OUT):
            if folder.exists():
                shutil.rmtree(folder)
        generate(OUT)
        generate_ts(TS_OUT)
    except MissingTool as exc:
        print(f"tools/gen.py: {exc}", file=sys.stderr)
        return 2
    print(f"generated into {OUT.relative_to(ROOT)} and {TS_OUT.relative_to(ROOT)}")
    return 0


def check(gen_dir: Path, ts_dir: Path) -> int:
    with tempfile.TemporaryDirectory() as tmp:
        generate(Path(tmp) / "gen")
        generate_ts(Path(tmp) / "ts")
        diffs = trees_equal(gen_dir, Path(tmp) / "gen") if gen_dir.is_dir() else [f"{gen_dir} (missing)"]
        ts_diffs = trees_equal(ts_dir, Path(tmp) / "ts") if ts_dir.is_dir() else [f"{ts_dir} (missing)"]
    diffs += [f"clients/ts/src/gen/{d}" for d in ts_diffs]
    if diffs:
        print("generated code is stale or hand-edited; run `python tools/gen.py`. Differs:", *diffs, sep="\n  ")
        return 1
    print("gen/ and clients/ts/src/gen/ are up to date")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
