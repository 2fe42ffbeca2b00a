import CCurl
import Testing

@testable import Jobs

@Suite("SMTP error classification and configuration")
struct SMTPErrorTests {
    @Test(
        "libcurl result and last reply code map to a kind",
        arguments: [
            // Refused MAIL FROM / RCPT TO / DATA: CURLE_SEND_ERROR with the reply code.
            (CURLE_SEND_ERROR, 550, SMTPError.Kind.rejected),
            (CURLE_SEND_ERROR, 553, .rejected),
            (CURLE_SEND_ERROR, 451, .deferred),
            (CURLE_SEND_ERROR, 452, .deferred),
            // Refused end of data and refused greeting: CURLE_WEIRD_SERVER_REPLY.
            (CURLE_WEIRD_SERVER_REPLY, 554, .rejected),
            (CURLE_WEIRD_SERVER_REPLY, 421, .deferred),
            // Refused EHLO/HELO.
            (CURLE_REMOTE_ACCESS_DENIED, 550, .rejected),
            // AUTH: 535 bad credentials, 454 temporary failure.
            (CURLE_LOGIN_DENIED, 535, .authenticationFailed),
            (CURLE_LOGIN_DENIED, 454, .deferred),
            (CURLE_RECV_ERROR, 554, .rejected),
            // No negative reply: the libcurl code decides.
            (CURLE_COULDNT_CONNECT, 0, .connectionFailed),
            (CURLE_COULDNT_RESOLVE_HOST, 0, .connectionFailed),
            (CURLE_OPERATION_TIMEDOUT, 0, .timedOut),
            (CURLE_OPERATION_TIMEDOUT, 250, .timedOut),
            (CURLE_SEND_ERROR, 250, .transport),
            (CURLE_RECV_ERROR, 0, .transport),
            (CURLE_GOT_NOTHING, 0, .transport),
            (CURLE_WEIRD_SERVER_REPLY, 0, .transport),
            (CURLE_LOGIN_DENIED, 0, .authenticationFailed),
            (CURLE_PEER_FAILED_VERIFICATION, 0, .tls),
            (CURLE_SSL_CONNECT_ERROR, 0, .tls),
            (CURLE_UNSUPPORTED_PROTOCOL, 0, .invalidConfiguration),
        ])
    func classify(curlCode: CURLcode, replyCode: Int, kind: SMTPError.Kind) {
        #expect(CurlSMTPTransfer.classify(curlCode: curlCode, replyCode: replyCode == 0 ? nil : replyCode) == kind)
    }

    @Test("permanent: rejected or an invalid message; credentials and configuration are for an operator to fix")
    func permanence() {
        let permanent: Set<SMTPError.Kind> = [.rejected, .invalidMessage]
        for kind in [
            SMTPError.Kind.rejected, .deferred, .authenticationFailed, .invalidMessage, .invalidConfiguration,
            .connectionFailed, .timedOut, .tls, .transport,
        ] {
            #expect(SMTPError(kind: kind, detail: "").isPermanent == permanent.contains(kind), "\(kind)")
        }
    }

    @Test("the description carries the reply code and the server's text")
    func description() {
        let error = SMTPError(
            kind: .rejected, replyCode: 550, serverReply: "550 5.1.1 <x@example.com>: no such user", curlCode: 55,
            detail: "RCPT failed: 550")
        #expect(
            error.description
                == "SMTP rejected (permanent): server said \"550 5.1.1 <x@example.com>: no such user\": RCPT failed: 550 [curl 55]")
    }

    @Test("reply log keeps whole replies, multi-line ones joined, and is bounded")
    func replyLog() {
        var log = CurlSMTPTransfer.ReplyLog()
        for line in ["220 smtp ready\r\n", "250-smtp.example\r\n", "250-SIZE 1000\r\n", "250 HELP\r\n", "550 5.1.1 no\u{1B}[31m\r\n"] {
            Array(line.utf8).withUnsafeBytes { log.receive($0) }
        }
        #expect(log.lastReply(withCode: 250) == "250-smtp.example 250-SIZE 1000 250 HELP")
        #expect(log.lastReply(withCode: 550) == "550 5.1.1 no [31m")
        #expect(log.lastReply(withCode: 451) == nil)
        for _ in 0..<100 { Array("250 OK\r\n".utf8).withUnsafeBytes { log.receive($0) } }
        #expect(log.replies.count == CurlSMTPTransfer.ReplyLog.maxReplies)
    }

    @Test(
        "configuration accepts smtp and smtps URLs",
        arguments: [
            "smtp://127.0.0.1:2525", "smtps://mail.example.com", "SMTP://mail.example.com:587/app.example.com",
        ])
    func validURL(_ url: String) throws {
        #expect(try SMTPConfiguration(url: url).url == url)
    }

    @Test(
        "configuration refuses other URLs",
        arguments: [
            "http://mail.example.com", "mail.example.com:25", "smtp://", "smtp://user:pw@mail.example.com",
            "smtp://mail.example.com?x=1", "smtp://mail.example.com\r\n", "smtp://mail example.com", "",
        ])
    func invalidURL(_ url: String) {
        #expect {
            try SMTPConfiguration(url: url)
        } throws: { error in
            (error as? SMTPError)?.kind == .invalidConfiguration && !"\(error)".contains("pw@")
        }
    }

    @Test("configuration refuses a zero timeout and control characters in credentials")
    func invalidOptions() {
        #expect(throws: SMTPError.self) { try SMTPConfiguration(url: "smtp://h", timeout: .zero) }
        #expect(throws: SMTPError.self) { try SMTPConfiguration(url: "smtp://h", username: "a\r\nRSET", password: "p") }
        #expect(throws: SMTPError.self) { try SMTPConfiguration(url: "smtp://h", username: "a", password: "p\n") }
    }

    @Test("the password stays out of the description")
    func redaction() throws {
        let configuration = try SMTPConfiguration(url: "smtp://h:25", username: "mailer", password: "hunter2")
        #expect(!configuration.description.contains("hunter2"))
        #expect(configuration.description.contains("mailer"))
    }

    @Test("timeouts become whole milliseconds, at least one")
    func milliseconds() {
        #expect(SMTPClient.milliseconds(.seconds(30)) == 30_000)
        #expect(SMTPClient.milliseconds(.milliseconds(1500)) == 1500)
        #expect(SMTPClient.milliseconds(.nanoseconds(1)) == 1)
        #expect(SMTPClient.milliseconds(.seconds(Int64.max)) == Int.max)
    }
}
