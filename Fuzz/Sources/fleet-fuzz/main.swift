// The libFuzzer entry points. libFuzzer brings `main`; FLEET_FUZZ_TARGET names the target
// (Fuzz/run sets it), FLEET_FUZZ_SLOPE=1 runs the slope probe instead of fuzzing.
import FleetFuzzing

#if canImport(Glibc)
import Glibc
#endif

nonisolated(unsafe) private var selected: FuzzTarget?

@_cdecl("LLVMFuzzerInitialize")
public func fuzzerInitialize(
    _ argc: UnsafeMutablePointer<CInt>,
    _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>
) -> CInt {
    let name = getenv("FLEET_FUZZ_TARGET").map { String(cString: $0) } ?? ""
    guard let target = FuzzTarget.named(name) else {
        let names = FuzzTarget.all.map(\.name).joined(separator: ", ")
        fputs("fleet-fuzz: set FLEET_FUZZ_TARGET to one of: \(names) (got \"\(name)\")\n", stderr)
        exit(2)
    }
    if getenv("FLEET_FUZZ_SLOPE") != nil {
        var worse = false
        for result in SlopeProbe.measure(target) {
            print(result)
            worse = worse || result.slope > SlopeProbe.limit
        }
        exit(worse ? 1 : 0)
    }
    selected = target
    return 0
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzerTestOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    guard let target = selected else { return 0 }
    let input = data.map { Array(UnsafeBufferPointer(start: $0, count: size)) } ?? []
    do {
        try target.run(input)
    } catch {
        // A broken invariant is a crash for libFuzzer: it saves the input as crash-<sha1>.
        fputs("fleet-fuzz: invariant broken: \(error)\n", stderr)
        abort()
    }
    return 0
}
