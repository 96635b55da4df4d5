// Locals are always assigned before use (C# definite assignment); stack buffers are cleared where read whole.
// Skipping the zero-initialisation keeps the hot frames of the access and dispatch paths cheap.
[module: System.Runtime.CompilerServices.SkipLocalsInit]
