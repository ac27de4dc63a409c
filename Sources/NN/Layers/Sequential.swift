/// A model that applies its layers in order; backward runs them in exact reverse.
///
/// Two changes that give the same numbers are made when the model is built: a `ReLU` directly
/// followed by a `MaxPool2D` runs after the pool (see `executionOrder`), and a `Conv2D` that then
/// runs right before a `MaxPool2D` pools its own output sample by sample, so that neither the
/// convolution's whole output nor its gradient is stored (`Conv2D+Pooling.swift`).
///
/// Building the model computes every layer's output shape (throwing on the first layer that cannot
/// take its input), lays out all parameters in one `ParameterArena`, and binds each layer to its
/// slots. Slot names are `"<layer index>.<layer kind>.<tensor>"`, e.g. `"0.conv2d.weight"`.
public struct Sequential {
    /// The per-sample input shape, e.g. `[1, 28, 28]`.
    public let inputShape: [Int]
    /// The layers, in forward order.
    public var layers: [any Layer]
    /// The per-sample output shape of each layer.
    public let outputShapes: [[Int]]
    /// Parameters and gradients.
    public let arena: ParameterArena
    /// The initializer of each arena slot, same order as `arena.slots`.
    public let initializers: [Initializer]
    /// The indices into `arena.slots` of each layer's parameters (empty for a layer without any),
    /// by layer index: the slots are laid out layer by layer, in forward order.
    public let slotIndices: [Range<Int>]

    /// Builds a model and its arena (parameters zero until `initializeParameters(seed:)`).
    ///
    /// - Parameters:
    ///   - inputShape: the per-sample input shape.
    ///   - layers: the layers, in forward order.
    ///   - fusingPools: let convolutions pool their own output (the same numbers either way; false
    ///     for tests that compare the two).
    /// - Throws: `ModelError.shapeMismatch` naming the first layer that does not fit.
    public init(inputShape: [Int], layers: [any Layer], fusingPools: Bool = true) throws {
        precondition(!layers.isEmpty, "A Sequential model needs at least one layer.")
        var shapes: [[Int]] = []
        var tensors: [(name: String, shape: [Int], trainable: Bool)] = []
        var inits: [Initializer] = []
        var counts: [Int] = []
        var shape = inputShape
        for (i, layer) in layers.enumerated() {
            let specs = layer.parameterSpecs(for: shape)
            let kind = String(layer.summary.prefix { $0 != "(" })
            for spec in specs {
                tensors.append((name: "\(i).\(kind).\(spec.name)", shape: spec.shape, trainable: spec.trainable))
                inits.append(spec.initializer)
            }
            counts.append(specs.count)
            do {
                shape = try layer.outputShape(for: shape)
            } catch let ModelError.shapeMismatch(name, _, input, reason) {
                throw ModelError.shapeMismatch(layer: name, index: i, inputShape: input, reason: reason)
            }
            shapes.append(shape)
        }
        self.inputShape = inputShape
        self.outputShapes = shapes
        self.initializers = inits
        self.arena = ParameterArena(tensors: tensors)
        var bound = layers
        var next = 0
        var indices: [Range<Int>] = []
        for i in bound.indices {
            indices.append(next ..< next + counts[i])
            bound[i].bind(slots: Array(arena.slots[indices[i]]))
            next += counts[i]
        }
        self.slotIndices = indices
        let order = Sequential.executionOrder(of: bound)
        Sequential.fusePools(&bound, order: fusingPools ? order : [])
        self.layers = bound
        self.executionOrder = order
    }

    /// Lets each `Conv2D` that runs right before a `MaxPool2D` in `order` pool its own output
    /// (`Conv2D+Pooling.swift`); the pool then hands its input on. Layers taken from another
    /// model arrive with that model's fusion, which is undone first: it belongs to the model.
    static func fusePools(_ layers: inout [any Layer], order: [Int]) {
        for i in layers.indices {
            if var conv = layers[i] as? Conv2D, conv.fusedPool != nil {
                conv.fuse(nil)
                layers[i] = conv
            } else if var pool = layers[i] as? MaxPool2D, pool.isFused {
                pool.isFused = false
                layers[i] = pool
            }
        }
        for (a, b) in zip(order, order.dropFirst()) {
            guard var conv = layers[a] as? Conv2D, var pool = layers[b] as? MaxPool2D else { continue }
            conv.fuse(pool)
            pool.isFused = true
            layers[a] = conv
            layers[b] = pool
        }
    }

    /// The order in which forward runs the layers (backward runs it reversed): the layers' order,
    /// except that a ReLU directly followed by a max pool runs after the pool. The max of
    /// rectified values is the rectified max (both are monotone), the same window element wins,
    /// and a gradient reaches it only where that max is positive either way, so outputs and
    /// gradients are bit for bit those of the written order, while the ReLU passes touch a
    /// quarter of the values (2×2 pools) in forward and in backward. Fixed when the model is built
    /// (steps mutate the layers in place but never change their kinds), so that a step does not
    /// allocate the order anew.
    public let executionOrder: [Int]

