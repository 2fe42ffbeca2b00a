import CGit2

/// Owns one `git_repository` handle and frees it. Used only on the git thread that opened it
/// (libgit2 objects must not be shared between threads), hence not Sendable.
final class GitRepository {
    let pointer: OpaquePointer
    let path: String

    private init(pointer: OpaquePointer, path: String) {
        self.pointer = pointer
        self.path = path
    }

    deinit {
        git_repository_free(pointer)
    }

    /// Opens the bare repository at exactly `path` (no search upwards), or nil when there is none.
    static func openBare(_ path: String) -> GitRepository? {
        var repository: OpaquePointer?
        guard git_repository_open_bare(&repository, path) == 0, let repository else { return nil }
        return GitRepository(pointer: repository, path: path)
    }

    static func initBare(_ path: String) throws -> GitRepository {
        var repository: OpaquePointer?
        let code = git_repository_init(&repository, path, 1)
        guard code == 0, let repository else {
            throw GitError(.other, "cannot create the mirror \(path): \(LibGit2.lastError().message)")
        }
        return GitRepository(pointer: repository, path: path)
    }

    static func adopt(_ pointer: OpaquePointer, path: String) -> GitRepository {
        GitRepository(pointer: pointer, path: path)
    }
}
