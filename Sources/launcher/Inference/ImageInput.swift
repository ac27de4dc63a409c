import ArgumentParser
import Foundation
import NN

/// How `ddp predict` fits an image to the model's input size.
enum ResizeMethod: String, CaseIterable, ExpressibleByArgument {
    /// Require the model's width and height.
    case none
    /// Nearest neighbour (pixel centres mapped like the bilinear case).
    case nearest
    /// Bilinear over the four nearest pixels, half-pixel centres (like OpenCV's `INTER_LINEAR`).
    case bilinear
}

/// Turning a decoded image into one model input.
enum ImageInput {
    /// An image as floats in [0, 1], planes (CHW) of `height × width`, scaled as the dataset
    /// readers scale pixels (byte / 255).
    ///
    /// output is (C, P, Q) = (image.channels, height, width), written; image.pixels is (H, W, C)
    /// interleaved, read. With `.none` the image must already be `width × height`.
    ///
    /// - Parameters:
    ///   - image: the decoded image.
    ///   - height: rows P of the output.
    ///   - width: columns Q of the output.
    ///   - method: nearest or bilinear (half-pixel centres: source = (q + 0.5)·W/Q − 0.5).
    /// - Returns: `C·P·Q` floats.
    static func planes(_ image: ImageDecoder.Image, height P: Int, width Q: Int, method: ResizeMethod) -> [Float] {
        let C = image.channels, H = image.height, W = image.width
        precondition(method != .none || (H == P && W == Q), "An image of \(W)x\(H) needs resizing to \(Q)x\(P).")
        var output = [Float](repeating: 0, count: C * P * Q)
        let scaleY = Float(H) / Float(P), scaleX = Float(W) / Float(Q)
        image.pixels.withUnsafeBufferPointer { px in
            for p in 0 ..< P {
                let sy = max(0, (Float(p) + 0.5) * scaleY - 0.5)
                for q in 0 ..< Q {
                    let sx = max(0, (Float(q) + 0.5) * scaleX - 0.5)
                    for c in 0 ..< C {
                        let value: Float
                        switch method {
                        case .none:
                            value = Float(px[(p * W + q) * C + c])
                        case .nearest:
                            let y = min(H - 1, Int((Float(p) + 0.5) * scaleY)), x = min(W - 1, Int((Float(q) + 0.5) * scaleX))
                            value = Float(px[(y * W + x) * C + c])
                        case .bilinear:
                            let y0 = min(H - 1, Int(sy)), x0 = min(W - 1, Int(sx))
                            let y1 = min(H - 1, y0 + 1), x1 = min(W - 1, x0 + 1)
                            let fy = sy - Float(y0), fx = sx - Float(x0)
                            func at(_ y: Int, _ x: Int) -> Float { Float(px[(y * W + x) * C + c]) }
                            let top = at(y0, x0) + (at(y0, x1) - at(y0, x0)) * fx
                            let bottom = at(y1, x0) + (at(y1, x1) - at(y1, x0)) * fx
                            value = top + (bottom - top) * fy
                        }
                        output[(c * P + p) * Q + q] = value * (1.0 / 255.0)
                    }
                }
            }
        }
        return output
    }

    /// Softmax of one row of logits, in Double for stability.
    static func softmax(_ logits: ArraySlice<Float>) -> [Double] {
        let maxZ = Double(logits.max() ?? 0)
        let e = logits.map { exp(Double($0) - maxZ) }
        let sum = e.reduce(0, +)
        return e.map { $0 / sum }
    }

    /// The probability of class 1 for one sigmoid logit.
    static func sigmoid(_ logit: Float) -> Double { 1 / (1 + exp(-Double(logit))) }

    /// The `top` largest probabilities with their class indices, most likely first (ties: the lower
    /// class first).
    static func ranked(_ probabilities: [Double], top: Int) -> [(index: Int, probability: Double)] {
        let order = probabilities.indices.sorted { a, b in
            probabilities[a] > probabilities[b] || (probabilities[a] == probabilities[b] && a < b)
        }
        return order.prefix(top).map { (index: $0, probability: probabilities[$0]) }
    }
}
