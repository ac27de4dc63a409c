/// The JSON/YAML form of one layer: `{type: conv2d, filters: 32, kernel: 5, padding: same}`.
/// See `ModelSpec+Codable.swift` for the whole format.
extension LayerSpec: Codable {
    /// The options each layer type takes (`type` included), for decoding and hints.
    public static let options: [String: [String]] = [
        "conv2d": ["type", "filters", "kernel", "stride", "padding", "bias"],
        "dense": ["type", "units", "bias"],
        "relu": ["type"],
        "flatten": ["type"],
        "maxpool2d": ["type", "pool", "stride", "padding"],
        "avgpool2d": ["type", "pool", "stride", "padding"],
        "dropout": ["type", "rate"],
        "batchnorm2d": ["type", "momentum", "epsilon", "synchronized"]
    ]

    // Other spellings people use for the same layer types (compared after `normalizedName`).
    private static let aliases = [
        "conv": "conv2d", "convolution2d": "conv2d", "linear": "dense", "fullyconnected": "dense",
        "maxpool": "maxpool2d", "maxpooling2d": "maxpool2d", "avgpool": "avgpool2d", "averagepooling2d": "avgpool2d",
        "batchnorm": "batchnorm2d", "batchnormalization": "batchnorm2d"
    ]

    public init(from decoder: Decoder) throws {
        guard let container = try? decoder.container(keyedBy: ModelCodingKey.self) else {
            throw ModelFileError(problem: .syntax(reason: "a layer must be a mapping with a type"))
        }
        self = try LayerSpec.decode(container, index: nil, classes: decoder.userInfo[ModelSpec.defaultClassesKey] as? Int)
    }

    /// Reads one layer entry.
    ///
    /// - Parameters:
    ///   - container: the entry's keys.
    ///   - index: the entry's position in the `layers` list, for errors.
    ///   - classes: the class count that `units: classes` stands for, if known.
    /// - Throws: `ModelFileError` naming the layer and the problem.
    static func decode(_ container: KeyedDecodingContainer<ModelCodingKey>, index: Int?, classes: Int?) throws -> LayerSpec {
        let untyped = OptionReader(container: container, layer: index, layerType: nil)
        guard let rawType = try untyped.string("type") else {
            throw ModelFileError(layer: index, problem: .missingOption("type", hint: "known layer types are \(typeNames.joined(separator: ", "))"))
        }
        let normalized = normalizedName(rawType)
        guard let type = typeNames.contains(normalized) ? normalized : aliases[normalized] else {
            throw ModelFileError(layer: index, problem: .unknownLayerType(rawType, known: typeNames))
        }
        let r = OptionReader(container: container, layer: index, layerType: type)
        try r.rejectUnknown(options[type]!)
        let spec: LayerSpec
        switch type {
        case "conv2d":
            guard let filters = try r.int("filters") else { throw r.missing("filters", hint: "the number of output channels, e.g. filters: 32") }
            guard let kernel = try r.pair("kernel") else { throw r.missing("kernel", hint: "the filter size, e.g. kernel: 3 or kernel: [3, 5]") }
            spec = .conv2d(
                filters: filters, kernel: kernel, stride: try r.pair("stride") ?? [1, 1],
                padding: try r.padding("padding") ?? .valid, bias: try r.bool("bias") ?? true)
        case "dense":
            guard r.has("units") else { throw r.missing("units", hint: "the number of outputs, e.g. units: 128 or units: classes") }
            let units: Int
            if let word = try? container.decode(String.self, forKey: ModelCodingKey("units")), word == "classes" {
                guard let classes else {
                    throw ModelFileError(
                        layer: index, layerType: type,
                        problem: .invalidValue(
                            option: "units", reason: "'classes' needs the class count; hint: set classes: N at the top of the file"))
                }
                units = classes
            } else {
                guard let n = try? container.decode(Int.self, forKey: ModelCodingKey("units")) else {
                    throw r.wrongType("units", expected: "an integer or classes")
                }
                units = n
            }
            spec = .dense(units: units, bias: try r.bool("bias") ?? true)
        case "relu": spec = .relu
        case "flatten": spec = .flatten
        case "maxpool2d", "avgpool2d":
            let pool = try r.pair("pool") ?? [2, 2]
            let stride = try r.pair("stride") ?? pool
            let padding = try r.padding("padding") ?? .valid
            spec =
                type == "maxpool2d"
                ? .maxPool2d(pool: pool, stride: stride, padding: padding)
                : .avgPool2d(pool: pool, stride: stride, padding: padding)
        case "dropout":
            guard let rate = try r.double("rate") else { throw r.missing("rate", hint: "the drop probability, e.g. rate: 0.4") }
            spec = .dropout(rate: rate)
        default:  // batchnorm2d
            spec = .batchNorm2d(
                momentum: try r.double("momentum") ?? 0.1, epsilon: try r.double("epsilon") ?? 1e-5,
                synchronized: try r.bool("synchronized") ?? false)
        }
        do {
            try spec.validate()
        } catch let ModelError.invalidHyperparameter(_, reason) {
            throw ModelFileError(layer: index, layerType: type, problem: .invalidValue(option: "", reason: reason))
        }
        return spec
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: ModelCodingKey.self)
        func put<T: Encodable>(_ key: String, _ value: T) throws { try c.encode(value, forKey: ModelCodingKey(key)) }
        // A pair with equal halves is written as one integer.
        func putPair(_ key: String, _ v: [Int]) throws {
            if v.count == 2 && v[0] == v[1] { try put(key, v[0]) } else { try put(key, v) }
        }
        func putPadding(_ p: Padding) throws {
            switch p {
            case .same: try put("padding", "same")
            case .valid: try put("padding", "valid")
            case let .explicit(t, b, l, r):
                if t == b && b == l && l == r { try put("padding", t) } else { try put("padding", [t, b, l, r]) }
            }
        }
        try put("type", typeName)
        switch self {
        case let .conv2d(filters, kernel, stride, padding, bias):
            try put("filters", filters)
            try putPair("kernel", kernel)
            try putPair("stride", stride)
            try putPadding(padding)
            try put("bias", bias)
        case let .dense(units, bias):
            try put("units", units)
            try put("bias", bias)
        case .relu, .flatten:
            break
        case let .maxPool2d(pool, stride, padding), let .avgPool2d(pool, stride, padding):
            try putPair("pool", pool)
            try putPair("stride", stride)
            try putPadding(padding)
        case let .dropout(rate):
            try put("rate", rate)
        case let .batchNorm2d(momentum, epsilon, synchronized):
            try put("momentum", momentum)
            try put("epsilon", epsilon)
            try put("synchronized", synchronized)
        }
    }
}

