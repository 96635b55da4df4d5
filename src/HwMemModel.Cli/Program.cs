using System.CommandLine;
using System.Globalization;
using HwMemModel.Cli;

return HwmemCommand.Run(args, Console.Out, Console.Error);
