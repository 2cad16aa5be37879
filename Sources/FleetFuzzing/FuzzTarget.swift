/// One fuzz target: a parser of untrusted bytes with the invariants its output must keep.
///
/// A target is a plain function of the input, so that the same checks run three ways: under
/// libFuzzer (`Fuzz/run`, where a broken invariant aborts and the input is saved), on the committed
/// corpus in `swift test` (`FleetFuzzingTests`), and in the slope probe that feeds it growing inputs.
public struct FuzzTarget: Sendable {
    /// The name `Fuzz/run` takes and the folder of its corpus under `Fuzz/Corpus/`.
    public let name: String
    /// What the target reads and checks, one line (`Fuzz/run --list`, `docs/fuzzing.md`).
    public let summary: String
    /// Runs the parser on `input` and checks its invariants.
    ///
    /// - Throws: ``FuzzFailure`` when an invariant is broken (never for an input the parser refuses
    ///   as it should).
    public let run: @Sendable ([UInt8]) throws(FuzzFailure) -> Void
    /// Inputs of growing size shaped to be this parser's worst case, for the slope probe: `grow(n)`
    /// returns an input of about `n` bytes.
    public let grow: [Growth]

    /// A family of inputs of growing size for the slope probe.
    public struct Growth: Sendable {
        /// What grows (`nested arrays`, `one long line`).
        public let shape: String
        /// An input of about `size` bytes.
        public let make: @Sendable (_ size: Int) -> [UInt8]

        public init(_ shape: String, _ make: @escaping @Sendable (_ size: Int) -> [UInt8]) {
            self.shape = shape
            self.make = make
        }
    }

    /// A target called `name` (a folder name under `Fuzz/Corpus/`), described by `summary` (one
    /// line), with its slope-probe inputs `grow` and its checks `run`.
    public init(
        name: String, summary: String, grow: [Growth], run: @escaping @Sendable ([UInt8]) throws(FuzzFailure) -> Void
    ) {
        self.name = name
        self.summary = summary
        self.grow = grow
        self.run = run
    }

    /// Every target, in the order `Fuzz/run` runs them.
    public static let all: [FuzzTarget] = [
        .json, .normalizer, .retryAfter, .apiError, .config, .duration, .vin, .importLines,
    ]

    /// The target called `name`, or `nil`.
    public static func named(_ name: String) -> FuzzTarget? {
        all.first { $0.name == name }
    }
}

/// An invariant a target's parser broke on an input.
public struct FuzzFailure: Error, Sendable, CustomStringConvertible {
    /// The target's name.
    public var target: String
    /// What was expected and what came out.
    public var message: String

    public init(_ target: String, _ message: String) {
        self.target = target
        self.message = message
    }

    public var description: String { "\(target): \(message)" }
}

/// A short, printable quotation of input bytes for failure messages.
func quoted(_ bytes: some Collection<UInt8>, limit: Int = 80) -> String {
    let text = String(decoding: bytes.prefix(limit), as: UTF8.self)
    var out = ""
    for scalar in text.unicodeScalars {
        out += scalar.value < 0x20 || scalar.value == 0x7F ? scalar.escaped(asASCII: true) : String(scalar)
    }
    return "\"\(out)\"" + (bytes.count > limit ? "… (\(bytes.count) bytes)" : "")
}
