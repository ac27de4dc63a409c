// Shared by every instruction-set target, like PackedGEMM.swift: the exact reduction's passes over
// its 8-byte sums, compiled once per target so they run at the target's vector width (sixteen
// lanes: two zmm registers of doubles on AVX-512, four ymm on AVX2). Dist's `ExactSum` checks the
// arguments and picks the target through NN's `KernelPath`.

/// Float gradients turned into integers at a power-of-two scale and added into Double sums that
/// hold integers exactly, and the mean written back as floats. Every lane does what the scalar
/// tail does, so the bits do not depend on the width.
public enum FixedPointSum {
    typealias Floats = SIMD16<Float>
    typealias Bits = SIMD16<UInt32>
    typealias Doubles = SIMD16<Double>

    // Lane by lane on purpose: the standard library's `pointwiseMax` and its converting vector
    // initializers are not inlined at sixteen lanes (a call and a vzeroupper per vector); these
    // loops compile to single instructions (vpmaxud, vcvtps2pd, vcvtpd2ps).

    @inline(__always)
    static func widened(_ g: Floats) -> Doubles {
        var d = Doubles()
        for k in 0 ..< Floats.scalarCount { d[k] = Double(g[k]) }
        return d
    }

    @inline(__always)
    static func narrowed(_ d: Doubles) -> Floats {
        var f = Floats()
        for k in 0 ..< Floats.scalarCount { f[k] = Float(d[k]) }
        return f
    }

    @inline(__always)
    static func larger(_ a: Bits, _ b: Bits) -> Bits { a.replacing(with: b, where: b .> a) }

    /// Adds (or, with `first`, writes) round(g · scale) into `sums`, clears `gradients` when
    /// `clear`, and returns the largest |g| as a bit pattern (|g|'s bits order like its value; NaN
    /// patterns lie above +inf).
    ///
    /// - sums: `n` Doubles (read unless `first`, written). gradients: `n` Floats (read; zeroed with `clear`).
    public static func accumulate(
        _ sums: UnsafeMutablePointer<Double>, _ gradients: UnsafeMutablePointer<Float>,
        scale: Double, _ n: Int, first: Bool, clear: Bool
    ) -> UInt32 {
        // g · 2^e is exact in Float as in Double while 2^e is a Float (e ≤ 127), and so is its
        // rounding to an integer: scaling and rounding sixteen lanes of floats takes half the
        // instructions of doing it on doubles, for the same integers.
        if scale <= 0x1p127 {
            switch (first, clear) {
            case (true, true): return accumulate(sums, gradients, scale, n, Yes.self, Yes.self, Yes.self)
            case (true, false): return accumulate(sums, gradients, scale, n, Yes.self, No.self, Yes.self)
            case (false, true): return accumulate(sums, gradients, scale, n, No.self, Yes.self, Yes.self)
            case (false, false): return accumulate(sums, gradients, scale, n, No.self, No.self, Yes.self)
            }
        }
        switch (first, clear) {
        case (true, true): return accumulate(sums, gradients, scale, n, Yes.self, Yes.self, No.self)
        case (true, false): return accumulate(sums, gradients, scale, n, Yes.self, No.self, No.self)
        case (false, true): return accumulate(sums, gradients, scale, n, No.self, Yes.self, No.self)
        case (false, false): return accumulate(sums, gradients, scale, n, No.self, No.self, No.self)
        }
    }

    /// A flag known at compile time: each combination of `accumulate`'s flags gets a loop of its
    /// own, without a test per vector (Bool parameters, even constant ones, were not specialized).
    protocol Flag { static var on: Bool { get } }
    enum Yes: Flag { static var on: Bool { true } }
    enum No: Flag { static var on: Bool { false } }

