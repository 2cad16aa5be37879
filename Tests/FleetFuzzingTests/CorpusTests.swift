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
        let files = try FileManager.default.contentsOfDirectory(atPath: folder.path).sorted()
        #expect(files.count >= 3, "the corpus of \(name) has \(files.count) inputs")
        for file in files {
            let input = try [UInt8](Data(contentsOf: folder.appendingPathComponent(file)))
            #expect(throws: Never.self, "\(name)/\(file)") { try target.run(input) }
        }
    }
}
