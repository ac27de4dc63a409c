#!/usr/bin/env bash
# Regenerates the Swift protobuf messages of the Export target (run it after changing a .proto or
# the swift-protobuf version; the generated files are committed, so builds need neither tool):
#   Sources/Export/Generated/onnx.pb.swift         from onnx/onnx.proto of the PyPI package onnx==$ONNX_VERSION
#   Sources/Export/Generated/tensorboard.pb.swift  from Sources/Export/Protos/tensorboard.proto
# Needs protoc (apt-get install protobuf-compiler, or scripts/setup.sh --protos) and builds
# protoc-gen-swift from apple/swift-protobuf $SWIFT_PROTOBUF_VERSION in $WORK (set PROTOC_GEN_SWIFT
# to use a plugin you have). The ONNX schema comes through scripts/python-venv.sh (.venv-onnx).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
ONNX_VERSION="${ONNX_VERSION:-1.23.2}"
SWIFT_PROTOBUF_VERSION="${SWIFT_PROTOBUF_VERSION:-1.39.0}"
WORK="${WORK:-${TMPDIR:-/tmp}/swiftddp-protoc-gen-swift}"
out="$root/Sources/Export/Generated"
command -v protoc >/dev/null || { echo "generate-protos: protoc is missing; hint: apt-get install protobuf-compiler" >&2; exit 1; }

plugin="${PROTOC_GEN_SWIFT:-}"
if [[ -z "$plugin" ]]; then
  mkdir -p "$WORK"
  cat > "$WORK/Package.swift" <<SWIFT
// swift-tools-version:5.10
import PackageDescription
let package = Package(name: "plugin", dependencies: [
    .package(url: "https://github.com/apple/swift-protobuf", exact: "$SWIFT_PROTOBUF_VERSION")], targets: [])
SWIFT
  echo "generate-protos: building protoc-gen-swift $SWIFT_PROTOBUF_VERSION in $WORK (minutes the first time)" >&2
  (cd "$WORK" && swift build -c release --product protoc-gen-swift >&2)
  plugin="$WORK/.build/release/protoc-gen-swift"
fi

python="$("$root/scripts/python-venv.sh" .venv-onnx "onnx==$ONNX_VERSION")"
schema="$("$python" -c 'import onnx, os; print(os.path.join(os.path.dirname(onnx.__file__), "onnx.proto"))')"
tmp="$(mktemp -d)"; trap 'rm -rf "$tmp"' EXIT
cp "$schema" "$tmp/onnx.proto"
cp "$root/Sources/Export/Protos/tensorboard.proto" "$tmp/"
mkdir -p "$out"
protoc --plugin=protoc-gen-swift="$plugin" --proto_path="$tmp" --swift_out="$tmp" --swift_opt=Visibility=Public \
  "$tmp/onnx.proto" "$tmp/tensorboard.proto"
cp "$tmp/onnx.pb.swift" "$out/onnx.pb.swift"
cp "$tmp/tensorboard.pb.swift" "$out/tensorboard.pb.swift"
echo "generate-protos: wrote $out/onnx.pb.swift (onnx $ONNX_VERSION) and $out/tensorboard.pb.swift" >&2
