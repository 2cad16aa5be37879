/// The release of fleet-telemetry: `fleet-telemetry --version`, the daemon's startup log line,
/// `/healthz` and the `fleet_telemetry_build_info` metric.
public enum FleetTelemetryVersion {
    /// Semantic version of this build.
    public static let current = "0.17.0"
}
