import CCurl
import CCurlShims
import Foundation
import Synchronization

/// One SMTP delivery through a libcurl easy handle: connect, EHLO/STARTTLS/AUTH, MAIL FROM,
/// RCPT TO, DATA with the message bytes, QUIT.
///
/// `perform` blocks its thread for the whole exchange; ``SMTPClient`` runs it on a
/// `NIOThreadPool`. Every C resource (handle, recipient list, error buffer) and the callback
/// context are made, used and freed within that one call on that one thread, so nothing C-side
/// is ever shared and no type here needs to be Sendable except the request and the flag.
enum CurlSMTPTransfer {
    /// Everything one delivery needs, as plain values that can cross to the thread pool.
    struct Request: Sendable {
        var url: String
        var username: String?
        var password: String?
        var timeoutMilliseconds: Int
        /// Envelope sender and recipients, bare addresses (validated by ``MailAddress``).
        var envelopeFrom: String
        var recipients: [String]
        /// The rendered message, CRLF line endings, not dot-stuffed.
        var payload: [UInt8]

        /// Whether the URL's host is this machine, where no one is in the middle.
        var isLoopback: Bool {
            guard let host = URLComponents(string: url)?.host?.lowercased() else { return false }
            return host == "localhost" || host == "::1" || host == "[::1]" || host.hasPrefix("127.")
        }
    }

    /// Set from `onCancel` on any thread, read by libcurl's progress callback on the pool thread.
    final class CancellationFlag: Sendable {
        private let cancelled = Atomic<Bool>(false)
        func cancel() { cancelled.store(true, ordering: .relaxed) }
        var isCancelled: Bool { cancelled.load(ordering: .relaxed) }
    }

    /// `curl_global_init` must run once before any other libcurl call and, in libcurl before
    /// 7.84, not concurrently with other libcurl use. A global `let` is initialised lazily and
    /// exactly once, thread-safely (swift_once), on first use.
    static let globalInitResult: CURLcode = curl_global_init(Int(CURL_GLOBAL_ALL))

