import CZlib

/// Raw deflate (RFC 1951, no zlib header or checksum) with an optional preset dictionary: the
/// encoding of the raw-response archive's bodies.
///
/// A body compressed with a dictionary decodes with that dictionary alone, whatever was archived
/// before or after it. The stream is kept between calls and reset (`deflateReset`), so that a
/// body costs no allocation of zlib's 256 KB of state.
final class Deflater {
    private var stream = z_stream()
    private var ready = false

    /// zlib's compression level: 6 (its default) compressed the emulator's bodies within 3 % of
    /// level 9 at two thirds of its time.
    static let level: Int32 = 6

    init() {
        ready =
            deflateInit2_(
                &stream, Self.level, Z_DEFLATED, -15, 8, Z_DEFAULT_STRATEGY, zlibVersion(),
                Int32(MemoryLayout<z_stream>.size)) == Z_OK
    }

    deinit {
        if ready { deflateEnd(&stream) }
    }

    /// `bytes` compressed, with `dictionary` as the preset dictionary when given (zlib uses its
    /// last 32 KB).
    ///
    /// - Throws: ``ArchiveError/compression(_:)`` when zlib fails (out of memory).
    func compress(_ bytes: [UInt8], dictionary: [UInt8]?) throws -> [UInt8] {
        guard ready, deflateReset(&stream) == Z_OK else { throw ArchiveError.compression("zlib could not start") }
        if let dictionary, !dictionary.isEmpty {
            let status = dictionary.withUnsafeBufferPointer {
                deflateSetDictionary(&stream, $0.baseAddress, UInt32($0.count))
            }
            guard status == Z_OK else { throw ArchiveError.compression("zlib refused the dictionary (\(status))") }
        }
        var output = [UInt8](repeating: 0, count: Int(deflateBound(&stream, UInt(bytes.count))) + 16)
        var input = bytes
        let status = finish(&stream, from: &input, into: &output, with: deflate)
        guard status == Z_STREAM_END else { throw ArchiveError.compression("deflate ended with status \(status)") }
        output.removeLast(Int(stream.avail_out))
        return output
    }
}

/// Decodes what ``Deflater`` wrote.
enum Inflater {
    /// The largest body decoded: 64 MiB.
    static let maximumSize = 64 << 20

    /// The `size` bytes that `compressed` holds, decoded with `dictionary`.
    ///
    /// - Throws: ``ArchiveError/corrupt(_:)`` when the bytes are not a deflate stream of exactly
    ///   `size` bytes with that dictionary.
    static func decompress(_ compressed: [UInt8], size: Int, dictionary: [UInt8]?) throws -> [UInt8] {
        // A damaged `size` must not make an allocation of any size: no body comes near 64 MiB.
        guard (0...maximumSize).contains(size) else {
            throw ArchiveError.corrupt("a size of \(size) bytes (at most \(maximumSize))")
        }
        var stream = z_stream()
        guard inflateInit2_(&stream, -15, zlibVersion(), Int32(MemoryLayout<z_stream>.size)) == Z_OK else {
            throw ArchiveError.corrupt("zlib could not start")
        }
        defer { inflateEnd(&stream) }
        if let dictionary, !dictionary.isEmpty {
            let status = dictionary.withUnsafeBufferPointer {
                inflateSetDictionary(&stream, $0.baseAddress, UInt32($0.count))
            }
            guard status == Z_OK else { throw ArchiveError.corrupt("zlib refused the dictionary (\(status))") }
        }
        // One byte more than expected: a stream longer than its recorded size is caught.
        var output = [UInt8](repeating: 0, count: size + 1)
        var input = compressed
        let status = finish(&stream, from: &input, into: &output, with: inflate)
        let produced = Int(stream.total_out)
        guard status == Z_STREAM_END, produced == size else {
            let reason = status == Z_STREAM_END ? "\(produced) bytes instead of \(size)" : "inflate status \(status)"
            throw ArchiveError.corrupt(reason)
        }
        output.removeLast(output.count - size)
        return output
    }
}

/// Runs `step` (`deflate` or `inflate`) once with `Z_FINISH` over all of `input` into `output`,
/// and returns its status; the stream keeps no pointer into either afterwards.
private func finish(
    _ stream: inout z_stream, from input: inout [UInt8], into output: inout [UInt8],
    with step: (UnsafeMutablePointer<z_stream>?, Int32) -> Int32
) -> Int32 {
    input.withUnsafeMutableBufferPointer { source in
        output.withUnsafeMutableBufferPointer { target in
            stream.next_in = source.baseAddress
            stream.avail_in = UInt32(source.count)
            stream.next_out = target.baseAddress
            stream.avail_out = UInt32(target.count)
            defer {
                stream.next_in = nil
                stream.next_out = nil
            }
            return step(&stream, Z_FINISH)
        }
    }
}

/// An archived body that cannot be stored or read back.
public enum ArchiveError: Error, Sendable, Hashable, CustomStringConvertible {
    /// zlib failed to compress (it only fails without memory).
    case compression(String)
    /// A stored body does not decode: damaged bytes, or its dictionary is missing.
    case corrupt(String)

    public var description: String {
        switch self {
        case .compression(let reason): return "the archive could not compress a body: \(reason)"
        case .corrupt(let reason): return "an archived body does not decode: \(reason)"
        }
    }
}
