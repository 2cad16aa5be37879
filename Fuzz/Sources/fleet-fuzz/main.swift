// The libFuzzer driver of fleet-telemetry's fuzz targets (docs/fuzzing.md). FLEET_FUZZ_TARGET
// names the target (Fuzz/run sets it); FLEET_FUZZ_SLOPE=1 runs the slope probe instead of
// fuzzing. Every other argument is libFuzzer's (`-max_total_time=60 CORPUS …`).
//
// SwiftPM gives an executable its own `main`, so this one hands over to libFuzzer through
// LLVMFuzzerRunDriver rather than libFuzzer's `main`.
import CFuzzerDriver
import FleetFuzzing

#if canImport(Glibc)
import Glibc
#endif

/// One line on standard error (file descriptor 2: C's `stderr` is shared mutable state to Swift 6).
func printError(_ message: String) {
    var line = message + "\n"
    line.withUTF8 { _ = write(2, $0.baseAddress, $0.count) }
}

let name = getenv("FLEET_FUZZ_TARGET").map { String(cString: $0) } ?? ""
guard let target = FuzzTarget.named(name) else {
    printError("fleet-fuzz: set FLEET_FUZZ_TARGET to one of: \(FuzzTarget.all.map(\.name).joined(separator: ", "))")
    for target in FuzzTarget.all { printError("  \(target.name): \(target.summary)") }
    exit(2)
}
if let slope = getenv("FLEET_FUZZ_SLOPE"), String(cString: slope) == "1" {
    var worse = false
    for result in SlopeProbe.measure(target) {
        print(result)
        worse = worse || result.slope > SlopeProbe.limit
    }
    exit(worse ? 1 : 0)
}
Fuzzed.target = target

/// The target being fuzzed, for the C callback (which cannot capture it).
enum Fuzzed {
    nonisolated(unsafe) static var target: FuzzTarget?

    static func run(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
        guard let target else { return 0 }
        let input = data.map { Array(UnsafeBufferPointer(start: $0, count: size)) } ?? []
        do {
            try target.run(input)
        } catch {
            // A broken invariant is a crash for libFuzzer: it saves the input as crash-<sha1>.
            printError("fleet-fuzz: invariant broken: \(error)")
            abort()
        }
        return 0
    }
}

var argc = CommandLine.argc
var argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>? = CommandLine.unsafeArgv
exit(LLVMFuzzerRunDriver(&argc, &argv) { data, size in Fuzzed.run(data, size) })