    /// The loop: `First` writes instead of adding, `Clear` zeroes the gradients, `InFloat` scales
    /// and rounds in Float.
    @inline(__always)
    static func accumulate<First: Flag, Clear: Flag, InFloat: Flag>(
        _ sums: UnsafeMutablePointer<Double>, _ gradients: UnsafeMutablePointer<Float>, _ scale: Double, _ n: Int,
        _: First.Type, _: Clear.Type, _: InFloat.Type
    ) -> UInt32 {
        let first = First.on, clear = Clear.on, inFloat = InFloat.on
        let raw = UnsafeMutableRawPointer(gradients)
        var most = Bits(repeating: 0)
        let floatScale = inFloat ? Float(scale) : 1
        var i = 0
        while i + Floats.scalarCount <= n {
            let bits = raw.loadUnaligned(fromByteOffset: 4 * i, as: Bits.self)
            most = larger(most, bits & 0x7FFF_FFFF)
            let g = raw.loadUnaligned(fromByteOffset: 4 * i, as: Floats.self)
            let q = inFloat ? widened((g * floatScale).rounded(.toNearestOrEven)) : (widened(g) * scale).rounded(.toNearestOrEven)
            let s = UnsafeMutableRawPointer(sums + i)
            s.storeBytes(of: first ? q : s.loadUnaligned(as: Doubles.self) + q, as: Doubles.self)
            if clear { raw.storeBytes(of: Floats(repeating: 0), toByteOffset: 4 * i, as: Floats.self) }
            i += Floats.scalarCount
        }
        var largest = most.max()
        let bits = raw.assumingMemoryBound(to: UInt32.self)
        while i < n {
            largest = Swift.max(largest, bits[i] & 0x7FFF_FFFF)
            let q = (Double(gradients[i]) * scale).rounded(.toNearestOrEven)
            sums[i] = first ? q : sums[i] + q
            if clear { bits[i] = 0 }
            i += 1
        }
        return largest
    }

    /// `accumulate` for a register tile parked in L1 (`PackedGEMM.exactChunkProducts`): `vectors`
    /// whole vectors, the scale a Float (2^e ≤ 2^127), and the largest |g| kept as a vector of bit
    /// patterns across calls, so a call has no scalar tail and no horizontal maximum. Never
    /// inlined: inlined into the tile loop (a constant trip count), the loop was unrolled into
    /// scalarized masks, four times slower.
    @inline(never)
    static func accumulateTile(
        _ sums: UnsafeMutablePointer<Double>, _ gradients: UnsafePointer<Float>, scale: Float,
        vectors: Int, first: Bool, most: inout SIMD16<UInt32>
    ) {
        if first {
            accumulateTile(sums, gradients, scale, vectors, &most, Yes.self)
        } else {
            accumulateTile(sums, gradients, scale, vectors, &most, No.self)
        }
    }

    @inline(__always)
    static func accumulateTile<First: Flag>(
        _ sums: UnsafeMutablePointer<Double>, _ gradients: UnsafePointer<Float>, _ scale: Float,
        _ vectors: Int, _ most: inout Bits, _: First.Type
    ) {
        let raw = UnsafeRawPointer(gradients)
        var largest = most
        for v in 0 ..< vectors {
            let bits = raw.loadUnaligned(fromByteOffset: 64 * v, as: Bits.self)
            largest = larger(largest, bits & 0x7FFF_FFFF)
            let q = widened((raw.loadUnaligned(fromByteOffset: 64 * v, as: Floats.self) * scale).rounded(.toNearestOrEven))
            let s = UnsafeMutableRawPointer(sums + 16 * v)
            s.storeBytes(of: First.on ? q : s.loadUnaligned(as: Doubles.self) + q, as: Doubles.self)
        }
        most = largest
    }

    /// `writeMean` for a whole register tile: `rows` rows of `16 · vectorsPerRow` sums (contiguous)
    /// to rows `ldMean` floats apart.
    @inline(never)
    static func writeMeanTile(
        _ mean: UnsafeMutablePointer<Float>, ldMean: Int, _ sums: UnsafePointer<Double>, factor: Double,
        rows: Int, vectorsPerRow: Int
    ) {
        for r in 0 ..< rows {
            let out = UnsafeMutableRawPointer(mean + r * ldMean), from = UnsafeRawPointer(sums + r * 16 * vectorsPerRow)
            for v in 0 ..< vectorsPerRow {
                out.storeBytes(
                    of: narrowed(from.loadUnaligned(fromByteOffset: 128 * v, as: Doubles.self) * factor),
                    toByteOffset: 64 * v, as: Floats.self)
            }
        }
    }

    /// Writes `Float(sums[i] · factor)` to `gradients`: one Double product rounded to Float.
    ///
    /// - gradients: `n` Floats (written). sums: `n` Doubles (read).
    public static func writeMean(_ gradients: UnsafeMutablePointer<Float>, _ sums: UnsafePointer<Double>, factor: Double, _ n: Int) {
        var i = 0
        while i + Floats.scalarCount <= n {
            let mean = narrowed(UnsafeRawPointer(sums + i).loadUnaligned(as: Doubles.self) * factor)
            UnsafeMutableRawPointer(gradients + i).storeBytes(of: mean, as: Floats.self)
            i += Floats.scalarCount
        }
        while i < n {
            gradients[i] = Float(sums[i] * factor)
            i += 1
        }
    }
}
