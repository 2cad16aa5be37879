/// Splits a JSON-lines stream, given in chunks of any size, into its lines, in bounded memory.
///
/// A line ends at `\n` (a `\r` before it stays part of the line); the last line needs no newline.
/// Lines are numbered from 1, empty ones included. A line longer than ``maximumLineBytes`` is
/// reported as ``Piece/tooLong(number:)`` once, as soon as it is known to be too long, and its
/// bytes are dropped as they arrive rather than held: at most one line of up to
/// ``maximumLineBytes`` plus one chunk is held at a time. Each byte is scanned for a newline once.
public struct LineSplitter: Sendable {
    /// What the splitter found next.
    public enum Piece: Sendable, Hashable {
        /// Line `number` (1-based), without its `\n`.
        case line(number: Int, bytes: ArraySlice<UInt8>)
        /// Line `number` is longer than ``LineSplitter/maximumLineBytes``; it is skipped.
        case tooLong(number: Int)
    }

    /// The longest line given whole, in bytes.
    public let maximumLineBytes: Int
    private var pending: [UInt8] = []
    /// Where the next line starts in `pending`.
    private var start = 0
    /// Bytes of `pending` already searched for a newline.
    private var searched = 0
    /// True while the rest of a line over the limit is dropped.
    private var skipping = false
    private var lineNumber = 0
    /// True once ``finish()`` was called: no chunk follows.
    public private(set) var isFinished = false

    /// A splitter that gives lines of up to `maximumLineBytes` bytes (at least 1) whole.
    public init(maximumLineBytes: Int) {
        self.maximumLineBytes = maximumLineBytes
    }

    /// Adds the next bytes of the stream. Take the pieces they complete with ``next()``.
    public mutating func append(_ chunk: some Collection<UInt8>) {
        precondition(!isFinished, "LineSplitter.append after finish")
        pending.removeSubrange(..<start)
        searched = Swift.max(0, searched - start)
        start = 0
        pending.append(contentsOf: chunk)
    }

    /// Marks the end of the stream: the bytes after the last newline are the last line.
    public mutating func finish() {
        isFinished = true
    }

    /// The next complete line or over-long line, or `nil` when the bytes given so far hold none.
    public mutating func next() -> Piece? {
        while start < pending.count {
            let newline = pending[Swift.max(start, searched)...].firstIndex(of: 0x0A)
            guard let end = newline ?? (isFinished ? pending.count : nil) else {
                searched = pending.count
                if skipping {
                    start = pending.count
                } else if pending.count - start > maximumLineBytes {
                    lineNumber += 1
                    skipping = true
                    start = pending.count
                    return .tooLong(number: lineNumber)
                }
                return nil
            }
            let after = end < pending.count ? end + 1 : end
            if skipping {
                // The end of the line over the limit, already reported.
                skipping = false
                start = after
                continue
            }
            lineNumber += 1
            let line = pending[start..<end]
            start = after
            return line.count > maximumLineBytes ? .tooLong(number: lineNumber) : .line(number: lineNumber, bytes: line)
        }
        return nil
    }
}
