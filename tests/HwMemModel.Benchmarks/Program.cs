using BenchmarkDotNet.Running;

BenchmarkSwitcher.FromAssembly(typeof(HwMemModel.Benchmarks.MmuBenchmarks).Assembly).Run(args);
