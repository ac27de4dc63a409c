/// Where an optimizer step reads the batch-mean gradient.
///
/// Reading the gradient in the form the reduction left it saves a pass over memory: the float
/// path leaves sums over B samples in the arena (scale 1/B), the exact path leaves integer-valued
/// Double sums, 8 bytes an element, that would otherwise be written to the arena as floats only to
/// be read back by the step.
public enum GradientSource {
    /// `scale · arena.gradients` (scale 1 when the arena holds the mean).
    case arena(scale: Float)
    /// The exact reduction's Double sums, arena layout, and per arena slot the factor
    /// 1 / (2^e · B) that turns them into the mean: the gradient is `Float(sums[i] · factor)`, the
    /// value the reduction would have written to the arena, so the step has the same bits.
    case exactSums(UnsafePointer<Double>, factors: [Double])
    /// The mean in the arena over these ranges only (a rank's parts of a sharded step): the step
    /// updates these elements and leaves the rest, which other ranks update and then share.
    case arenaRanges([Range<Int>])

    /// Hands each trainable slot of `arena` and the reader of its gradient to `visitor`, in slot
    /// order (generic, so each form of gradient gets its own specialized loop).
    @inline(__always)
    func forEachTrainableSlot<V: SlotVisitor>(of arena: ParameterArena, _ visitor: inout V) {
        for (index, slot) in arena.slots.enumerated() where slot.trainable {
            switch self {
            case let .arena(scale):
                visitor.visit(slot, ScaledGradient(values: arena.gradients + slot.offset, scale: scale))
            case let .exactSums(sums, factors):
                visitor.visit(slot, ExactMeanGradient(sums: sums + slot.offset, factor: factors[index]))
            case let .arenaRanges(ranges):
                // Each element's update is the same whichever piece of its slot it falls in.
                for r in ranges where r.overlaps(slot.range) {
                    let piece = r.clamped(to: slot.range)
                    visitor.visit(
                        ParameterSlot(name: slot.name, offset: piece.lowerBound, shape: [piece.count]),
                        ScaledGradient(values: arena.gradients + piece.lowerBound, scale: 1))
                }
            }
        }
    }
}

/// An optimizer's update of one slot, given the reader of its gradient.
protocol SlotVisitor {
    mutating func visit<G: SlotGradient>(_ slot: ParameterSlot, _ gradient: G)
}

/// One slot's gradient as an optimizer's loop reads it: element `i`, or eight from `i` on.
protocol SlotGradient {
    func scalar(_ i: Int) -> Float
    func vector(_ i: Int) -> SIMD8<Float>
}

/// `values[i] · scale`.
struct ScaledGradient: SlotGradient {
    let values: UnsafePointer<Float>
    let scale: Float

    @inline(__always) func scalar(_ i: Int) -> Float { values[i] * scale }
    @inline(__always) func vector(_ i: Int) -> SIMD8<Float> {
        UnsafeRawPointer(values + i).loadUnaligned(as: SIMD8<Float>.self) * scale
    }
}

/// `Float(sums[i] · factor)`: one Double product rounded to Float, as `ExactSum.writeMean` writes it.
struct ExactMeanGradient: SlotGradient {
    let sums: UnsafePointer<Double>
    let factor: Double

    @inline(__always) func scalar(_ i: Int) -> Float { Float(sums[i] * factor) }
    @inline(__always) func vector(_ i: Int) -> SIMD8<Float> {
        SIMD8<Float>(UnsafeRawPointer(sums + i).loadUnaligned(as: SIMD8<Double>.self) * factor)
    }
}
