import Foundation
import HarrowTestSupport
import Store

@testable import Jobs

/// Every file under `directory` (including `.git`) whose bytes contain `secret`.
func filesContaining(_ secret: String, under directory: URL) -> [String] {
    let needle = Data(secret.utf8)
    guard let walker = FileManager.default.enumerator(at: directory, includingPropertiesForKeys: [.isRegularFileKey]) else {
        return []
    }
    var found: [String] = []
    for case let file as URL in walker {
        guard (try? file.resourceValues(forKeys: [.isRegularFileKey]).isRegularFile) == true,
            let data = try? Data(contentsOf: file)
        else { continue }
        if data.range(of: needle) != nil { found.append(file.path) }
    }
    return found
}

/// A verifier that trusts only the key of a known_hosts-style `type base64` line.
func pinnedHostKey(_ line: String) -> HostKeyVerifier {
    let fields = line.split(separator: " ")
    let type = String(fields[0])
    let blob = [UInt8](Data(base64Encoded: String(fields[1])) ?? Data())
    return { _, _, keyType, key in
        keyType == type && key == blob ? .trusted : .rejected("not the pinned \(type) key")
    }
}

/// HTTP(S) never consults the verifier; a test fails loudly if it were.
let noSSHHostKeyExpected: HostKeyVerifier = { host, _, _, _ in .rejected("unexpected SSH host key check for \(host)") }
