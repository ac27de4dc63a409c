extension Conv2D {
    /// Adds the weight (and bias) gradients into `arena.gradients` and returns the input gradient.
    ///
    /// Input gradient `[N, C, H, W]`, or an empty `[0]` tensor when `computesInputGradient` is false
    /// (a model's first layer, where nobody reads it).
    public mutating func backward(_ gradOutput: Tensor, arena: ParameterArena) -> Tensor {
        backward(gradOutput, arena: arena, context: BackwardContext())
    }

    /// `backward(_:arena:)` in blocks of samples, calling `context.progress` between them.
    public mutating func backward(_ gradOutput: Tensor, arena: ParameterArena, context: BackwardContext) -> Tensor {
        guard let g = geometry else { preconditionFailure("Conv2D.backward called before forward.") }
        if fusedPool != nil { return backwardPooled(gradOutput, arena: arena, context: context, g) }
        let n = input.batchSize
        precondition(
            gradOutput.shape == [n, g.K, g.P, g.Q],
            "Conv2D \(summary).backward expects a gradient of shape \([n, g.K, g.P, g.Q]), got \(gradOutput.shape).")
        guard n > 0 else { return Tensor(shape: computesInputGradient ? input.shape : [0]) }
        let weight = UnsafePointer(arena.parameters + weightSlot!.offset)
        let gradWeight = arena.gradients + weightSlot!.offset
        let gradBias = biasSlot.map { arena.gradients + $0.offset }
        reserveColumns(for: g)
        let input = self.input, computesInputGradient = self.computesInputGradient
        // backward writes every element of the input gradient (zeroing each sample before folding columns back).
        if computesInputGradient { gradInput.resize(to: input.shape) }
        // The bias gradient is summed in Double over every block and rounded once, so polling
        // (which cuts the batch into blocks) leaves the bits of the unblocked backward. The sums
        // live on the stack: a training step allocates nothing.
        withUnsafeTemporaryAllocation(of: Double.self, capacity: g.K) { biasSums in
            biasSums.initialize(repeating: 0)
            gradOutput.storage.withUnsafeBufferPointer { gy in
                input.storage.withUnsafeBufferPointer { x in
                    columns.withUnsafeMutableBufferPointer { col in
                        gradInput.storage.withUnsafeMutableBufferPointer { gx in
                            context.forEachBlock(of: n) { b in
                                ConvKernels.backward(
                                    gradWeight, gradBias == nil ? nil : biasSums.baseAddress!,
                                    computesInputGradient ? gx.baseAddress! + b.lowerBound * g.C * g.H * g.W : nil,
                                    gy.baseAddress! + b.lowerBound * g.K * g.PQ,
                                    x.baseAddress! + b.lowerBound * g.C * g.H * g.W, weight, col.baseAddress!, b.count, g)
                            }
                        }
                    }
                }
            }
            if let gradBias {
                for k in 0 ..< g.K { gradBias[k] += Float(biasSums[k]) }
            }
        }
        return computesInputGradient ? gradInput : .empty
    }
}
