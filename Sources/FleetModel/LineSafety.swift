extension Unicode.Scalar {
    /// True for a scalar that would break or corrupt a log line: C0 controls, DEL, C1 controls and
    /// the Unicode line and paragraph separators (U+2028, U+2029).
    public var breaksALine: Bool {
        value < 0x20 || (0x7F...0x9F).contains(value) || value == 0x2028 || value == 0x2029
    }
}
