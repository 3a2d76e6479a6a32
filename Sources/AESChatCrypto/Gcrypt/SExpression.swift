internal import CGcrypt
internal import CGcryptShims

/// A libgcrypt S-expression, the form in which `gcry_pk_sign`, `gcry_pk_verify` and friends take keys, data and
/// signatures. ``Ed25519PrivateKey`` and ``Ed25519`` build theirs with it.
///
/// Ownership: owns one `gcry_sexp_t`, released in `deinit`. libgcrypt wipes an S-expression on release only when it
/// lives in secure memory, which aeschat turns off (see `Gcrypt.swift`); so an S-expression that holds a private key
/// is freed without being wiped. Build those per operation and release them at once.
///
/// Threading: not thread-safe; one owner at a time.
final class GcryptSExpression {
    let handle: gcry_sexp_t

    /// Takes ownership of `handle`, for example the result of `gcry_pk_sign`; `deinit` releases it.
    init(adopting handle: gcry_sexp_t) {
        self.handle = handle
    }

    deinit {
        gcry_sexp_release(handle)
    }

    /// Builds an S-expression from a format with exactly one `%b`, such as
    /// `"(public-key (ecc (curve Ed25519) (flags eddsa) (q %b)))"`.
    static func build(format: String, _ buffer: UnsafeRawBufferPointer) -> Result<GcryptSExpression, CryptoError> {
        Gcrypt.ensureInitialised()
        var built: gcry_sexp_t?
        let error = Gcrypt.withNonNullBytes(buffer) { base, count in
            cgcrypt_sexp_build_buffer(&built, nil, format, base, count)
        }
        return wrap(built, error)
    }

    /// Builds an S-expression from a format with exactly two `%b`, such as `"(sig-val (eddsa (r %b) (s %b)))"`.
    static func build(
        format: String,
        _ first: UnsafeRawBufferPointer,
        _ second: UnsafeRawBufferPointer
    ) -> Result<GcryptSExpression, CryptoError> {
        Gcrypt.ensureInitialised()
        var built: gcry_sexp_t?
        let error = Gcrypt.withNonNullBytes(first) { firstBase, firstCount in
            Gcrypt.withNonNullBytes(second) { secondBase, secondCount in
                cgcrypt_sexp_build_buffers2(&built, nil, format, firstBase, firstCount, secondBase, secondCount)
            }
        }
        return wrap(built, error)
    }

    private static func wrap(_ built: gcry_sexp_t?, _ error: gcry_error_t) -> Result<GcryptSExpression, CryptoError> {
        if let failure = Gcrypt.check(error, "gcry_sexp_build") {
            if let built {
                gcry_sexp_release(built)
            }
            return .failure(failure)
        }
        guard let built else {
            return .failure(.library(operation: "gcry_sexp_build", code: 0, message: "no S-expression returned"))
        }
        return .success(GcryptSExpression(adopting: built))
    }

    /// The data after `token` in the first sub-list that starts with `token`, for example the bytes of `q` in
    /// `(public-key (ecc (q #…#)))`; `nil` if there is no such sub-list.
    func data(after token: String) -> [UInt8]? {
        guard let list = gcry_sexp_find_token(handle, token, 0) else { return nil }
        defer { gcry_sexp_release(list) }
        var length = 0
        guard let data = gcry_sexp_nth_data(list, 1, &length) else { return nil }
        return Array(UnsafeRawBufferPointer(start: data, count: length))
    }
}
