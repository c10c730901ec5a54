namespace RedisHotSwap.Coordinator;

/// <summary>Preflight refused to start; nothing was changed. Exit code 2.</summary>
public sealed class PreflightRefusedException(IReadOnlyList<string> problems)
    : Exception(string.Join(Environment.NewLine, problems))
{
    /// <summary>One problem without a list.</summary>
    public PreflightRefusedException(string problem)
        : this([problem])
    {
    }

    /// <summary>One line each: the problem and its remedy.</summary>
    public IReadOnlyList<string> Problems { get; } = problems;
}

/// <summary>A phase stopped (a timeout, a safety check); the text says what state is left and how to continue. Exit code 1.</summary>
public class MigrationHaltedException(string problem, string stateLeft, string howToContinue)
    : Exception($"{problem} {stateLeft} {howToContinue}")
{
    /// <summary>What stopped the phase.</summary>
    public string Problem { get; } = problem;

    /// <summary>What the servers and instances were left as.</summary>
    public string StateLeft { get; } = stateLeft;

    /// <summary>What to run next.</summary>
    public string HowToContinue { get; } = howToContinue;
}

/// <summary>A promotion whose outcome is not known (its answer lost, the server not answering since): the fence stays.</summary>
internal sealed class PromotionUncertainException(string problem, string stateLeft, string howToContinue)
    : MigrationHaltedException(problem, stateLeft, howToContinue);

/// <summary>An undo not made because another coordinator may hold the lease; <see cref="Left"/> says what stays, in words.</summary>
internal sealed class UndoRefusedException(string left, string problem, string stateLeft, string howToContinue)
    : MigrationHaltedException(problem, stateLeft, howToContinue)
{
    public string Left { get; } = left;
}
