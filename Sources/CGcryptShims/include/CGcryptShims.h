// Fixed-arity C wrappers for the parts of libgcrypt that Swift cannot call directly: variadic functions
// (`gcry_control`, `gcry_sexp_build`), macros (`GCRYPT_VERSION`) and static inline helpers (`gcry_err_code`).
// Everything else in libgcrypt is called from Swift through the `CGcrypt` module.
// Only the AESChatCrypto target imports this module.

#ifndef CGCRYPT_SHIMS_H
#define CGCRYPT_SHIMS_H

#include <gcrypt.h>
#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

// MARK: - Initialisation

/// The libgcrypt version of the headers this code was compiled against.
/// Wraps the macro `GCRYPT_VERSION`.
const char *_Nonnull cgcrypt_header_version(void);

/// Whether libgcrypt's initialisation has already been finished (by us or by another library in the process).
/// Wraps the variadic `gcry_control (GCRYCTL_INITIALIZATION_FINISHED_P)`; returns non-zero when finished.
int cgcrypt_control_initialization_finished_p(void);

/// Turns libgcrypt's secure-memory pool off. Must run after `gcry_check_version` and before
/// `cgcrypt_control_initialization_finished`. We disable it on purpose: aeschat zeroes its own secrets
/// (`SecretBytes`, wiped buffers), and the small fixed secure-memory pool would run out when many cipher and MAC
/// handles are open at once (one per peer and direction), making ordinary calls fail.
/// Wraps the variadic `gcry_control (GCRYCTL_DISABLE_SECMEM, 0)`.
gcry_error_t cgcrypt_control_disable_secmem(void);

/// Tells libgcrypt that initialisation is complete; no library call is valid before this.
/// Wraps the variadic `gcry_control (GCRYCTL_INITIALIZATION_FINISHED, 0)`.
gcry_error_t cgcrypt_control_initialization_finished(void);

// MARK: - Errors

/// The error code part of a libgcrypt error value, without the error source.
/// Wraps the static inline function `gcry_err_code`.
gcry_err_code_t cgcrypt_err_code(gcry_error_t error);

// MARK: - S-expressions (for Ed25519 and X25519 keys, signatures and data)

/// Builds an S-expression from a format string containing exactly one `%b` (a byte buffer), such as
/// `"(public-key (ecc (curve Ed25519) (flags eddsa) (q %b)))"`.
/// On success `*result` owns a new S-expression that the caller releases with `gcry_sexp_release`.
/// Returns `GPG_ERR_TOO_LARGE` without calling libgcrypt when `length` does not fit in an `int`.
/// Wraps the variadic `gcry_sexp_build`.
gcry_error_t cgcrypt_sexp_build_buffer(
    gcry_sexp_t _Nullable *_Nonnull result,
    size_t *_Nullable error_offset,
    const char *_Nonnull format,
    const void *_Nonnull buffer,
    size_t length);

/// Builds an S-expression from a format string containing exactly two `%b` (byte buffers), in order, such as
/// `"(sig-val (eddsa (r %b) (s %b)))"`.
/// On success `*result` owns a new S-expression that the caller releases with `gcry_sexp_release`.
/// Returns `GPG_ERR_TOO_LARGE` without calling libgcrypt when a length does not fit in an `int`.
/// Wraps the variadic `gcry_sexp_build`.
gcry_error_t cgcrypt_sexp_build_buffers2(
    gcry_sexp_t _Nullable *_Nonnull result,
    size_t *_Nullable error_offset,
    const char *_Nonnull format,
    const void *_Nonnull first_buffer,
    size_t first_length,
    const void *_Nonnull second_buffer,
    size_t second_length);

#ifdef __cplusplus
}
#endif

#endif  // CGCRYPT_SHIMS_H
