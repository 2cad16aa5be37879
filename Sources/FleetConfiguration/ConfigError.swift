/// A config file that cannot be used, naming the file, the key and (when known) the line.
public struct ConfigError: Error, Sendable, Hashable, CustomStringConvertible {
    /// The config file's path.
    public var file: String
    /// The dotted key at fault (`polling.interval`, `vehicles[2]`), or `nil` for the whole file.
    public var key: String?
    /// The 1-based line in the file, when known.
    public var line: Int?
    /// What is wrong and what is expected.
    public var message: String

    public init(file: String, key: String?, line: Int? = nil, message: String) {
        self.file = file
        self.key = key
        self.line = line
        self.message = message
    }

    public var description: String {
        var location = file
        if let line { location += ":\(line)" }
        if let key { location += ": \(key)" }
        return "\(location): \(message)"
    }
}
