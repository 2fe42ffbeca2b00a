import Foundation
import JobContracts
import Testing

/// The contracts' wire format and policies; no server needed.
@Suite struct JobContractTests {
    static let id = UUID(uuidString: "0193A1B2-C3D4-7E5F-8A9B-0C1D2E3F4A5B")!
    static let lower = "0193a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b"

    /// The payloads are byte for byte what the stores and routes wrote as JSON literals before
    /// (keys sorted, ids in lowercase), so jobs already queued and workers not yet upgraded
    /// read them alike.
    @Test func payloadsKeepTheirWireFormat() throws {
        #expect(try GenerateKey(kind: .sshKey, id: Self.id).payload() == #"{"id":"\#(Self.lower)","kind":"ssh_key"}"#)
        #expect(
            try GenerateKey(kind: .secret, id: Self.id, replace: true).payload()
                == #"{"id":"\#(Self.lower)","kind":"secret","replace":true}"#)
        #expect(try RunOperation(operationID: Self.id).payload() == #"{"operation_id":"\#(Self.lower)"}"#)
        #expect(try PostStatus(operationID: Self.id).payload() == #"{"operation_id":"\#(Self.lower)"}"#)
        #expect(try PollRepo(repositoryID: Self.id).payload() == #"{"repository_id":"\#(Self.lower)"}"#)
        #expect(
            try SendMail(template: "invitation", to: "ada@example.com", data: ["role": "member", "inviter": "Bo"]).payload()
                == #"{"data":{"inviter":"Bo","role":"member"},"template":"invitation","to":"ada@example.com"}"#)
    }

    /// What older code wrote (keys in another order, ids in either case) still decodes.
    @Test func olderPayloadsDecode() throws {
        let decoder = JSONDecoder()
        let key = try decoder.decode(GenerateKey.self, from: Data(#"{"kind":"ssh_key","id":"\#(Self.id.uuidString)"}"#.utf8))
        #expect(key == GenerateKey(kind: .sshKey, id: Self.id))
        let run = try decoder.decode(RunOperation.self, from: Data(#"{"operation_id":"\#(Self.lower)"}"#.utf8))
        #expect(run.operationID == Self.id)
        let poll = try decoder.decode(PollRepo.self, from: Data(#"{"repository_id":"\#(Self.lower)"}"#.utf8))
        #expect(poll.repositoryID == Self.id)
        let status = try decoder.decode(PostStatus.self, from: Data(#"{"operation_id":"\#(Self.lower)"}"#.utf8))
        #expect(status.operationID == Self.id)
        let event =
            #"{"activity":"operation.failed","occurred_at":"2026-12-06T10:00:00Z","project_id":"\#(Self.lower)","project":"Web","job_id":"\#(Self.lower)","job":"deploy","operation_id":"\#(Self.lower)","status":"failed","exit_status":null,"failure_reason":"worker_lost","link":"https://h/x","text":"t"}"#
        let webhook = try decoder.decode(PostWebhook.self, from: Data(#"{"notifier_id":"\#(Self.lower)","event":\#(event)}"#.utf8))
        #expect(webhook.notifierID == Self.id && webhook.event.exitStatus == nil && webhook.event.operationID == Self.id)
        // Written back in lowercase, with what is not known as null.
        let encoded = String(decoding: try JSONEncoder().encode(webhook), as: UTF8.self)
        #expect(!encoded.contains(Self.id.uuidString) && encoded.contains(#""exit_status":null"#))
        #expect(throws: DecodingError.self) { try decoder.decode(RunOperation.self, from: Data(#"{"operation_id":"nope"}"#.utf8)) }
    }

    @Test func namesQueuesAndUniqueKeys() {
        #expect(
            PlatformContracts.all.map { $0.name } == [
                "send-mail", "generate-key", "run-operation", "post-status", "poll-repo", "post-webhook",
            ])
        #expect(PlatformContracts.queues == ["mail", "keys", "operations", "status", "git", "webhooks"])
        #expect(PollRepo(repositoryID: Self.id).uniqueKey == "poll-repo:\(Self.lower)")
        #expect(RunOperation(operationID: Self.id).uniqueKey == nil)
    }

    /// Every contract's policy is one a worker can honour: at least one run, a positive time
    /// limit, and a visibility timeout of at least three heartbeats (5 s each), so a running
    /// job is never taken from a live worker.
    @Test func policiesAreSound() {
        for contract in PlatformContracts.all {
            #expect(contract.retries.maxAttempts >= 1, "\(contract.name)")
            #expect(contract.timeout > .zero, "\(contract.name)")
            #expect((contract.visibilityTimeout ?? .seconds(60)) >= .seconds(15), "\(contract.name)")
        }
        #expect(SendMail.retries == Retries(maxAttempts: 10, backoff: .exponential(base: .seconds(10), maximum: .seconds(1800))))
        #expect(PostStatus.retries.maxAttempts == 20)
        #expect(RunOperation.retries.maxAttempts == 6)
    }
}

extension JobContractTests {
    @Test func contractsWithoutHandlersAreThoseOfTheQueuesReadThatNoHandlerTakes() {
        let names = { (contracts: [any JobContract.Type]) in contracts.map { $0.name } }
        #expect(
            names(
                PlatformContracts.withoutHandlers(
                    onQueues: PlatformContracts.queues, handled: ["generate-key", "send-mail", "post-status"]))
                == ["run-operation", "poll-repo", "post-webhook"])
        #expect(names(PlatformContracts.withoutHandlers(onQueues: ["mail", "default"], handled: ["noop"])) == ["send-mail"])
        #expect(names(PlatformContracts.withoutHandlers(onQueues: ["default"], handled: [])).isEmpty)
    }

    @Test func aDefaultWorkerServesTheQueuesOfTheContractsItHasHandlersFor() {
        #expect(PlatformContracts.queues(servedBy: ["generate-key", "send-mail", "post-status"]) == ["mail", "keys", "status"])
        #expect(PlatformContracts.queues(servedBy: ["generate-key", "post-status", "noop"]) == ["keys", "status"])
        #expect(PlatformContracts.queues(servedBy: []).isEmpty)
    }
}