    /// Delivers `request`, blocking until done.
    ///
    /// - Throws: ``SMTPError`` classified by ``classify(curlCode:replyCode:)``, or
    ///   `CancellationError` if `cancellation` was set during the transfer.
    static func perform(_ request: Request, cancellation: CancellationFlag) throws {
        guard globalInitResult == CURLE_OK else {
            throw SMTPError(
                kind: .invalidConfiguration, curlCode: Int(globalInitResult.rawValue),
                detail: "curl_global_init failed: \(String(cString: curl_easy_strerror(globalInitResult)))")
        }
        guard let handle = curl_easy_init() else {
            throw SMTPError(kind: .transport, detail: "curl_easy_init failed")
        }
        let context = Context(payload: request.payload, cancellation: cancellation)
        let errorBuffer = UnsafeMutablePointer<CChar>.allocate(capacity: Int(CURL_ERROR_SIZE))
        errorBuffer.initialize(repeating: 0, count: Int(CURL_ERROR_SIZE))
        var recipientList: UnsafeMutablePointer<curl_slist>?
        defer {
            // Cleanup may still talk to the server (QUIT) and call the header callback, so the
            // context, list and buffer are freed only after it.
            curl_easy_cleanup(handle)
            curl_slist_free_all(recipientList)
            errorBuffer.deallocate()
            withExtendedLifetime(context) {}
        }

        for recipient in request.recipients {
            guard let appended = curl_slist_append(recipientList, "<\(recipient)>") else {
                throw SMTPError(kind: .transport, detail: "out of memory building the recipient list")
            }
            recipientList = appended
        }

        var setupFailure: CURLcode = CURLE_OK
        func check(_ code: CURLcode) {
            if setupFailure == CURLE_OK && code != CURLE_OK { setupFailure = code }
        }
        let opaqueContext = Unmanaged.passUnretained(context).toOpaque()

        check(ccurl_easy_setopt_pointer(handle, CURLOPT_ERRORBUFFER, errorBuffer))
        check(ccurl_easy_setopt_string(handle, CURLOPT_URL, request.url))
        // Only SMTP: a URL can never make this handle speak another protocol.
        check(ccurl_easy_setopt_string(handle, CURLOPT_PROTOCOLS_STR, "smtp,smtps"))
        // smtps:// is TLS from the start. On smtp://, STARTTLS is required when credentials go to
        // another machine (else a man in the middle could strip STARTTLS from the EHLO reply and
        // read the password), and used when offered otherwise.
        let requireTLS = (request.username != nil || request.password != nil) && !request.isLoopback
        check(ccurl_easy_setopt_long(handle, CURLOPT_USE_SSL, Int((requireTLS ? CURLUSESSL_ALL : CURLUSESSL_TRY).rawValue)))
        // Signals (SIGALRM for DNS timeouts) are process-wide and unsafe on a thread pool.
        check(ccurl_easy_setopt_long(handle, CURLOPT_NOSIGNAL, 1))
        check(ccurl_easy_setopt_long(handle, CURLOPT_TIMEOUT_MS, request.timeoutMilliseconds))
        check(ccurl_easy_setopt_long(handle, CURLOPT_CONNECTTIMEOUT_MS, request.timeoutMilliseconds))
        if let username = request.username {
            check(ccurl_easy_setopt_string(handle, CURLOPT_USERNAME, username))
        }
        if let password = request.password {
            check(ccurl_easy_setopt_string(handle, CURLOPT_PASSWORD, password))
        }

        check(ccurl_easy_setopt_string(handle, CURLOPT_MAIL_FROM, "<\(request.envelopeFrom)>"))
        check(ccurl_easy_setopt_slist(handle, CURLOPT_MAIL_RCPT, recipientList))

        check(ccurl_easy_setopt_long(handle, CURLOPT_UPLOAD, 1))
        // Lets libcurl announce SIZE= when the server supports it, so an oversized message is
        // refused at MAIL FROM instead of after the upload.
        check(ccurl_easy_setopt_off_t(handle, CURLOPT_INFILESIZE_LARGE, curl_off_t(request.payload.count)))
        check(
            ccurl_easy_setopt_read_callback(handle, CURLOPT_READFUNCTION) { buffer, size, count, userdata in
                guard let buffer, let userdata else { return Int(CURL_READFUNC_ABORT) }
                let context = Unmanaged<Context>.fromOpaque(userdata).takeUnretainedValue()
                return context.read(into: UnsafeMutableRawPointer(buffer), capacity: size * count)
            })
        check(ccurl_easy_setopt_pointer(handle, CURLOPT_READDATA, opaqueContext))

        // libcurl hands every SMTP reply line to the header callback (pingpong.c); keeping them
        // gives the server's own words for the error, without verbose mode.
        check(
            ccurl_easy_setopt_write_callback(handle, CURLOPT_HEADERFUNCTION) { buffer, size, count, userdata in
                guard let userdata else { return 0 }
                let length = size * count
                if let buffer {
                    let context = Unmanaged<Context>.fromOpaque(userdata).takeUnretainedValue()
                    context.replies.receive(UnsafeRawBufferPointer(start: buffer, count: length))
                }
                return length
            })
        check(ccurl_easy_setopt_pointer(handle, CURLOPT_HEADERDATA, opaqueContext))

        // The progress callback runs at least about once a second, even while waiting on the
        // network; returning non-zero aborts, which is how task cancellation reaches libcurl.
        check(ccurl_easy_setopt_long(handle, CURLOPT_NOPROGRESS, 0))
        check(
            ccurl_easy_setopt_xferinfo_callback(handle, CURLOPT_XFERINFOFUNCTION) { userdata, _, _, _, _ in
                guard let userdata else { return 0 }
                return Unmanaged<Context>.fromOpaque(userdata).takeUnretainedValue().cancellation.isCancelled ? 1 : 0
            })
        check(ccurl_easy_setopt_pointer(handle, CURLOPT_XFERINFODATA, opaqueContext))

        guard setupFailure == CURLE_OK else {
            throw SMTPError(
                kind: .invalidConfiguration, curlCode: Int(setupFailure.rawValue),
                detail: "setting libcurl options failed: \(String(cString: curl_easy_strerror(setupFailure)))")
        }

        let result = curl_easy_perform(handle)
        if result == CURLE_OK { return }
        if result == CURLE_ABORTED_BY_CALLBACK && cancellation.isCancelled { throw CancellationError() }

        var responseCode = 0
        _ = ccurl_easy_getinfo_long(handle, CURLINFO_RESPONSE_CODE, &responseCode)
        let replyCode = responseCode > 0 ? responseCode : nil
        let bufferMessage = String(cString: errorBuffer)
        throw SMTPError(
            kind: classify(curlCode: result, replyCode: replyCode),
            replyCode: replyCode,
            serverReply: replyCode.flatMap { context.replies.lastReply(withCode: $0) },
            curlCode: Int(result.rawValue),
            detail: bufferMessage.isEmpty ? String(cString: curl_easy_strerror(result)) : bufferMessage
        )
    }

