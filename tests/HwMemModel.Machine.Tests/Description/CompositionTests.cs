using HwMemModel.Bus;
using HwMemModel.Kernel;
using HwMemModel.Kernel.Drivers;
using HwMemModel.Machine.Description;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace HwMemModel.Machine.Tests.Description;

public sealed class CompositionTests
{
    private sealed class ProbeRecorder(IIoMemApi io, IDevresApi devres, ILogger<ProbeRecorder> log) : IPlatformDriver
    {
        public uint IdSeen { get; private set; }
        public string Name => "recorder";
        public IReadOnlyList<string> Compatible => ["hwmem,dma-engine"];
        public int Probe(PlatformDevice device)
        {
            ulong regs = devres.DevmPlatformIoRemapResource(device);
            IdSeen = io.ReadL(regs);
            log.LogInformation("{Device}: id {Id:x8}", device.Name, IdSeen);
            return 0;
        }
        public void Remove(PlatformDevice device) { }
    }

    [Test]
    public void A_bad_description_fails_when_it_is_added_not_when_it_is_first_used()
    {
        var bad = MachineDescription.Default with { Cpus = 0 };
        var e = Assert.Throws<MachineDescriptionException>(() => new ServiceCollection().AddHwMemModel(bad))!;
        Assert.That(e.JsonPath, Is.EqualTo("$.Machine.Cpus"));
    }

    [Test]
    public void The_container_holds_the_machine_and_the_kernel_services_drivers_are_built_from()
    {
        var config = new ConfigurationBuilder().AddJsonFile(Path.Combine(TestContext.CurrentContext.TestDirectory, "machines", "default.json")).Build();
        using var provider = new ServiceCollection().AddHwMemModel(config).AddPlatformDriver<ProbeRecorder>().BuildServiceProvider();
        var machine = provider.StartHwMemModel();
        var kernel = provider.GetRequiredService<Kernel.Kernel>();
        Assert.That(kernel, Is.SameAs(machine.Kernel));
        Assert.That(provider.GetRequiredService<ISlabApi>(), Is.SameAs(kernel));
        Assert.That(provider.GetRequiredService<IDmaApi>(), Is.SameAs(kernel));
        Assert.That(provider.GetRequiredService<PhysicalBus>(), Is.SameAs(machine.Bus));
        Assert.That(provider.GetRequiredService<KernelMemory>(), Is.SameAs(kernel.Memory));
        var recorder = provider.GetRequiredService<ProbeRecorder>();
        // The DMA engine's ID register, as its datasheet (devices/README.md) gives it: "HDMA" little-endian.
        Assert.That(recorder.IdSeen, Is.EqualTo(0x414D4448u));
        Assert.That(machine.Drivers.Find("dma0")!.Driver, Is.SameAs(recorder));
        Assert.That(kernel.Log.Lines, Has.Some.EqualTo("ProbeRecorder: dma0: id 414d4448"));
    }
}
