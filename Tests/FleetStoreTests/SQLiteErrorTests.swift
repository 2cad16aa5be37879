@testable import FleetStore
import Foundation
import Testing

/// Which named code's `catch` clause caught what `body` threw.
private func outcome(_ body: () throws -> Void) -> String {
    do {
        try body()
        return "nothing thrown"
    } catch SQLiteError.Code.full {
        return "full"
    } catch SQLiteError.Code.constraint {
        return "constraint"
    } catch {
        return "other: \(error)"
    }
}

@Suite struct SQLiteErrorTests {
    /// A real UNIQUE violation is caught by its primary code's name, matched by family in a
    /// `switch`, and not taken for another code.
    @Test func namedCodesMatchByFamily() throws {
        let connection = try Connection(path: ":memory:")
        try connection.execute("CREATE TABLE t (x INTEGER UNIQUE)")
        try connection.execute("INSERT INTO t VALUES (1)")
        #expect(
            outcome { try connection.execute("INSERT INTO t VALUES (1)") } == "constraint",
            "caught by the name of its primary code")
        let error = try #require(throws: SQLiteError.self) { try connection.execute("INSERT INTO t VALUES (1)") }
        #expect(error.code == .constraint)
        #expect(error.extendedCode == .constraintUnique)
        #expect(error.extendedCode != .constraint, "== compares exactly")
        switch error.extendedCode {
        case .full: Issue.record("matched the wrong code")
        case .constraint: break
        default: Issue.record("a primary code matches its extended codes")
        }
        #expect(!error.isFull && !error.isLocked)
    }

    /// Another connection's write lock, held past the busy timeout, fails with `.busy`, which
    /// `isLocked` (used by the daemon's retry) still reports.
    @Test func busyWriteLockIsLocked() throws {
        let db = TemporaryDatabase()
        let holder = try Connection(path: db.path)
        try holder.execute("CREATE TABLE t (x INTEGER)")
        try holder.execute("BEGIN IMMEDIATE")
        defer { try? holder.execute("ROLLBACK") }
        let waiter = try Connection(path: db.path, busyTimeout: .milliseconds(20))
        #expect {
            try waiter.execute("BEGIN IMMEDIATE")
        } throws: { error in
            guard let error = error as? SQLiteError else { return false }
            return error.code == .busy && error.isLocked && SQLiteError.Code.busy ~= error
        }
    }
}
