// swift-tools-version:6.2
import Foundation
import PackageDescription

// A package reached by path is known by its folder's name (`fleet-telemetry`, or whatever a clone
// is called).
let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
let rootIdentity = root.lastPathComponent.lowercased()

/// The libFuzzer driver of fleet-telemetry's fuzz targets (docs/fuzzing.md). Build and run it with
/// `Fuzz/run`, which passes the fuzzer's flags (`-sanitize=fuzzer,address`).
let package = Package(
    name: "fleet-fuzz",
    dependencies: [
        .package(path: "..")
    ],
    targets: [
        // libFuzzer's LLVMFuzzerRunDriver, declared for Swift.
        .target(name: "CFuzzerDriver"),
        .executableTarget(
            name: "fleet-fuzz",
            dependencies: ["CFuzzerDriver", .product(name: "FleetFuzzing", package: rootIdentity)],
            swiftSettings: [.swiftLanguageMode(.v6)]
        ),
    ]
)
