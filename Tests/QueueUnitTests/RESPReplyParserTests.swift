import HarrowTestSupport
import NIOCore
import Testing

@testable import Queue

/// The RESP parser over hiredis's reader, without a server: every kind of reply, the same bytes
/// cut at every position, random garbage, truncation and the size limit.
@Suite("RESP reply parser")
struct RESPReplyParserTests {
    /// Arrays in arrays, three levels deep.
    static let nested: (wire: String, value: RESPValue) = (
        "*2\r\n*2\r\n:1\r\n*1\r\n$3\r\nabc\r\n*0\r\n",
        .array([.array([.integer(1), .array([.bulkString(ByteBuffer(string: "abc"))])]), .array([])])
    )

    /// One reply of every kind RESP2 has, with what it must parse to.
    static let samples: [(wire: String, value: RESPValue)] = [
        ("+OK\r\n", .simpleString(ByteBuffer(string: "OK"))),
        ("+\r\n", .simpleString(ByteBuffer())),
        ("-ERR something bad\r\n", .error("ERR something bad")),
        (
            "-WRONGTYPE Operation against a key holding the wrong kind of value\r\n",
            .error("WRONGTYPE Operation against a key holding the wrong kind of value")
        ),
        (":0\r\n", .integer(0)),
        (":42\r\n", .integer(42)),
        (":-42\r\n", .integer(-42)),
        (":9223372036854775807\r\n", .integer(Int.max)),
        ("$5\r\nhello\r\n", .bulkString(ByteBuffer(string: "hello"))),
        ("$0\r\n\r\n", .bulkString(ByteBuffer())),
        ("$6\r\na\r\nb\r\n\r\n", .bulkString(ByteBuffer(string: "a\r\nb\r\n"))),
        ("$-1\r\n", .null),
        ("*-1\r\n", .null),
        ("*0\r\n", .array([])),
        (
            "*3\r\n:1\r\n$1\r\nx\r\n+y\r\n",
            .array([.integer(1), .bulkString(ByteBuffer(string: "x")), .simpleString(ByteBuffer(string: "y"))])
        ),
        ("*3\r\n$-1\r\n-ERR inner\r\n*-1\r\n", .array([.null, .error("ERR inner"), .null])),
        nested,
        ("$12\r\n\u{00e9}t\u{00e9} \u{1F680}!!\r\n", .bulkString(ByteBuffer(string: "\u{00e9}t\u{00e9} \u{1F680}!!"))),
    ]

    /// A bulk string holding every byte value, which must come back byte for byte.
    static let binaryBulk: (wire: [UInt8], value: RESPValue) = {
        let payload = (0...255).map { UInt8($0) } + (0...255).map { UInt8(255 - $0) }
        let wire = Array("$\(payload.count)\r\n".utf8) + payload + Array("\r\n".utf8)
        return (wire, .bulkString(ByteBuffer(bytes: payload)))
    }()

    static var allWire: [UInt8] { samples.flatMap { Array($0.wire.utf8) } + binaryBulk.wire }
    static var allValues: [RESPValue] { samples.map(\.value) + [binaryBulk.value] }

    /// Feeds `chunks` one after the other and collects every reply as soon as it is complete.
    static func parse(
        _ chunks: [ArraySlice<UInt8>], parser: RESPReplyParser = RESPReplyParser()
    ) throws(RedisError)
        -> [RESPValue]
    {
        var values: [RESPValue] = []
        for chunk in chunks {
            try parser.feed(ByteBuffer(bytes: chunk))
            while let value = try parser.next() { values.append(value) }
        }
        return values
    }

    @Test("each kind of reply parses to its value", arguments: samples.indices)
    func parsesEachKind(index: Int) throws {
        let sample = Self.samples[index]
        let values = try Self.parse([ArraySlice(sample.wire.utf8)])
        #expect(values == [sample.value])
    }

    @Test func binaryBulkStringKeepsEveryByte() throws {
        let values = try Self.parse([ArraySlice(Self.binaryBulk.wire)])
        #expect(values == [Self.binaryBulk.value])
    }

    @Test func manyRepliesInOneFeedComeOutInOrder() throws {
        let values = try Self.parse([ArraySlice(Self.allWire)])
        #expect(values == Self.allValues)
    }

    @Test func everySplitPositionGivesTheSameReplies() throws {
        let wire = Self.allWire
        for cut in 0...wire.count {
            let values = try Self.parse([wire[..<cut], wire[cut...]])
            #expect(values == Self.allValues, "split at byte \(cut)")
        }
    }

    @Test func everyTwoSplitPositionsOfANestedReplyGiveTheSameReply() throws {
        let wire = Array(Self.nested.wire.utf8)
        for first in 0...wire.count {
            for second in first...wire.count {
                let values = try Self.parse([wire[..<first], wire[first..<second], wire[second...]])
                #expect(values == [Self.nested.value], "split at \(first) and \(second)")
            }
        }
    }

    @Test func byteByByteFeedingGivesTheSameReplies() throws {
        let wire = Self.allWire
        let values = try Self.parse(wire.indices.map { wire[$0...$0] })
        #expect(values == Self.allValues)
    }

    @Test("a truncated reply yields nothing until the rest arrives", arguments: samples.indices)
    func truncatedReplyNeedsMore(index: Int) throws {
        let wire = Array(Self.samples[index].wire.utf8)
        for length in 0..<wire.count {
            let parser = RESPReplyParser()
            try parser.feed(ByteBuffer(bytes: wire[..<length]))
            #expect(try parser.next() == nil, "\(length) of \(wire.count) bytes")
            #expect(try parser.next() == nil, "asking again changes nothing")
            try parser.feed(ByteBuffer(bytes: wire[length...]))
            #expect(try parser.next() == Self.samples[index].value)
            #expect(try parser.next() == nil)
        }
    }

