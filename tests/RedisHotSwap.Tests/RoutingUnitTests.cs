using RedisHotSwap.Protocol;
using RedisHotSwap.Triggers;

namespace RedisHotSwap.Tests;

public sealed class RoutingUnitTests
{
    private const RedisSide S = RedisSide.Source;
    private const RedisSide T = RedisSide.Target;

    private static readonly (string Name, Directive? Directive, CodeRequest? Code, RedisSide Configured, long? HandedOffUnder, string MigrationId, RedisSide Side, RedisSide? Arm)[] Table =
    [
        // name, directive, code request, configured side, handed off under, configured migration id => side, arm
        ("configuration alone", null, null, T, null, "m", T, null),
        ("code over configuration", null, new CodeRequest(T, S), S, null, "m", T, null),
        ("code lapses once the configured side changes", null, new CodeRequest(T, S), T, null, "m", T, null),
        ("code lapses: configured back to SOURCE", null, new CodeRequest(S, T), S, null, "m", S, null),
        ("abort directive over code", Directive(S, 3), new CodeRequest(T, S), S, null, "m", S, null),
        ("abort directive over configuration", Directive(S, 3), null, T, null, "m", S, null),
        ("arming keeps traffic, arms the other side", Directive(S, 4, arm: T), null, T, null, "m", S, T),
        ("a handoff made under the standing arming stands", Directive(S, 4, arm: T), null, S, 4, "m", T, null),
        ("a handoff made under an older arming does not", Directive(S, 5, arm: T), null, S, 4, "m", S, T),
        ("promotion directive", Directive(T, 6, promoted: true), new CodeRequest(S, S), S, null, "m", T, null),
        ("a directive of another migration does not apply", Directive(T, 6, promoted: true), null, S, null, "other", S, null),
    ];

    public static TheoryData<int> Cases => [.. Enumerable.Range(0, Table.Length)];

    [Theory]
    [MemberData(nameof(Cases))]
    public void Decide_FollowsTheOrderOfPrecedence(int row)
    {
        var (name, directive, code, configured, handedOffUnder, migrationId, side, arm) = Table[row];

        var outcome = Routing.Decide(new RoutingInputs(directive, code, configured, "configuration", handedOffUnder, migrationId));

        Assert.True(outcome.Side == side && outcome.Arm == arm, $"{name}: got {outcome.Side}/{outcome.Arm?.ToString() ?? "-"} ({outcome.Reason})");
    }

    private static Directive Directive(RedisSide side, long epoch, RedisSide? arm = null, bool promoted = false) =>
        new(side, "test", DateTimeOffset.UnixEpoch, promoted, MigrationId: "m", Epoch: epoch, Arm: arm);
}
