/// Splits a migration's SQL into statements. postgres-nio speaks only the extended query
/// protocol, which takes one statement at a time.
///
/// Knows what may hide a `;`: quoted strings (`'…'`, `E'…'`), quoted identifiers (`"…"`),
/// dollar-quoted bodies (`$$…$$`, `$fn$…$fn$`), line comments and nested block comments.
enum SQLScript {
    static func statements(in sql: String) -> [String] {
        let text = Array(sql.unicodeScalars)
        var statements: [String] = []
        var current = String.UnicodeScalarView()
        var index = 0
        var onlyComments = true

        func flush() {
            let statement = String(current).trimmingWhitespace()
            if !statement.isEmpty && !onlyComments { statements.append(statement) }
            current = String.UnicodeScalarView()
            onlyComments = true
        }
        func copy(through end: Int) {
            current.append(contentsOf: text[index..<min(end, text.count)])
            index = min(end, text.count)
        }

        while index < text.count {
            let scalar = text[index]
            let next = index + 1 < text.count ? text[index + 1] : nil
            switch scalar {
            case ";":
                index += 1
                flush()
            case "-" where next == "-":
                let end = text[index...].firstIndex(of: "\n") ?? text.count
                copy(through: end)
            case "/" where next == "*":
                var depth = 0
                var end = index
                while end < text.count {
                    if text[end] == "/", end + 1 < text.count, text[end + 1] == "*" {
                        depth += 1
                        end += 2
                    } else if text[end] == "*", end + 1 < text.count, text[end + 1] == "/" {
                        depth -= 1
                        end += 2
                        if depth == 0 { break }
                    } else {
                        end += 1
                    }
                }
                copy(through: end)
            case "'", "\"":
                onlyComments = false
                let backslashEscapes = scalar == "'" && index > 0 && (text[index - 1] == "E" || text[index - 1] == "e")
                var end = index + 1
                while end < text.count {
                    if backslashEscapes && text[end] == "\\" {
                        end += 2
                    } else if text[end] == scalar {
                        // A doubled quote is a quote inside the string.
                        if end + 1 < text.count, text[end + 1] == scalar {
                            end += 2
                        } else {
                            end += 1
                            break
                        }
                    } else {
                        end += 1
                    }
                }
                copy(through: end)
            case "$":
                onlyComments = false
                if let tagEnd = dollarTagEnd(text, from: index) {
                    let tag = Array(text[index...tagEnd])
                    var end = tagEnd + 1
                    while end < text.count {
                        if text[end] == "$", end + tag.count <= text.count, Array(text[end..<end + tag.count]) == tag {
                            end += tag.count
                            break
                        }
                        end += 1
                    }
                    copy(through: end)
                } else {
                    copy(through: index + 1)
                }
            default:
                if !scalar.properties.isWhitespace { onlyComments = false }
                copy(through: index + 1)
            }
        }
        flush()
        return statements
    }

    /// The index of the closing `$` of a dollar-quote tag starting at `start` (`$$`, `$tag$`),
    /// or `nil` when the `$` starts no tag (a parameter such as `$1`).
    private static func dollarTagEnd(_ text: [Unicode.Scalar], from start: Int) -> Int? {
        var index = start + 1
        while index < text.count {
            let scalar = text[index]
            if scalar == "$" { return index }
            let isTagCharacter = scalar == "_" || scalar.properties.isAlphabetic || (index > start + 1 && ("0"..."9").contains(scalar))
            if !isTagCharacter { return nil }
            index += 1
        }
        return nil
    }
}

extension String {
    func trimmingWhitespace() -> String {
        let scalars = unicodeScalars
        guard let first = scalars.firstIndex(where: { !$0.properties.isWhitespace }),
            let last = scalars.lastIndex(where: { !$0.properties.isWhitespace })
        else { return "" }
        return String(scalars[first...last])
    }
}
