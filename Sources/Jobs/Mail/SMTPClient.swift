import NIOPosix

/// Sends ``MailMessage``s to one SMTP server with libcurl.
///
/// Each ``send(_:envelopeFrom:recipients:)`` opens its own connection and runs libcurl's
/// blocking transfer on a `NIOThreadPool` thread, never on the Swift concurrency pool. The value
/// holds only configuration, so it is `Sendable` and cheap to copy; concurrent sends are limited
/// by the thread pool's size.
public struct SMTPClient: Sendable {
    /// The server and credentials this client sends with.
    public let configuration: SMTPConfiguration
    private let threadPool: NIOThreadPool

    /// Makes a client.
    ///
    /// - Parameters:
    ///   - threadPool: where the blocking libcurl calls run; by default NIO's shared pool. Give a
    ///     dedicated pool to keep slow mail servers from delaying other blocking work.
    public init(configuration: SMTPConfiguration, threadPool: NIOThreadPool = .singleton) {
        self.configuration = configuration
        self.threadPool = threadPool
    }

    /// Delivers `message` to `recipients` in one SMTP transaction.
    ///
    /// The envelope is independent of the headers: `recipients` is every address that gets the
    /// message (To, Cc and Bcc alike), `envelopeFrom` receives bounces.
    ///
    /// Cancelling the task abandons the transfer within about a second (libcurl's progress
    /// callback aborts it) and throws `CancellationError`; the server may or may not have taken
    /// the message by then.
    ///
    /// - Throws: ``SMTPError``; see ``SMTPError/isPermanent`` for whether to retry. A message
    ///   that cannot be rendered or an empty `recipients` is ``SMTPError/Kind/invalidMessage``.
    ///   `CancellationError` when cancelled; NIO's error if the thread pool has been shut down.
    public func send(_ message: MailMessage, envelopeFrom: MailAddress, recipients: [MailAddress]) async throws {
        if recipients.isEmpty {
            throw SMTPError(kind: .invalidMessage, detail: "no envelope recipients")
        }
        let payload: [UInt8]
        do throws(MailFormatError) {
            payload = try message.render()
        } catch {
            throw SMTPError(kind: .invalidMessage, detail: error.description)
        }
        let request = CurlSMTPTransfer.Request(
            url: configuration.url,
            username: configuration.username,
            password: configuration.password,
            timeoutMilliseconds: Self.milliseconds(configuration.timeout),
            envelopeFrom: envelopeFrom.address,
            recipients: recipients.map(\.address),
            payload: payload
        )
        let cancellation = CurlSMTPTransfer.CancellationFlag()
        try await withTaskCancellationHandler {
            // runIfActive itself throws CancellationError if cancelled before a thread picks it up.
            try await threadPool.runIfActive {
                try CurlSMTPTransfer.perform(request, cancellation: cancellation)
            }
        } onCancel: {
            cancellation.cancel()
        }
    }

    /// Whole milliseconds, at least 1 (libcurl reads 0 as "no timeout").
    static func milliseconds(_ duration: Duration) -> Int {
        let (seconds, attoseconds) = duration.components
        let total = seconds.multipliedReportingOverflow(by: 1000)
        if total.overflow { return Int.max }
        let milliseconds = total.partialValue.addingReportingOverflow(attoseconds / 1_000_000_000_000_000)
        return milliseconds.overflow ? Int.max : max(1, Int(clamping: milliseconds.partialValue))
    }
}

extension SMTPClient {
    /// Threads of mail's own for the blocking transfers, started on first use and kept for the
    /// process's life: a slow mail server then holds up mail only, not key generation or other
    /// work on NIO's shared pool (one thread per core).
    public static let mailThreadPool: NIOThreadPool = {
        let pool = NIOThreadPool(numberOfThreads: 8)
        pool.start()
        return pool
    }()
}
