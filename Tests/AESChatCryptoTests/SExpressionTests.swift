import Testing

@testable import AESChatCrypto

/// The S-expression shims that Ed25519 and X25519 will build on.
@Suite("S-expressions")
struct SExpressionTests {
    @Test func sExpression_buildOneBuffer_roundTripsBytes() throws {
        let point: [UInt8] = (0..<32).map { UInt8($0) }
        let built = point.withUnsafeBytes {
            GcryptSExpression.build(format: "(public-key (ecc (curve Ed25519) (flags eddsa) (q %b)))", $0)
        }
        let expression = try built.get()
        #expect(expression.data(after: "q") == point)
        #expect(expression.data(after: "curve") == utf8("Ed25519"))
        #expect(expression.data(after: "missing") == nil)
    }

    @Test func sExpression_buildTwoBuffers_keepsOrder() throws {
        let r = [UInt8](repeating: 0x11, count: 32)
        let s = [UInt8](repeating: 0x22, count: 32)
        let built = r.withUnsafeBytes { first in
            s.withUnsafeBytes { second in
                GcryptSExpression.build(format: "(sig-val (eddsa (r %b) (s %b)))", first, second)
            }
        }
        let expression = try built.get()
        #expect(expression.data(after: "r") == r)
        #expect(expression.data(after: "s") == s)
    }

    @Test func sExpression_build_reportsMalformedFormat() {
        let built = [UInt8]([1]).withUnsafeBytes { GcryptSExpression.build(format: "(unbalanced %b", $0) }
        guard case .failure(.library(let operation, _, _)) = built else {
            Issue.record("a malformed format must fail, got \(built)")
            return
        }
        #expect(operation == "gcry_sexp_build")
    }
}
