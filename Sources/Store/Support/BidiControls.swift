/// Unicode's bidirectional controls (U+061C, U+200E, U+200F, U+202A…U+202E, U+2066…U+2069):
/// invisible characters that reorder the text around them, so a name that holds one can read
/// otherwise than it is.
public enum BidiControls {
    public static let scalars: Set<UInt32> = [
        0x061C, 0x200E, 0x200F, 0x202A, 0x202B, 0x202C, 0x202D, 0x202E, 0x2066, 0x2067, 0x2068, 0x2069,
    ]

    /// Whether `text` holds one.
    public static func occur(in text: some StringProtocol) -> Bool {
        text.unicodeScalars.contains { scalars.contains($0.value) }
    }
}
