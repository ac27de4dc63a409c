// Shared by every instruction-set target, like PackedGEMM.swift: the FMA loop that measures the
// peak of the target's vector width, so benchmarks compare a kernel with the path it runs on.

extension PackedGEMM {
    /// Floating-point operations of one `fmaLoop` iteration: twelve FMAs of `Lanes.scalarCount`
    /// lanes, two operations each.
    public static var flopsPerFMALoopIteration: Int { 12 * Lanes.scalarCount * 2 }

    /// `acc = acc·x + y` in twelve independent vector chains (more than FMA latency × FMA ports),
    /// no memory traffic; never inlined, so the loop is what gets timed.
    ///
    /// - Returns: the sum of the accumulators (keep it alive so the loop is not dropped).
    @inline(never)
    public static func fmaLoop(iterations: Int, x: Float, y: Float) -> Float {
        let vx = Lanes(repeating: x), vy = Lanes(repeating: y)
        var a0 = Lanes(repeating: 0.1), a1 = Lanes(repeating: 0.2), a2 = Lanes(repeating: 0.3)
        var a3 = Lanes(repeating: 0.4), a4 = Lanes(repeating: 0.5), a5 = Lanes(repeating: 0.6)
        var a6 = Lanes(repeating: 0.7), a7 = Lanes(repeating: 0.8), a8 = Lanes(repeating: 0.9)
        var a9 = Lanes(repeating: 1.0), a10 = Lanes(repeating: 1.1), a11 = Lanes(repeating: 1.2)
        for _ in 0 ..< iterations {
            a0 = vy.addingProduct(a0, vx)
            a1 = vy.addingProduct(a1, vx)
            a2 = vy.addingProduct(a2, vx)
            a3 = vy.addingProduct(a3, vx)
            a4 = vy.addingProduct(a4, vx)
            a5 = vy.addingProduct(a5, vx)
            a6 = vy.addingProduct(a6, vx)
            a7 = vy.addingProduct(a7, vx)
            a8 = vy.addingProduct(a8, vx)
            a9 = vy.addingProduct(a9, vx)
            a10 = vy.addingProduct(a10, vx)
            a11 = vy.addingProduct(a11, vx)
        }
        let total = ((a0 + a1) + (a2 + a3)) + ((a4 + a5) + (a6 + a7)) + ((a8 + a9) + (a10 + a11))
        return total.sum()
    }
}
