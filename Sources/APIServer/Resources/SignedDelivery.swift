import Crypto
import Foundation
import HTTPTypes
import NIOCore

/// A request to `POST /hooks/{slug}` as its signature headers present it, in one of two
/// formats:
///
/// - Harrow's: `X-Harrow-Signature: sha256=<hex HMAC-SHA256 of "<timestamp>.<body>">`,
///   `X-Harrow-Timestamp: <unix seconds>`, `X-Harrow-Delivery: <id>`. The timestamp is signed,
///   so a captured request is good for minutes, not forever.
/// - GitHub's: `X-Hub-Signature-256: sha256=<hex HMAC-SHA256 of the body>`, `X-GitHub-Event`,
///   `X-GitHub-Delivery`. GitHub signs no time; its delivery ids are what stop a replay.
///
/// Harrow's signature wins when a request has both.
struct SignedDelivery: Sendable {
    enum Format: Sendable, Hashable {
        /// Harrow's, with the timestamp's text as sent (it is what was signed).
        case harrow(timestamp: String)
        /// GitHub's, with the event's name (`push`, `ping`, …).
        case gitHub(event: String)
    }

    static let signatureHeader = HTTPField.Name("X-Harrow-Signature")!
    static let timestampHeader = HTTPField.Name("X-Harrow-Timestamp")!
    static let deliveryHeader = HTTPField.Name("X-Harrow-Delivery")!
    static let gitHubSignatureHeader = HTTPField.Name("X-Hub-Signature-256")!
    static let gitHubEventHeader = HTTPField.Name("X-GitHub-Event")!
    static let gitHubDeliveryHeader = HTTPField.Name("X-GitHub-Delivery")!

    /// Longest delivery id taken, in bytes: GitHub's are UUIDs.
    static let longestDeliveryID = 200

    let format: Format
    /// The MAC the sender claims.
    let mac: [UInt8]
    /// The sender's id of this delivery, the same on each of its retries; `nil` when missing.
    let deliveryID: String?
    let body: ByteBuffer

    /// The request's signature, or `nil` when it has none in either format (or the headers are
    /// not well formed, which is the same thing to the sender: 401).
    init?(headers: HTTPFields, body: ByteBuffer) {
        if let signature = headers[Self.signatureHeader] {
            guard let mac = Self.hexBytes(signature, prefix: "sha256="), let timestamp = headers[Self.timestampHeader],
                (1...12).contains(timestamp.utf8.count), timestamp.utf8.allSatisfy({ (UInt8(ascii: "0")...UInt8(ascii: "9")).contains($0) })
            else { return nil }
            format = .harrow(timestamp: timestamp)
            self.mac = mac
            deliveryID = headers[Self.deliveryHeader]
        } else if let signature = headers[Self.gitHubSignatureHeader] {
            guard let mac = Self.hexBytes(signature, prefix: "sha256=") else { return nil }
            format = .gitHub(event: headers[Self.gitHubEventHeader] ?? "")
            self.mac = mac
            deliveryID = headers[Self.gitHubDeliveryHeader]
        } else {
            return nil
        }
        self.body = body
    }

    /// Whether the MAC is the HMAC-SHA256 of what this format signs, under `secret` (its UTF-8
    /// bytes, as git hosts use a pasted secret). The comparison takes constant time.
    func isSigned(by secret: String) -> Bool {
        var signed: [UInt8] = []
        if case .harrow(let timestamp) = format {
            signed.append(contentsOf: timestamp.utf8)
            signed.append(UInt8(ascii: "."))
        }
        signed.append(contentsOf: body.readableBytesView)
        return HMAC<SHA256>.isValidAuthenticationCode(mac, authenticating: signed, using: SymmetricKey(data: Array(secret.utf8)))
    }

    /// Seconds between Harrow's signed timestamp and `now` (positive: signed in the past); `nil`
    /// for GitHub's format, which has none.
    func age(now: Date) -> Int? {
        guard case .harrow(let timestamp) = format, let seconds = Int(timestamp) else { return nil }
        return Int(now.timeIntervalSince1970) - seconds
    }

    /// The header a sender names its delivery in.
    var deliveryHeaderName: String {
        switch format {
        case .harrow: "X-Harrow-Delivery"
        case .gitHub: "X-GitHub-Delivery"
        }
    }

    static func hexBytes(_ text: String, prefix: String) -> [UInt8]? {
        guard text.hasPrefix(prefix) else { return nil }
        let hex = Array(text.dropFirst(prefix.count).utf8)
        guard hex.count == 64 else { return nil }
        var bytes: [UInt8] = []
        bytes.reserveCapacity(32)
        var index = 0
        while index < hex.count {
            guard let high = Self.nibble(hex[index]), let low = Self.nibble(hex[index + 1]) else { return nil }
            bytes.append(high << 4 | low)
            index += 2
        }
        return bytes
    }

    private static func nibble(_ character: UInt8) -> UInt8? {
        switch character {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): character - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): character - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): character - UInt8(ascii: "A") + 10
        default: nil
        }
    }
}
