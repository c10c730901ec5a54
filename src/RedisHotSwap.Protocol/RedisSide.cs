namespace RedisHotSwap;

/// <summary>The two servers of a migration.</summary>
public enum RedisSide
{
    /// <summary>The server the application uses before the migration.</summary>
    Source = 0,

    /// <summary>The server the application moves to.</summary>
    Target = 1,
}
