"""The committed stubs are what grpcio-tools makes of proto/ today."""

import pathlib
import sys

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tools"))

import gen_stubs  # noqa: E402


def test_committed_stubs_match_the_proto(tmp_path):
    gen_stubs.generate(tmp_path)
    committed = HERE.parent / "src" / "meshrtc" / "v1"
    for name in ("meshrtc_pb2.py", "meshrtc_pb2.pyi", "meshrtc_pb2_grpc.py"):
        fresh = (tmp_path / "meshrtc" / "v1" / name).read_text()
        assert fresh == (committed / name).read_text(), (
            f"{name} differs from proto/: run `python clients/python/tools/gen_stubs.py`"
        )