    @Test func emptyFeedIsHarmless() throws {
        let parser = RESPReplyParser()
        try parser.feed(ByteBuffer())
        #expect(try parser.next() == nil)
        try parser.feed(ByteBuffer(string: ":1\r\n"))
        try parser.feed(ByteBuffer())
        #expect(try parser.next() == .integer(1))
    }

    @Test(
        "invalid bytes are a protocol error",
        arguments: ["?what\r\n", "hello\r\n", "\r\n", "\u{0}\r\n", "*2\r\n:1\r\n!x\r\n"])
    func invalidInputIsAProtocolError(wire: String) {
        let parser = RESPReplyParser()
        let error = #expect(throws: RedisError.self) { _ = try Self.parse([ArraySlice(wire.utf8)], parser: parser) }
        #expect(error?.code == .protocolError)
    }

    @Test func afterAnErrorEveryLaterCallThrows() {
        let parser = RESPReplyParser()
        #expect(throws: RedisError.self) { _ = try Self.parse([ArraySlice("!bad\r\n".utf8)], parser: parser) }
        let next = #expect(throws: RedisError.self) { _ = try parser.next() }
        #expect(next?.code == .protocolError)
        let feed = #expect(throws: RedisError.self) { try parser.feed(ByteBuffer(string: "+OK\r\n")) }
        #expect(feed?.code == .protocolError)
        #expect(throws: RedisError.self) { _ = try parser.next() }
    }

    @Test func aBulkStringLongerThanTheLimitIsAProtocolError() throws {
        let parser = RESPReplyParser(maxBufferedBytes: 1024)
        try parser.feed(ByteBuffer(string: "$5000\r\n"))
        #expect(try parser.next() == nil)
        var thrown: RedisError?
        for _ in 0..<10 where thrown == nil {
            do {
                try parser.feed(ByteBuffer(repeating: UInt8(ascii: "x"), count: 500))
                _ = try parser.next()
            } catch {
                thrown = error
            }
        }
        #expect(thrown?.code == .protocolError)
        #expect(throws: RedisError.self) { _ = try parser.next() }
    }

    @Test func anUnterminatedLineLongerThanTheLimitIsAProtocolError() {
        let parser = RESPReplyParser(maxBufferedBytes: 1024)
        let error = #expect(throws: RedisError.self) {
            try parser.feed(ByteBuffer(string: "+" + String(repeating: "a", count: 2000)))
            _ = try parser.next()
        }
        #expect(error?.code == .protocolError)
    }

    @Test func aReplyJustUnderTheLimitIsAccepted() throws {
        let parser = RESPReplyParser(maxBufferedBytes: 1024)
        let payload = String(repeating: "b", count: 1000)
        let values = try Self.parse([ArraySlice("$1000\r\n\(payload)\r\n".utf8)], parser: parser)
        #expect(values == [.bulkString(ByteBuffer(string: payload))])
    }

    /// `maxBufferedBytes` bounds a reply that is not complete yet (and `maxReplyBytes`, which
    /// feeds it, is documented as "the largest reply accepted"). A socket read holding many small
    /// complete replies, as a big pipeline's replies arrive, is more bytes than that in one
    /// feed, yet no reply is too big.
    @Test func manySmallCompleteRepliesInOneFeedAreNotTooBig() throws {
        let parser = RESPReplyParser(maxBufferedBytes: 1024)
        let wire = String(repeating: ":1\r\n", count: 500)  // 2000 bytes, 500 replies of 4 bytes
        let values = try Self.parse([ArraySlice(wire.utf8)], parser: parser)
        #expect(values.count == 500)
    }

    @Test func nestingDeeperThanTheReaderSupportsIsAProtocolErrorNotACrash() {
        let parser = RESPReplyParser()
        let wire = String(repeating: "*1\r\n", count: 64) + ":1\r\n"
        do {
            let values = try Self.parse([ArraySlice(wire.utf8)], parser: parser)
            // A reader that supports the depth must return the whole thing.
            #expect(values.count == 1)
        } catch {
            #expect(error.code == .protocolError)
        }
    }

    /// Random bytes never crash the parser: each input either parses, waits for more, or throws
    /// a protocol error, after which the parser stays failed.
    @Test(arguments: [UInt64(1), 2, 3])
    func randomGarbageNeverCrashes(seed: UInt64) {
        var random = SplitMix64(seed: seed)
        let alphabet = Array("+-:$*\r\n0123456789-abcOK".utf8)
        var outcomes = (parsed: 0, needMore: 0, failed: 0)
        for _ in 0..<1500 {
            let length = Int(random.next() % 48) + 1
            let restricted = random.next() % 2 == 0
            let bytes = (0..<length).map { _ -> UInt8 in
                restricted
                    ? alphabet[Int(random.next() % UInt64(alphabet.count))] : UInt8(truncatingIfNeeded: random.next())
            }
            let parser = RESPReplyParser(maxBufferedBytes: 1024)
            do {
                // Feed in two pieces at a random cut, like a socket would.
                let cut = Int(random.next() % UInt64(bytes.count + 1))
                let values = try Self.parse([bytes[..<cut], bytes[cut...]], parser: parser)
                if values.isEmpty { outcomes.needMore += 1 } else { outcomes.parsed += 1 }
            } catch {
                outcomes.failed += 1
                #expect(error.code == .protocolError, "input \(bytes)")
                #expect(throws: RedisError.self, "stays failed") { _ = try parser.next() }
            }
        }
        // The generator must exercise every outcome, or the test proves less than it claims.
        #expect(outcomes.parsed > 0)
        #expect(outcomes.needMore > 0)
        #expect(outcomes.failed > 0)
    }
}
