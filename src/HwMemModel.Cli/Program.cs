using System.CommandLine;
using System.Globalization;
using HwMemModel.Cli;

using var rawStdout = Console.OpenStandardOutput();
return HwmemCommand.Run(args, Console.Out, Console.Error, rawStdout);
