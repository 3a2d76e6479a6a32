#include "CGcryptShims.h"

#include <limits.h>

const char *cgcrypt_header_version(void) {
    return GCRYPT_VERSION;
}

int cgcrypt_control_initialization_finished_p(void) {
    return gcry_control(GCRYCTL_INITIALIZATION_FINISHED_P) != 0;
}

gcry_error_t cgcrypt_control_disable_secmem(void) {
    return gcry_control(GCRYCTL_DISABLE_SECMEM, 0);
}

gcry_error_t cgcrypt_control_initialization_finished(void) {
    return gcry_control(GCRYCTL_INITIALIZATION_FINISHED, 0);
}

gcry_err_code_t cgcrypt_err_code(gcry_error_t error) {
    return gcry_err_code(error);
}

gcry_error_t cgcrypt_sexp_build_buffer(
    gcry_sexp_t *result,
    size_t *error_offset,
    const char *format,
    const void *buffer,
    size_t length) {
    if (length > INT_MAX) {
        return gcry_error(GPG_ERR_TOO_LARGE);
    }
    // `%b` takes an int length followed by the buffer pointer.
    return gcry_sexp_build(result, error_offset, format, (int)length, buffer);
}

gcry_error_t cgcrypt_sexp_build_buffers2(
    gcry_sexp_t *result,
    size_t *error_offset,
    const char *format,
    const void *first_buffer,
    size_t first_length,
    const void *second_buffer,
    size_t second_length) {
    if (first_length > INT_MAX || second_length > INT_MAX) {
        return gcry_error(GPG_ERR_TOO_LARGE);
    }
    return gcry_sexp_build(
        result, error_offset, format, (int)first_length, first_buffer, (int)second_length, second_buffer);
}
