// The whole of libgcrypt's public C API, exposed to Swift as the module `CGcrypt`.
// Only AESChatCrypto imports it; variadic functions and macros are wrapped in CGcryptShims.
#include <gcrypt.h>
