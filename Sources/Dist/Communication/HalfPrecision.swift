/// Float32 ⇄ IEEE binary16 conversion and the half-precision sum used by `--compression fp16`.
///
/// Halves travel as `UInt16` bit patterns (MPI has no float16 type). Conversion rounds to nearest,
/// ties to even (Swift's `Float16(_:)`), so every float16-representable value survives a round
/// trip exactly; magnitudes above 65504 become ±inf and those below 2^-24 flush to ±0 (2^-24 …
/// 2^-14 are subnormal, with an absolute precision of 2^-25).
///
/// The sum of two halves is done in Float32 and rounded once to half: a float sum of two halves
/// is exact unless their exponents differ by more than 13, so this is the correctly rounded half
/// sum in all but rare cases (where it may differ by one half ulp). Summing P ranks therefore
/// rounds P − 1 times on top of the conversion's one rounding (u = 2^-11 each, relative).
///
/// Each routine converts eight values at a time (`SIMD8<Float16>` ⇄ `SIMD8<Float>`, one F16C
/// instruction on x86-64-v3) and the ragged end one by one, with the same rounding.
public enum HalfPrecision {
    /// Writes `count` halves to `output` from floats in `input`.
    ///
    /// - Parameters:
    ///   - output: (count) binary16 bit patterns, written.
    ///   - input: (count) Float32, read.
    ///   - count: elements.
    public static func compress(_ output: UnsafeMutablePointer<UInt16>, _ input: UnsafePointer<Float>, _ count: Int) {
        var i = 0
        while i + 8 <= count {
            let v = UnsafeRawPointer(input + i).loadUnaligned(as: SIMD8<Float>.self)
            UnsafeMutableRawPointer(output + i).storeBytes(of: SIMD8<Float16>(v), as: SIMD8<Float16>.self)
            i += 8
        }
        while i < count {
            output[i] = Float16(input[i]).bitPattern
            i += 1
        }
    }

    /// Writes `count` floats to `output`: the halves of `input` times `scale`.
    ///
    /// - Parameters:
    ///   - output: (count) Float32, written.
    ///   - input: (count) binary16 bit patterns, read.
    ///   - scale: multiplies every value after conversion (1/B for gradients).
    ///   - count: elements.
    public static func decompress(_ output: UnsafeMutablePointer<Float>, _ input: UnsafePointer<UInt16>, scale: Float, _ count: Int) {
        var i = 0
        while i + 8 <= count {
            let h = UnsafeRawPointer(input + i).loadUnaligned(as: SIMD8<Float16>.self)
            UnsafeMutableRawPointer(output + i).storeBytes(of: SIMD8<Float>(h) * scale, as: SIMD8<Float>.self)
            i += 8
        }
        while i < count {
            output[i] = Float(Float16(bitPattern: input[i])) * scale
            i += 1
        }
    }

    /// Adds `count` halves of `input` into `inout` (both binary16 bit patterns), each sum done in
    /// Float32 and rounded to half: the reduction operator of the compressed allreduce.
    ///
    /// - Parameters:
    ///   - accumulator: (count) halves, read and written.
    ///   - input: (count) halves, read.
    ///   - count: elements.
    public static func add(_ accumulator: UnsafeMutablePointer<UInt16>, _ input: UnsafePointer<UInt16>, _ count: Int) {
        var i = 0
        while i + 8 <= count {
            let a = UnsafeMutableRawPointer(accumulator + i)
            let sum =
                SIMD8<Float>(a.loadUnaligned(as: SIMD8<Float16>.self))
                + SIMD8<Float>(UnsafeRawPointer(input + i).loadUnaligned(as: SIMD8<Float16>.self))
            a.storeBytes(of: SIMD8<Float16>(sum), as: SIMD8<Float16>.self)
            i += 8
        }
        while i < count {
            let sum = Float(Float16(bitPattern: accumulator[i])) + Float(Float16(bitPattern: input[i]))
            accumulator[i] = Float16(sum).bitPattern
            i += 1
        }
    }
}
