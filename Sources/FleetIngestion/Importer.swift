import FleetEvents
import FleetModel
import FleetNormalizer
import FleetStore
import Foundation

/// Ingests captured vehicle data (`fleet-telemetry import`) through the ingestion path: the
/// same normalizer, store and configured event rules as polling.
///
/// Each document is a REST vehicle-data body (`{vin, capability: …}`, either shape) or a push
/// message (`{version, message_id, vin, data: {capability: …}}`). Push messages are imported once
/// per `message_id`. A bad document is reported with its line number and never stops the rest.
public struct Importer: Sendable {
    /// The path every document goes through; its sink receives the events.
    public let ingestion: Ingestion
    /// The import time (UTC): `received_at`, and the time of values without one.
    public let clock: any WallClock
    private let lastReceived = LastReceived()

    /// Import times strictly increase, so that documents without timestamps of their own (the
    /// flat shape) never share an observation time and none is dropped.
    final class LastReceived: @unchecked Sendable {
        private var value = Int64.min
        private let lock = NSLock()
        func next(after now: Timestamp) -> Timestamp {
            lock.lock()
            defer { lock.unlock() }
            value = max(value + 1, now.millisecondsSince1970)
            return Timestamp(millisecondsSince1970: value)
        }
    }

    /// - Parameters:
    ///   - ingestion: Where the documents go, with the configured rules and the sink for events.
    ///   - clock: The import time, stored as `received_at` and used for documents without timestamps.
    public init(ingestion: Ingestion, clock: any WallClock = SystemWallClock()) {
        self.ingestion = ingestion
        self.clock = clock
    }

    /// What an import did.
    public struct Summary: Sendable, Hashable {
        /// Documents stored.
        public var responses = 0
        /// Push messages skipped because their `message_id` was imported before.
        public var duplicates = 0
        /// New rows in `samples`.
        public var samples = 0
        /// Events stored and delivered.
        public var events = 0
        /// Documents refused: where (`file:line`) and why.
        public var rejected: [Rejection] = []

        public init() {}
    }

    /// A document that could not be imported.
    public struct Rejection: Sendable, Hashable, CustomStringConvertible {
        /// The file, as named on the command line.
        public var file: String
        /// 1-based line of a JSON-lines file; 0 for a whole `.json` file.
        public var line: Int
        /// Why, as one readable line.
        public var reason: String
        public var description: String { line > 0 ? "\(file):\(line): \(reason)" : "\(file): \(reason)" }

        public init(file: String, line: Int, reason: String) {
            self.file = file
            self.line = line
            self.reason = reason
        }
    }

    /// Documents written per transaction: one commit per document would cost more than the
    /// document itself (see `docs/benchmarks.md`).
    public static let batchSize = 256
    /// The longest JSON line read, in bytes (64 MiB): a longer line is rejected and skipped up to
    /// its newline without being held, so that one runaway line cannot exhaust memory.
    public static let maximumLineBytes = 64 << 20

    /// Imports the documents of one file's content: JSON lines, or one JSON document (`.json`,
    /// which may also be an array of documents).
    ///
    /// Documents are written in transactions of up to ``batchSize``; events are delivered to the
    /// sink once their transaction has committed.
    ///
    /// - Parameter progress: Called after each committed batch with the running summary.
    /// - Throws: ``SQLiteError`` when the database itself fails; the batches committed before stay.
    public func importFile(
        named file: String, content: [UInt8], wholeDocument: Bool, into summary: inout Summary,
        progress: (Summary) -> Void = { _ in }
    ) async throws {
        var batch: [(write: PollWrite, line: Int)] = []
        if wholeDocument {
            do {
                let json = try JSONParser.parse(content)
                let documents = json.arrayValue ?? [json]
                for document in documents {
                    if let write = prepare(document, file: file, line: 0, into: &summary) { batch.append((write, 0)) }
                    if batch.count >= Self.batchSize {
                        try await flush(&batch, file: file, into: &summary)
                        progress(summary)
                    }
                }
            } catch let error as JSONParser.SyntaxError {
                summary.rejected.append(Rejection(file: file, line: 0, reason: "not valid JSON (\(error))"))
            }
            try await flush(&batch, file: file, into: &summary)
            progress(summary)
            return
        }
        var delivered = false
        try await importLines(
            named: file,
            read: {
                defer { delivered = true }
                return delivered ? nil : content
            }, into: &summary, progress: progress)
    }

