import ArgumentParser

/// The exit statuses of `fleet-telemetry`, as the README lists them (the numbers of BSD's
/// `sysexits.h` where one fits). 64 (`EX_USAGE`, bad arguments) is ArgumentParser's own.
enum ExitStatus {
    /// 1: the API refused a request, or `import` stored nothing / could not read a named file.
    static let failure = ExitCode(1)
    /// 74 (`EX_IOERR`): the database cannot be opened or written.
    static let ioError = ExitCode(74)
    /// 78 (`EX_CONFIG`): a bad config file, or client credentials the API refuses; the systemd
    /// unit does not restart on it.
    static let config = ExitCode(78)
}
