import CGit2
import Store
import Synchronization

/// What libgit2's callbacks need during one checkout or ref listing: the credentials, the host key
/// verifier, the cancellation flag, and the failure a callback decided on (libgit2 only passes on
/// a return code, so the reason is kept here and preferred over libgit2's generic message).
///
/// Sendable without `@unchecked`: every stored property is immutable and Sendable, and the mutable
/// parts live in an `Atomic` and a `Mutex`. The cancellation handler sets the flag from another
/// thread while the git thread reads it.
final class RemoteSession: Sendable {
    let url: GitRemoteURL
    let credentials: GitCredentials
    let hostKeyVerifier: HostKeyVerifier
    private let cancelled = Atomic<Bool>(false)
    private let state = Mutex(State())

    private struct State {
        /// Credentials handed out that a server could refuse; a second request means it refused them.
        var secretsOffered = 0
        var failure: GitError?
    }

    init(url: GitRemoteURL, credentials: GitCredentials, hostKeyVerifier: @escaping HostKeyVerifier) {
        self.url = url
        self.credentials = credentials
        self.hostKeyVerifier = hostKeyVerifier
    }

    func cancel() {
        cancelled.store(true, ordering: .relaxed)
    }

    var isCancelled: Bool { cancelled.load(ordering: .relaxed) }

    /// The error to report for a libgit2 call that failed with `code`: cancellation first, then what
    /// a callback recorded, then libgit2's own error.
    func failure(_ code: Int32, _ action: String) -> any Error {
        if isCancelled { return CancellationError() }
        if let recorded = state.withLock({ $0.failure }) { return recorded }
        return LibGit2.error(code, action, url: url.string)
    }

    /// Throws if the operation was cancelled; called between blocking steps.
    func checkCancellation() throws {
        if isCancelled { throw CancellationError() }
    }

    /// Callbacks for `git_remote_connect` and fetches, with `payload` pointing at this session. The
    /// caller keeps the session alive (``withCallbacks(_:)``) while libgit2 may call them.
    func withCallbacks<Result>(_ body: (inout git_remote_callbacks) throws -> Result) rethrows -> Result {
        try withExtendedLifetime(self) {
            var callbacks = git_remote_callbacks()
            git_remote_init_callbacks(&callbacks, UInt32(GIT_REMOTE_CALLBACKS_VERSION))
            callbacks.payload = Unmanaged.passUnretained(self).toOpaque()
            callbacks.credentials = { out, _, usernameFromURL, allowedTypes, payload in
                guard let out, let payload else { return GIT_EUSER.rawValue }
                let session = Unmanaged<RemoteSession>.fromOpaque(payload).takeUnretainedValue()
                return session.acquireCredential(
                    out,
                    usernameFromURL: usernameFromURL.map { String(cString: $0) },
                    allowedTypes: allowedTypes
                )
            }
            callbacks.certificate_check = { cert, _, _, payload in
                guard let payload else { return GIT_EUSER.rawValue }
                let session = Unmanaged<RemoteSession>.fromOpaque(payload).takeUnretainedValue()
                return session.checkCertificate(cert)
            }
            // Called for every chunk of a download, so a cancelled task stops the transfer promptly.
            callbacks.transfer_progress = { _, payload in
                guard let payload else { return 0 }
                return Unmanaged<RemoteSession>.fromOpaque(payload).takeUnretainedValue().progressVerdict()
            }
            callbacks.sideband_progress = { _, _, payload in
                guard let payload else { return 0 }
                return Unmanaged<RemoteSession>.fromOpaque(payload).takeUnretainedValue().progressVerdict()
            }
            return try body(&callbacks)
        }
    }

    private func progressVerdict() -> Int32 {
        isCancelled ? GIT_EUSER.rawValue : 0
    }

    private func record(_ error: GitError) -> Int32 {
        state.withLock { state in
            if state.failure == nil { state.failure = error }
        }
        git_error_set_str(Int32(GIT_ERROR_CALLBACK.rawValue), error.message)
        return GIT_EUSER.rawValue
    }

