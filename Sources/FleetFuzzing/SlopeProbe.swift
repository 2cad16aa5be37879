import Foundation

/// Measures how a target's time grows with its input: the slope of log(time) against log(size)
/// over inputs from ``smallest`` to ``largest`` bytes (1 for linear time, 2 for quadratic).
///
/// Each size is timed several times and the fastest run kept, so that the machine's noise adds as
/// little as possible; the slope is the least-squares fit over the sizes, so it compares the
/// target with itself in one run (no absolute time is asserted).
public enum SlopeProbe {
    /// The smallest and largest input, in bytes.
    public static let smallest = 4 << 10
    public static let largest = 1 << 20
    /// Above this slope a growth is reported as worse than linear.
    public static let limit = 1.3

    /// One growth's result.
    public struct Result: Sendable, CustomStringConvertible {
        public var target: String
        public var shape: String
        /// Fitted exponent: time ∝ size^slope.
        public var slope: Double
        /// The fastest time at the largest size, in seconds.
        public var largestSeconds: Double
        public var description: String {
            let verdict = slope <= SlopeProbe.limit ? "ok" : "WORSE THAN LINEAR"
            let milliseconds = String(format2: largestSeconds * 1000)
            return "\(target) / \(shape): slope \(String(format2: slope)) (\(milliseconds) ms at "
                + "\(SlopeProbe.largest >> 10) KiB) \(verdict)"
        }
    }

    /// Times each of `target`'s growths. Broken invariants are ignored here (the fuzzer reports them).
    public static func measure(_ target: FuzzTarget) -> [Result] {
        target.grow.map { growth in
            var points: [(size: Double, seconds: Double)] = []
            var size = smallest
            while size <= largest {
                let input = growth.make(size)
                let clock = ContinuousClock()
                var best = Double.infinity
                for _ in 0..<3 {
                    let elapsed = clock.measure { _ = try? target.run(input) }
                    best = Swift.min(
                        best, Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) * 1e-18)
                }
                points.append((Double(input.count), Swift.max(best, 1e-7)))
                size *= 2
            }
            return Result(
                target: target.name, shape: growth.shape, slope: fit(points), largestSeconds: points.last?.seconds ?? 0)
        }
    }

    /// The least-squares slope of log(seconds) on log(size).
    static func fit(_ points: [(size: Double, seconds: Double)]) -> Double {
        let xs = points.map { log2($0.size) }
        let ys = points.map { log2($0.seconds) }
        let mx = xs.reduce(0, +) / Double(xs.count)
        let my = ys.reduce(0, +) / Double(ys.count)
        let sxy = zip(xs, ys).map { ($0 - mx) * ($1 - my) }.reduce(0, +)
        let sxx = xs.map { ($0 - mx) * ($0 - mx) }.reduce(0, +)
        return sxx == 0 ? 0 : sxy / sxx
    }
}

extension String {
    fileprivate init(format2 value: Double) {
        let scaled = (value * 100).rounded() / 100
        self = "\(scaled)"
    }
}
