// swift-tools-version: 6.0
import Foundation
import PackageDescription

/// Settings shared by every Swift target: Swift 6 language mode plus the upcoming features we rely on.
let swiftSettings: [SwiftSetting] = [
    .enableUpcomingFeature("ExistentialAny"),
    .enableUpcomingFeature("MemberImportVisibility"),
    .enableUpcomingFeature("InternalImportsByDefault"),
]

let package = Package(
    name: "aeschat",
    platforms: [.macOS(.v13)],
    products: [
        .executable(name: "aeschat", targets: ["aeschat"]),
        .executable(name: "aeschat-load", targets: ["aeschat-load"]),
    ],
    targets: [
        .systemLibrary(
            name: "CGcrypt",
            pkgConfig: "libgcrypt",
            providers: [.apt(["libgcrypt20-dev"]), .brew(["libgcrypt"])]
        ),
        .target(name: "CGcryptShims", dependencies: ["CGcrypt"]),
        .target(name: "AESChatCrypto", dependencies: ["CGcrypt", "CGcryptShims"], swiftSettings: swiftSettings),
        // hiredis's command encoder and reply reader, for the relays of a cluster (`serve --cluster`): Debian's
        // 0.14 and Homebrew's 1.x, behind C shims whose signatures do not change between them.
        .systemLibrary(
            name: "CHiredis",
            pkgConfig: "hiredis",
            providers: [.apt(["libhiredis-dev"]), .brew(["hiredis"])]
        ),
        .target(name: "CHiredisShims", dependencies: ["CHiredis"]),
        // The member and room name rules: a protocol rule that the command line also checks.
        .target(name: "AESChatNames", swiftSettings: swiftSettings),
        .target(name: "AESChatCLI", dependencies: ["AESChatNames"], swiftSettings: swiftSettings),
        .systemLibrary(name: "CLinux"),
        .target(
            name: "AESChatCore",
            dependencies: ["AESChatCrypto", "AESChatNames", "AESChatCLI", "CLinux", "CHiredis", "CHiredisShims"],
            swiftSettings: swiftSettings),
        // A hostile member with genuine keys, for the unit tests and the fuzzer (not the aeschat command).
        .target(
            name: "AESChatTesting", dependencies: ["AESChatCore", "AESChatCrypto"], swiftSettings: swiftSettings),
        .executableTarget(name: "aeschat", dependencies: ["AESChatCore", "AESChatCLI"], swiftSettings: swiftSettings),
        // The load generator only: no dynamic exclusivity checks (its engine's per-member arrays are class properties
        // touched for every record it reads; the checks cost about 8 % of its CPU in a join). Never for the product.
        .executableTarget(
            name: "aeschat-load", dependencies: ["AESChatCore", "AESChatCrypto", "CLinux"],
            swiftSettings: swiftSettings + [.unsafeFlags(["-enforce-exclusivity=unchecked"])]
        ),
        .executableTarget(name: "aeschat-bench", dependencies: ["AESChatCrypto"], swiftSettings: swiftSettings),
        .testTarget(name: "AESChatCryptoTests", dependencies: ["AESChatCrypto"], swiftSettings: swiftSettings),
        .testTarget(
            name: "AESChatCLITests", dependencies: ["AESChatCLI", "AESChatNames"], swiftSettings: swiftSettings),
        .testTarget(
            name: "AESChatCoreTests", dependencies: ["AESChatCore", "AESChatCrypto", "AESChatTesting"],
            swiftSettings: swiftSettings),
    ],
    swiftLanguageModes: [.v6]
)

// The libFuzzer target exists only for scripts/fuzz, which sets AESCHAT_FUZZ=1 and builds it with
// -sanitize=fuzzer,address; the normal build never sees it.
if ProcessInfo.processInfo.environment["AESCHAT_FUZZ"] == "1" {
    package.products.append(.executable(name: "aeschat-fuzz", targets: ["aeschat-fuzz"]))
    package.targets.append(
        .executableTarget(
            name: "aeschat-fuzz", dependencies: ["AESChatCore", "AESChatCrypto", "AESChatTesting"],
            swiftSettings: swiftSettings))
}
