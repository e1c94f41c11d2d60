using Onex.Testing;

// Ports and buses a test takes through the kit are released after that test, pass or fail.
[assembly: OnexTestResources]

// Fixtures run in parallel; the tests of one fixture run one after another. Four workers keep two cores busy
// while tests wait on sockets and processes.
[assembly: Parallelizable(ParallelScope.Fixtures)]
[assembly: LevelOfParallelism(4)]
