/// A max pool fused into the convolution that runs right before it (`Sequential.fusePools`).
///
/// Forward writes each sample's convolution output `[K, P, Q]` into one reused block and pools it
/// at once, while it is still in cache, into the pooled batch `[N, K, P', Q']`: the batch's full
/// output `[N, K, P, Q]` is never stored. Backward routes each sample's pooled gradient back into
/// that block (the same `MaxPool2D.backward` kernel) just before the convolution's kernels read
/// it, so the full output gradient is never stored either. The arithmetic is the unfused layers':
/// the same convolution per sample, the same pooling kernel on the same values, the same routing,
/// so outputs and gradients are bit for bit those of the two layers run one after the other.
/// The `MaxPool2D` layer stays in the model (slots, summaries and files do not change) and passes
/// its input and gradient through (`MaxPool2D.isFused`).
extension Conv2D {
    /// Pools this layer's output with `pool`'s window from now on (nil: stop fusing).
    mutating func fuse(_ pool: MaxPool2D?) {
        fusedPool = pool
        pooledOutput = .empty
        poolArgmax = []
        poolSample = []
        poolGeometry = nil
    }

    /// `forward` with the fused pool: `[N, K, P', Q']` from `[N, C, H, W]`.
    mutating func forwardPooled(
        _ input: Tensor, weight: UnsafePointer<Float>, bias: UnsafePointer<Float>?,
        _ g: ConvGeometry
    ) -> Tensor {
        let n = input.batchSize
        let pg = poolGeometry(for: g)
        let sampleCount = g.K * g.PQ, pooledCount = g.K * pg.PQ
        pooledOutput.resize(n, g.K, pg.P, pg.Q)
        if poolArgmax.count != n * pooledCount { poolArgmax = [Int](repeating: 0, count: n * pooledCount) }
        if poolSample.count != sampleCount { poolSample = [Float](repeating: 0, count: sampleCount) }
        pooledOutput.storage.withUnsafeMutableBufferPointer { y in
            poolArgmax.withUnsafeMutableBufferPointer { a in
                poolSample.withUnsafeMutableBufferPointer { sample in
                    input.storage.withUnsafeBufferPointer { x in
                        columns.withUnsafeMutableBufferPointer { col in
                            let block = sample.baseAddress!
                            ConvKernels.forward(block, x.baseAddress!, weight, bias, col.baseAddress!, n, g, outputStride: 0) { s in
                                // argmax holds flat indices into the sample's block.
                                MaxPool2D.pool(y.baseAddress! + s * pooledCount, a.baseAddress! + s * pooledCount, block, g.K, pg)
                            }
                        }
                    }
                }
            }
        }
        return pooledOutput
    }

    /// The fused pool's geometry over an output of geometry `g` (kept from the last batch).
    private mutating func poolGeometry(for g: ConvGeometry) -> PoolGeometry {
        if let pg = poolGeometry, pg.C == g.K, pg.H == g.P, pg.W == g.Q { return pg }
        guard let pool = fusedPool, let pg = try? pool.geometry(for: [g.K, g.P, g.Q]) else {
            preconditionFailure("Conv2D \(summary) cannot pool its output [\(g.K), \(g.P), \(g.Q)] with \(fusedPool?.summary ?? "no pool").")
        }
        poolGeometry = pg
        return pg
    }

    /// `backward` with the fused pool: `gradOutput` is the pool's output gradient `[N, K, P', Q']`.
    /// Each sample's is routed into the sample block just before the kernels read it
    /// (`prepareSample`), once for the weight gradient and once for the input gradient.
    mutating func backwardPooled(
        _ gradOutput: Tensor, arena: ParameterArena, context: BackwardContext,
        _ g: ConvGeometry
    ) -> Tensor {
        guard let pg = poolGeometry else { preconditionFailure("Conv2D.backward called before forward.") }
        let n = input.batchSize
        precondition(
            gradOutput.shape == [n, g.K, pg.P, pg.Q],
            "Conv2D \(summary) (pooling).backward expects a gradient of shape \([n, g.K, pg.P, pg.Q]), got \(gradOutput.shape).")
        let weight = UnsafePointer(arena.parameters + weightSlot!.offset)
        let gradWeight = arena.gradients + weightSlot!.offset
        let gradBias = biasSlot.map { arena.gradients + $0.offset }
        let input = self.input, computesInputGradient = self.computesInputGradient
        let sampleCount = g.K * g.PQ, pooledCount = g.K * pg.PQ, inputCount = g.C * g.H * g.W
        if computesInputGradient { gradInput.resize(to: input.shape) }
        // As in `backward`: bias sums in Double on the stack, rounded once after every block.
        withUnsafeTemporaryAllocation(of: Double.self, capacity: g.K) { biasSums in
            biasSums.initialize(repeating: 0)
            gradOutput.storage.withUnsafeBufferPointer { gy in
                poolArgmax.withUnsafeBufferPointer { a in
                    poolSample.withUnsafeMutableBufferPointer { block in
                        input.storage.withUnsafeBufferPointer { x in
                            columns.withUnsafeMutableBufferPointer { col in
                                gradInput.storage.withUnsafeMutableBufferPointer { gx in
                                    let sample = block.baseAddress!
                                    func unpool(_ s: Int) {
                                        MaxPool2D.backward(
                                            sample, gy.baseAddress! + s * pooledCount, a.baseAddress! + s * pooledCount,
                                            sampleCount, pooledCount)
                                    }
                                    context.forEachBlock(of: n) { b in
                                        ConvKernels.backward(
                                            gradWeight, gradBias == nil ? nil : biasSums.baseAddress!,
                                            computesInputGradient ? gx.baseAddress! + b.lowerBound * inputCount : nil, sample,
                                            x.baseAddress! + b.lowerBound * inputCount, weight, col.baseAddress!, b.count, g,
                                            gradOutputStride: 0, prepareSample: { unpool(b.lowerBound + $0) })
                                    }
                                }
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
