import Foundation

/// How samples are transformed when a batch is formed, like Keras `ImageDataGenerator`.
///
/// Each sample's random draws come from its own generator, `SplitMix64(seed: key, keys: [salt])`,
/// where the key identifies (run seed, epoch, sample index) (see `BatchLoader.sampleKey(seed:epoch:index:)`,
/// or the sampler's per-sample keys: the salt keeps augmentation independent of other per-sample
/// streams such as dropout), so a sample is transformed the same way whatever the number of ranks.
///
/// Order of operations on a `[C, H, W]` sample already scaled to [0, 1]:
/// 1. geometry: random shift by up to `maxShift` pixels in x and y, zoom by a factor drawn in
///    `[1 − zoomRange, 1 + zoomRange]` per axis and shear by an angle drawn in
///    `[−shearRange, shearRange]` degrees, all as one inverse affine map about the image centre
///    (each output pixel samples the input; pixels from outside are `fillValue`). With no zoom or
///    shear the shift is an exact integer pad-and-crop;
/// 2. random horizontal flip (an exact mirror) with probability 1/2;
/// 3. `x · rescale`, then `(x − mean[c]) / std[c]` when `mean` and `std` are given.
public struct Augmentation: Equatable {
    /// How the affine map samples the input.
    public enum Interpolation: Equatable {
        /// The nearest input pixel.
        case nearest
        /// Bilinear blend of the four nearest input pixels.
        case bilinear
    }

    /// Multiplies every value (after geometry).
    public var rescale: Float
    /// Per-channel mean subtracted after rescaling (empty for none; else one per channel).
    public var mean: [Float]
    /// Per-channel standard deviation divided by after the mean (same count as `mean`).
    public var std: [Float]
    /// Mirror left–right with probability 1/2.
    public var horizontalFlip: Bool
    /// The largest shift in pixels along each axis (0 for none).
    public var maxShift: Int
    /// Zoom factors are drawn in `[1 − zoomRange, 1 + zoomRange]`, independently for x and y.
    public var zoomRange: Float
    /// Shear angles are drawn in `[−shearRange, shearRange]` degrees.
    public var shearRange: Float
    /// The sampling used by zoom and shear.
    public var interpolation: Interpolation
    /// The value of pixels that come from outside the input (before rescaling).
    public var fillValue: Float

    /// No transformation: samples pass through as [0, 1] floats.
    public static let none = Augmentation()

    /// Creates an augmentation, validating its ranges.
    ///
    /// - Parameters:
    ///   - rescale: a factor applied to every value.
    ///   - mean: per-channel means (or empty).
    ///   - std: per-channel standard deviations, each > 0, as many as `mean`.
    ///   - horizontalFlip: random mirroring.
    ///   - maxShift: ≥ 0 pixels.
    ///   - zoomRange: in [0, 1).
    ///   - shearRange: in [0, 90) degrees.
    ///   - interpolation: nearest or bilinear.
    ///   - fillValue: the value outside the image.
    /// - Throws: `DataError.invalidOption` naming the bad setting.
    public init(
        rescale: Float = 1, mean: [Float] = [], std: [Float] = [], horizontalFlip: Bool = false,
        maxShift: Int = 0, zoomRange: Float = 0, shearRange: Float = 0,
        interpolation: Interpolation = .bilinear, fillValue: Float = 0
    ) throws {
        func invalid(_ option: String, _ value: Any, _ reason: String) -> DataError {
            DataError.invalidOption(option: option, value: "\(value)", reason: reason)
        }
        guard rescale.isFinite else { throw invalid("rescale", rescale, "the rescale factor must be finite") }
        guard mean.count == std.count else {
            throw invalid("std", std, "give one standard deviation per mean (\(mean.count) means)")
        }
        guard std.allSatisfy({ $0 > 0 && $0.isFinite }) else { throw invalid("std", std, "standard deviations must be > 0") }
        guard maxShift >= 0 else { throw invalid("shift", maxShift, "the shift must be 0 or more pixels") }
        guard zoomRange >= 0, zoomRange < 1 else { throw invalid("zoom range", zoomRange, "the zoom range must be in [0, 1)") }
        guard shearRange >= 0, shearRange < 90 else {
            throw invalid("shear range", shearRange, "the shear range must be in [0, 90) degrees")
        }
        self.rescale = rescale
        self.mean = mean
        self.std = std
        self.horizontalFlip = horizontalFlip
        self.maxShift = maxShift
        self.zoomRange = zoomRange
        self.shearRange = shearRange
        self.interpolation = interpolation
        self.fillValue = fillValue
    }

    private init() {
        rescale = 1
        mean = []
        std = []
        horizontalFlip = false
        maxShift = 0
        zoomRange = 0
        shearRange = 0
        interpolation = .bilinear
        fillValue = 0
    }

    /// Whether any transformation draws random numbers (so keys matter).
    public var isRandom: Bool { horizontalFlip || maxShift > 0 || zoomRange > 0 || shearRange > 0 }

