import CGit2
import Foundation

/// Turns what an operation asked for (branch, tag, sha, `refs/…` or nothing) into a commit of the
/// mirror, after the mirror was fetched.
///
/// A plain name is tried as `refs/heads/<name>`, then `refs/tags/<name>`, then as an abbreviated sha,
/// so a branch wins over a tag of the same name (as with `git clone --branch`) and a branch named
/// like hex digits wins over a sha prefix (as with `git rev-parse`).
enum RefResolver {
    /// The shortest abbreviated sha accepted, as in git.
    static let minimumAbbreviatedLength = 4

    struct Resolution {
        var commit: git_oid
        var ref: String
    }

    /// Rejects refs that cannot name anything before any network work.
    static func validate(_ ref: String, url: String) throws(GitError) {
        if ref.isEmpty
            || ref.unicodeScalars.contains(where: { $0.properties.isWhitespace || $0.value < 0x20 || $0.value == 0x7F })
            || ref.hasPrefix("-") || ref.utf8.count > 1024
        {
            throw notFound(ref, url, "is not a valid branch, tag, sha or ref name")
        }
    }

    static func resolve(_ ref: String?, in repository: GitRepository, url: String) throws -> Resolution {
        guard let ref else { return try resolveDefaultBranch(in: repository, url: url) }
        try validate(ref, url: url)
        if ref.utf8.count == Int(GIT_OID_HEXSZ), isHex(ref) {
            var oid = git_oid()
            guard git_oid_fromstr(&oid, ref) == 0 else { throw notFound(ref, url) }
            guard let commit = try lookupCommit(oid, length: Int(GIT_OID_HEXSZ), ref: ref, in: repository, url: url) else {
                throw notFound(ref, url)
            }
            return Resolution(commit: commit, ref: LibGit2.hex(commit))
        }
        if ref.hasPrefix("refs/") {
            guard let commit = try peelReference(ref, in: repository, url: url) else { throw notFound(ref, url) }
            return Resolution(commit: commit, ref: ref)
        }
        for candidate in ["refs/heads/\(ref)", "refs/tags/\(ref)"] {
            if let commit = try peelReference(candidate, in: repository, url: url) {
                return Resolution(commit: commit, ref: candidate)
            }
        }
        if ref.utf8.count >= minimumAbbreviatedLength, ref.utf8.count < Int(GIT_OID_HEXSZ), isHex(ref) {
            var prefix = git_oid()
            guard git_oid_fromstrn(&prefix, ref, ref.utf8.count) == 0 else { throw notFound(ref, url) }
            if let commit = try lookupCommit(prefix, length: ref.utf8.count, ref: ref, in: repository, url: url) {
                return Resolution(commit: commit, ref: LibGit2.hex(commit))
            }
        }
        throw notFound(ref, url)
    }

    private static func resolveDefaultBranch(in repository: GitRepository, url: String) throws -> Resolution {
        var head: OpaquePointer?
        guard git_reference_lookup(&head, repository.pointer, "HEAD") == 0, let head else {
            throw GitError(.refNotFound, "\(url) has no default branch")
        }
        defer { git_reference_free(head) }
        guard git_reference_type(head) == GIT_REFERENCE_SYMBOLIC, let target = git_reference_symbolic_target(head) else {
            throw GitError(.refNotFound, "\(url) has no default branch")
        }
        let branch = String(cString: target)
        guard let commit = try peelReference(branch, in: repository, url: url) else {
            throw GitError(.refNotFound, "\(url) has no default branch: its HEAD names \(branch), which has no commits (empty repository?)")
        }
        return Resolution(commit: commit, ref: branch)
    }

    /// The commit `name` points to, peeling annotated tags; nil when there is no such reference.
    private static func peelReference(_ name: String, in repository: GitRepository, url: String) throws -> git_oid? {
        var valid: Int32 = 0
        guard git_reference_name_is_valid(&valid, name) == 0, valid == 1 else { return nil }
        var reference: OpaquePointer?
        let code = git_reference_lookup(&reference, repository.pointer, name)
        if code == GIT_ENOTFOUND.rawValue { return nil }
        guard code == 0, let reference else { throw LibGit2.error(code, "resolving \(name) in the mirror of", url: url) }
        defer { git_reference_free(reference) }
        var peeled: OpaquePointer?
        guard git_reference_peel(&peeled, reference, GIT_OBJECT_COMMIT) == 0, let peeled else {
            throw notFound(name, url, "does not point to a commit")
        }
        defer { git_object_free(peeled) }
        return git_object_id(peeled).pointee
    }

    /// The commit the object with this (prefix of an) id is or points to; nil when there is none.
    private static func lookupCommit(
        _ oid: git_oid,
        length: Int,
        ref: String,
        in repository: GitRepository,
        url: String
    ) throws -> git_oid? {
        var oid = oid
        var object: OpaquePointer?
        let code = git_object_lookup_prefix(&object, repository.pointer, &oid, length, GIT_OBJECT_ANY)
        if code == GIT_ENOTFOUND.rawValue { return nil }
        if code == GIT_EAMBIGUOUS.rawValue {
            throw notFound(ref, url, "is an ambiguous abbreviated sha; give more digits")
        }
        guard code == 0, let object else { throw LibGit2.error(code, "looking up \(ref) in the mirror of", url: url) }
        defer { git_object_free(object) }
        var peeled: OpaquePointer?
        guard git_object_peel(&peeled, object, GIT_OBJECT_COMMIT) == 0, let peeled else {
            throw notFound(ref, url, "does not point to a commit")
        }
        defer { git_object_free(peeled) }
        return git_object_id(peeled).pointee
    }

    private static func isHex(_ text: String) -> Bool {
        text.utf8.allSatisfy {
            (UInt8(ascii: "0")...UInt8(ascii: "9")).contains($0) || (UInt8(ascii: "a")...UInt8(ascii: "f")).contains($0)
                || (UInt8(ascii: "A")...UInt8(ascii: "F")).contains($0)
        }
    }

    private static func notFound(_ ref: String, _ url: String, _ reason: String? = nil) -> GitError {
        if let reason {
            return GitError(.refNotFound, "ref \(ref) not found in \(url): it \(reason)")
        }
        return GitError(.refNotFound, "ref \(ref) not found in \(url)")
    }
}
