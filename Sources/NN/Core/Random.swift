/// A small, fast, portable pseudo-random generator (SplitMix64).
///
/// The same seed gives the same stream on every machine and every rank. Streams are derived from
/// a seed and any number of keys (epoch, sample index, parameter index) with `init(seed:keys:)`,
/// so randomness is per sample, not per rank: results do not depend on how data is sharded.
public struct SplitMix64: RandomNumberGenerator {
    /// The generator's whole state (saved in checkpoints).
    public var state: UInt64

    /// Creates a generator from a raw state.
    ///
    /// - Parameter state: any 64-bit value.
    public init(state: UInt64) { self.state = state }

    /// Creates a generator whose stream is a pure function of `seed` and `keys`.
    ///
    /// - Parameters:
    ///   - seed: the run's seed.
    ///   - keys: identifiers of the stream, e.g. `[epoch, sampleIndex]`.
    public init(seed: UInt64, keys: [UInt64] = []) {
        state = SplitMix64.mix(seed ^ 0x9E37_79B9_7F4A_7C15)
        for k in keys { self = mixing(k) }
    }

    /// The generator `init(seed:keys:)` makes with `key` appended to the keys:
    /// `SplitMix64(seed: s).mixing(a).mixing(b)` is `SplitMix64(seed: s, keys: [a, b])`, without
    /// building a key array (the per-sample streams of a training step allocate nothing).
    ///
    /// - Parameter key: the next identifier of the stream.
    /// - Returns: the generator of the longer key list.
    public func mixing(_ key: UInt64) -> SplitMix64 {
        SplitMix64(state: SplitMix64.mix(state ^ SplitMix64.mix(key &+ 0x632B_E59B_D9B4_E019)))
    }

    /// The SplitMix64 finalizer: a bijective 64-bit mix.
    @inlinable public static func mix(_ x: UInt64) -> UInt64 {
        var z = x
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// Returns the next 64 random bits.
    @inlinable public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        return SplitMix64.mix(state)
    }

    /// A uniform Float in [0, 1) with 24 random bits.
    @inlinable public mutating func nextUnitFloat() -> Float {
        Float(next() >> 40) * (1.0 / 16_777_216.0)
    }

    /// A uniform Double in [0, 1) with 53 random bits.
    @inlinable public mutating func nextUnitDouble() -> Double {
        Double(next() >> 11) * (1.0 / 9_007_199_254_740_992.0)
    }

    /// A standard normal sample (Box–Muller, computed in Double for portability).
    public mutating func nextNormal() -> Double {
        let u1 = max(nextUnitDouble(), 1e-300)
        let u2 = nextUnitDouble()
        return (-2 * _log(u1)).squareRoot() * _cos(2 * Double.pi * u2)
    }
}

#if canImport(Glibc)
    import Glibc
    @usableFromInline func _log(_ x: Double) -> Double { Glibc.log(x) }
    @usableFromInline func _cos(_ x: Double) -> Double { Glibc.cos(x) }
#else
    import Foundation
    @usableFromInline func _log(_ x: Double) -> Double { Foundation.log(x) }
    @usableFromInline func _cos(_ x: Double) -> Double { Foundation.cos(x) }
#endif