    /// Transforms one sample in place.
    ///
    /// sample is (C, H, W), read and written; scratch is (C, H, W), clobbered.
    /// - Parameters:
    ///   - sample: the sample's values in [0, 1].
    ///   - scratch: room for one sample.
    ///   - shape: `[C, H, W]`.
    ///   - key: the sample's key; the same key always gives the same transformation.
    public func apply(to sample: UnsafeMutablePointer<Float>, scratch: UnsafeMutablePointer<Float>, shape: [Int], key: UInt64) {
        precondition(shape.count == 3, "Augmentation works on [C, H, W] samples, got shape \(shape).")
        let (C, H, W) = (shape[0], shape[1], shape[2])
        precondition(
            mean.isEmpty || mean.count == C,
            "Augmentation has \(mean.count) channel means but samples have \(C) channels.")
        // Salted, so the same per-sample key can also drive other streams (dropout) uncorrelated;
        // `mixing` gives `keys: [0xA06_0A06]` without an array per sample.
        var generator = SplitMix64(seed: key).mixing(0xA06_0A06)
        // Draw in a fixed order, only for enabled options, so results depend on the key alone.
        let flip = horizontalFlip && generator.next() & 1 == 1
        var dx = 0, dy = 0
        if maxShift > 0 {
            let span = UInt64(2 * maxShift + 1)
            dx = Int(generator.next() % span) - maxShift
            dy = Int(generator.next() % span) - maxShift
        }
        var zx: Float = 1, zy: Float = 1, shear: Float = 0
        if zoomRange > 0 {
            zx = 1 + zoomRange * (2 * generator.nextUnitFloat() - 1)
            zy = 1 + zoomRange * (2 * generator.nextUnitFloat() - 1)
        }
        if shearRange > 0 { shear = shearRange * (2 * generator.nextUnitFloat() - 1) * Float.pi / 180 }

        if zoomRange > 0 || shearRange > 0 {
            scratch.update(from: sample, count: C * H * W)
            AugmentationKernels.affine(
                output: sample, input: scratch, C: C, H: H, W: W,
                map: (zx, -sin(shear) * zx, cos(shear) * zy), shift: (dx, dy),
                bilinear: interpolation == .bilinear, fill: fillValue)
        } else if dx != 0 || dy != 0 {
            scratch.update(from: sample, count: C * H * W)
            AugmentationKernels.shift(output: sample, input: scratch, C: C, H: H, W: W, dx: dx, dy: dy, fill: fillValue)
        }
        if flip { AugmentationKernels.mirror(sample, rows: C * H, W: W) }
        if rescale != 1 || !mean.isEmpty {
            let plane = H * W
            for c in 0 ..< C {
                let m = mean.isEmpty ? 0 : mean[c], inverseStd = std.isEmpty ? 1 : 1 / std[c]
                let scale = rescale * inverseStd, offset = -m * inverseStd
                let p = sample + c * plane
                for i in 0 ..< plane { p[i] = p[i] * scale + offset }
            }
        }
    }
}

/// The pixel loops behind `Augmentation`.
enum AugmentationKernels {
    /// output[c][y][x] = input[c][y − dy][x − dx], or `fill` outside. Both (C, H, W).
    static func shift(
        output: UnsafeMutablePointer<Float>, input: UnsafePointer<Float>, C: Int, H: Int, W: Int,
        dx: Int, dy: Int, fill: Float
    ) {
        for c in 0 ..< C {
            for y in 0 ..< H {
                let out = output + (c * H + y) * W
                let sy = y - dy
                guard sy >= 0 && sy < H else {
                    out.update(repeating: fill, count: W)
                    continue
                }
                let row = input + (c * H + sy) * W
                for x in 0 ..< W {
                    let sx = x - dx
                    out[x] = sx >= 0 && sx < W ? row[sx] : fill
                }
            }
        }
    }

    /// Inverse affine map about the centre (cx, cy) = ((W−1)/2, (H−1)/2): for output (x, y) with
    /// u = x − dx − cx, v = y − dy − cy the source is (cx + a·u + b·v, cy + d·v), where
    /// `map = (a, b, d)` = (zx, −sin(shear)·zx, cos(shear)·zy). output and input are (C, H, W).
    static func affine(
        output: UnsafeMutablePointer<Float>, input: UnsafePointer<Float>, C: Int, H: Int, W: Int,
        map: (Float, Float, Float), shift: (Int, Int), bilinear: Bool, fill: Float
    ) {
        let cx = Float(W - 1) / 2, cy = Float(H - 1) / 2
        for y in 0 ..< H {
            let v = Float(y - shift.1) - cy
            for x in 0 ..< W {
                let u = Float(x - shift.0) - cx
                let sx = cx + map.0 * u + map.1 * v, sy = cy + map.2 * v
                if bilinear {
                    let x0f = sx.rounded(.down), y0f = sy.rounded(.down)
                    let fx = sx - x0f, fy = sy - y0f
                    let x0 = Int(x0f), y0 = Int(y0f)
                    for c in 0 ..< C {
                        let plane = input + c * H * W
                        func at(_ xx: Int, _ yy: Int) -> Float {
                            xx >= 0 && xx < W && yy >= 0 && yy < H ? plane[yy * W + xx] : fill
                        }
                        let top = at(x0, y0) * (1 - fx) + at(x0 + 1, y0) * fx
                        let bottom = at(x0, y0 + 1) * (1 - fx) + at(x0 + 1, y0 + 1) * fx
                        output[(c * H + y) * W + x] = top * (1 - fy) + bottom * fy
                    }
                } else {
                    let ix = Int((sx + 0.5).rounded(.down)), iy = Int((sy + 0.5).rounded(.down))
                    let inside = ix >= 0 && ix < W && iy >= 0 && iy < H
                    for c in 0 ..< C {
                        output[(c * H + y) * W + x] = inside ? input[(c * H + iy) * W + ix] : fill
                    }
                }
            }
        }
    }

    /// Reverses each of `rows` rows of width W in place.
    static func mirror(_ data: UnsafeMutablePointer<Float>, rows: Int, W: Int) {
        for r in 0 ..< rows {
            let row = data + r * W
            var i = 0, j = W - 1
            while i < j {
                let t = row[i]
                row[i] = row[j]
                row[j] = t
                i += 1
                j -= 1
            }
        }
    }
}
