/// A secret string (client secret, access token) that never prints itself.
///
/// Its `description` and `debugDescription` are `<redacted>`, so it cannot leak into a log line,
/// an error message or a config dump by accident.
public struct Secret: Sendable, Hashable, CustomStringConvertible, CustomDebugStringConvertible {
    /// The secret itself; read it only to put it on the wire.
    public let value: String

    public init(_ value: String) {
        self.value = value
    }

    public var description: String { "<redacted>" }
    public var debugDescription: String { "<redacted>" }
}