    /// Classifies a failed transfer.
    ///
    /// A 4xx or 5xx reply decides on its own: libcurl reports a refused MAIL FROM, RCPT TO or DATA
    /// as `CURLE_SEND_ERROR` ("MAIL/RCPT/DATA failed: <code>"), a refused end of data as
    /// `CURLE_WEIRD_SERVER_REPLY`, a refused greeting as `CURLE_WEIRD_SERVER_REPLY`, a refused
    /// EHLO/HELO as `CURLE_REMOTE_ACCESS_DENIED` and refused AUTH as `CURLE_LOGIN_DENIED`; after
    /// any of them the last reply code is that negative reply (QUIT's reply is not recorded).
    /// Without such a reply the libcurl code decides.
    static func classify(curlCode: CURLcode, replyCode: Int?) -> SMTPError.Kind {
        switch replyCode {
        case .some(500...599):
            return curlCode == CURLE_LOGIN_DENIED ? .authenticationFailed : .rejected
        case .some(400...499):
            return .deferred
        default:
            break
        }
        switch curlCode {
        case CURLE_LOGIN_DENIED:
            return .authenticationFailed
        case CURLE_COULDNT_RESOLVE_HOST, CURLE_COULDNT_RESOLVE_PROXY, CURLE_COULDNT_CONNECT:
            return .connectionFailed
        case CURLE_OPERATION_TIMEDOUT:
            return .timedOut
        case CURLE_SSL_CONNECT_ERROR, CURLE_PEER_FAILED_VERIFICATION, CURLE_SSL_CERTPROBLEM, CURLE_SSL_CIPHER,
            CURLE_SSL_CACERT_BADFILE, CURLE_SSL_ISSUER_ERROR, CURLE_SSL_PINNEDPUBKEYNOTMATCH, CURLE_USE_SSL_FAILED:
            return .tls
        case CURLE_UNSUPPORTED_PROTOCOL, CURLE_URL_MALFORMAT, CURLE_NOT_BUILT_IN, CURLE_BAD_FUNCTION_ARGUMENT,
            CURLE_UNKNOWN_OPTION:
            return .invalidConfiguration
        default:
            // Unknown trouble is retried: a bounded number of retries costs little, a message
            // wrongly dead-lettered needs a person to notice.
            return .transport
        }
    }

    /// The callbacks' state. Used only on the thread running `perform`.
    final class Context {
        private let payload: [UInt8]
        private var offset = 0
        var replies = ReplyLog()
        let cancellation: CancellationFlag

        init(payload: [UInt8], cancellation: CancellationFlag) {
            self.payload = payload
            self.cancellation = cancellation
        }

        /// Copies the next bytes of the message; 0 tells libcurl the message is complete.
        func read(into buffer: UnsafeMutableRawPointer, capacity: Int) -> Int {
            let count = min(capacity, payload.count - offset)
            guard count > 0 else { return 0 }
            payload.withUnsafeBytes { bytes in
                buffer.copyMemory(from: bytes.baseAddress! + offset, byteCount: count)
            }
            offset += count
            return count
        }
    }

    /// The server's recent replies, rebuilt from the reply lines libcurl passes to the header
    /// callback. Bounded, since a hostile server could send without end.
    struct ReplyLog {
        private var partialLine: [UInt8] = []
        private var pendingLines: [String] = []
        private(set) var replies: [(code: Int, text: String)] = []
        static let maxReplies = 8
        static let maxLineLength = 512

        /// Takes bytes as they come; lines may arrive whole (as from libcurl) or in pieces.
        mutating func receive(_ bytes: UnsafeRawBufferPointer) {
            for byte in bytes {
                if byte == 0x0A {
                    finishLine()
                } else if partialLine.count < Self.maxLineLength {
                    partialLine.append(byte)
                }
            }
        }

        /// The last complete reply with this code, its lines joined by spaces.
        func lastReply(withCode code: Int) -> String? {
            replies.last(where: { $0.code == code })?.text
        }

        private mutating func finishLine() {
            defer { partialLine.removeAll(keepingCapacity: true) }
            // Control characters from the server must not reach logs or dead letters raw.
            let line = String(decoding: partialLine, as: UTF8.self)
                .unicodeScalars.map { MIMEEncoding.isControl($0) ? " " : String($0) }.joined()
                .trimmingTrailingSpaces()
            let digits = line.prefix(3)
            guard digits.count == 3, digits.allSatisfy(\.isASCII), let code = Int(digits) else { return }
            pendingLines.append(line)
            // "250-…" continues a multi-line reply; "250 …" or a bare "250" ends it (RFC 5321 §4.2.1).
            if line.count == 3 || line.dropFirst(3).first == " " {
                replies.append((code, pendingLines.joined(separator: " ")))
                pendingLines.removeAll()
                if replies.count > Self.maxReplies { replies.removeFirst() }
            } else if pendingLines.count > 64 {
                pendingLines.removeFirst()
            }
        }
    }
}

extension String {
    fileprivate func trimmingTrailingSpaces() -> String {
        var view = Substring(self)
        while view.last == " " { view = view.dropLast() }
        return String(view)
    }
}
