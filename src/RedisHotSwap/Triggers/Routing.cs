using RedisHotSwap.Protocol;

namespace RedisHotSwap.Triggers;

/// <summary>A switch asked for from code, and the configured side it was asked against: it stands until that changes.</summary>
internal sealed record CodeRequest(RedisSide Side, RedisSide ConfiguredWhenAsked);

/// <summary>Everything that has a say in where an instance's traffic goes, at one moment.</summary>
/// <param name="Directive">The coordinator's standing directive, already validated; null when there is none.</param>
/// <param name="Code">A switch asked for through <see cref="IHotSwapController.SwitchToAsync"/>; null when none stands.</param>
/// <param name="Configured">The side the configuration (or the feature flag, when one is named) asks for.</param>
/// <param name="ConfiguredBy">What <paramref name="Configured"/> came from, for the logs.</param>
/// <param name="HandedOffUnder">
/// The epoch of the directive under which this instance moved itself to its armed side because the side it used
/// answered READONLY (it was demoted); null when it did not.
/// </param>
/// <param name="MigrationId">The migration the configuration names now; a directive of another migration (the configuration was rewritten since) does not apply.</param>
internal sealed record RoutingInputs(Directive? Directive, CodeRequest? Code, RedisSide Configured, string ConfiguredBy, long? HandedOffUnder = null, string? MigrationId = null);

/// <summary>Where traffic goes, which side to keep warm for a handoff, and why.</summary>
internal sealed record RoutingOutcome(RedisSide Side, RedisSide? Arm, string Reason);

/// <summary>
/// The one rule that decides where an instance's traffic goes. Order of precedence, highest first:
/// <list type="number">
/// <item>a handoff this instance made itself under the standing directive (its side was demoted; it moved to the armed side, where the coordinator is about to send it anyway);</item>
/// <item>the coordinator's directive (an abort, an arming, a promotion), while the configuration names its migration;</item>
/// <item>a switch asked for from code, until the configured side next changes;</item>
/// <item>the feature flag when one is named, otherwise <c>UseTarget</c>.</item>
/// </list>
/// </summary>
internal static class Routing
{
    public static RoutingOutcome Decide(RoutingInputs inputs)
    {
        if (inputs.Directive is { } directive && string.Equals(directive.MigrationId, inputs.MigrationId, StringComparison.Ordinal))
        {
            if (directive.Arm is { } arm && inputs.HandedOffUnder == directive.Epoch)
            {
                return new RoutingOutcome(arm, null, $"{directive.Side} was demoted during the handoff (READONLY)");
            }

            return new RoutingOutcome(directive.Side, directive.Arm, $"coordinator directive ({directive.Reason})");
        }

        if (inputs.Code is { } code && code.ConfiguredWhenAsked == inputs.Configured)
        {
            return new RoutingOutcome(code.Side, null, "requested by code");
        }

        return new RoutingOutcome(inputs.Configured, null, inputs.ConfiguredBy);
    }
}