    private func acquireCredential(
        _ out: UnsafeMutablePointer<UnsafeMutablePointer<git_credential>?>,
        usernameFromURL: String?,
        allowedTypes: UInt32
    ) -> Int32 {
        if isCancelled { return GIT_EUSER.rawValue }
        let endpoint = "\(url.host):\(url.effectivePort)"
        func allows(_ type: git_credential_t) -> Bool { allowedTypes & type.rawValue != 0 }
        // libgit2 asks again after the server refused what it got; giving up on that second request
        // is what stops the loop.
        func mayOfferSecret() -> Bool {
            state.withLock { state in
                guard state.secretsOffered == 0 else { return false }
                state.secretsOffered += 1
                return true
            }
        }

        switch credentials {
        case .anonymous:
            return record(
                GitError(.authenticationFailed, "authentication failed for \(url): the server requires credentials and none are configured")
            )
        case .token(let token, let username):
            guard allows(GIT_CREDENTIAL_USERPASS_PLAINTEXT) else {
                return record(
                    GitError(
                        .authenticationFailed,
                        "authentication failed for \(url): the server does not accept a token (user name and password)"))
            }
            guard mayOfferSecret() else {
                return record(
                    GitError(.authenticationFailed, "authentication failed for \(url): the server refused the token for user '\(username)'")
                )
            }
            return git_credential_userpass_plaintext_new(out, username, token)
        case .sshKey(let privateKey, let publicKey, let passphrase):
            let user = usernameFromURL ?? url.user ?? "git"
            if allows(GIT_CREDENTIAL_USERNAME) && !allows(GIT_CREDENTIAL_SSH_MEMORY) {
                return git_credential_username_new(out, user)
            }
            guard allows(GIT_CREDENTIAL_SSH_MEMORY) else {
                return record(
                    GitError(
                        .authenticationFailed,
                        "authentication failed for \(user)@\(endpoint): the server does not accept public-key authentication"))
            }
            guard mayOfferSecret() else {
                return record(
                    GitError(.authenticationFailed, "authentication failed for \(user)@\(endpoint): the server refused the SSH key"))
            }
            let code = git_credential_ssh_key_memory_new(out, user, publicKey, privateKey, passphrase)
            if code < 0 {
                return record(
                    GitError(
                        .authenticationFailed,
                        "authentication failed for \(user)@\(endpoint): unusable SSH key: \(LibGit2.lastError().message)"))
            }
            return code
        }
    }

    private func checkCertificate(_ cert: UnsafeMutablePointer<git_cert>?) -> Int32 {
        if isCancelled { return GIT_EUSER.rawValue }
        guard let cert else {
            return record(GitError(.hostKeyRejected, "\(url.host) presented no certificate or host key"))
        }
        guard cert.pointee.cert_type == GIT_CERT_HOSTKEY_LIBSSH2 else {
            // TLS: libgit2's backend already verified the chain against the system CAs; passing
            // through keeps its verdict (an invalid certificate fails the connection).
            return GIT_PASSTHROUGH.rawValue
        }
        let presented: (type: String, key: [UInt8])? = UnsafeMutableRawPointer(cert).withMemoryRebound(
            to: git_cert_hostkey.self,
            capacity: 1
        ) { hostKey in
            let fields = hostKey.pointee
            guard fields.type.rawValue & GIT_CERT_SSH_RAW.rawValue != 0, let raw = fields.hostkey, fields.hostkey_len > 0
            else { return nil }
            let key = [UInt8](UnsafeRawBufferPointer(start: raw, count: fields.hostkey_len))
            return (SSHWire.firstString(in: key) ?? Self.keyTypeName(fields.raw_type), key)
        }
        let endpoint = "\(url.host):\(url.effectivePort)"
        guard let presented else {
            return record(
                GitError(.hostKeyRejected, "host key of \(endpoint) rejected: the SSH library did not provide the raw key to verify"))
        }
        switch hostKeyVerifier(url.host, url.effectivePort, presented.type, presented.key) {
        case .trusted:
            return 0
        case .rejected(let reason):
            let fingerprint = KnownHosts.fingerprint(of: presented.key)
            return record(GitError(.hostKeyRejected, "host key of \(endpoint) rejected (\(presented.type) \(fingerprint)): \(reason)"))
        }
    }

    private static func keyTypeName(_ type: git_cert_ssh_raw_type_t) -> String {
        switch type {
        case GIT_CERT_SSH_RAW_TYPE_RSA: "ssh-rsa"
        case GIT_CERT_SSH_RAW_TYPE_DSS: "ssh-dss"
        case GIT_CERT_SSH_RAW_TYPE_KEY_ECDSA_256: "ecdsa-sha2-nistp256"
        case GIT_CERT_SSH_RAW_TYPE_KEY_ECDSA_384: "ecdsa-sha2-nistp384"
        case GIT_CERT_SSH_RAW_TYPE_KEY_ECDSA_521: "ecdsa-sha2-nistp521"
        case GIT_CERT_SSH_RAW_TYPE_KEY_ED25519: "ssh-ed25519"
        default: "unknown"
        }
    }
}
