using Xunit;

namespace RaySharing.Tests.Infrastructure;

/// <summary>
/// The tests that start JVMs and Python interpreters by the handful run after the parallel tests, alone: a JVM's start
/// takes a core for a second or two, which on a 2-core machine starves other tests' timing (a body's frame timeout).
/// </summary>
[CollectionDefinition(nameof(OtherLanguagesCollection), DisableParallelization = true)]
public sealed class OtherLanguagesCollection;
