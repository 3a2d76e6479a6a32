internal import CGcrypt

/// Secret key material that is zeroed when the last reference goes away.
///
/// Ownership: the bytes live in memory this object allocates in `init` and frees in `deinit`, after overwriting it
/// with zeros. Bytes passed to ``init(_:)`` are copied; wiping the caller's copy is the caller's business.
///
/// Threading: safe to share between threads. It is immutable after `init`.
public final class SecretBytes: @unchecked Sendable {
    // Guard for `@unchecked Sendable`: `storage` is allocated and written only inside `init`, before `self` can be
    // shared. Afterwards it is only read, through the read-only view `withUnsafeBytes` lends. `deinit` zeroes and
    // frees it, and runs only when no other reference (and so no other thread) can reach it.
    private let storage: UnsafeMutableRawBufferPointer

    /// Copies `bytes` into new zero-on-release storage.
    ///
    /// - Parameter bytes: The secret bytes to keep.
    public init(_ bytes: [UInt8]) {
        storage = .allocate(byteCount: bytes.count, alignment: 1)
        bytes.withUnsafeBytes { source in
            if !source.isEmpty {
                storage.copyMemory(from: source)
            }
        }
    }

    /// Creates `count` fresh random bytes, for example a new symmetric key.
    ///
    /// The bytes come from libgcrypt's `GCRY_VERY_STRONG_RANDOM` level.
    /// The corresponding libgcrypt call is `gcry_randomize`.
    ///
    /// - Parameter count: How many random bytes to create; must not be negative.
    public init(count: Int) {
        precondition(count >= 0, "SecretBytes(count:) needs a count of 0 or more, not \(count)")
        Gcrypt.ensureInitialised()
        storage = .allocate(byteCount: count, alignment: 1)
        if let base = storage.baseAddress, count > 0 {
            gcry_randomize(base, count, GCRY_VERY_STRONG_RANDOM)
        }
    }

    /// Creates `count` fresh random bytes from libgcrypt's `GCRY_STRONG_RANDOM` level (about 10 µs for 32 bytes, against
    /// 5 ms for the very strong level of ``init(count:)``): for short-lived keys, such as ephemeral Diffie-Hellman keys,
    /// per-connection session keys and sender chains.
    ///
    /// The corresponding libgcrypt call is `gcry_randomize`.
    ///
    /// - Parameter count: How many random bytes to create; must not be negative.
    public init(strongRandomCount count: Int) {
        precondition(count >= 0, "SecretBytes(strongRandomCount:) needs a count of 0 or more, not \(count)")
        Gcrypt.ensureInitialised()
        storage = .allocate(byteCount: count, alignment: 1)
        if let base = storage.baseAddress, count > 0 {
            gcry_randomize(base, count, GCRY_STRONG_RANDOM)
        }
    }

    /// Allocates `count` zero bytes and lets `body` write the secret into them, so that a secret produced by a C call
    /// (an X25519 shared secret, for example) never passes through an array that is not wiped.
    ///
    /// - Parameters:
    ///   - count: How many bytes to allocate; must not be negative.
    ///   - body: Writes the secret; the pointer is valid only during the call.
    init(count: Int, initializingWith body: (UnsafeMutableRawBufferPointer) -> Void) {
        precondition(count >= 0, "SecretBytes(count:initializingWith:) needs a count of 0 or more, not \(count)")
        storage = .allocate(byteCount: count, alignment: 1)
        storage.initializeMemory(as: UInt8.self, repeating: 0)
        body(storage)
    }

    deinit {
        secureZero(storage)
        storage.deallocate()
    }

    /// The number of secret bytes.
    public var count: Int {
        storage.count
    }

    /// Lends the secret bytes to `body` without copying them.
    ///
    /// The pointer is valid only during `body`; do not keep it or copy the bytes into memory that is never wiped.
    ///
    /// - Parameter body: A closure that reads the bytes.
    /// - Returns: Whatever `body` returns.
    /// - Throws: Whatever `body` throws.
    public func withUnsafeBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        try body(UnsafeRawBufferPointer(storage))
    }
}

extension SecretBytes: CustomStringConvertible {
    /// A description that shows only the length, never the bytes.
    public var description: String {
        "SecretBytes(\(count) bytes, redacted)"
    }
}

