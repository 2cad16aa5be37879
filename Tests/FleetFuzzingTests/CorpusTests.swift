import FleetFuzzing
import Foundation
import Testing

/// Every input of the committed corpora (`Fuzz/Corpus/TARGET/`) through its target's checks, so
/// that `swift test` fails on a regression that breaks an invariant on a known input.
@Suite struct CorpusTests {
    static let corpus = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("Fuzz/Corpus")

    @Test(arguments: FuzzTarget.all.map(\.name))
    func everyCorpusInputKeepsTheInvariants(_ name: String) throws {
        let target = try #require(FuzzTarget.named(name))
        let folder = Self.corpus.appendingPathComponent(name)
        // Regular files only, as libFuzzer reads a corpus folder; at most its -max_len bytes each.
        let files = try FileManager.default.contentsOfDirectory(atPath: folder.path).sorted().filter {
            (try? folder.appendingPathComponent($0).resourceValues(forKeys: [.isRegularFileKey]).isRegularFile) == true
        }
        #expect(files.count >= 3, "the corpus of \(name) has \(files.count) inputs")
        for file in files {
            let input = try [UInt8](Data(contentsOf: folder.appendingPathComponent(file)).prefix(65536))
            #expect(throws: Never.self, "\(name)/\(file)") { try target.run(input) }
        }
    }
}

/// The slope probe's inputs: each must grow with the size asked for (a capped one would measure
/// nothing) and keep its target's invariants.
@Suite struct SlopeInputTests {
    @Test(arguments: FuzzTarget.all.map(\.name))
    func everyGrowthGrowsAndKeepsTheInvariants(_ name: String) throws {
        let target = try #require(FuzzTarget.named(name))
        #expect(!target.grow.isEmpty)
        for growth in target.grow {
            let small = growth.make(1 << 10)
            let large = growth.make(16 << 10)
            #expect(large.count >= 8 * small.count, "\(name) / \(growth.shape): \(small.count) → \(large.count) bytes")
            #expect(throws: Never.self, "\(name) / \(growth.shape)") { try target.run(large) }
        }
    }
}
