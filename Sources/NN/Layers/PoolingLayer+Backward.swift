extension PoolingLayer {
    /// The geometry of the last forward, checked against the gradient that backward receives: what
    /// `MaxPool2D` and `AvgPool2D` check before their kernels run.
    ///
    /// A gradient of another shape, or backward before any forward, is a programmer error.
    ///
    /// - Parameters:
    ///   - geometry: the last forward's geometry (nil before the first forward).
    ///   - inputShape: the last forward's input shape `[N, C, H, W]`.
    ///   - gradOutput: the gradient of that forward's output, which must be `[N, C, P, Q]`.
    ///   - layer: the type's name for messages, e.g. `MaxPool2D`.
    /// - Returns: the geometry.
    @discardableResult
    func checkedBackwardGeometry(_ geometry: PoolGeometry?, inputShape: [Int], gradOutput: Tensor, layer: String) -> PoolGeometry {
        guard let g = geometry else { preconditionFailure("\(layer).backward called before forward.") }
        let n = inputShape[0]
        precondition(
            gradOutput.shape == [n, g.C, g.P, g.Q],
            "\(layer) \(summary).backward expects a gradient of shape \([n, g.C, g.P, g.Q]), got \(gradOutput.shape).")
        return g
    }
}
