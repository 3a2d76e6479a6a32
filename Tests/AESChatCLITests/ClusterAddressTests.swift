import AESChatCLI
import Testing

/// `--cluster URL` and its companions: the forms accepted and what they mean.
@Suite struct ClusterAddressTests {
    @Test(arguments: [
        ("redis://localhost", ClusterAddress(endpoint: .tcp(host: "localhost", port: 6379))),
        ("redis://127.0.0.1:7000", ClusterAddress(endpoint: .tcp(host: "127.0.0.1", port: 7000))),
        ("REDIS://10.0.0.5/3", ClusterAddress(endpoint: .tcp(host: "10.0.0.5", port: 6379), database: 3)),
        (
            "redis://relay@redis.example:6380/0",
            ClusterAddress(endpoint: .tcp(host: "redis.example", port: 6380), user: "relay")
        ),
        ("redis://[::1]", ClusterAddress(endpoint: .tcp(host: "::1", port: 6379))),
        (
            "redis://u-1@[fe80::1]:1/15",
            ClusterAddress(endpoint: .tcp(host: "fe80::1", port: 1), user: "u-1", database: 15)
        ),
        ("unix:///run/redis/redis.sock", ClusterAddress(endpoint: .unix(path: "/run/redis/redis.sock"))),
    ])
    func parse_accepts(_ text: String, _ expected: ClusterAddress) throws {
        #expect(try ClusterAddress.parse(text).get() == expected)
        let options = try CommandLineParser.parse(["serve", "--cluster", text])
        guard case .serve(let serve) = options else { throw ParseFailure() }
        #expect(serve.cluster == expected)
    }

    struct ParseFailure: Error {}

    @Test func description_writesTheNormalizedURLWithoutAnyPassword() throws {
        #expect(try ClusterAddress.parse("redis://h").get().description == "redis://h:6379")
        #expect(try ClusterAddress.parse("redis://u@[::1]:7/2").get().description == "redis://u@[::1]:7/2")
        #expect(try ClusterAddress.parse("unix:///tmp/r.sock").get().description == "unix:///tmp/r.sock")
    }

    @Test func serve_takesThePrefixAndDeadAfter_withDefaultsWithout() throws {
        guard case .serve(let defaults) = try CommandLineParser.parse(["serve"]) else { throw ParseFailure() }
        #expect(defaults.cluster == nil)
        #expect(defaults.clusterPrefix == "aeschat")
        #expect(defaults.clusterDeadAfter == 5)
        guard
            case .serve(let given) = try CommandLineParser.parse([
                "serve", "--cluster=redis://h", "--cluster-prefix", "team-a.prod", "--cluster-dead-after", "30s",
            ])
        else { throw ParseFailure() }
        #expect(given.clusterPrefix == "team-a.prod")
        #expect(given.clusterDeadAfter == 30)
        guard case .serve(let bare) = try CommandLineParser.parse(["serve", "--cluster-dead-after", "3600"]) else {
            throw ParseFailure()
        }
        #expect(bare.clusterDeadAfter == 3600)
    }
}