    /// The execution order of `layers` (see `executionOrder`).
    static func executionOrder(of layers: [any Layer]) -> [Int] {
        var order: [Int] = []
        var i = 0
        while i < layers.count {
            if layers[i] is ReLU, i + 1 < layers.count, layers[i + 1] is MaxPool2D {
                order += [i + 1, i]
                i += 2
            } else {
                order.append(i)
                i += 1
            }
        }
        return order
    }

    /// The per-sample output shape of the model.
    public var outputShape: [Int] { outputShapes.last! }

    /// Fills every parameter from its initializer; parameter `i` draws from the stream `(seed, i)`.
    ///
    /// - Parameter seed: the run's seed.
    public func initializeParameters(seed: UInt64) {
        for (i, slot) in arena.slots.enumerated() {
            var g = SplitMix64(seed: seed, keys: [0x1A17, UInt64(i)])
            initializers[i].fill(arena.parameters + slot.offset, shape: slot.shape, generator: &g)
        }
    }

    /// Lets every layer go of the input it kept from the last pass (`Layer.releaseInput()`), so
    /// that each layer, and the caller that fills the next batch, overwrites its buffers in place.
    /// `forward` does it first; a training loop that reuses its batch tensor calls it before
    /// filling the batch.
    public mutating func releaseInputs() {
        for i in layers.indices { layers[i].releaseInput() }
    }

    /// A copy of `other` with layers of its own (own activations and caches) that reads `other`'s
    /// parameters and adds into gradients of its own (`ParameterArena(sharingParametersOf:)`): a
    /// worker thread's replica of the same model.
    public init(sharingParametersOf other: Sequential) {
        inputShape = other.inputShape
        layers = other.layers
        outputShapes = other.outputShapes
        arena = ParameterArena(sharingParametersOf: other.arena)
        initializers = other.initializers
        slotIndices = other.slotIndices
        executionOrder = other.executionOrder
    }

    /// Runs every layer forward, in `executionOrder`.
    ///
    /// - Parameters:
    ///   - input: a batch `[N] + inputShape`.
    ///   - context: training mode and per-sample keys.
    /// - Returns: the batch's outputs `[N] + outputShape`.
    public mutating func forward(_ input: Tensor, context: ForwardContext) -> Tensor {
        precondition(
            input.shape.dropFirst().elementsEqual(inputShape),
            "The model expects samples of shape \(inputShape), got a batch of shape \(input.shape).")
        precondition(input.batchSize > 0, "Cannot run a model on an empty batch (input \(input.shape)).")
        releaseInputs()
        var x = input
        for i in executionOrder { x = layers[i].forward(x, arena: arena, context: context) }
        return x
    }

    /// Runs every layer backward in reverse `executionOrder`, adding parameter gradients into the arena.
    ///
    /// - Parameters:
    ///   - gradOutput: the loss gradient with respect to the last forward's output.
    ///   - context: handed to every layer (long layers call its `progress` between blocks).
    /// - Returns: the gradient with respect to the model's input.
    @discardableResult
    public mutating func backward(_ gradOutput: Tensor, context: BackwardContext = BackwardContext()) -> Tensor {
        backward(gradOutput, context: context) { _ in }
    }

    /// `backward(_:context:)`, calling `afterLayer(i)` as soon as layer `i`'s backward is done: its
    /// parameters' gradients are then final for this pass (what a data-parallel reducer waits for
    /// to start their bucket, as PyTorch DDP's gradient hooks do).
    ///
    /// - Parameters:
    ///   - gradOutput: the loss gradient with respect to the last forward's output.
    ///   - context: handed to every layer.
    ///   - afterLayer: called with each layer's index, in reverse `executionOrder`. It must not
    ///     touch this model (the pass holds it). What it throws ends the pass there.
    /// - Returns: the gradient with respect to the model's input.
    /// - Throws: what `afterLayer` throws (the layers after it in the pass do not run).
    @discardableResult
    public mutating func backward(_ gradOutput: Tensor, context: BackwardContext, afterLayer: (Int) throws -> Void) rethrows -> Tensor {
        var g = gradOutput
        for i in executionOrder.reversed() {
            g = layers[i].backward(g, arena: arena, context: context)
            try afterLayer(i)
        }
        return g
    }

    /// One line per layer with its output shape and parameter count, and a total.
    public var summary: String {
        var lines = ["input \(inputShape)"]
        var next = 0
        for (i, layer) in layers.enumerated() {
            let n = layer.parameterSpecs(for: i == 0 ? inputShape : outputShapes[i - 1]).count
            let params = arena.slots[next ..< next + n].reduce(0) { $0 + $1.count }
            next += n
            lines.append("\(i): \(layer.summary) -> \(outputShapes[i])\(params > 0 ? "  params \(params)" : "")")
        }
        lines.append("total parameters \(arena.parameterCount)")
        return lines.joined(separator: "\n")
    }

    /// The layer summaries, in order (what replica verification compares).
    public var layerSummaries: [String] { layers.map(\.summary) }

    /// The arena slots of layer `index`'s parameters, in the order the layer declared them.
    public func slots(ofLayer index: Int) -> ArraySlice<ParameterSlot> { arena.slots[slotIndices[index]] }
}
