/// How a parameter tensor is filled before training.
///
/// Fan-in and fan-out follow Keras/PyTorch: for a weight of shape `[out, in, r, s…]`,
/// `fanIn = in·r·s…` and `fanOut = out·r·s…`. Values come from a `SplitMix64` stream keyed by the
/// run's seed and the parameter's index, so a seed gives the same model on every machine.
public enum Initializer: Equatable, Codable {
    case zeros
    case ones
    case constant(Float)
    /// Uniform in ±sqrt(6 / fanIn) (Kaiming/He, for ReLU).
    case heUniform
    /// Normal with standard deviation sqrt(2 / fanIn).
    case heNormal
    /// Uniform in ±sqrt(6 / (fanIn + fanOut)) (Xavier/Glorot).
    case glorotUniform
    /// Normal with standard deviation sqrt(2 / (fanIn + fanOut)).
    case glorotNormal

    /// Fan-in and fan-out of a weight shape `[out, in, spatial…]` (a 1-D shape has fanIn = fanOut = count).
    public static func fans(of shape: [Int]) -> (fanIn: Int, fanOut: Int) {
        guard shape.count >= 2 else {
            let n = shape.first ?? 1
            return (n, n)
        }
        let receptive = shape.dropFirst(2).reduce(1, *)
        return (shape[1] * receptive, shape[0] * receptive)
    }

    /// Fills `count` floats at `pointer` for a tensor of `shape`.
    ///
    /// - Parameters:
    ///   - pointer: the destination (written).
    ///   - shape: the tensor's shape, for the fans.
    ///   - generator: the random stream (advanced).
    public func fill(_ pointer: UnsafeMutablePointer<Float>, shape: [Int], generator: inout SplitMix64) {
        let count = shape.reduce(1, *)
        let (fanIn, fanOut) = Initializer.fans(of: shape)
        switch self {
        case .zeros: pointer.update(repeating: 0, count: count)
        case .ones: pointer.update(repeating: 1, count: count)
        case let .constant(v): pointer.update(repeating: v, count: count)
        case .heUniform:
            fillUniform(pointer, count: count, limit: (6.0 / Double(fanIn)).squareRoot(), &generator)
        case .glorotUniform:
            fillUniform(pointer, count: count, limit: (6.0 / Double(fanIn + fanOut)).squareRoot(), &generator)
        case .heNormal:
            fillNormal(pointer, count: count, std: (2.0 / Double(fanIn)).squareRoot(), &generator)
        case .glorotNormal:
            fillNormal(pointer, count: count, std: (2.0 / Double(fanIn + fanOut)).squareRoot(), &generator)
        }
    }

    private func fillUniform(_ p: UnsafeMutablePointer<Float>, count: Int, limit: Double, _ g: inout SplitMix64) {
        for i in 0 ..< count { p[i] = Float((g.nextUnitDouble() * 2 - 1) * limit) }
    }

    private func fillNormal(_ p: UnsafeMutablePointer<Float>, count: Int, std: Double, _ g: inout SplitMix64) {
        for i in 0 ..< count { p[i] = Float(g.nextNormal() * std) }
    }
}
