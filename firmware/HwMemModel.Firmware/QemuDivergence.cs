namespace HwMemModel.Firmware;

/// <summary>
/// A serial output line where QEMU 7.2 deviates from the Intel SDM (see PLATFORM.md, "Known QEMU
/// divergences"): the model, which follows the SDM, prints <see cref="SdmLine"/> where QEMU printed
/// <see cref="QemuLine"/>.
/// </summary>
/// <param name="QemuLine">The line as QEMU printed it, without the line feed.</param>
/// <param name="SdmLine">The line the SDM behaviour gives.</param>
public sealed record QemuDivergence(string QemuLine, string SdmLine);