/// Reads typed options from one mapping of a model description and turns every failure into a
/// `ModelFileError` that names the option (and the layer).
struct OptionReader {
    let container: KeyedDecodingContainer<ModelCodingKey>
    let layer: Int?
    let layerType: String?

    func has(_ key: String) -> Bool { container.contains(ModelCodingKey(key)) }

    func rejectUnknown(_ known: [String]) throws {
        for key in container.allKeys where !known.contains(key.stringValue) {
            throw ModelFileError(layer: layer, layerType: layerType, problem: .unknownOption(key.stringValue, known: known))
        }
    }

    func missing(_ option: String, hint: String? = nil) -> ModelFileError {
        ModelFileError(layer: layer, layerType: layerType, problem: .missingOption(option, hint: hint))
    }

    func wrongType(_ option: String, expected: String) -> ModelFileError {
        ModelFileError(layer: layer, layerType: layerType, problem: .wrongType(option: option, expected: expected, got: describe(option)))
    }

    /// A short description of the value under `key`, for error messages.
    func describe(_ key: String) -> String {
        let k = ModelCodingKey(key)
        if (try? container.decodeNil(forKey: k)) == true { return "null" }
        if let v = try? container.decode(Bool.self, forKey: k) { return "\(v)" }
        if let v = try? container.decode(Int.self, forKey: k) { return "\(v)" }
        if let v = try? container.decode(Double.self, forKey: k) { return "\(v)" }
        if let v = try? container.decode(String.self, forKey: k) { return "'\(v)'" }
        if let v = try? container.decode([Int].self, forKey: k) { return "\(v)" }
        if (try? container.nestedUnkeyedContainer(forKey: k)) != nil { return "a list" }
        return "a mapping"
    }

    private func value<T: Decodable>(_ key: String, _ type: T.Type, expected: String) throws -> T? {
        guard has(key) else { return nil }
        guard let v = try? container.decode(T.self, forKey: ModelCodingKey(key)) else { throw wrongType(key, expected: expected) }
        return v
    }

    func int(_ key: String) throws -> Int? { try value(key, Int.self, expected: "an integer") }
    func double(_ key: String) throws -> Double? { try value(key, Double.self, expected: "a number") }
    func bool(_ key: String) throws -> Bool? { try value(key, Bool.self, expected: "true or false") }
    func string(_ key: String) throws -> String? { try value(key, String.self, expected: "a string") }
    func intList(_ key: String) throws -> [Int]? { try value(key, [Int].self, expected: "a list of integers such as [1, 28, 28]") }

    /// An integer `n` (meaning `[n, n]`) or `[height, width]`.
    func pair(_ key: String) throws -> [Int]? {
        guard has(key) else { return nil }
        if let n = try? container.decode(Int.self, forKey: ModelCodingKey(key)) { return [n, n] }
        if let v = try? container.decode([Int].self, forKey: ModelCodingKey(key)), v.count == 2 { return v }
        throw wrongType(key, expected: "an integer or [height, width]")
    }

    /// `same`, `valid`, an integer, `[vertical, horizontal]` or `[top, bottom, left, right]`.
    func padding(_ key: String) throws -> Padding? {
        guard has(key) else { return nil }
        let k = ModelCodingKey(key)
        if let n = try? container.decode(Int.self, forKey: k) { return .explicit(top: n, bottom: n, left: n, right: n) }
        if let v = try? container.decode([Int].self, forKey: k) {
            if v.count == 2 { return .explicit(top: v[0], bottom: v[0], left: v[1], right: v[1]) }
            if v.count == 4 { return .explicit(top: v[0], bottom: v[1], left: v[2], right: v[3]) }
        }
        if let word = try? container.decode(String.self, forKey: k) {
            switch word.lowercased() {
            case "same": return .same
            case "valid": return .valid
            default:
                throw ModelFileError(
                    layer: layer, layerType: layerType,
                    problem: .invalidValue(option: key, reason: "unknown padding '\(word)'; hint: use same, valid, an integer or [top, bottom, left, right]"))
            }
        }
        throw wrongType(key, expected: "same, valid, an integer, [vertical, horizontal] or [top, bottom, left, right]")
    }
}
