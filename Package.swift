// swift-tools-version:6.2
import PackageDescription

/// fleet-telemetry: a daemon that polls the High Mobility Vehicle Data API for a fleet of VINs
/// and keeps every reading in one SQLite file.
let swiftSettings: [SwiftSetting] = [
    .swiftLanguageMode(.v6),
    .enableUpcomingFeature("ExistentialAny"),
]

let package = Package(
    name: "fleet-telemetry",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "fleet-telemetry", targets: ["fleet-telemetry"]),
        // For the libFuzzer package in Fuzz/ (Fuzz/run), which builds it with the fuzzer's flags.
        .library(name: "FleetFuzzing", targets: ["FleetFuzzing"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/async-http-client", from: "1.37.0"),
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.28.1"),
        .package(url: "https://github.com/jpsim/Yams", from: "6.2.2"),
        .package(url: "https://github.com/apple/swift-nio-ssl", from: "2.37.6"),
        .package(url: "https://github.com/apple/swift-metrics", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
        .package(url: "https://github.com/apple/swift-crypto", from: "4.5.2"),
    ],
    targets: [
        // The system SQLite, reached through its C API. Nothing but the module map and a header.
        .systemLibrary(
            name: "CSQLite",
            pkgConfig: "sqlite3",
            providers: [.apt(["libsqlite3-dev"]), .brew(["sqlite"])]
        ),
        // zlib, for the raw-response archive's deflate with a preset dictionary.
        .systemLibrary(
            name: "CZlib",
            pkgConfig: "zlib",
            providers: [.apt(["zlib1g-dev"]), .brew(["zlib"])]
        ),
        // The Eclipse Mosquitto MQTT client library, reached through its C API.
        .systemLibrary(
            name: "CMosquitto",
            pkgConfig: "libmosquitto",
            providers: [.apt(["libmosquitto-dev"]), .brew(["mosquitto"])]
        ),
        // Domain values shared by every module: VIN, Sample, Event, Timestamp, JSONValue.
        .target(
            name: "FleetModel",
            swiftSettings: swiftSettings
        ),
        // Auto API (and the OpenAPI document's simplified shape) → canonical samples.
        .target(
            name: "FleetNormalizer",
            dependencies: ["FleetModel"],
            swiftSettings: swiftSettings
        ),
        // The SQLite layer over the C API and the telemetry store built on it.
        .target(
            name: "FleetStore",
            dependencies: ["CSQLite", "CZlib", "FleetModel"],
            swiftSettings: swiftSettings
        ),
        // Change events detected by comparing a new observation with the stored latest one.
        .target(
            name: "FleetEvents",
            dependencies: ["FleetModel"],
            swiftSettings: swiftSettings
        ),
        // The only place that knows HTTP: access tokens, vehicle data, typed API errors, and the
        // signed webhook deliveries.
        .target(
            name: "FleetClient",
            dependencies: [
                "FleetModel",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
            ],
            swiftSettings: swiftSettings
        ),
        // The only place that knows MQTT: a libmosquitto connection, and events and state as topics.
        .target(
            name: "FleetMQTT",
            dependencies: [
                "CMosquitto", "FleetModel",
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: swiftSettings
        ),
        // The built-in High Mobility API emulator: simulated vehicles over real HTTP.
        .target(
            name: "FleetEmulator",
            dependencies: [
                "FleetModel",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: swiftSettings
        ),
        // Who is due and when: the schedule, budgets, backoff and the daemon's periodic chores.
        // Pure: driven by the times it is given.
        .target(
            name: "FleetScheduling",
            dependencies: ["FleetModel"],
            swiftSettings: swiftSettings
        ),
        // The config file: strict YAML reading into one validated DaemonConfiguration.
        .target(
            name: "FleetConfiguration",
            dependencies: [
                "FleetModel", "FleetClient", "FleetEvents", "FleetScheduling",
                .product(name: "Yams", package: "Yams"),
            ],
            swiftSettings: swiftSettings
        ),
        // The one ingestion path: normalize → store (one transaction) → events → sinks, for polls,
        // `poll --store`, `import` and `reprocess`.
        .target(
            name: "FleetIngestion",
            dependencies: [
                "FleetModel", "FleetNormalizer", "FleetStore", "FleetEvents", "FleetClient",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: swiftSettings
        ),
        // The metrics and health endpoint (Prometheus text format over Hummingbird).
        .target(
            name: "FleetMonitoring",
            dependencies: [
                "FleetDaemon", "FleetModel", "FleetStore",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: swiftSettings
        ),
        // The daemon assembly and its one polling loop.
        .target(
            name: "FleetDaemon",
            dependencies: [
                "FleetModel", "FleetStore", "FleetClient", "FleetEvents", "FleetScheduling",
                "FleetConfiguration", "FleetIngestion", "FleetMQTT", "FleetConsent",
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
            ],
            swiftSettings: swiftSettings
        ),
        // Vehicles their owners connect: the consent state file (grants, authorization requests).
        .target(
            name: "FleetConsent",
            dependencies: [
                "FleetModel", "FleetClient",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: swiftSettings
        ),
        .executableTarget(
            name: "fleet-telemetry",
            dependencies: [
                "FleetDaemon", "FleetEmulator", "FleetStore", "FleetModel", "FleetEvents", "FleetNormalizer",
                "FleetClient", "FleetConfiguration", "FleetIngestion", "FleetScheduling", "FleetMonitoring",
                "FleetConsent",
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: swiftSettings
        ),
        // The fuzz targets: each parser of untrusted bytes with its invariants and differential
        // checks (docs/fuzzing.md). Run by libFuzzer from Fuzz/, replayed on the corpus by tests.
        .target(
            name: "FleetFuzzing",
            dependencies: ["FleetModel", "FleetNormalizer", "FleetClient", "FleetConfiguration", "FleetIngestion"],
            swiftSettings: swiftSettings
        ),
        // Benchmarks print figures; they assert nothing (see docs/benchmarks.md).
        .target(
            name: "BenchmarkSupport",
            dependencies: [
                "FleetClient", "FleetConfiguration", "FleetEmulator", "FleetModel",
                .product(name: "Logging", package: "swift-log"),
            ],
            path: "Benchmarks/Support",
            swiftSettings: swiftSettings
        ),
        .executableTarget(
            name: "scheduler-benchmark",
            dependencies: ["FleetScheduling", "FleetModel"],
            path: "Benchmarks/SchedulerBenchmark",
            swiftSettings: swiftSettings
        ),
        .executableTarget(
            name: "ingest-benchmark",
            dependencies: ["CSQLite", "FleetEmulator", "FleetEvents", "FleetModel", "FleetNormalizer", "FleetStore"],
            path: "Benchmarks/IngestBenchmark",
            swiftSettings: swiftSettings
        ),
        .executableTarget(
            name: "query-benchmark",
            dependencies: ["FleetModel", "FleetStore"],
            path: "Benchmarks/QueryBenchmark",
            swiftSettings: swiftSettings
        ),
        .executableTarget(
            name: "quota-benchmark",
            dependencies: [
                "BenchmarkSupport",
                "FleetClient", "FleetConfiguration", "FleetDaemon", "FleetEmulator", "FleetIngestion", "FleetModel",
                "FleetScheduling", "FleetStore", .product(name: "Logging", package: "swift-log"),
            ],
            path: "Benchmarks/QuotaBenchmark",
            swiftSettings: swiftSettings
        ),
        .executableTarget(
            name: "e2e-benchmark",
            dependencies: [
                "FleetClient", "FleetEmulator", "FleetModel", "FleetStore",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
            ],
            path: "Benchmarks/EndToEndBenchmark",
            swiftSettings: swiftSettings
        ),
        .executableTarget(
            name: "delivery-benchmark",
            dependencies: [
                "BenchmarkSupport",
                "FleetClient", "FleetConfiguration", "FleetDaemon", "FleetEmulator", "FleetEvents", "FleetIngestion",
                "FleetMQTT", "FleetModel", "FleetStore",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "Logging", package: "swift-log"),
            ],
            path: "Benchmarks/DeliveryBenchmark",
            swiftSettings: swiftSettings
        ),
        .executableTarget(
            name: "import-benchmark",
            dependencies: ["FleetModel"],
            path: "Benchmarks/ImportBenchmark",
            swiftSettings: swiftSettings
        ),
        .executableTarget(
            name: "storage-benchmark",
            dependencies: [
                "BenchmarkSupport",
                "CSQLite", "FleetClient", "FleetConfiguration", "FleetDaemon", "FleetEmulator", "FleetIngestion", "FleetModel",
                "FleetStore",
                .product(name: "Logging", package: "swift-log"),
            ],
            path: "Benchmarks/StorageBenchmark",
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "FleetNormalizerTests",
            dependencies: ["FleetNormalizer", "FleetModel"],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "FleetStoreTests",
            dependencies: ["FleetStore", "FleetModel", "FleetEvents"],
            // Read from the source tree (#filePath) by DocumentedQueryTests.
            exclude: ["DocumentedQueries.expected"],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "FleetEventsTests",
            dependencies: ["FleetEvents", "FleetModel"],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "FleetSchedulingTests",
            dependencies: ["FleetScheduling", "FleetModel"],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "FleetConfigurationTests",
            dependencies: ["FleetConfiguration", "FleetScheduling", "FleetModel", "FleetClient", "FleetEvents"],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "FleetClientTests",
            dependencies: ["FleetClient", "FleetModel"],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "FleetConsentTests",
            dependencies: ["FleetConsent", "FleetClient", "FleetEmulator", "FleetModel"],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "FleetEmulatorTests",
            dependencies: ["FleetEmulator", "FleetModel"],
            swiftSettings: swiftSettings
        ),
        // Every committed fuzz corpus input and every past crash, through the fuzz targets' checks.
        .testTarget(
            name: "FleetFuzzingTests",
            dependencies: [
                "FleetFuzzing", "FleetModel", "FleetClient", "FleetConfiguration", "FleetIngestion", "FleetNormalizer",
            ],
            swiftSettings: swiftSettings
        ),
        // The daemon against the emulator over real loopback HTTP.
        .testTarget(
            name: "IntegrationTests",
            dependencies: [
                "FleetDaemon", "FleetEmulator", "FleetStore", "FleetModel", "FleetClient",
                "FleetNormalizer", "FleetEvents", "FleetConfiguration", "FleetIngestion", "FleetScheduling", "FleetMQTT",
                "FleetConsent",
                .product(name: "MetricsTestKit", package: "swift-metrics"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Hummingbird", package: "hummingbird"),
            ],
            swiftSettings: swiftSettings
        ),
    ]
)