    /// Imports a JSON-lines file read in chunks (`read` returns the next bytes, `nil` at the
    /// end), so that a file of any size is imported in bounded memory: at most one line (up to
    /// ``maximumLineBytes``; a longer one is rejected and skipped) and one chunk are held.
    ///
    /// - Parameters:
    ///   - maximumLineBytes: The longest line read (``maximumLineBytes`` unless a test sets less).
    ///   - progress: Called after each committed batch with the running summary.
    /// - Throws: What `read` throws, or ``SQLiteError``; the batches committed before stay.
    public func importLines(
        named file: String, read: () throws -> [UInt8]?, into summary: inout Summary,
        maximumLineBytes: Int = Importer.maximumLineBytes, progress: (Summary) -> Void = { _ in }
    ) async throws {
        var batch: [(write: PollWrite, line: Int)] = []
        var lines = LineSplitter(maximumLineBytes: maximumLineBytes)
        while !lines.isFinished {
            if let chunk = try read() {
                lines.append(chunk)
            } else {
                lines.finish()
            }
            while let piece = lines.next() {
                switch piece {
                case .tooLong(let number):
                    summary.rejected.append(Rejection(file: file, line: number, reason: Self.tooLong(maximumLineBytes)))
                case .line(let number, let line):
                    guard line.contains(where: { $0 != 0x20 && $0 != 0x09 && $0 != 0x0D }) else { continue }
                    do throws(JSONParser.SyntaxError) {
                        let json = try JSONParser.parse(line)
                        if let write = prepare(json, file: file, line: number, into: &summary) {
                            batch.append((write, number))
                        }
                    } catch {
                        summary.rejected.append(
                            Rejection(file: file, line: number, reason: "not valid JSON (\(error))"))
                    }
                    if batch.count >= Self.batchSize {
                        try await flush(&batch, file: file, into: &summary)
                        progress(summary)
                    }
                }
            }
        }
        try await flush(&batch, file: file, into: &summary)
        progress(summary)
    }

    static func tooLong(_ limit: Int) -> String {
        limit >= 1 << 20 ? "line longer than \(limit >> 20) MiB; skipped" : "line longer than \(limit) bytes; skipped"
    }

    /// Writes one batch and counts its outcome.
    private func flush(
        _ batch: inout [(write: PollWrite, line: Int)], file: String, into summary: inout Summary
    ) async throws {
        guard !batch.isEmpty else { return }
        defer { batch.removeAll(keepingCapacity: true) }
        let outcomes = try await ingestion.write(batch: batch.map(\.write))
        for (entry, outcome) in zip(batch, outcomes) {
            switch outcome {
            case .written(let written):
                summary.responses += 1
                summary.samples += written.samplesWritten
                summary.events += written.events.count
            case .duplicate:
                summary.duplicates += 1
            case .failed(let error):
                summary.rejected.append(Rejection(file: file, line: entry.line, reason: "not stored: \(error)"))
            }
        }
    }

    /// Checks and normalizes one parsed document; `nil` (and a rejection) for a bad one.
    func prepare(_ json: JSONValue, file: String, line: Int, into summary: inout Summary) -> PollWrite? {
        func reject(_ reason: String) -> PollWrite? {
            summary.rejected.append(Rejection(file: file, line: line, reason: reason))
            return nil
        }
        guard case .object(let root) = json else { return reject("not a JSON object") }
        guard let vinField = root["vin"] else { return reject("no \"vin\"") }
        guard let vinText = vinField.stringValue else { return reject("\"vin\" is not a string") }
        if root["message_id"] != nil || root["version"] != nil, root["data"]?.objectValue == nil {
            return reject("a push message without a \"data\" object")
        }
        if let messageID = root["message_id"], messageID.stringValue == nil, messageID.numberValue == nil {
            return reject("\"message_id\" is not a string or a number, so the message could not be imported only once")
        }
        // A number from 2^53 on is not exact as read: two messages could share its id and one be
        // skipped as imported already.
        if let number = root["message_id"]?.numberValue,
            number.rounded() != number || abs(number) >= 9_007_199_254_740_992
        {
            return reject(
                "\"message_id\" \(SampleValue.number(number)) is not a whole number below 2^53, so the message could not be imported only once (send it as text)"
            )
        }
        let vin: VIN
        do {
            vin = try VIN(validating: vinText)
        } catch {
            return reject(error.description)
        }
        do {
            return try ingestion.prepare(document: json, vin: vin, receivedAt: lastReceived.next(after: clock.now()))
        } catch {
            return reject(error.description)
        }
    }
}
