import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// The emulators and daemons this benchmark started, stopped when it is interrupted (SIGINT,
/// SIGTERM, e.g. Ctrl-C or `timeout`): without this they would keep running, and loading the
/// machine, after the benchmark is gone. The temporary folders of the runs (config, database)
/// are removed then too.
final class ChildProcesses: @unchecked Sendable {
    static let shared = ChildProcesses()

    private let lock = NSLock()
    private var running: Set<Int32> = []
    private var folders: Set<String> = []
    private var sources: [any DispatchSourceSignal] = []

    /// Stops every registered process and exits (128 + signal) on SIGINT and SIGTERM.
    func stopOnSignals() {
        for number in [SIGINT, SIGTERM] {
            signal(number, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: number, queue: .global())
            source.setEventHandler { [self] in
                lock.lock()
                let pids = running
                let paths = folders
                lock.unlock()
                for pid in pids { kill(pid, SIGTERM) }
                for pid in pids { waitpid(pid, nil, 0) }
                for path in paths { try? FileManager.default.removeItem(atPath: path) }
                exit(128 + number)
            }
            source.resume()
            sources.append(source)
        }
    }

    /// Registers a started process.
    func add(_ process: Process) {
        lock.lock()
        running.insert(process.processIdentifier)
        lock.unlock()
    }

    /// Registers a temporary folder, removed on interruption.
    func add(folder path: String) {
        lock.lock()
        folders.insert(path)
        lock.unlock()
    }

    /// Forgets a folder that was removed.
    func remove(folder path: String) {
        lock.lock()
        folders.remove(path)
        lock.unlock()
    }

    /// Forgets a process that was stopped.
    func remove(_ process: Process) {
        lock.lock()
        running.remove(process.processIdentifier)
        lock.unlock()
    }
}
