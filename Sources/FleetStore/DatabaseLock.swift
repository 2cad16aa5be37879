#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// An exclusive, advisory lock (`flock`) on the database file itself, held for the life of the
/// process, so that two daemons never poll into the same database (and never spend the API
/// budget twice), whatever path, symbolic link or hard link each one was given.
///
/// SQLite's own locks are POSIX record locks, which on Linux are independent of `flock`, so this
/// lock never blocks a reader or SQLite itself. The operating system releases it when the process
/// ends, however it ends (even `kill -9`).
public final class DatabaseLock: Sendable {
    private let descriptor: Int32
    /// The database file's path.
    public let path: String

    /// Takes the lock of the database at `databasePath`.
    ///
    /// The database file is created (empty, mode 0640) when it does not exist yet; SQLite takes
    /// an empty file as a new database.
    ///
    /// - Throws: ``LockError`` when another process holds it, or the file cannot be opened.
    public init(databasePath: String) throws(LockError) {
        let path = databasePath
        let descriptor = open(path, O_CREAT | O_RDWR | O_CLOEXEC, 0o640)
        guard descriptor >= 0 else {
            throw LockError(
                path: path, message: "cannot open the database file to lock it: \(String(cString: strerror(errno)))")
        }
        guard flock(descriptor, LOCK_EX | LOCK_NB) == 0 else {
            let busy = errno == EWOULDBLOCK
            close(descriptor)
            throw LockError(
                path: path,
                message: busy
                    ? "another fleet-telemetry process is using this database"
                    : "cannot lock: \(String(cString: strerror(errno)))")
        }
        self.descriptor = descriptor
        self.path = path
    }

    deinit {
        flock(descriptor, LOCK_UN)
        close(descriptor)
    }
}

/// The database lock could not be taken.
public struct LockError: Error, Sendable, CustomStringConvertible {
    /// The database file.
    public var path: String
    /// Why the lock could not be taken (another daemon holds it, or the file cannot be created).
    public var message: String
    /// True when another process holds the lock (a running daemon), false for a file problem.
    public var isHeld: Bool { message.hasPrefix("another fleet-telemetry process") }
    public var description: String { "\(path): \(message)" }
}
