import FleetModel

extension FuzzTarget {
    /// The VIN validator, against a reference written from ISO 3779.
    ///
    /// Checked: accepted exactly when the input is 17 characters of `0-9`, `A-Z` without `I`,
    /// `O`, `Q` once ASCII `a-z` is upper-cased; the VIN kept is that upper-cased text and reads
    /// back as itself; a refusal names the length or the position of the character at fault.
    public static let vin = FuzzTarget(
        name: "vin",
        summary: "VIN validator: differential against an ISO 3779 reference, refusals name length or position",
        grow: [
            Growth("a long text") { n in Array(repeating: UInt8(ascii: "A"), count: n) },
            Growth("combining marks") { n in Array(repeating: Array("A\u{301}".utf8), count: n / 3).flatMap { $0 } },
        ]
    ) { input throws(FuzzFailure) in
        let text = String(decoding: input, as: UTF8.self)
        func fail(_ message: String) -> FuzzFailure { FuzzFailure("vin", "\(quoted(input)): \(message)") }
        let upper = String(
            String.UnicodeScalarView(
                text.unicodeScalars.map { (97...122).contains($0.value) ? Unicode.Scalar($0.value - 32)! : $0 }))
        let allowed = Set("0123456789ABCDEFGHJKLMNPRSTUVWXYZ".unicodeScalars)
        let expected = upper.unicodeScalars.count == 17 && upper.unicodeScalars.allSatisfy(allowed.contains)
        do {
            let vin = try VIN(validating: text)
            guard expected else { throw fail("accepted as \(vin)") }
            guard vin.rawValue == upper, vin.rawValue.utf8.count == 17 else { throw fail("kept as \(vin.rawValue)") }
            guard VIN(vin.rawValue) == vin else { throw fail("\(vin) does not read back") }
        } catch let error as VINError {
            guard !expected else { throw fail("refused: \(error)") }
            guard error.reason.contains("17 characters") || error.reason.hasPrefix("character ") else {
                throw fail("refusal naming neither length nor position: \(error)")
            }
        } catch let failure as FuzzFailure {
            throw failure
        } catch {
            throw fail("unexpected error \(error)")
        }
    }
}
