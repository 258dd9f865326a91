"""Regenerates the committed gRPC stubs from proto/ (grpcio-tools; no system protoc).

Usage: python tools/gen_stubs.py [OUT_DIR]   (default: src/, i.e. in place)
"""

import pathlib
import sys

from grpc_tools import protoc

HERE = pathlib.Path(__file__).resolve().parent
PROTO_ROOT = HERE.parent.parent.parent / "proto"
PROTO = "meshrtc/v1/meshrtc.proto"


def generate(out_dir: pathlib.Path) -> None:
    """Writes meshrtc/v1/meshrtc_pb2{.py,.pyi,_grpc.py} under out_dir."""
    (out_dir / "meshrtc" / "v1").mkdir(parents=True, exist_ok=True)
    args = [
        "grpc_tools.protoc",
        f"-I{PROTO_ROOT}",
        f"--python_out={out_dir}",
        f"--pyi_out={out_dir}",
        f"--grpc_python_out={out_dir}",
        PROTO,
    ]
    if protoc.main(args) != 0:
        raise SystemExit(f"protoc failed on {PROTO_ROOT / PROTO}")


if __name__ == "__main__":
    generate(pathlib.Path(sys.argv[1]) if len(sys.argv) > 1 else HERE.parent / "src")
