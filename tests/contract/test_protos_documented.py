"""Every service, RPC, message, field, oneof, enum and enum value in protos/ carries a comment.

The contracts are the product's public face: a client author in any language reads them, not
our Python. The check compiles the real files with source info, so it sees exactly what buf and
protoc see.
"""

from __future__ import annotations

from pathlib import Path

import grpc_tools
from google.protobuf import descriptor_pb2
from grpc_tools import protoc

PROTO_ROOT = Path(__file__).resolve().parents[2] / "protos"

# Source-location path tags (descriptor.proto field numbers) and what they name.
_FILE_MESSAGE, _FILE_ENUM, _FILE_SERVICE = 4, 5, 6
_MESSAGE_FIELD, _MESSAGE_NESTED, _MESSAGE_ENUM, _MESSAGE_ONEOF = 2, 3, 4, 8
_ENUM_VALUE, _SERVICE_METHOD = 2, 2


def _compile(tmp_path: Path) -> descriptor_pb2.FileDescriptorSet:
    files = sorted(str(p.relative_to(PROTO_ROOT)) for p in PROTO_ROOT.rglob("*.proto"))
    assert files, "no .proto files found"
    out = tmp_path / "set.binpb"
    include = Path(grpc_tools.__file__).parent / "_proto"
    rc = protoc.main(
        [
            "protoc",
            f"-I{PROTO_ROOT}",
            f"-I{include}",
            "--include_source_info",
            f"--descriptor_set_out={out}",
            *files,
        ]
    )
    assert rc == 0, "protoc failed on protos/"
    return descriptor_pb2.FileDescriptorSet.FromString(out.read_bytes())


def _elements(fd: descriptor_pb2.FileDescriptorProto) -> dict[tuple[int, ...], str]:
    """Source path -> fully qualified name of every element that must be documented."""
    found: dict[tuple[int, ...], str] = {}

    def enum(path: tuple[int, ...], e: descriptor_pb2.EnumDescriptorProto, scope: str) -> None:
        found[path] = f"enum {scope}{e.name}"
        for i, v in enumerate(e.value):
            found[(*path, _ENUM_VALUE, i)] = f"enum value {scope}{e.name}.{v.name}"

    def message(path: tuple[int, ...], m: descriptor_pb2.DescriptorProto, scope: str) -> None:
        name = f"{scope}{m.name}"
        found[path] = f"message {name}"
        for i, f in enumerate(m.field):
            found[(*path, _MESSAGE_FIELD, i)] = f"field {name}.{f.name}"
        for i, o in enumerate(m.oneof_decl):
            if not o.name.startswith("_"):  # proto3 `optional` makes synthetic oneofs
                found[(*path, _MESSAGE_ONEOF, i)] = f"oneof {name}.{o.name}"
        for i, nested in enumerate(m.nested_type):
            message((*path, _MESSAGE_NESTED, i), nested, f"{name}.")
        for i, e in enumerate(m.enum_type):
            enum((*path, _MESSAGE_ENUM, i), e, f"{name}.")

    prefix = f"{fd.package}."
    for i, m in enumerate(fd.message_type):
        message((_FILE_MESSAGE, i), m, prefix)
    for i, e in enumerate(fd.enum_type):
        enum((_FILE_ENUM, i), e, prefix)
    for i, s in enumerate(fd.service):
        found[(_FILE_SERVICE, i)] = f"service {prefix}{s.name}"
        for j, method in enumerate(s.method):
            found[(_FILE_SERVICE, i, _SERVICE_METHOD, j)] = f"rpc {prefix}{s.name}.{method.name}"
    return found


def test_every_proto_element_has_a_comment(tmp_path: Path) -> None:
    fds = _compile(tmp_path)
    ours = [fd for fd in fds.file if fd.package.startswith("tggod.")]
    assert {fd.package for fd in ours} == {"tggod.session.v1", "tggod.thumbnail.v1"}
    undocumented: list[str] = []
    checked = 0
    for fd in ours:
        comments = {
            tuple(loc.path): loc.leading_comments.strip() for loc in fd.source_code_info.location
        }
        for path, name in _elements(fd).items():
            checked += 1
            if not comments.get(path):
                undocumented.append(f"{fd.name}: {name}")
    assert checked > 100, f"only {checked} elements found; is the walker broken?"
    assert not undocumented, "undocumented proto elements:\n" + "\n".join(undocumented)


def test_the_walker_notices_a_missing_comment(tmp_path: Path) -> None:
    fd = descriptor_pb2.FileDescriptorProto(name="x.proto", package="tggod.x.v1")
    fd.message_type.add(name="Bare").field.add(name="naked", number=1)
    assert set(_elements(fd).values()) == {"message tggod.x.v1.Bare", "field tggod.x.v1.Bare.naked"}