/// Secret keys of 32 bytes each, in numbered slots of one zero-on-release allocation: the keys of both directions
/// of a connection's encrypted link cost one allocation rather than two objects and two buffers each.
///
/// Unlike ``SecretBytes``, a slot's key can be replaced in place (``replaceKey(inSlot:with:)``, for a rekey). Each
/// replacement moves ``generation`` on, so that a cipher handle keyed from a slot can tell it holds an old key
/// (``AESGCMWorkspace/cipher(keyedWith:slot:)``).
///
/// Ownership: the keys live in this object's own tail storage, zeroed in `deinit`, never copied elsewhere by it.
/// Make one with ``make(slotCount:)``.
///
/// The header word holds the slot count in its top 8 bits and ``generation`` below, so that checking a slot number
/// never asks the allocator for the storage's size (`capacity` does, through `malloc_usable_size`: it showed in the
/// relay's profile, once per record sealed).
///
/// Threading: not thread-safe (a key can be replaced); used by one thread at a time. Not `Sendable` (no
/// `ManagedBuffer` is).
public final class SecretKeySlots: ManagedBuffer<UInt64, UInt8> {
    /// The length of each slot's key.
    public static let keyLength = 32
    /// The most slots one object holds (the slot count has 8 bits of the header word).
    public static let maximumSlotCount = 255
    /// Where the slot count sits in the header word.
    private static let slotCountShift: UInt64 = 56
    /// The header word's bits that are ``generation``.
    private static let generationMask: UInt64 = (1 << slotCountShift) - 1

    /// Storage for `slotCount` keys, all zero until written.
    ///
    /// - Parameter slotCount: How many keys; 1 to ``maximumSlotCount``.
    public static func make(slotCount: Int) -> SecretKeySlots {
        precondition(
            slotCount > 0 && slotCount <= maximumSlotCount,
            "SecretKeySlots needs 1 to \(maximumSlotCount) slots, not \(slotCount)")
        let byteCount = slotCount * keyLength
        let made = create(minimumCapacity: byteCount) { _ in UInt64(slotCount) << slotCountShift }
        made.withUnsafeMutablePointerToElements { $0.initialize(repeating: 0, count: made.capacity) }
        return unsafeDowncast(made, to: SecretKeySlots.self)
    }

    deinit {
        let count = capacity
        withUnsafeMutablePointerToElements { secureZero(UnsafeMutableRawBufferPointer(start: $0, count: count)) }
    }

    /// Moves on each time a key is replaced (56 bits: a rekey every 2^20 records would take 2^76 records to wrap
    /// it).
    public var generation: UInt64 { header & Self.generationMask }

    /// The number of slots.
    public var slotCount: Int { Int(truncatingIfNeeded: header >> Self.slotCountShift) }

    /// The storage of slot `slot`, checked.
    private func slotBytes(_ slot: Int) -> UnsafeMutableRawBufferPointer {
        precondition(slot >= 0 && slot < slotCount, "no key slot \(slot) among \(slotCount)")
        return withUnsafeMutablePointerToElements {
            UnsafeMutableRawBufferPointer(start: $0 + slot * Self.keyLength, count: Self.keyLength)
        }
    }

    /// Writes `key` (32 bytes) into slot `slot`, over its old key, and moves ``generation`` on.
    ///
    /// - Parameters:
    ///   - slot: The slot, from 0 to ``slotCount`` − 1.
    ///   - key: The new key; the caller wipes its copy.
    public func replaceKey(inSlot slot: Int, with key: UnsafeRawBufferPointer) {
        precondition(key.count == Self.keyLength, "a key of \(key.count) bytes for a \(Self.keyLength)-byte slot")
        slotBytes(slot).copyMemory(from: key)
        header = header & ~Self.generationMask | (header &+ 1) & Self.generationMask
    }

    /// Lends slot `slot`'s key to `body` without copying it.
    ///
    /// The pointer is valid only during `body`; do not keep it or copy the bytes into memory that is never wiped.
    public func withUnsafeBytes<R>(ofSlot slot: Int, _ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        let bytes = slotBytes(slot)
        return try withExtendedLifetime(self) { try body(UnsafeRawBufferPointer(bytes)) }
    }
}
