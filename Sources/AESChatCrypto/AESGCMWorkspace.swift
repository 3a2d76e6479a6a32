#if canImport(Glibc)
    internal import Glibc
#elseif canImport(Darwin)
    internal import Darwin
#endif

/// One AES-256-GCM cipher handle per thread, keyed on demand, for the many connections of an event loop that keep
/// only their keys: a libgcrypt handle is about 2 KB, a key 32 bytes, so an idle connection holds no handle and each
/// seal or open borrows its thread's with ``cipher(keyedWith:)``.
///
/// Setting a key costs about 120 ns (the AES key schedule and GHASH's table); a workspace remembers the last key it
/// set and skips setting it again when the next operation uses the same key (a run of records on one connection).
///
/// Ownership: owns one ``AESGCM`` and a reference to the holder of the last key set (which keeps that holder alive,
/// and so makes the identity check sound, until another key is set); for a key in ``SecretKeySlots``, also its slot
/// and the slots' generation then (a replaced key moves the generation on). The handle is closed, and its key schedule wiped, when the
/// thread ends.
///
/// Threading: one per thread, reached through ``current``; never shared, so it is deliberately not `Sendable`.
public final class AESGCMWorkspace {
    private let cipher: AESGCM
    /// The ``SecretBytes`` or ``SecretKeySlots`` whose key the handle has, if any.
    private var keyInCipher: AnyObject?
    /// The slot of ``keyInCipher``'s key when it is a ``SecretKeySlots``; -1 for ``SecretBytes``.
    private var slotInCipher = -1
    /// The ``SecretKeySlots/generation`` when its key was set.
    private var generationInCipher: UInt64 = 0

    private init() throws(CryptoError) {
        cipher = try AESGCM(unkeyedFor: 32)
    }

    /// The current thread's workspace, made at its first use and released when the thread ends.
    ///
    /// - Throws: ``CryptoError/library(operation:code:message:)`` if libgcrypt cannot open a handle.
    public static func current() throws(CryptoError) -> AESGCMWorkspace {
        if let stored = pthread_getspecific(threadKey) {
            return Unmanaged<AESGCMWorkspace>.fromOpaque(stored).takeUnretainedValue()
        }
        let workspace = try AESGCMWorkspace()
        pthread_setspecific(threadKey, Unmanaged.passRetained(workspace).toOpaque())
        return workspace
    }

    /// The thread's cipher with `key` set: valid for the caller's operation only, until the next call on this
    /// thread (which may set another key). Never keep it.
    ///
    /// - Parameter key: 32 bytes.
    /// - Throws: ``CryptoError/invalidKeySize(expected:actual:)`` for another length;
    ///   ``CryptoError/library(operation:code:message:)`` if libgcrypt fails.
    public func cipher(keyedWith key: SecretBytes) throws(CryptoError) -> AESGCM {
        if keyInCipher !== key {
            keyInCipher = nil
            try cipher.setKey(key)
            keyInCipher = key
            slotInCipher = -1
        }
        return cipher
    }

    /// The thread's cipher with the key in slot `slot` of `keys` set, as ``cipher(keyedWith:)``: valid for the
    /// caller's operation only. The key is set again once it has been replaced in its slot.
    ///
    /// - Parameters:
    ///   - keys: The keys.
    ///   - slot: The slot, from 0 to ``SecretKeySlots/slotCount`` − 1.
    /// - Throws: ``CryptoError/library(operation:code:message:)`` if libgcrypt fails.
    public func cipher(keyedWith keys: SecretKeySlots, slot: Int) throws(CryptoError) -> AESGCM {
        if keyInCipher !== keys || slotInCipher != slot || generationInCipher != keys.generation {
            keyInCipher = nil
            let failure = keys.withUnsafeBytes(ofSlot: slot) { cipher.setKey(bytes: $0) }
            if let failure { throw failure }
            keyInCipher = keys
            slotInCipher = slot
            generationInCipher = keys.generation
        }
        return cipher
    }
}

@available(*, unavailable, message: "An AESGCMWorkspace belongs to one thread; reach it through current().")
extension AESGCMWorkspace: Sendable {}

/// The thread-specific slot that holds each thread's ``AESGCMWorkspace`` (retained; released when the thread ends).
private let threadKey: pthread_key_t = {
    var key = pthread_key_t()
    #if canImport(Darwin)
        let status = pthread_key_create(&key) { Unmanaged<AESGCMWorkspace>.fromOpaque($0).release() }
    #else
        let status = pthread_key_create(&key) { stored in
            if let stored { Unmanaged<AESGCMWorkspace>.fromOpaque(stored).release() }
        }
    #endif
    precondition(status == 0, "pthread_key_create failed: \(status)")
    return key
}()
