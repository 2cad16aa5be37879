import FleetIngestion
import FleetModel

extension FuzzTarget {
    /// `import`'s line splitter, fed the input in chunks of sizes the input chooses, against the
    /// whole input split at once.
    ///
    /// The first byte sets the line limit (1–64 bytes, so that the fuzzer reaches it), the second
    /// seeds the chunk sizes (1–64 bytes each). Checked: the same lines, numbers and over-long
    /// lines as splitting the whole stream at every `\n`, whatever the chunks; each line at most
    /// the limit; an over-long line reported once.
    public static let importLines = FuzzTarget(
        name: "import-lines",
        summary: "import's line splitter in input-chosen chunks: same lines as one split, limits kept",
        grow: [
            Growth("many short lines") { n in Array(repeating: [UInt8(ascii: "{"), 0x0A], count: n / 2).flatMap { $0 }
            },
            Growth("one long line") { n in [8, 1] + Array(repeating: UInt8(ascii: "x"), count: n) },
            Growth("empty lines") { n in [64, 7] + Array(repeating: 0x0A, count: n) },
        ]
    ) { input throws(FuzzFailure) in
        guard input.count >= 2 else { return }
        let limit = Int(input[0]) % 64 + 1
        var random = SplitMix64(seed: UInt64(input[1]))
        let stream = input.dropFirst(2)

        var splitter = LineSplitter(maximumLineBytes: limit)
        var pieces: [LineSplitter.Piece] = []
        var offset = stream.startIndex
        while !splitter.isFinished {
            if offset < stream.endIndex {
                let size = Int(random.next() % 64) + 1
                let end = stream.index(offset, offsetBy: size, limitedBy: stream.endIndex) ?? stream.endIndex
                splitter.append(stream[offset..<end])
                offset = end
            } else {
                splitter.finish()
            }
            while let piece = splitter.next() { pieces.append(piece) }
        }

        // The reference: the whole stream split at every newline; no last line after a final one.
        var expected: [LineSplitter.Piece] = []
        var lines = stream.split(separator: 0x0A, omittingEmptySubsequences: false)
        if lines.last?.isEmpty == true { lines.removeLast() }
        for (index, line) in lines.enumerated() {
            expected.append(
                line.count > limit ? .tooLong(number: index + 1) : .line(number: index + 1, bytes: ArraySlice(line)))
        }
        guard pieces.count == expected.count else {
            throw FuzzFailure("import-lines", "\(pieces.count) pieces, \(expected.count) lines in \(quoted(stream))")
        }
        for (piece, line) in zip(pieces, expected) {
            switch (piece, line) {
            case (.line(let a, let x), .line(let b, let y)) where a == b && x.elementsEqual(y): continue
            case (.tooLong(let a), .tooLong(let b)) where a == b: continue
            default: throw FuzzFailure("import-lines", "\(piece), expected \(line) (limit \(limit))")
            }
        }
    }
}
