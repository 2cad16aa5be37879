import FleetModel
import Foundation

/// Where detected events go once they are stored.
public protocol EventSink: Sendable {
    /// Delivers events that were just stored (each once, with its id).
    func deliver(_ events: [Event]) async
}

/// Prints each event as one JSON line on standard output (see ``Event/jsonLine``).
public struct StdoutEventSink: EventSink {
    public init() {}

    /// Writes each event as one line, in the order given.
    public func deliver(_ events: [Event]) async {
        guard !events.isEmpty else { return }
        let text = events.map { $0.jsonLine + "\n" }.joined()
        FileHandle.standardOutput.write(Data(text.utf8))
    }
}
