import Foundation
import NN

/// The graph being built: nodes in order, parameters as initializers named like the checkpoint's tensors.
struct GraphBuilder {
    var graph = Onnx_GraphProto()
    let arena: ParameterArena

    init(arena: ParameterArena) { self.arena = arena }

    /// Adds a float32 initializer.
    mutating func constant(_ name: String, _ values: [Float], shape: [Int]) {
        var tensor = Onnx_TensorProto()
        tensor.name = name
        tensor.dims = shape.map(Int64.init)
        tensor.dataType = Int32(Onnx_TensorProto.DataType.float.rawValue)
        tensor.rawData = values.withUnsafeBufferPointer { buffer in
            Data(buffer.map(\.bitPattern.littleEndian).withUnsafeBytes { Array($0) })
        }
        graph.initializer.append(tensor)
    }

    /// Adds the arena's tensor `name` as an initializer (its name kept) and returns the name.
    mutating func parameter(_ name: String) throws -> String {
        guard let slot = arena.slot(named: name) else {
            throw ExportError.unsupported(what: name, reason: "the model has no such tensor")
        }
        constant(name, Array(UnsafeBufferPointer(start: arena.parameters + slot.offset, count: slot.count)), shape: slot.shape)
        return name
    }

    /// Adds a node with one output named after the node; returns that name.
    @discardableResult
    mutating func node(_ op: String, _ inputs: [String], name: String, attributes: [Onnx_AttributeProto] = []) -> String {
        graph.node.append(ONNXExporter.node(op, inputs, [name], name: name, attributes: attributes))
        return name
    }

    /// Adds layer `index` (its inference form) reading `input` of per-sample shape `inputShape`;
    /// returns the name of its output.
    mutating func add(_ layer: LayerSpec, index i: Int, input: String, inputShape: [Int]) throws -> String {
        let prefix = "\(i).\(layer.typeName)"
        switch layer {
        case let .conv2d(_, kernel, stride, padding, bias):
            let attributes = try windowAttributes(window: kernel, stride: stride, padding: padding, inputShape: inputShape, layer: prefix)
            var inputs = [input, try parameter("\(prefix).weight")]
            if bias { inputs.append(try parameter("\(prefix).bias")) }
            return node("Conv", inputs, name: prefix, attributes: attributes)
        case let .dense(_, bias):
            var x = input
            if inputShape.count != 1 { x = node("Flatten", [x], name: "\(prefix).flatten", attributes: [ONNXExporter.int("axis", 1)]) }
            var inputs = [x, try parameter("\(prefix).weight")]
            if bias { inputs.append(try parameter("\(prefix).bias")) }
            return node("Gemm", inputs, name: prefix, attributes: [ONNXExporter.int("transB", 1)])
        case .relu:
            return node("Relu", [input], name: prefix)
        case .flatten:
            return node("Flatten", [input], name: prefix, attributes: [ONNXExporter.int("axis", 1)])
        case let .maxPool2d(pool, stride, padding):
            return node(
                "MaxPool", [input], name: prefix,
                attributes: try windowAttributes(window: pool, stride: stride, padding: padding, inputShape: inputShape, layer: prefix))
        case let .avgPool2d(pool, stride, padding):
            let attributes = try windowAttributes(window: pool, stride: stride, padding: padding, inputShape: inputShape, layer: prefix)
            return node("AveragePool", [input], name: prefix, attributes: attributes + [ONNXExporter.int("count_include_pad", 0)])
        case .dropout:
            return input
        case let .batchNorm2d(_, epsilon, _):
            let inputs = try ["gamma", "beta", "running_mean", "running_var"].map { try parameter("\(prefix).\($0)") }
            return node(
                "BatchNormalization", [input] + inputs, name: prefix,
                attributes: [ONNXExporter.float("epsilon", Float(epsilon))])
        }
    }

    /// The attributes every windowed node (Conv, MaxPool, AveragePool) has: `kernel_shape`,
    /// `strides` and `pads` (`explicitPads`), in this order.
    func windowAttributes(window: [Int], stride: [Int], padding: Padding, inputShape: [Int], layer: String) throws -> [Onnx_AttributeProto] {
        let pads = try explicitPads(padding, inputShape: inputShape, window: window, stride: stride, layer: layer)
        return [ONNXExporter.ints("kernel_shape", window), ONNXExporter.ints("strides", stride), ONNXExporter.ints("pads", pads)]
    }

    /// ONNX `pads` `[top, left, bottom, right]` for a window over `inputShape` `[C, H, W]`.
    func explicitPads(_ padding: Padding, inputShape: [Int], window: [Int], stride: [Int], layer: String) throws -> [Int] {
        guard inputShape.count == 3,
            let v = padding.resolve(input: inputShape[1], window: window[0], stride: stride[0], vertical: true),
            let h = padding.resolve(input: inputShape[2], window: window[1], stride: stride[1], vertical: false)
        else {
            throw ExportError.unsupported(what: layer, reason: "its \(window) window does not fit the input \(inputShape)")
        }
        return [v.before, h.before, v.after, h.after]
    }
}
