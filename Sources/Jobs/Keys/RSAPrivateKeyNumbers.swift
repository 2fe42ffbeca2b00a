import SwiftASN1

/// The numbers of a two-prime RSA private key, from PKCS#1's `RSAPrivateKey` (RFC 8017 §A.1.2),
/// each as its unsigned big-endian magnitude (swift-asn1 drops DER's sign byte).
struct RSAPrivateKeyNumbers {
    let modulus: ArraySlice<UInt8>
    let publicExponent: ArraySlice<UInt8>
    let privateExponent: ArraySlice<UInt8>
    let prime1: ArraySlice<UInt8>
    let prime2: ArraySlice<UInt8>
    let coefficient: ArraySlice<UInt8>

    init(pkcs1DER der: [UInt8]) throws {
        let integers: [ArraySlice<UInt8>]
        do {
            integers = try DER.sequence(try DER.parse(der), identifier: .sequence) { nodes in
                // Version 1 would be a multi-prime key, which OpenSSH's format can't hold.
                guard try Int(derEncoded: &nodes) == 0 else {
                    throw OpenSSHKeyPair.GenerationError.unreadableRSAKey(reason: "RSAPrivateKey version is not 0")
                }
                // modulus, publicExponent, privateExponent, prime1, prime2, exponent1, exponent2,
                // coefficient; OpenSSH stores neither exponent1 nor exponent2.
                return try (0..<8).map { _ in try ArraySlice<UInt8>(derEncoded: &nodes) }
            }
        } catch let error as ASN1Error {
            throw OpenSSHKeyPair.GenerationError.unreadableRSAKey(reason: "malformed PKCS#1 DER: \(error)")
        }
        modulus = integers[0]
        publicExponent = integers[1]
        privateExponent = integers[2]
        prime1 = integers[3]
        prime2 = integers[4]
        coefficient = integers[7]
    }
}
